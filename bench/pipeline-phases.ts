/**
 * `npm run bench:pipeline`: where the event pipeline's time goes, phase by phase, on batches of
 * 1,000 transfers produced by the real LedgerMachine. Not a target: an explanation for the
 * sustained figures of `npm run bench`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BatchOperation, LedgerCommand } from '../src/domain/commands';
import { LedgerMachine, type PositionedEvent } from '../src/domain/ledger';
import { DEFAULT_RULES } from '../src/domain/rules';
import { LedgerEventPublisher, LEDGER_STREAM } from '../src/eventstore/ledger-event-publisher';
import { SqliteEventStore } from '../src/eventstore/sqlite-event-store';
import { projectBatch } from '../src/projections/project-batch';
import { LEDGER_PROJECTORS } from '../src/projections/projectors';
import { SqliteReadModelStore } from '../src/projections/sqlite-read-model-store';
import type { Checkpoint } from '../src/projections/read-model-store';
import { seededRandom } from '../test/support/seeded-random';

const ENTRIES = Number(process.env.BENCH_PIPELINE_ENTRIES ?? 200);
const ACCOUNTS = 1000;
const GROUP = Number(process.env.BENCH_PIPELINE_GROUP ?? 1);
const APPEND_BYTES = Number(process.env.BENCH_PIPELINE_APPEND_BYTES ?? 0) || undefined;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ledger-bench-pipeline-'));
  const machine = new LedgerMachine(DEFAULT_RULES);
  const random = seededRandom(7);
  const account = (i: number) => `acct-${i}`;
  let index = 0;
  let timestampMs = Date.UTC(2026, 0, 31, 12);
  const times = { decide: 0, append: 0, readBack: 0, project: 0, write: 0 };
  const eventStore = SqliteEventStore.open(join(dir, 'events.sqlite'));
  const readModels = SqliteReadModelStore.open(join(dir, 'read.sqlite'));
  const publisher = new LedgerEventPublisher(eventStore, { appendBytesMax: APPEND_BYTES });
  await publisher.start();
  const checkpoints = new Map<string, Checkpoint | null>();
  let after: string | null = null;
  let events = 0;
  const now = () => Number(process.hrtime.bigint()) / 1e6;
  let pending = 0;
  let decideMs = 0;
  const step = async (command: LedgerCommand, measure: boolean) => {
    index += 1;
    timestampMs += 1000;
    let t = now();
    const result = machine.apply({ index, timestampMs }, command);
    if (!result.outcome.ok) throw new Error(JSON.stringify(result.outcome.rejection));
    decideMs += now() - t;
    (publisher as unknown as { stopped: boolean }).stopped = true;
    publisher.enqueue(index, timestampMs, result.events as PositionedEvent[]);
    (publisher as unknown as { stopped: boolean }).stopped = false;
    pending += 1;
    if (pending < GROUP && measure) return;
    pending = 0;
    const decided = now();
    (publisher as unknown as { kick(): void }).kick();
    await publisher.flush();
    const appended = now();
    const batch = [];
    for (;;) { const page = await eventStore.readAll({ after, maxCount: 4096 }); if (page.length === 0) break; batch.push(...page); after = page.at(-1)!.storePosition; }
        const read = now();
    const projected = projectBatch(batch, LEDGER_PROJECTORS, checkpoints, Date.now());
    const proj = now();
    await readModels.applyBatch(projected.writes, projected.checkpoints);
    for (const [name, c] of Object.entries(projected.checkpoints)) checkpoints.set(name, c);
    const written = now();
    const wasDecide = decideMs; decideMs = 0;
    if (measure) {
      times.decide += wasDecide;
      times.append += appended - decided;
      times.readBack += read - appended;
      times.project += proj - read;
      times.write += written - proj;
      events += batch.length;
    }
    t = written;
  };
  const ops: BatchOperation[] = [];
  for (let j = 0; j < ACCOUNTS; j += 1) ops.push({ openAccount: { id: account(j), initialBalance: '1000000000' } });
  await step({ type: 'ExecuteBatch', input: { operations: ops } }, false);
  for (let e = 0; e < ENTRIES + 20; e += 1) {
    const operations: BatchOperation[] = [];
    for (let k = 0; k < 1000; k += 1) {
      const from = Math.floor(random() * ACCOUNTS);
      const to = (from + 1 + Math.floor(random() * (ACCOUNTS - 1))) % ACCOUNTS;
      operations.push({ transfer: { fromAccountId: account(from), toAccountId: account(to), amount: String(1 + Math.floor(random() * 999)) } });
    }
    await step({ type: 'ExecuteBatch', input: { operations } }, e >= 20);
  }
  const total = times.append + times.readBack + times.project + times.write;
  console.log(`${events} events in ${ENTRIES} entries of 1,000 transfers (after 20 warm-up entries)`);
  for (const [phase, ms] of Object.entries(times)) console.log(`${phase.padEnd(10)} ${(ms * 1000 / events).toFixed(1).padStart(7)} µs/event  ${((ms / total) * 100).toFixed(0).padStart(4)}% of pipeline`);
  console.log(`pipeline (append+read+project+write): ${(total * 1000 / events).toFixed(1)} µs/event = ${Math.round(events / (total / 1000))} events/s`);
  await readModels.close();
  await eventStore.close();
  rmSync(dir, { recursive: true, force: true });
  void LEDGER_STREAM;
}

main().catch((e) => { console.error(e); process.exit(1); });
