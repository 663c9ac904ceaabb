/**
 * Resume with `after` against the real server: exactly the missed transactions, in order, then live
 * ones; and the hand-over from catch-up (read models) to live (applied log) while transfers are being
 * written, many times with seeded random timings: no gap and no duplicate.
 */
import { formatPosition } from '../../src/domain/position';
import { Collected, TX_FIELDS, eventually, feedClient } from '../support/feed-client';
import { type TestLedger, startTestLedger, uniqueId } from '../support/ledger-server';
import { seededRandom } from '../support/seeded-random';

const ERR = '__typename ... on LedgerError { code message }';
const POSTED = `subscription($a: ID, $after: Position) { transactionPosted(accountId: $a, after: $after) { ${TX_FIELDS} } }`;
const LARGE = `subscription($after: Position) { largeTransaction(after: $after) { ${TX_FIELDS} } }`;

let ledger: TestLedger;
let token: string;

beforeAll(async () => {
  ledger = await startTestLedger({ LEDGER_LARGE_TX_THRESHOLD: '1000' });
  token = await ledger.token(['compliance']);
});
afterAll(async () => {
  await ledger?.close();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Two funded accounts, and the position right after both were opened (initial deposits included). */
async function pair(prefix: string): Promise<[string, string, string]> {
  const a = uniqueId(`${prefix}-a`);
  const b = uniqueId(`${prefix}-b`);
  let opened = '';
  for (const id of [a, b]) {
    const result = await ledger.data(`mutation($id: ID!) { openAccount(input: { id: $id, initialBalance: "100000000" }) { ${ERR} ... on OpenAccountSuccess { position } } }`, { id });
    opened = result.openAccount.position;
  }
  return [a, b, opened];
}

async function transfer(from: string, to: string, amount = '1'): Promise<string> {
  const result = await ledger.data(
    `mutation($f: ID!, $t: ID!, $m: Amount!) { transfer(input: { fromAccountId: $f, toAccountId: $t, amount: $m }) { ${ERR} ... on TransferSuccess { position } } }`,
    { f: from, t: to, m: amount },
  );
  if (!result.transfer.position) throw new Error(`transfer failed: ${JSON.stringify(result)}`);
  return result.transfer.position as string;
}

it('a client that disconnects and comes back with after gets exactly the missed transactions, in order, then live ones', async () => {
  const [a, b] = await pair('resume');
  const [c, d] = await pair('resume-other');
  const first = feedClient(ledger.url, token);
  const feed = new Collected(first.client, POSTED, { a });
  // Live only: what is written before the server registered the subscription is not delivered.
  await eventually(async () => {
    await transfer(a, b);
    return feed.items.length > 0;
  }, 'the first delivery');
  const more = [await transfer(b, a), await transfer(a, b)];
  await feed.count(more.length + 1);
  const seen = feed.items.map((t) => t.position);
  expect(seen.slice(-2)).toEqual(more);
  await first.client.dispose();

  const missed: string[] = [];
  for (let i = 0; i < 5; i += 1) {
    missed.push(await transfer(a, b, String(i + 1)));
    await transfer(c, d); // not from or to a
  }
  const again = feedClient(ledger.url, token);
  const resumed = new Collected(again.client, POSTED, { a, after: seen.at(-1) });
  await resumed.count(5);
  const live = [await transfer(a, b), await transfer(b, a)];
  await resumed.count(7);
  await sleep(200);
  expect(resumed.items.map((t) => t.position)).toEqual([...missed, ...live]);
  expect(resumed.items.slice(0, 5).map((t) => t.amount)).toEqual(['1', '2', '3', '4', '5']);
  await again.client.dispose();
});

it('largeTransaction with after catches up on the large ones only, then goes live', async () => {
  const [a, b] = await pair('large-resume');
  // The initial balances are large too; start after them.
  const start = await transfer(a, b, '1');
  const large = [await transfer(a, b, '1000'), await transfer(a, b, '5000')];
  await transfer(a, b, '999');
  const c = feedClient(ledger.url, token);
  const feed = new Collected(c.client, LARGE, { after: start });
  await feed.count(2);
  large.push(await transfer(a, b, '2000'));
  await transfer(a, b, '10');
  await feed.count(3);
  // Other tests' large transactions come after `start` too only if they run concurrently; none do.
  expect(feed.items.map((t) => t.position)).toEqual(large);
  expect(feed.items.every((t) => t.large)).toBe(true);
  await c.client.dispose();
});

it('after the very first position, catch-up starts at the beginning of the ledger', async () => {
  const [a, b] = await pair('from-zero');
  const positions = [await transfer(a, b), await transfer(a, b)];
  const c = feedClient(ledger.url, token);
  const feed = new Collected(c.client, POSTED, { a, after: formatPosition(0, 0) });
  await feed.count(3);
  // The account's initial balance, recorded as a deposit when it was opened, then the transfers.
  expect(feed.items[0]).toMatchObject({ kind: 'DEPOSIT', toAccountId: a, amount: '100000000' });
  expect(feed.items.slice(1).map((t) => t.position)).toEqual(positions);
  await c.client.dispose();
});

it('no gap and no duplicate at the hand-over while transfers are written during the catch-up (seeded random timings, many runs)', async () => {
  const runs = 12;
  for (let run = 0; run < runs; run += 1) {
    const seed = 9000 + run;
    const random = seededRandom(seed);
    const [a, b, opened] = await pair(`handover-${run}`);
    const acked: string[] = [];
    const before = Math.floor(random() * 25);
    for (let i = 0; i < before; i += 1) acked.push(await transfer(a, b));
    // Resume from somewhere in what exists (or from the start of this account's history).
    const afterIndex = Math.floor(random() * (acked.length + 1)) - 1;
    const after = afterIndex >= 0 ? acked[afterIndex]! : opened;

    const during = 20 + Math.floor(random() * 40);
    const writer = (async () => {
      for (let i = 0; i < during; i += 1) {
        acked.push(await transfer(i % 3 === 0 ? b : a, i % 3 === 0 ? a : b));
        if (random() < 0.3) await sleep(Math.floor(random() * 4));
      }
    })();
    await sleep(Math.floor(random() * 30));
    const c = feedClient(ledger.url, token);
    const feed = new Collected(c.client, POSTED, { a, after });
    await writer;
    const expected = acked.filter((p) => p > after);
    await feed.until((s) => s.items.length >= expected.length, `run ${run} (seed ${seed}): ${expected.length} transactions`);
    await sleep(100);
    const got = feed.items.map((t) => t.position);
    if (JSON.stringify(got) !== JSON.stringify(expected)) {
      throw new Error(`run ${run} (seed ${seed}): expected ${expected.length} positions, got ${got.length}\nexpected ${expected.join(',')}\ngot      ${got.join(',')}`);
    }
    await c.client.dispose();
  }
}, 240_000);
