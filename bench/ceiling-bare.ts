/**
 * Ceiling (a): graphql-yoga + Pothos with the ceilings' trivial transfer mutation, served exactly as
 * yoga's docs show (createServer(yoga)): no authentication, no limits, no ledger.
 */
import { createServer } from 'node:http';
import { createYoga } from 'graphql-yoga';
import { buildCeilingSchema, listenFromEnvironment } from './ceiling-schema';

const yoga = createYoga({
  schema: buildCeilingSchema(),
  graphqlEndpoint: '/graphql',
  graphiql: false,
  landingPage: false,
  maskedErrors: true,
  logging: 'warn',
});

listenFromEnvironment(createServer(yoga), 'ceiling-bare');
