/**
 * End to end over HTTP: Query.analytics on the real server, after real mutations, read with atLeast;
 * the roles of API.md (analyst, compliance, admin read; a teller is FORBIDDEN) and bad arguments.
 */
import { type TestLedger, startTestLedger } from '../support/ledger-server';

const ERR = '__typename ... on LedgerError { code message }';
const ANALYTICS = `query($currency: String, $at: Position, $from: DateTime, $to: DateTime) {
  analytics(currency: $currency, atLeast: $at) {
    currency totalBalance accountCount transactionCount
    day: volume(from: $from, to: $to) { start count amount }
    hour: volume(from: $from, to: $to, interval: HOUR) { start count amount }
    mostActiveAccounts(limit: 2) { transactionCount account { id balance } }
    largeTransactions(first: 1) { totalCount edges { node { id amount large } } pageInfo { hasNextPage endCursor } }
  }
}`;

let ledger: TestLedger;
beforeAll(async () => {
  ledger = await startTestLedger();
});
afterAll(async () => {
  await ledger?.close();
});

async function mutate(query: string): Promise<{ position: string; createdAt?: string }> {
  const data = await ledger.data(query);
  const result = Object.values(data)[0] as any;
  if (!result.position) throw new Error(`mutation failed: ${JSON.stringify(result)}`);
  return { position: result.position, createdAt: result.transaction?.createdAt };
}

it('answers totals, volume, activity and large transactions of one currency after the writes it is given', async () => {
  await mutate(`mutation { openAccount(input: { id: "an-a", initialBalance: "5000000" }) { ${ERR} ... on OpenAccountSuccess { position } } }`);
  await mutate(`mutation { openAccount(input: { id: "an-b" }) { ${ERR} ... on OpenAccountSuccess { position } } }`);
  await mutate(`mutation { openAccount(input: { id: "an-e", currency: "EUR", initialBalance: "7" }) { ${ERR} ... on OpenAccountSuccess { position } } }`);
  await mutate(`mutation { transfer(input: { fromAccountId: "an-a", toAccountId: "an-b", amount: "1000000" }) { ${ERR} ... on TransferSuccess { position } } }`);
  await mutate(`mutation { withdraw(input: { accountId: "an-a", amount: "250" }) { ${ERR} ... on WithdrawSuccess { position } } }`);
  // A pending hold is counted as a transaction but moves no money until settled.
  const last = await mutate(
    `mutation { withdraw(input: { accountId: "an-b", amount: "40", pending: true }) { ${ERR} ... on WithdrawSuccess { position transaction { createdAt } } } }`,
  );

  const day = new Date(Date.parse(last.createdAt!));
  const dayStart = new Date(Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate())).toISOString();
  const { analytics } = await ledger.data(ANALYTICS, { at: last.position, from: dayStart, to: last.createdAt }, ['analyst']);
  expect(analytics).toMatchObject({ currency: 'USD', totalBalance: '4999750', accountCount: 2, transactionCount: 4 });
  // Settled: opening deposit 5000000, transfer 1000000, withdrawal 250 (the run may straddle midnight UTC).
  const sum = (buckets: Array<{ count: number; amount: string }>) => [buckets.reduce((n, b) => n + b.count, 0), buckets.reduce((n, b) => n + BigInt(b.amount), 0n)];
  expect(sum(analytics.day)).toEqual([3, 6000250n]);
  expect(sum(analytics.hour)).toEqual([3, 6000250n]);
  for (const bucket of analytics.hour) expect(bucket.start).toMatch(/T\d\d:00:00\.000Z$/);
  expect(analytics.mostActiveAccounts).toEqual([
    { transactionCount: 3, account: { id: 'an-a', balance: '3999750' } },
    { transactionCount: 2, account: { id: 'an-b', balance: '1000000' } },
  ]);
  expect(analytics.largeTransactions.totalCount).toBe(2);
  expect(analytics.largeTransactions.edges.map((e: any) => e.node)).toEqual([{ id: 'tx-3', amount: '1000000', large: true }]);
  expect(analytics.largeTransactions.pageInfo.hasNextPage).toBe(true);
  const next = await ledger.data(`query($after: String) { analytics { largeTransactions(first: 5, after: $after) { edges { node { id amount } } pageInfo { hasNextPage } } } }`, {
    after: analytics.largeTransactions.pageInfo.endCursor,
  });
  expect(next.analytics.largeTransactions).toEqual({ edges: [{ node: { id: 'tx-1', amount: '5000000' } }], pageInfo: { hasNextPage: false } });

  const eur = await ledger.data(`{ analytics(currency: "EUR") { totalBalance accountCount transactionCount } }`, undefined, ['compliance']);
  expect(eur.analytics).toEqual({ totalBalance: '7', accountCount: 1, transactionCount: 1 });
  const none = await ledger.data(`{ analytics(currency: "GBP") { totalBalance accountCount transactionCount volume { start } mostActiveAccounts { transactionCount } } }`);
  expect(none.analytics).toEqual({ totalBalance: '0', accountCount: 0, transactionCount: 0, volume: [], mostActiveAccounts: [] });
});

it('is FORBIDDEN to a teller and readable by analyst, compliance and admin', async () => {
  const query = '{ analytics { accountCount } }';
  const teller = await ledger.gql(query, undefined, ['teller']);
  expect(teller.body.data).toBeNull();
  expect(teller.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  for (const role of ['analyst', 'compliance', 'admin'] as const) {
    const res = await ledger.gql(query, undefined, [role]);
    expect([role, res.body.errors]).toEqual([role, undefined]);
  }
});

it('refuses bad arguments with BAD_USER_INPUT', async () => {
  const cases = [
    '{ analytics(currency: "usd") { accountCount } }',
    '{ analytics { volume(from: "2024-03-02T00:00:00Z", to: "2024-03-01T00:00:00Z") { start } } }',
    '{ analytics { mostActiveAccounts(limit: 101) { transactionCount } } }',
    '{ analytics { mostActiveAccounts(limit: -1) { transactionCount } } }',
    '{ analytics { largeTransactions(first: 501) { totalCount } } }',
    '{ analytics { largeTransactions(after: "bm9wZQ") { totalCount } } }',
  ];
  for (const query of cases) {
    const res = await ledger.gql(query);
    expect([query, res.body.errors?.[0]?.extensions?.code]).toEqual([query, 'BAD_USER_INPUT']);
  }
});
