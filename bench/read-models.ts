/**
 * `npm run bench:read-models`: the embedded read models' write path alone, through the public port:
 * projectBatch and SqliteReadModelStore.applyBatch (writes and commit), in microseconds per event,
 * for all projections together and for each projection alone (into a store of its own, so each
 * figure includes its own commits). No event store, no worker, no HTTP: what bench:pipeline measures
 * minus the event store, split by projection. Input: real LedgerMachine entries, batches of 1,000
 * transfers between 1,000 accounts, projected BENCH_READ_MODELS_BATCH events at a time (default 8,192,
 * what the live runner writes under load). No target: it says where the read side's time goes.
 *
 *   BENCH_READ_MODELS_ENTRIES  entries of 1,000 transfers (default 200)
 *   BENCH_READ_MODELS_BATCH    events per projectBatch/applyBatch (default 8,192)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BatchOperation, LedgerCommand } from '../src/domain/commands';
import { LedgerMachine } from '../src/domain/ledger';
import { DEFAULT_RULES } from '../src/domain/rules';
import type { RecordedEvent } from '../src/eventstore/event-store';
import { projectBatch } from '../src/projections/project-batch';
import { LEDGER_PROJECTORS, type Projector } from '../src/projections/projectors';
import type { Checkpoint } from '../src/projections/read-model-store';
import { SqliteReadModelStore } from '../src/projections/sqlite-read-model-store';
import { recordEntry } from '../test/support/recorded-events';
import { seededRandom } from '../test/support/seeded-random';
import { intFromEnv } from './common';

const ENTRIES = intFromEnv('BENCH_READ_MODELS_ENTRIES', 200, 1);
const BATCH = intFromEnv('BENCH_READ_MODELS_BATCH', 8192, 1);
const ACCOUNTS = 1000;

function generate(): RecordedEvent[] {
  const machine = new LedgerMachine(DEFAULT_RULES);
  const random = seededRandom(7);
  const account = (i: number) => `acct-${i}`;
  const recorded: RecordedEvent[] = [];
  let timestampMs = Date.UTC(2026, 0, 31, 12);
  const apply = (index: number, command: LedgerCommand) => {
    timestampMs += 1000;
    const result = machine.apply({ index, timestampMs }, command);
    if (!result.outcome.ok) throw new Error(JSON.stringify(result.outcome.rejection));
    recordEntry(recorded, timestampMs, result.events);
  };
  const opening: BatchOperation[] = [];
  for (let j = 0; j < ACCOUNTS; j += 1) opening.push({ openAccount: { id: account(j), initialBalance: '1000000000' } });
  apply(1, { type: 'ExecuteBatch', input: { operations: opening } });
  for (let e = 0; e < ENTRIES; e += 1) {
    const operations: BatchOperation[] = [];
    for (let k = 0; k < 1000; k += 1) {
      const from = Math.floor(random() * ACCOUNTS);
      const to = (from + 1 + Math.floor(random() * (ACCOUNTS - 1))) % ACCOUNTS;
      operations.push({ transfer: { fromAccountId: account(from), toAccountId: account(to), amount: String(1 + Math.floor(random() * 999)) } });
    }
    apply(e + 2, { type: 'ExecuteBatch', input: { operations } });
  }
  return recorded;
}

async function measure(events: readonly RecordedEvent[], projectors: readonly Projector[]): Promise<{ projectMicros: number; applyMicros: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'ledger-bench-read-models-'));
  const store = SqliteReadModelStore.open(join(dir, 'read-models.sqlite'));
  let checkpoints = new Map<string, Checkpoint | null>();
  let projectNs = 0n;
  let applyNs = 0n;
  try {
    for (let i = 0; i < events.length; i += BATCH) {
      const started = process.hrtime.bigint();
      const batch = projectBatch(events.slice(i, i + BATCH), projectors, checkpoints, 0);
      const projected = process.hrtime.bigint();
      await store.applyBatch(batch.writes, batch.checkpoints);
      applyNs += process.hrtime.bigint() - projected;
      projectNs += projected - started;
      checkpoints = new Map(Object.entries(batch.checkpoints));
    }
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return { projectMicros: Number(projectNs) / 1e3 / events.length, applyMicros: Number(applyNs) / 1e3 / events.length };
}

async function main(): Promise<void> {
  const events = generate();
  console.log(`${events.length} events (${ENTRIES} entries of 1,000 transfers between ${ACCOUNTS} accounts), batches of ${BATCH}; µs per event:`);
  console.log('| projections | projectBatch | applyBatch (writes + commit) | total |');
  console.log('|---|---:|---:|---:|');
  const rows: Array<[string, readonly Projector[]]> = [['all together', LEDGER_PROJECTORS], ...LEDGER_PROJECTORS.map((p): [string, readonly Projector[]] => [p.name, [p]])];
  for (const [name, projectors] of rows) {
    const { projectMicros, applyMicros } = await measure(events, projectors);
    console.log(`| ${name} | ${projectMicros.toFixed(1)} | ${applyMicros.toFixed(1)} | ${(projectMicros + applyMicros).toFixed(1)} |`);
  }
}

main().catch((error: Error) => {
  console.error(error.stack ?? error.message);
  process.exit(1);
});
