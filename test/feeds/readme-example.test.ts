/**
 * The README's example client, run as written: it prints large transactions, and when started again
 * it goes on from the last position it printed (nothing again, nothing missed).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, wsUrl } from '../support/feed-client';
import { type TestLedger, startTestLedger } from '../support/ledger-server';

const ROOT = join(__dirname, '..', '..');
const ERR = '__typename ... on LedgerError { code message }';

let ledger: TestLedger;
let dir: string;
const running = new Set<ChildProcess>();

beforeAll(async () => {
  ledger = await startTestLedger({ LEDGER_LARGE_TX_THRESHOLD: '1000' });
  dir = mkdtempSync(join(tmpdir(), 'ledger-readme-client-'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /```js\n(\/\/ watch-large\.mjs[\s\S]*?)```/.exec(readme);
  if (!block) throw new Error('README has no watch-large.mjs example');
  writeFileSync(join(dir, 'watch-large.mjs'), block[1]!);
});
afterAll(async () => {
  for (const child of running) child.kill('SIGKILL');
  await ledger?.close();
  rmSync(dir, { recursive: true, force: true });
});

function startClient(token: string): { child: ChildProcess; lines: string[] } {
  const child = spawn(process.execPath, ['watch-large.mjs'], { cwd: dir, env: { ...process.env, LEDGER_URL: wsUrl(ledger.url), LEDGER_TOKEN: token }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  const lines: string[] = [];
  let buffer = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    const parts = buffer.split('\n');
    buffer = parts.pop()!;
    lines.push(...parts);
  });
  return { child, lines };
}

const transfer = async (amount: string) =>
  (await ledger.data(`mutation($m: Amount!) { transfer(input: { fromAccountId: "rx-a", toAccountId: "rx-b", amount: $m }) { ${ERR} ... on TransferSuccess { position } } }`, { m: amount })).transfer
    .position as string;

it('prints large transactions and resumes from the last one it printed after a restart', async () => {
  await ledger.data(`mutation { a: openAccount(input: { id: "rx-a" }) { ${ERR} } b: openAccount(input: { id: "rx-b" }) { ${ERR} } }`);
  const token = await ledger.token(['compliance']);
  const deposit = async () => (await ledger.data(`mutation { deposit(input: { accountId: "rx-a", amount: "100000" }) { ${ERR} ... on DepositSuccess { position } } }`)).deposit.position as string;

  // Started without a saved position, it prints from now on: deposit until it shows the first one.
  const run1 = startClient(token);
  const written: string[] = [];
  await eventually(async () => {
    written.push(await deposit());
    return run1.lines.length > 0;
  }, 'the client to print', 30_000);
  const first = [await transfer('1000')];
  await transfer('1'); // below the threshold
  first.push(await transfer('2000'));
  await eventually(() => run1.lines.at(-1)?.startsWith(first[1]!) === true, 'two more large transactions', 30_000);
  const printed = run1.lines.map((l) => l.split(' ')[0]!);
  // A suffix of the deposits (those after it subscribed), then the two large transfers, in order.
  const deposits = printed.slice(0, -2);
  expect(deposits.length).toBeGreaterThan(0);
  expect(written.slice(-deposits.length)).toEqual(deposits);
  expect(printed.slice(-2)).toEqual(first);
  expect(run1.lines.at(-2)).toMatch(/ TRANSFER SETTLED 1000 USD rx-a -> rx-b$/);
  // It prints, then saves the position: give the save a moment before killing it.
  await new Promise((resolve) => setTimeout(resolve, 300));
  run1.child.kill('SIGKILL');
  await eventually(() => !running.has(run1.child), 'the client to stop');

  const missed = await transfer('3000');
  await transfer('5');
  const run2 = startClient(token);
  await eventually(() => run2.lines.length >= 1, 'the missed one', 30_000);
  const live = await transfer('4000');
  await eventually(() => run2.lines.length >= 2, 'the live one', 30_000);
  expect(run2.lines.map((l) => l.split(' ')[0])).toEqual([missed, live]);
  run2.child.kill('SIGKILL');
}, 90_000);
