/**
 * `npm run rebuild` as a real process: SIGKILLed in the middle of a rebuild, run again, it resumes and
 * the read models equal the incrementally built ones document for document, with analytics equal to
 * the brute-force figures (nothing counted twice). Also: running while another store is live, and
 * bad arguments.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RecordedEvent } from '../../src/eventstore/event-store';
import { SqliteEventStore } from '../../src/eventstore/sqlite-event-store';
import { ProjectionRunner } from '../../src/projections/projection-runner';
import { LEDGER_PROJECTORS } from '../../src/projections/projectors';
import { rebuildMarker } from '../../src/projections/rebuild';
import { SqliteReadModelStore } from '../../src/projections/sqlite-read-model-store';
import { publishHistory, sampleHistory } from '../support/ledger-history';
import { startTestLedger } from '../support/ledger-server';
import { CURRENCIES, analyticsOf, bruteForce, dump } from './analytics.properties';

jest.setTimeout(240_000);

const REPO_ROOT = join(__dirname, '..', '..');
const children = new Set<ChildProcess>();
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
});

function runRebuild(dataDir: string, args: string[]): { child: ChildProcess; result: Promise<{ code: number | null; output: string }> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/scripts/rebuild.ts', ...args], {
    cwd: REPO_ROOT,
    // MONGODB_URL blank: CI sets one for the MongoDB suites; these runs rebuild the embedded store.
    env: { ...process.env, LEDGER_DATA_DIR: dataDir, NODE_ENV: 'test', MONGODB_URL: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const result = once(child, 'exit').then(([code]) => {
    children.delete(child);
    return { code: code as number | null, output };
  });
  return { child, result };
}

async function readEverything(events: SqliteEventStore): Promise<RecordedEvent[]> {
  const all: RecordedEvent[] = [];
  for (let after: string | null = null; ; ) {
    const page = await events.readAll({ after, maxCount: 4096 });
    if (page.length === 0) return all;
    all.push(...page);
    after = page.at(-1)!.storePosition;
  }
}

describe('npm run rebuild', () => {
  let dir: string;
  let history: RecordedEvent[];
  let incremental: Awaited<ReturnType<typeof dump>>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ledger-rebuild-'));
    const events = SqliteEventStore.open(join(dir, 'events.sqlite'));
    await publishHistory(events, sampleHistory(6_000, 7));
    history = await readEverything(events);
    // The incremental read models: the live runner, in small batches, as a quiet server sees them.
    const live = SqliteReadModelStore.open(join(dir, 'read-models.sqlite'));
    const runner = new ProjectionRunner(events, live, LEDGER_PROJECTORS, { batchSizeMax: 7 });
    await runner.start();
    await expect(runner.waitFor(history.at(-1)!.metadata.position, 120_000)).resolves.toBe(true);
    await runner.stop();
    incremental = await dump(live, history);
    await live.close();
    await events.close();
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('survives a SIGKILL mid-rebuild, resumes, and equals the incremental read models document for document', async () => {
    expect(history.length).toBeGreaterThan(2_000);
    const target = join(dir, 'rebuilt.sqlite');
    const first = runRebuild(dir, ['all', '--read-models', target, '--batch', '2']);
    // Kill it once some batches are in, but before the end: the first projector's checkpoint exists, the marker too.
    const probe = SqliteReadModelStore.open(target);
    const lastPosition = history.at(-1)!.metadata.position;
    let killedAt: string | null = null;
    for (;;) {
      const checkpoint = await probe.loadCheckpoint('accounts').catch(() => null);
      if (checkpoint && checkpoint.position > history[200]!.metadata.position) {
        first.child.kill('SIGKILL');
        killedAt = checkpoint.position;
        break;
      }
      const exited = await Promise.race([first.result.then(() => true), new Promise((r) => setTimeout(() => r(false), 10))]);
      if (exited) break;
    }
    const killed = await first.result;
    expect([killed.code, killedAt]).toEqual([null, expect.any(String)]);
    expect(killedAt! < lastPosition).toBe(true);
    expect(await probe.loadCheckpoint(rebuildMarker('analytics'))).not.toBeNull();
    await probe.close();

    const second = await runRebuild(dir, ['all', '--read-models', target]).result;
    expect([second.code, second.output]).toEqual([0, expect.stringContaining('resuming an interrupted rebuild')]);
    expect(second.output).toMatch(/events\/s/);

    const rebuilt = SqliteReadModelStore.open(target);
    try {
      const models = await dump(rebuilt, history);
      expect(models).toEqual(incremental);
      for (const [i, currency] of CURRENCIES.entries()) expect(models.analytics[i]).toEqual(bruteForce(history, currency));
      expect(await rebuilt.loadCheckpoint(rebuildMarker('analytics'))).toBeNull();
      expect((await rebuilt.loadCheckpoint('analytics'))?.position).toBe(lastPosition);
    } finally {
      await rebuilt.close();
    }
  });

  it('rebuilds one projection in place, leaving the others alone', async () => {
    const target = join(dir, 'read-models.sqlite');
    const store = SqliteReadModelStore.open(target);
    // Corrupt the analytics counters: the rebuild must replace them, not add to them.
    await store.applyBatch(
      [{ collection: 'currencyTotals', increment: { _id: 'USD', keys: { currency: 'USD' }, steps: [{ position: '9999999999999999-000000', add: { accountCount: 5n, transactionCount: 5n, totalBalance: 5n } }] } }],
      {},
    );
    const accountsBefore = await store.loadCheckpoint('accounts');
    await store.close();

    const run = await runRebuild(dir, ['analytics']).result;
    expect([run.code, run.output]).toEqual([0, expect.stringContaining('rebuilt analytics')]);
    const after = SqliteReadModelStore.open(target);
    try {
      expect(await dump(after, history)).toEqual(incremental);
      expect(await after.loadCheckpoint('accounts')).toEqual(accountsBefore);
    } finally {
      await after.close();
    }
  });

  it('rebuilds into a new store while the server runs and writes', async () => {
    const server = await startTestLedger();
    try {
      const ERR = '... on LedgerError { code message }';
      for (const id of ['live-a', 'live-b']) await server.data(`mutation { openAccount(input: { id: "${id}", initialBalance: "5000" }) { ${ERR} ... on OpenAccountSuccess { position } } }`);
      let writing = true;
      const writer = (async () => {
        for (let i = 0; writing; i += 1) {
          await server.data(`mutation { transfer(input: { fromAccountId: "live-a", toAccountId: "live-b", amount: "${1 + (i % 3)}", pending: ${i % 4 === 0} }) { ${ERR} ... on TransferSuccess { position } } }`);
          await server.data(`mutation { deposit(input: { accountId: "live-a", amount: "7" }) { ${ERR} ... on DepositSuccess { position } } }`);
        }
      })();
      await new Promise((resolve) => setTimeout(resolve, 500));
      const target = join(server.dataDir, 'new-read-models.sqlite');
      const run = await runRebuild(server.dataDir, ['all', '--read-models', target]).result;
      writing = false;
      await writer;
      expect([run.code, run.output]).toEqual([0, expect.stringContaining('rebuilt accounts, transactions, balanceHistory, analytics')]);

      // The new store holds exactly the events up to its checkpoint, and its analytics are theirs.
      const rebuilt = SqliteReadModelStore.open(target);
      const events = SqliteEventStore.open(join(server.dataDir, 'events.sqlite'));
      try {
        const checkpoint = await rebuilt.loadCheckpoint('analytics');
        const upTo = (await readEverything(events)).filter((e) => e.storePosition <= checkpoint!.storePosition);
        expect(upTo.length).toBeGreaterThan(4);
        expect(await analyticsOf(rebuilt, 'USD')).toEqual(bruteForce(upTo, 'USD'));
      } finally {
        await rebuilt.close();
        await events.close();
      }
    } finally {
      await server.close();
    }
  });

  it('refuses an unknown projection and bad options, changing nothing', async () => {
    for (const args of [['nope'], [], ['all', '--batch', '0']]) {
      const run = await runRebuild(dir, args).result;
      expect([args, run.code]).toEqual([args, 2]);
      expect(run.output).toMatch(/usage|--batch|unknown projection/);
    }
  });
});
