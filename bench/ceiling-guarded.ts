/**
 * Ceiling (b): the ceilings' trivial transfer mutation behind exactly the guards the ledger puts in
 * front of its schema in production: the body-size check, bearer JWT verification and GraphQL Armor
 * limits (imported from src/api/server.ts, not copied), masked errors, no GraphiQL, no
 * introspection. What the ledger does beyond this is the ledger itself.
 */
import { createServer } from 'node:http';
import { useDisableIntrospection } from '@graphql-yoga/plugin-disable-introspection';
import { createYoga } from 'graphql-yoga';
import { REQUEST_LIMITS, YOGA_BODY_OPTIONS, armorPlugins, checkBodySize, refuse, useBearerAuth } from '../src/api/server';
import { buildCeilingSchema, listenFromEnvironment } from './ceiling-schema';

const secret = process.env.LEDGER_JWT_SECRET;
if (!secret) {
  console.error('ceiling-guarded: set LEDGER_JWT_SECRET');
  process.exit(2);
}
const jwtKey = new TextEncoder().encode(secret);

const yoga = createYoga({
  schema: buildCeilingSchema(),
  graphqlEndpoint: '/graphql',
  graphiql: false,
  landingPage: false,
  maskedErrors: true,
  // As the ledger: the body's size is checked before yoga (checkBodySize), not again inside it.
  ...YOGA_BODY_OPTIONS,
  logging: 'warn',
  plugins: [useBearerAuth(jwtKey, false), ...armorPlugins(), useDisableIntrospection()],
});

// The same routing as the ledger's createApiServer: /graphql only, body size checked before yoga.
const server = createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/health' && (req.method === 'GET' || req.method === 'HEAD')) {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
    res.end('{"ready":true}');
    return;
  }
  if (path !== '/graphql') {
    refuse(res, 404, 'NOT_FOUND', 'not found');
    return;
  }
  if (!checkBodySize(req, res, REQUEST_LIMITS.bodyBytesMax)) return;
  void yoga(req, res);
});

listenFromEnvironment(server, 'ceiling-guarded');
