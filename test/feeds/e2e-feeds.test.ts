/**
 * End to end over graphql-ws with the standard client against the real server: the three feeds and
 * their filters, accountUpdated after every kind of change, roles and tokens, limits, shutdown.
 */
import { SignJWT } from 'jose';
import { mintToken } from '../../src/api/auth';
import { Collected, TX_FIELDS, eventually, feedClient } from '../support/feed-client';
import { type TestLedger, startTestLedger, uniqueId } from '../support/ledger-server';

const ERR = '__typename ... on LedgerError { code message }';
const ACCOUNT_FIELDS = 'id balance availableBalance transactionCount';

let ledger: TestLedger;
const clients: Array<{ client: { dispose(): void | Promise<void> } }> = [];

beforeAll(async () => {
  ledger = await startTestLedger({ LEDGER_LARGE_TX_THRESHOLD: '5000', LEDGER_FEED_SUBSCRIPTIONS_PER_CONNECTION_MAX: '3', LEDGER_FEED_CONNECTIONS_PER_TOKEN_MAX: '2' });
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.client.dispose();
});
afterAll(async () => {
  await ledger?.close();
});

async function compliance(roles: Array<'compliance' | 'admin' | 'teller' | 'analyst'> = ['compliance']) {
  const c = feedClient(ledger.url, await ledger.token(roles, uniqueId('sub')));
  clients.push(c);
  return c;
}

const open = (id: string, initial = '0') =>
  ledger.data(`mutation($id: ID!, $i: Amount) { openAccount(input: { id: $id, initialBalance: $i }) { ${ERR} ... on OpenAccountSuccess { position } } }`, { id, i: initial });
const deposit = async (accountId: string, amount: string, extra = '') =>
  (await ledger.data(`mutation($a: ID!, $m: Amount!) { deposit(input: { accountId: $a, amount: $m ${extra} }) { ${ERR} ... on DepositSuccess { position transaction { id position } } } }`, { a: accountId, m: amount })).deposit;
const withdraw = async (accountId: string, amount: string, extra = '') =>
  (await ledger.data(`mutation($a: ID!, $m: Amount!) { withdraw(input: { accountId: $a, amount: $m ${extra} }) { ${ERR} ... on WithdrawSuccess { position transaction { id position } } } }`, { a: accountId, m: amount })).withdraw;
const transfer = async (from: string, to: string, amount: string, extra = '') =>
  (
    await ledger.data(`mutation($f: ID!, $t: ID!, $m: Amount!) { transfer(input: { fromAccountId: $f, toAccountId: $t, amount: $m ${extra} }) { ${ERR} ... on TransferSuccess { position transaction { id position } } } }`, {
      f: from,
      t: to,
      m: amount,
    })
  ).transfer;

describe('transactionPosted', () => {
  it('delivers every change to transactions of one account, in position order, and nothing of other accounts', async () => {
    const a = uniqueId('tp-a');
    const b = uniqueId('tp-b');
    const other = uniqueId('tp-o');
    await open(a, '1000');
    await open(b);
    await open(other, '1000');
    const { client } = await compliance();
    const feed = new Collected(client, `subscription($a: ID) { transactionPosted(accountId: $a) { ${TX_FIELDS} } }`, { a });
    const all = new Collected(client, `subscription { transactionPosted { ${TX_FIELDS} } }`);
    // Nothing tells us the subscription is registered but a delivered event: prime with one.
    await eventually(async () => {
      await deposit(a, '1');
      return feed.items.length > 0;
    }, 'the feed to start');
    feed.items.length = 0;
    all.items.length = 0;

    const expected: string[] = [];
    expected.push((await deposit(a, '10')).position);
    await deposit(other, '10');
    expected.push((await transfer(a, b, '20')).position);
    await transfer(other, b, '5');
    const hold = await withdraw(a, '30', 'pending: true');
    expected.push(hold.position);
    const settled = (await ledger.data(`mutation($id: ID!) { settleTransaction(input: { transactionId: $id }) { ${ERR} ... on SettleSuccess { position } } }`, { id: hold.transaction.id })).settleTransaction;
    expected.push(settled.position);

    await feed.count(expected.length);
    await all.count(6);
    expect(feed.items.map((t) => t.position)).toEqual(expected);
    expect(feed.items.map((t) => [t.kind, t.status])).toEqual([
      ['DEPOSIT', 'SETTLED'],
      ['TRANSFER', 'SETTLED'],
      ['WITHDRAWAL', 'PENDING'],
      ['WITHDRAWAL', 'SETTLED'],
    ]);
    expect(feed.items.every((t) => t.fromAccountId === a || t.toAccountId === a)).toBe(true);
    expect(all.items).toHaveLength(6);
    const positions = all.items.map((t) => t.position);
    expect([...positions].sort()).toEqual(positions);
  });
});

describe('largeTransaction', () => {
  it('uses LEDGER_LARGE_TX_THRESHOLD by default and minAmount when given; amounts at the threshold count', async () => {
    const a = uniqueId('lt-a');
    const b = uniqueId('lt-b');
    await open(a, '100000');
    await open(b);
    const { client } = await compliance(['admin']);
    const byDefault = new Collected(client, `subscription { largeTransaction { ${TX_FIELDS} } }`);
    const custom = new Collected(client, `subscription { largeTransaction(minAmount: "20000") { ${TX_FIELDS} } }`);
    await eventually(async () => {
      await transfer(a, b, '20000');
      return byDefault.items.length > 0 && custom.items.length > 0;
    }, 'the feeds to start');
    byDefault.items.length = 0;
    custom.items.length = 0;

    await transfer(a, b, '4999');
    const atThreshold = await transfer(a, b, '5000');
    await deposit(b, '19999');
    const big = await transfer(a, b, '20000');
    await byDefault.count(3);
    await custom.count(1);
    expect(byDefault.items.map((t) => t.amount)).toEqual(['5000', '19999', '20000']);
    expect(byDefault.items[0]).toMatchObject({ position: atThreshold.position, large: true });
    expect(custom.items.map((t) => t.position)).toEqual([big.position]);
  });

  it('refuses a negative minAmount with a clear error', async () => {
    const { client } = await compliance();
    const feed = new Collected(client, `subscription { largeTransaction(minAmount: "-1") { id } }`);
    await feed.until((s) => s.errors.length > 0, 'the error');
    expect(JSON.stringify(feed.errors)).toContain('minAmount must be at least 0');
  });
});

describe('accountUpdated', () => {
  it('delivers the account after opening, deposit, withdraw, transfer in and out, hold, settle, cancel, expiry and batch', async () => {
    const a = uniqueId('au-a');
    const b = uniqueId('au-b');
    const { client } = await compliance();
    const feed = new Collected(client, `subscription($a: ID!) { accountUpdated(accountId: $a) { ${ACCOUNT_FIELDS} } }`, { a });
    // The subscription is registered once the server answers something on the same connection.
    const probe = new Collected(client, `subscription { transactionPosted { id } }`);
    await open(b, '1000');
    await eventually(async () => {
      await deposit(b, '1');
      return probe.items.length > 0;
    }, 'the connection to be subscribed');

    await open(a, '100');
    await deposit(a, '50');
    await withdraw(a, '20');
    await transfer(a, b, '10');
    await transfer(b, a, '5');
    const hold = await withdraw(a, '40', 'pending: true');
    await ledger.data(`mutation($id: ID!) { settleTransaction(input: { transactionId: $id }) { ${ERR} } }`, { id: hold.transaction.id });
    const hold2 = await transfer(a, b, '30', 'pending: true');
    await ledger.data(`mutation($id: ID!) { cancelTransaction(input: { transactionId: $id }) { ${ERR} } }`, { id: hold2.transaction.id });
    await ledger.data(`mutation($a: ID!) { executeBatch(input: { operations: [{ deposit: { accountId: $a, amount: "7" } }, { withdraw: { accountId: $a, amount: "2" } }] }) { ${ERR} } }`, { a });
    await withdraw(a, '15', 'pending: true, holdTimeoutSeconds: 1');
    // 13 changes before the expiry, which the node writes by itself about a second later.
    await feed.count(13);
    expect(feed.items.map((x) => [x.balance, x.availableBalance])).toEqual([
      ['0', '0'], // opened
      ['100', '100'], // its initial balance, recorded as a deposit
      ['150', '150'], // deposit
      ['130', '130'], // withdraw
      ['120', '120'], // transfer out
      ['125', '125'], // transfer in
      ['125', '85'], // pending withdraw
      ['85', '85'], // settled
      ['85', '55'], // pending transfer
      ['85', '85'], // cancelled
      ['92', '92'], // batch: deposit
      ['90', '90'], // batch: withdraw
      ['90', '75'], // pending withdraw with a timeout
    ]);
    await feed.count(14);
    expect(feed.items[13]).toMatchObject({ id: a, balance: '90', availableBalance: '90' }); // expired
    expect(feed.items.every((x) => x.id === a)).toBe(true);
  });
});

describe('authentication and roles', () => {
  it('refuses teller and analyst tokens with FORBIDDEN, per operation, keeping the connection', async () => {
    for (const role of ['teller', 'analyst'] as const) {
      const { client, closes } = await compliance([role]);
      const feed = new Collected(client, `subscription { largeTransaction { id } }`);
      await feed.until((s) => s.errors.length > 0, 'the refusal');
      const [errors] = feed.errors as Array<Array<{ message: string; extensions?: { code?: string } }>>;
      expect(errors![0]!.extensions?.code).toBe('FORBIDDEN');
      expect(errors![0]!.message).toContain('compliance or admin');
      expect(closes).toEqual([]);
    }
  });

  it('closes with 4403 and a reason for a missing, invalid or expired token', async () => {
    const expired = await new SignJWT({ roles: ['compliance'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('late')
      .setIssuedAt(Math.floor(Date.now() / 1000) - 120)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(ledger.running.secret.key);
    const wrongKey = await mintToken(new TextEncoder().encode('another-secret-another-secret-another'), { sub: 'x', roles: ['admin'] }, '1h');
    const cases: Array<[string, string, RegExp]> = [
      ['expired', expired, /exp/i],
      ['wrong key', wrongKey, /invalid token/],
      ['garbage', 'not-a-jwt', /invalid token/],
    ];
    for (const [what, token, reason] of cases) {
      const c = feedClient(ledger.url, token);
      clients.push(c);
      const feed = new Collected(c.client, `subscription { largeTransaction { id } }`);
      await feed.until((s) => s.errors.length > 0, `the close for the ${what} token`);
      expect(c.closes[0]?.code).toBe(4403);
      expect(c.closes[0]?.reason).toMatch(reason);
    }
  });

  it('closes the connection with 4403 when its token expires', async () => {
    const token = await mintToken(ledger.running.secret.key, { sub: uniqueId('short'), roles: ['compliance'] }, '2s');
    const c = feedClient(ledger.url, token);
    clients.push(c);
    const feed = new Collected(c.client, `subscription { transactionPosted { id } }`);
    await feed.until((s) => s.errors.length > 0, 'the close at expiry');
    expect(c.closes[0]).toEqual({ code: 4403, reason: 'token expired: reconnect with a fresh token' });
  });

  it('refuses subscriptions over HTTP and queries over graphql-ws with clear errors', async () => {
    const http = await ledger.gql(`subscription { largeTransaction { id } }`, {}, ['compliance']);
    expect(JSON.stringify(http.body)).toContain('graphql-ws');
    const { client } = await compliance();
    const query = new Collected(client, `{ ledger { nodeId } }`);
    await query.until((s) => s.errors.length > 0, 'the refusal');
    expect(JSON.stringify(query.errors)).toContain('only subscriptions are served over graphql-ws');
  });

  it('applies the HTTP request limits to subscribe messages too (aliases here)', async () => {
    const { client, closes } = await compliance();
    const aliases = Array.from({ length: 21 }, (_, i) => `a${i}: id`).join(' ');
    const feed = new Collected(client, `subscription { transactionPosted { ${aliases} } }`);
    await feed.until((s) => s.errors.length > 0, 'the refusal');
    expect(String(feed.errors.map((e) => (e instanceof Error ? e.message : JSON.stringify(e))))).toMatch(/aliases/i);
    expect(closes).toEqual([]);
  });
});

describe('limits', () => {
  it('refuses a subscription beyond the per-connection maximum, and a connection beyond the per-token maximum', async () => {
    const { client } = await compliance();
    const feeds = [1, 2, 3, 4].map(() => new Collected(client, `subscription { transactionPosted { id } }`));
    await feeds[3]!.until((s) => s.errors.length > 0, 'the refusal of the fourth');
    expect(JSON.stringify(feeds[3]!.errors)).toContain('at most 3 subscriptions per connection');
    expect(feeds.slice(0, 3).every((f) => f.errors.length === 0)).toBe(true);

    const token = await ledger.token(['compliance'], uniqueId('shared'));
    const conns = [1, 2, 3].map(() => feedClient(ledger.url, token));
    clients.push(...conns);
    const subs = conns.map((c) => new Collected(c.client, `subscription { transactionPosted { id } }`));
    await eventually(() => conns.some((c) => c.closes.length > 0), 'one connection to be refused');
    const refused = conns.filter((c) => c.closes.length > 0);
    expect(refused).toHaveLength(1);
    expect(refused[0]!.closes[0]).toMatchObject({ code: 4403 });
    expect(refused[0]!.closes[0]!.reason).toContain('too many connections for this token (at most 2)');
    void subs;
  });
});

describe('graceful shutdown', () => {
  it('closes every subscription with 1012, which the standard client retries', async () => {
    const own = await startTestLedger();
    try {
      const token = await own.token(['compliance']);
      const c = feedClient(own.url, token, { retryAttempts: 0 });
      const feed = new Collected(c.client, `subscription { transactionPosted { id } }`);
      await own.data(`mutation { openAccount(input: { id: "sd", initialBalance: "5" }) { ${ERR} } }`);
      await eventually(async () => {
        await own.data(`mutation { deposit(input: { accountId: "sd", amount: "1" }) { ${ERR} } }`);
        return feed.items.length > 0;
      }, 'the feed to start');
      await own.close();
      await eventually(() => c.closes.length > 0, 'the close');
      expect(c.closes[0]).toEqual({ code: 1012, reason: 'server restarting: reconnect and resume with after' });
      await c.client.dispose();
    } finally {
      await own.close().catch(() => undefined);
    }
  });
});
