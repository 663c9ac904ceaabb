/**
 * End to end over HTTP: authentication (401 before anything runs) and the roles of API.md
 * (FORBIDDEN as a GraphQL error, nothing changed). The server runs with NODE_ENV=development.
 */
import { SignJWT } from 'jose';
import type { Role } from '../../src/api/auth';
import { type TestLedger, gqlWithAuthorization, rawRequest, startTestLedger, uniqueId } from '../support/ledger-server';

const SECRET = 'test-secret-test-secret-test-secret-42';
const ACCOUNT = 'id balance availableBalance transactionCount';
const ERR = '__typename ... on LedgerError { code message }';

const MUTATIONS = {
  openAccount: `mutation($id: ID!) { openAccount(input: { id: $id, initialBalance: "100" }) { ${ERR} ... on OpenAccountSuccess { position } } }`,
  deposit: `mutation($id: ID!) { deposit(input: { accountId: $id, amount: "10" }) { ${ERR} ... on DepositSuccess { position account { ${ACCOUNT} } } } }`,
  withdraw: `mutation($id: ID!) { withdraw(input: { accountId: $id, amount: "5" }) { ${ERR} ... on WithdrawSuccess { position account { ${ACCOUNT} } } } }`,
  transfer: `mutation($id: ID!, $to: ID!) { transfer(input: { fromAccountId: $id, toAccountId: $to, amount: "5" }) { ${ERR} ... on TransferSuccess { position } } }`,
  settleTransaction: `mutation($tx: ID!) { settleTransaction(input: { transactionId: $tx }) { ${ERR} ... on SettleSuccess { position transaction { status } } } }`,
  cancelTransaction: `mutation($tx: ID!) { cancelTransaction(input: { transactionId: $tx }) { ${ERR} ... on CancelSuccess { position transaction { status } } } }`,
  executeBatch: `mutation($id: ID!) { executeBatch(input: { operations: [{ deposit: { accountId: $id, amount: "1" } }] }) { ${ERR} ... on BatchSuccess { position } } }`,
} as const;
const HOLD = `mutation($id: ID!) { withdraw(input: { accountId: $id, amount: "7", pending: true }) { ${ERR} ... on WithdrawSuccess { position transaction { id } } } }`;
const READS = `query($id: ID!, $tx: ID!, $at: Position) {
  account(id: $id, atLeast: $at) { ${ACCOUNT} }
  accounts(first: 1) { totalCount }
  transaction(id: $tx, atLeast: $at) { id status }
  transactions(filter: { accountId: $id }, atLeast: $at) { totalCount }
}`;
const LEDGER = `{ ledger { nodeId role leaderId term commitIndex appliedIndex projections { name position lagMs } } }`;

let ledger: TestLedger;
const uid = uniqueId;

beforeAll(async () => {
  ledger = await startTestLedger({ NODE_ENV: 'development' });
});
afterAll(async () => {
  await ledger?.close();
});

async function as(roles: Role[], query: string, variables?: Record<string, unknown>) {
  return ledger.gql(query, variables, roles);
}
async function data(roles: Role[], query: string, variables?: Record<string, unknown>) {
  const res = await as(roles, query, variables);
  if (res.body.errors) throw new Error(`unexpected GraphQL errors: ${JSON.stringify(res.body.errors)}`);
  return res.body.data as any;
}

/** Opens an account with 1000 and a pending hold on it; returns their ids and the state as read after a later write. */
async function fixture() {
  const id = uid('au');
  const to = uid('at');
  const open = `mutation($id: ID!) { openAccount(input: { id: $id, initialBalance: "1000" }) { ${ERR} ... on OpenAccountSuccess { position } } }`;
  await data(['admin'], open, { id });
  await data(['admin'], open, { id: to });
  const hold = (await data(['admin'], HOLD, { id })).withdraw;
  return { id, to, tx: hold.transaction.id as string, position: hold.position as string };
}

let markers = 0;
async function snapshot(id: string, tx: string) {
  const marker = (await data(['admin'], MUTATIONS.openAccount, { id: uid('mk') })).openAccount.position;
  markers += 1;
  // Wait for the marker first: `atLeast` holds back only the field it is given on.
  await data(['admin'], `query($at: Position) { account(id: "-", atLeast: $at) { id } }`, { at: marker });
  const q = `query($id: ID!, $tx: ID!) { account(id: $id) { ${ACCOUNT} } transaction(id: $tx) { status } transactions(filter: { accountId: $id }) { totalCount } accounts(first: 1) { totalCount } }`;
  const state = await data(['admin'], q, { id, tx });
  // Accounts other than the markers: a refused openAccount must not add one.
  return { ...state, accounts: { totalCount: state.accounts.totalCount - markers } };
}

describe('authentication', () => {
  it('GET /health answers without a token', async () => {
    const res = await rawRequest(ledger.running.port, { method: 'GET', path: '/health' });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ ready: true, role: 'STANDALONE' });
  });

  it('refuses a request without a token with 401 and UNAUTHENTICATED, before it runs', async () => {
    const id = uid('anon');
    const res = await gqlWithAuthorization(ledger.url, null, MUTATIONS.openAccount, { id });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer');
    expect(res.body.data).toBeUndefined();
    expect(res.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
    expect(res.body.errors[0].message).toMatch(/missing Authorization header/);

    const get = await fetch(`${ledger.url}?query=${encodeURIComponent('{ accounts { totalCount } }')}`, { headers: { accept: 'application/json' } });
    expect(get.status).toBe(401);

    const account = (await data(['admin'], `query($id: ID!) { account(id: $id) { id } }`, { id })).account;
    expect(account).toBeNull();
  });

  it('refuses malformed, wrongly signed, expired, unsigned and subject-less tokens with 401', async () => {
    const key = new TextEncoder().encode(SECRET);
    const now = Math.floor(Date.now() / 1000);
    const wrongSecret = await new SignJWT({ roles: ['admin'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('mallory').setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode('another-secret-another-secret-another-1'));
    const expired = await new SignJWT({ roles: ['admin'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('old').setIssuedAt(now - 7200).setExpirationTime(now - 3600).sign(key);
    const notYet = await new SignJWT({ roles: ['admin'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('early').setNotBefore(now + 3600).setExpirationTime(now + 7200).sign(key);
    const otherAlg = await new SignJWT({ roles: ['admin'] }).setProtectedHeader({ alg: 'HS512' }).setSubject('alg').setExpirationTime('1h').sign(key);
    const noSub = await new SignJWT({ roles: ['admin'] }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(key);
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'eve', roles: ['admin'], exp: now + 3600 })}.`;
    const valid = await ledger.token(['admin']);
    const [header, , signature] = valid.split('.');
    const tampered = `${header}.${b64({ sub: 'tester', roles: ['admin', 'teller'], exp: now + 3600 })}.${signature}`;

    const cases: Array<[string, string, RegExp]> = [
      ['garbage', 'Bearer not-a-jwt', /invalid token/],
      ['three garbage parts', 'Bearer a.b.c', /invalid token/],
      ['no scheme', valid, /must be "Bearer <JWT>"/],
      ['basic', 'Basic dXNlcjpwYXNz', /must be "Bearer <JWT>"/],
      ['empty bearer', 'Bearer ', /Bearer/],
      ['wrong secret', `Bearer ${wrongSecret}`, /invalid token: signature verification failed/],
      ['expired', `Bearer ${expired}`, /invalid token: .*"exp"/],
      ['not yet valid', `Bearer ${notYet}`, /invalid token: .*"nbf"/],
      ['HS512', `Bearer ${otherAlg}`, /invalid token/],
      ['alg none', `Bearer ${unsigned}`, /invalid token/],
      ['tampered payload', `Bearer ${tampered}`, /invalid token/],
      ['no subject', `Bearer ${noSub}`, /no subject/],
    ];
    const id = uid('badtok');
    for (const [name, authorization, message] of cases) {
      const res = await gqlWithAuthorization(ledger.url, authorization, MUTATIONS.openAccount, { id });
      expect({ name, status: res.status }).toEqual({ name, status: 401 });
      expect(res.body.data).toBeUndefined();
      expect(res.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
      expect(res.body.errors[0].message).toMatch(message);
    }
    // The same request with a good token works, so the refusals above were about the token only.
    const good = await gqlWithAuthorization(ledger.url, `Bearer ${valid}`, `query($id: ID!) { account(id: $id) { id } }`, { id });
    expect(good.status).toBe(200);
    expect(good.body).toEqual({ data: { account: null } });
  });

  it('serves the GraphiQL page to a browser without a token in development', async () => {
    const res = await fetch(ledger.url, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(await res.text()).toMatch(/GraphiQL/);
  });
});

describe('roles', () => {
  it('teller may run every mutation and read accounts and transactions, but not ledger', async () => {
    const { id, to, tx } = await fixture();
    const teller: Role[] = ['teller'];
    const results: Record<string, any> = {};
    results.openAccount = (await data(teller, MUTATIONS.openAccount, { id: uid('tel') })).openAccount;
    results.deposit = (await data(teller, MUTATIONS.deposit, { id })).deposit;
    results.withdraw = (await data(teller, MUTATIONS.withdraw, { id })).withdraw;
    results.transfer = (await data(teller, MUTATIONS.transfer, { id, to })).transfer;
    results.settleTransaction = (await data(teller, MUTATIONS.settleTransaction, { tx })).settleTransaction;
    const second = (await data(teller, HOLD, { id })).withdraw;
    results.cancelTransaction = (await data(teller, MUTATIONS.cancelTransaction, { tx: second.transaction.id })).cancelTransaction;
    results.executeBatch = (await data(teller, MUTATIONS.executeBatch, { id })).executeBatch;
    expect(Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v.__typename]))).toEqual({
      openAccount: 'OpenAccountSuccess',
      deposit: 'DepositSuccess',
      withdraw: 'WithdrawSuccess',
      transfer: 'TransferSuccess',
      settleTransaction: 'SettleSuccess',
      cancelTransaction: 'CancelSuccess',
      executeBatch: 'BatchSuccess',
    });
    // 1000 + 10 - 5 - 5 - 7 (settled hold) + 1
    expect((await snapshot(id, tx)).account).toMatchObject({ balance: '994', availableBalance: '994' });

    const reads = await data(teller, READS, { id, tx });
    expect(reads.account.id).toBe(id);
    expect(reads.transaction).toEqual({ id: tx, status: 'SETTLED' });
    expect(reads.transactions.totalCount).toBeGreaterThanOrEqual(6);
    expect(reads.accounts.totalCount).toBeGreaterThanOrEqual(3);

    const status = await as(teller, LEDGER);
    expect(status.body.data ?? null).toBeNull();
    expect(status.body.errors![0]!.extensions!.code).toBe('FORBIDDEN');
    expect(status.body.errors![0]!.message).toMatch(/may not read or change Query\.ledger/);
  });

  it.each<[string, Role[]]>([
    ['analyst', ['analyst']],
    ['compliance', ['compliance']],
    ['analyst and compliance', ['analyst', 'compliance']],
  ])('%s may read everything but gets FORBIDDEN on every mutation, and nothing changes', async (_name, roles) => {
    const { id, to, tx } = await fixture();
    const before = await snapshot(id, tx);
    const variables: Record<keyof typeof MUTATIONS, Record<string, unknown>> = {
      openAccount: { id: uid('ro') },
      deposit: { id },
      withdraw: { id },
      transfer: { id, to },
      settleTransaction: { tx },
      cancelTransaction: { tx },
      executeBatch: { id },
    };
    for (const [name, document] of Object.entries(MUTATIONS) as Array<[keyof typeof MUTATIONS, string]>) {
      const res = await as(roles, document, variables[name]);
      expect({ name, data: res.body.data ?? null }).toEqual({ name, data: null });
      expect(res.body.errors).toHaveLength(1);
      expect(res.body.errors![0]!.extensions!.code).toBe('FORBIDDEN');
      expect(res.body.errors![0]!.message).toContain(`Mutation.${name}`);
    }
    const after = await snapshot(id, tx);
    expect(after).toEqual(before);
    expect(after.transaction.status).toBe('PENDING');
    expect((await data(['admin'], `query($id: ID!) { account(id: $id) { id } }`, { id: variables.openAccount.id })).account).toBeNull();

    const reads = await data(roles, READS, { id, tx });
    expect(reads.account).toMatchObject({ id, balance: '1000', availableBalance: '993' });
    expect(reads.transaction).toEqual({ id: tx, status: 'PENDING' });
    expect(reads.transactions.totalCount).toBe(2);
    const status = (await data(roles, LEDGER)).ledger;
    expect(status.role).toBe('STANDALONE');
  });

  it('admin may do everything, ledger status included', async () => {
    const { id, to, tx } = await fixture();
    const admin: Role[] = ['admin'];
    expect((await data(admin, MUTATIONS.transfer, { id, to })).transfer.__typename).toBe('TransferSuccess');
    const cancelled = (await data(admin, MUTATIONS.cancelTransaction, { tx })).cancelTransaction;
    expect(cancelled.transaction.status).toBe('CANCELLED');
    const reads = await data(admin, READS, { id, tx, at: cancelled.position });
    expect(reads.transaction.status).toBe('CANCELLED');
    expect(reads.account).toMatchObject({ balance: '995', availableBalance: '995', transactionCount: 3 });
    const status = (await data(admin, LEDGER)).ledger;
    expect(status).toMatchObject({ nodeId: 'node-1', role: 'STANDALONE', term: expect.any(Number) });
    expect(BigInt(status.appliedIndex)).toBeGreaterThan(0n);
    expect(BigInt(status.commitIndex)).toBeGreaterThanOrEqual(BigInt(status.appliedIndex));
    expect(status.projections.map((p: any) => p.name).sort()).toEqual(['accounts', 'analytics', 'balanceHistory', 'transactions']);
  });

  it('a valid token without a known role may do nothing', async () => {
    const { id, tx } = await fixture();
    const before = await snapshot(id, tx);
    for (const roles of [[], ['superuser']] as unknown as Role[][]) {
      const read = await as(roles, READS, { id, tx });
      expect(read.status).toBe(200);
      expect(read.body.data ?? null).toBeNull();
      expect(read.body.errors!.map((e) => e.extensions!.code)).toContain('FORBIDDEN');
      const write = await as(roles, MUTATIONS.deposit, { id });
      expect(write.body.data ?? null).toBeNull();
      expect(write.body.errors![0]!.extensions!.code).toBe('FORBIDDEN');
    }
    expect(await snapshot(id, tx)).toEqual(before);
  });
});
