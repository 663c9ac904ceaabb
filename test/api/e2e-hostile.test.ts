/**
 * End to end over HTTP: hostile or careless requests are refused with a clear error before anything
 * runs, and internal errors are masked.
 */
import { connect } from 'node:net';
import { type TestLedger, rawRequest, startTestLedger, uniqueId } from '../support/ledger-server';

const ACCOUNT_Q = `query($id: ID!, $at: Position) { account(id: $id, atLeast: $at) { id balance availableBalance transactionCount } }`;
const OPEN = `mutation($id: ID!, $initial: Amount) { openAccount(input: { id: $id, initialBalance: $initial }) { __typename ... on OpenAccountSuccess { position } } }`;
const BODY_MAX = 6 * 1024 * 1024;

let ledger: TestLedger;
const uid = uniqueId;

beforeAll(async () => {
  ledger = await startTestLedger();
});
afterAll(async () => {
  await ledger?.close();
});

const data = <T = any>(query: string, variables?: Record<string, unknown>): Promise<T> => ledger.data<T>(query, variables);
async function open(id: string, initial = '1000') {
  const result = (await data(OPEN, { id, initial })).openAccount;
  expect(result.__typename).toBe('OpenAccountSuccess');
  return result.position as string;
}
/** The account after every earlier write (a fresh write's position is waited for). */
async function accountNow(id: string) {
  const marker = await open(uid('mk'), '0');
  return (await data(ACCOUNT_Q, { id, at: marker })).account;
}
async function expectRefused(query: string, variables: Record<string, unknown> | undefined, message: RegExp, code?: string) {
  const res = await ledger.gql(query, variables);
  expect(res.body.data ?? null).toBeNull();
  expect(res.body.errors?.length).toBeGreaterThan(0);
  expect(res.body.errors![0]!.message).toMatch(message);
  if (code) expect(res.body.errors![0]!.extensions?.code).toBe(code);
  return res;
}

describe('request size', () => {
  it('refuses a body over the limit with 413 and runs nothing', async () => {
    const id = uid('big');
    const json = JSON.stringify({ query: `mutation { openAccount(input: { id: "${id}" }) { __typename } }` });
    const body = Buffer.concat([Buffer.from(json.slice(0, -1)), Buffer.alloc(BODY_MAX, 0x20), Buffer.from('}')]);
    expect(JSON.parse(body.toString()).query).toContain(id);
    const res = await rawRequest(ledger.running.port, {
      headers: { 'content-type': 'application/json', 'content-length': String(body.length), authorization: `Bearer ${await ledger.token(['admin'])}` },
      body,
    });
    expect(res.status).toBe(413);
    expect(res.json.errors[0].extensions.code).toBe('PAYLOAD_TOO_LARGE');
    expect(res.json.errors[0].message).toMatch(/at most 6291456 bytes/);
    expect(await accountNow(id)).toBeNull();
  });

  it('refuses a POST without Content-Length (chunked) with 411 and runs nothing', async () => {
    const id = uid('chunk');
    const json = JSON.stringify({ query: `mutation { openAccount(input: { id: "${id}" }) { __typename } }` });
    const res = await rawRequest(ledger.running.port, {
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await ledger.token(['admin'])}` },
      chunks: [json.slice(0, 10), json.slice(10)],
    });
    expect(res.status).toBe(411);
    expect(res.json.errors[0].extensions.code).toBe('LENGTH_REQUIRED');
    expect(res.json.errors[0].message).toMatch(/Content-Length/);
    expect(await accountNow(id)).toBeNull();
  });

  it('refuses a body framed both by Content-Length and chunked, so no body outgrows its checked length', async () => {
    // What lets the server check the size once, from Content-Length (yoga's own limiter is off).
    const id = uid('smuggle');
    const json = JSON.stringify({ query: `mutation { openAccount(input: { id: "${id}" }) { __typename } }` });
    const big = Buffer.concat([Buffer.from(json.slice(0, -1)), Buffer.alloc(BODY_MAX, 0x20), Buffer.from('}')]);
    const head =
      'POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
      `Authorization: Bearer ${await ledger.token(['admin'])}\r\nContent-Length: ${json.length}\r\nTransfer-Encoding: chunked\r\n\r\n`;
    const status = await new Promise<string>((resolve, reject) => {
      const socket = connect(ledger.running.port, '127.0.0.1');
      let answer = '';
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
      socket.on('close', () => resolve(answer.split('\r\n')[0] ?? ''));
      socket.on('error', (error: NodeJS.ErrnoException) => (error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error)));
      socket.write(head);
      socket.write(`${big.length.toString(16)}\r\n`);
      socket.write(big);
      socket.end('\r\n0\r\n\r\n');
    });
    expect(status).toMatch(/^HTTP\/1\.1 400 /);
    expect(await accountNow(id)).toBeNull();
  });

  it('does not run a mutation sent with GET', async () => {
    const id = uid('get');
    const query = `mutation { openAccount(input: { id: "${id}" }) { __typename } }`;
    const res = await fetch(`${ledger.url}?query=${encodeURIComponent(query)}`, { headers: { authorization: `Bearer ${await ledger.token(['admin'])}`, accept: 'application/json' } });
    expect(res.status).toBe(405);
    expect(await accountNow(id)).toBeNull();
  });

  it('answers other paths with 404', async () => {
    const res = await rawRequest(ledger.running.port, { method: 'GET', path: '/admin' });
    expect(res.status).toBe(404);
    expect(res.json.errors[0].extensions.code).toBe('NOT_FOUND');
  });
});

describe('query shape limits', () => {
  it('refuses a query deeper than 12 levels and runs nothing of it', async () => {
    const id = uid('deep');
    const opened = await open(id);
    let selection = `deposit(input: { accountId: "${id}", amount: "5" }) { __typename }`;
    for (let i = 0; i < 13; i += 1) selection = `... on Mutation { ${selection} }`;
    await expectRefused(`mutation { ${selection} }`, undefined, /Query depth limit of 12 exceeded, found 15/);
    // Twelve levels are fine.
    let ok = `account(id: $id, atLeast: $at) { id }`;
    for (let i = 0; i < 10; i += 1) ok = `... on Query { ${ok} }`;
    expect((await data(`query($id: ID!, $at: Position) { ${ok} }`, { id, at: opened })).account.id).toBe(id);
    expect(await accountNow(id)).toMatchObject({ balance: '1000', transactionCount: 1 });
  });

  it('refuses more than 20 aliases and runs nothing of it', async () => {
    const id = uid('alias');
    await open(id);
    const fields = Array.from({ length: 21 }, (_, i) => `d${i}: deposit(input: { accountId: "${id}", amount: "1" }) { __typename }`).join('\n');
    await expectRefused(`mutation { ${fields} }`, undefined, /Aliases limit of 20 exceeded, found 21/);
    expect(await accountNow(id)).toMatchObject({ balance: '1000', transactionCount: 1 });
  });

  it('suggests no field names to a prober', async () => {
    const res = await expectRefused(`{ acount(id: "x") { id } }`, undefined, /Cannot query field "acount"/);
    expect(JSON.stringify(res.body)).not.toMatch(/Did you mean/i);
  });
});

describe('paging arguments', () => {
  it('refuses first above 500 or below 0 on every connection', async () => {
    const id = uid('first');
    await open(id);
    for (const first of [501, -1]) {
      const message = new RegExp(`first must be between 0 and 500, got ${first}`);
      await expectRefused(`query($first: Int) { accounts(first: $first) { totalCount } }`, { first }, message, 'BAD_USER_INPUT');
      await expectRefused(`query($first: Int) { transactions(first: $first) { totalCount } }`, { first }, message, 'BAD_USER_INPUT');
      const nested = await ledger.gql(`query($id: ID!, $first: Int) { account(id: $id) { id transactions(first: $first) { totalCount } } }`, { id, first });
      expect(nested.body.errors![0]!.message).toMatch(message);
      expect(nested.body.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
    }
    // The bounds themselves are accepted.
    expect((await data(`{ accounts(first: 500) { totalCount } transactions(first: 0) { edges { cursor } } }`)).transactions.edges).toEqual([]);
  });

  it('accepts a full page (first: 500) of transactions with every field within the cost limit', async () => {
    const result = await ledger.gql(
      `{ transactions(first: 500) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id kind status amount currency fromAccountId toAccountId description metadata createdAt updatedAt expiresAt large position } } } }`,
    );
    expect(result.body.errors).toBeUndefined();
    expect(typeof result.body.data.transactions.totalCount).toBe('number');
  });

  it('refuses an after cursor this connection did not hand out', async () => {
    const id = uid('cur');
    const position = await open(id);
    const page = (await data(`query($id: ID!, $at: Position) { transactions(filter: { accountId: $id }, atLeast: $at) { edges { cursor } } accounts(first: 1) { edges { cursor } } }`, { id, at: position }));
    const txCursor = page.transactions.edges[0].cursor as string;
    const accountCursor = page.accounts.edges[0].cursor as string;
    const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64url');
    const TXS = `query($after: String) { transactions(after: $after) { totalCount } }`;
    const ACCOUNTS = `query($after: String) { accounts(after: $after) { totalCount } }`;

    for (const after of ['!!!', '', 'garbage', accountCursor, b64('t:'), b64('t:not-a-position'), b64('t:1'), b64('x:0000000000000001-000000')]) {
      await expectRefused(TXS, { after }, /after is not a cursor returned by this connection/, 'BAD_USER_INPUT');
    }
    for (const after of ['!!!', '', txCursor, b64('a:')]) {
      await expectRefused(ACCOUNTS, { after }, /after is not a cursor returned by this connection/, 'BAD_USER_INPUT');
    }
    const nested = await ledger.gql(`query($id: ID!, $after: String) { account(id: $id) { transactions(after: $after) { totalCount } } }`, { id, after: b64('t:zzz') });
    expect(nested.body.errors![0]!.message).toMatch(/after is not a cursor returned by this connection/);
    expect(nested.body.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
  });
});

describe('batch size', () => {
  const BATCH = `mutation($input: BatchInput!) { executeBatch(input: $input) { __typename ... on LedgerError { code message } ... on BatchSuccess { position transactions { id } } } }`;

  it('refuses more than 1000 operations as VALIDATION and applies none; 1000 are fine', async () => {
    const id = uid('bulk');
    await open(id, '0');
    const ops = (n: number) => Array.from({ length: n }, () => ({ deposit: { accountId: id, amount: '1' } }));
    const refused = (await data(BATCH, { input: { operations: ops(1001) } })).executeBatch;
    expect(refused).toMatchObject({ __typename: 'ValidationError', code: 'VALIDATION' });
    expect(refused.message).toMatch(/at most 1000 operations, got 1001/);
    expect(await accountNow(id)).toMatchObject({ balance: '0', transactionCount: 0 });

    const accepted = (await data(BATCH, { input: { operations: ops(1000) } })).executeBatch;
    expect(accepted.__typename).toBe('BatchSuccess');
    expect(accepted.transactions).toHaveLength(1000);
    expect((await data(ACCOUNT_Q, { id, at: accepted.position })).account).toMatchObject({ balance: '1000', transactionCount: 1000 });
  });
});

describe('internal errors', () => {
  it('are masked: no message, stack or path of the cause reaches the client', async () => {
    const readModels = ledger.running.ledger.api.readModels;
    const original = readModels.getAccounts;
    readModels.getAccounts = async () => {
      throw new Error('SECRET: disk /var/lib/ledger/read-models.sqlite is corrupt');
    };
    const logged = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const res = await ledger.gql(`{ account(id: "anything") { id } }`);
      expect(res.status).toBe(200);
      expect(res.body.data?.account ?? null).toBeNull();
      expect(res.body.errors).toHaveLength(1);
      expect(res.body.errors![0]!.message).toBe('Unexpected error.');
      expect(res.body.errors![0]!.extensions!.code).toBe('INTERNAL_SERVER_ERROR');
      expect(JSON.stringify(res.body)).not.toMatch(/SECRET|sqlite|\/var\/lib|at .*\.ts/);
    } finally {
      readModels.getAccounts = original;
      logged.mockRestore();
    }
    // And the server goes on answering.
    const id = uid('after');
    await open(id);
    expect(await accountNow(id)).toMatchObject({ id, balance: '1000' });
  });
});
