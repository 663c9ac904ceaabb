/**
 * End to end: paging the history (Query.transactions and Account.transactions, newest first) while
 * new transactions are being written returns every transaction that existed when paging began
 * exactly once, and nothing twice.
 */
import { type TestLedger, startTestLedger } from '../support/ledger-server';

jest.setTimeout(120_000);

const ERR = '__typename ... on LedgerError { code message }';
let ledger: TestLedger;
beforeAll(async () => {
  ledger = await startTestLedger();
});
afterAll(async () => {
  await ledger?.close();
});

async function transfer(from: string, to: string, amount: number): Promise<{ id: string; position: string }> {
  const data = await ledger.data(
    `mutation($from: ID!, $to: ID!, $amount: Amount!) { transfer(input: { fromAccountId: $from, toAccountId: $to, amount: $amount }) { ${ERR} ... on TransferSuccess { position transaction { id } } } }`,
    { from, to, amount: String(amount) },
  );
  if (!data.transfer.position) throw new Error(JSON.stringify(data.transfer));
  return { id: data.transfer.transaction.id, position: data.transfer.position };
}

async function pageAll(query: string, pick: (data: any) => any, atLeast: string, pageSize: number): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let after: string | null = null;
  let pages = 0;
  for (;;) {
    const connection = pick(await ledger.data(query, { first: pageSize, after, at: atLeast }));
    pages += 1;
    ids.push(...connection.edges.map((e: any) => e.node.id));
    if (!connection.pageInfo.hasNextPage) return { ids, pages };
    after = connection.pageInfo.endCursor;
    // Give the writers room between pages.
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

it('returns every transaction exactly once while new ones are written', async () => {
  for (const id of ['pg-a', 'pg-b', 'pg-c']) {
    await ledger.data(`mutation { openAccount(input: { id: "${id}", initialBalance: "1000000" }) { ${ERR} ... on OpenAccountSuccess { position } } }`);
  }
  const existing: string[] = [];
  let last = '';
  for (let i = 0; i < 90; i += 1) {
    const tx = await transfer(['pg-a', 'pg-b', 'pg-c'][i % 3]!, ['pg-b', 'pg-c', 'pg-a'][i % 3]!, 1 + (i % 5));
    existing.push(tx.id);
    last = tx.position;
  }

  let writing = true;
  const written: string[] = [];
  const writer = (async () => {
    for (let i = 0; writing; i += 1) written.push((await transfer('pg-a', 'pg-c', 1 + (i % 3))).id);
  })();
  const feed = pageAll(
    'query($first: Int, $after: String, $at: Position) { transactions(first: $first, after: $after, atLeast: $at) { edges { node { id } } pageInfo { hasNextPage endCursor } } }',
    (d) => d.transactions,
    last,
    7,
  );
  const history = pageAll(
    'query($first: Int, $after: String, $at: Position) { account(id: "pg-a", atLeast: $at) { transactions(first: $first, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } } }',
    (d) => d.account.transactions,
    last,
    4,
  );
  const [all, ofA] = await Promise.all([feed, history]);
  writing = false;
  await writer;

  expect(written.length).toBeGreaterThan(0);
  expect(all.pages).toBeGreaterThan(10);
  const openings = ['tx-1', 'tx-2', 'tx-3'];
  for (const ids of [all.ids, ofA.ids]) expect(new Set(ids).size).toBe(ids.length);
  // Everything that existed is there once; anything else is one written meanwhile.
  const expectedAll = [...openings, ...existing];
  expect(all.ids.filter((id) => expectedAll.includes(id)).sort()).toEqual([...expectedAll].sort());
  expect(all.ids.filter((id) => !expectedAll.includes(id)).every((id) => written.includes(id))).toBe(true);
  const existingOfA = ['tx-1', ...existing.filter((_, i) => i % 3 === 0 || i % 3 === 2)];
  expect(ofA.ids.filter((id) => existingOfA.includes(id)).sort()).toEqual([...existingOfA].sort());
  expect(ofA.ids.filter((id) => !existingOfA.includes(id)).every((id) => written.includes(id))).toBe(true);
  // Newest first.
  const number = (id: string) => Number(id.slice(3));
  for (const ids of [all.ids, ofA.ids]) expect(ids.map(number)).toEqual([...ids.map(number)].sort((x, y) => y - x));
});
