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
import type { RecordedEvent } from '../src/eventstore/event-store';
import { projectBatch } from '../src/projections/project-batch';
import { LEDGER_PROJECTORS, type Projector } from '../src/projections/projectors';
import type { Checkpoint } from '../src/projections/read-model-store';
import { SqliteReadModelStore } from '../src/projections/sqlite-read-model-store';
import { recordEntry } from '../test/support/recorded-events';
import { intFromEnv } from './common';
import { transferEntries } from './transfer-entries';

const ENTRIES = intFromEnv('BENCH_READ_MODELS_ENTRIES', 200, 1);
const BATCH = intFromEnv('BENCH_READ_MODELS_BATCH', 8192, 1);
const ACCOUNTS = 1000;

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
  const events: RecordedEvent[] = [];
  for (const entry of transferEntries(ENTRIES, ACCOUNTS)) recordEntry(events, entry.timestampMs, entry.events);
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
