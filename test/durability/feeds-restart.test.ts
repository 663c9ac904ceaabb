/**
 * A feed across a SIGKILL of the real server: the client resumes with the last position it saw on the
 * restarted server (a new process on the same data folder) and gets every transaction of the account
 * exactly once, in order: the ones acknowledged before the kill and not yet delivered, any applied
 * but unacknowledged one the log kept, and the live ones after the restart.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mintToken } from '../../src/api/auth';
import { ResumingFeed, eventually } from '../support/feed-client';
import { ChildLedger, JWT_SECRET } from './child-ledger';

jest.setTimeout(120_000);

const ERR = '__typename ... on LedgerError { code message }';
const QUERY = `subscription($a: ID, $after: Position) { transactionPosted(accountId: $a, after: $after) { id amount position } }`;

const children: ChildLedger[] = [];
const feeds: ResumingFeed[] = [];
let dir = '';

afterEach(async () => {
  for (const feed of feeds.splice(0)) await feed.dispose();
  for (const child of children.splice(0)) await child.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function transfer(ledger: ChildLedger, from: string, to: string, amount: string): Promise<string> {
  const data = await ledger.query(
    `mutation($f: ID!, $t: ID!, $m: Amount!) { transfer(input: { fromAccountId: $f, toAccountId: $t, amount: $m }) { ${ERR} ... on TransferSuccess { position } } }`,
    { f: from, t: to, m: amount },
  );
  return data.transfer.position;
}

it('resumes after kill -9 and restart with exactly the transactions it had not seen, then live ones', async () => {
  dir = mkdtempSync(join(tmpdir(), 'ledger-feeds-restart-'));
  const first = await ChildLedger.start(dir);
  children.push(first);
  const token = await mintToken(new TextEncoder().encode(JWT_SECRET), { sub: 'dashboard', roles: ['compliance'] }, '1h');
  let opened = '';
  for (const id of ['a', 'b']) opened = (await first.query(`mutation($id: ID!) { openAccount(input: { id: $id, initialBalance: "1000000" }) { ${ERR} ... on OpenAccountSuccess { position } } }`, { id })).openAccount.position;

  const before = new ResumingFeed(first.url, token, QUERY, { after: opened, variables: { a: 'a' } });
  feeds.push(before);
  const acked: string[] = [];
  for (let i = 1; i <= 10; i += 1) acked.push(await transfer(first, i % 2 ? 'a' : 'b', i % 2 ? 'b' : 'a', String(i)));
  await eventually(() => before.items.length === 10, 'the first 10 live');
  expect(before.positions()).toEqual(acked);

  // Transfers in flight, and the kill right at the first acknowledgement among them.
  const inFlight = Array.from({ length: 8 }, (_, i) => transfer(first, 'a', 'b', String(100 + i)).then((p) => (first.killNow(), acked.push(p))));
  await Promise.allSettled(inFlight);
  await first.kill();
  const seenBeforeKill = before.positions();
  await before.dispose();
  feeds.splice(feeds.indexOf(before), 1);

  const second = await ChildLedger.start(dir);
  children.push(second);
  const after = new ResumingFeed(second.url, token, QUERY, { after: before.lastPosition, variables: { a: 'a' } });
  feeds.push(after);
  for (let i = 0; i < 3; i += 1) acked.push(await transfer(second, 'b', 'a', String(1000 + i)));

  // The truth: every transaction of `a` after the opening, as the restarted ledger holds it.
  const last = acked.reduce((x, y) => (x > y ? x : y));
  const page = (await second.query(`query($at: Position) { transactions(filter: { accountId: "a" }, first: 500, atLeast: $at) { edges { node { position } } } }`, { at: last })).transactions;
  const all = page.edges.map((e: { node: { position: string } }) => e.node.position as string).filter((p: string) => p > opened).sort();
  for (const p of acked) expect(all).toContain(p);

  await eventually(() => seenBeforeKill.length + after.items.length >= all.length, `${all.length} transactions across the restart`, 60_000);
  await new Promise((resolve) => setTimeout(resolve, 300));
  expect([...seenBeforeKill, ...after.positions()]).toEqual(all);
});
