/**
 * End to end over HTTP with NODE_ENV=production: no introspection, no GraphiQL page, masked errors;
 * the API itself works as in development.
 */
import { type TestLedger, rawRequest, startTestLedger } from '../support/ledger-server';

let ledger: TestLedger;

beforeAll(async () => {
  ledger = await startTestLedger({ NODE_ENV: 'production' });
});
afterAll(async () => {
  await ledger?.close();
});

describe('NODE_ENV=production', () => {
  it('refuses introspection, for every role', async () => {
    for (const roles of [['admin'], ['teller'], ['analyst']] as const) {
      for (const query of ['{ __schema { types { name } } }', '{ __type(name: "Account") { fields { name } } }', 'query { ...F } fragment F on Query { __schema { queryType { name } } }']) {
        const res = await ledger.gql(query, undefined, [...roles]);
        expect(res.body.data ?? null).toBeNull();
        expect(res.body.errors?.[0]?.message).toMatch(/introspection has been disabled/);
        expect(JSON.stringify(res.body)).not.toMatch(/"Account"|"Transaction"|"Mutation"/);
      }
    }
    // __typename is not introspection.
    expect((await ledger.gql('{ __typename }')).body).toEqual({ data: { __typename: 'Query' } });
  });

  it('does not serve the GraphiQL page, with or without a token', async () => {
    const anonymous = await fetch(ledger.url, { headers: { accept: 'text/html' } });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('content-type')).not.toMatch(/text\/html/);
    expect(await anonymous.text()).not.toMatch(/graphiql/i);

    const withToken = await fetch(ledger.url, { headers: { accept: 'text/html', authorization: `Bearer ${await ledger.token(['admin'])}` } });
    expect(withToken.headers.get('content-type') ?? '').not.toMatch(/text\/html/);
    expect(await withToken.text()).not.toMatch(/graphiql/i);
    expect(withToken.status).not.toBe(200);
  });

  it('serves the API and the health check as usual', async () => {
    const health = await rawRequest(ledger.running.port, { method: 'GET', path: '/health' });
    expect(health.status).toBe(200);
    expect(health.json.ready).toBe(true);
    const opened = await ledger.gql(`mutation { openAccount(input: { id: "prod-1", initialBalance: "42" }) { __typename ... on OpenAccountSuccess { position account { balance } } } }`, undefined, ['teller']);
    expect(opened.body.data.openAccount).toMatchObject({ __typename: 'OpenAccountSuccess', account: { balance: '42' } });
    const read = await ledger.gql(`query($at: Position) { account(id: "prod-1", atLeast: $at) { balance } }`, { at: opened.body.data.openAccount.position }, ['analyst']);
    expect(read.body).toEqual({ data: { account: { balance: '42' } } });
  });

  it('masks internal errors', async () => {
    const readModels = ledger.running.ledger.api.readModels;
    const original = readModels.listAccounts;
    readModels.listAccounts = async () => {
      throw new Error('SECRET: connection string mongodb://user:pw@host');
    };
    const logged = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const res = await ledger.gql('{ accounts { totalCount } }');
      expect(res.body.errors?.[0]?.message).toBe('Unexpected error.');
      expect(res.body.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
      expect(JSON.stringify(res.body)).not.toMatch(/SECRET|mongodb|stack|originalError/);
    } finally {
      readModels.listAccounts = original;
      logged.mockRestore();
    }
  });
});
