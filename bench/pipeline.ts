/**
 * `npm run bench:pipeline`: the event pipeline alone (src/app/event-pipeline-core.ts: publisher into
 * the embedded event store, projections into the embedded read models), fed with real entries of
 * the LedgerMachine: batches of 1,000 transfers between 1,000 accounts, handed over as the node hands
 * them (BENCH_PIPELINE_HANDOVER entries per hand-over, default 4: what one turn of the main thread
 * collects under sustained batch load). Reports events/s from the first hand-over until every read
 * model includes the last event, and the CPU time per event. The entries are generated first and not
 * measured, nor is their serialization (serializeLedgerEvent), which the node's thread does before the
 * hand-over: its cost per event is printed apart. No target of its own: it is the ceiling of "projected transfers/s" in `npm run bench`.
 *
 *   BENCH_PIPELINE_ENTRIES   measured entries of 1,000 transfers (default 200), after 20 unmeasured
 *   BENCH_PIPELINE_HANDOVER  entries per hand-over (default 4)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type PipelineReport, type PipelineRequest, startPipelineCore } from '../src/app/event-pipeline-core';
import { type SerializedLedgerEvent, serializeLedgerEvent } from '../src/eventstore/ledger-event-publisher';
import { intFromEnv } from './common';
import { transferEntries } from './transfer-entries';

const ENTRIES = intFromEnv('BENCH_PIPELINE_ENTRIES', 200, 1);
const HANDOVER = intFromEnv('BENCH_PIPELINE_HANDOVER', 4, 1);
const WARMUP_ENTRIES = 20;
const ACCOUNTS = 1000;

type HandedEntry = { index: number; timestampMs: number; events: SerializedLedgerEvent[] };

async function main(): Promise<void> {
  const generateStarted = process.hrtime.bigint();
  const entries = transferEntries(WARMUP_ENTRIES + ENTRIES, ACCOUNTS);
  // The decider's own cost (the node's thread applies each entry before the hand-over), for the record.
  const decideMicrosPerEvent = Number(process.hrtime.bigint() - generateStarted) / 1e3 / entries.reduce((sum, e) => sum + e.events.length, 0);
  const dir = mkdtempSync(join(tmpdir(), 'ledger-bench-pipeline-'));
  let projected: string | null = null;
  let waiting: { position: string; resolve: () => void } | null = null;
  const take = await startPipelineCore(
    { eventStoreFile: join(dir, 'events.sqlite'), eventStoreUrl: null, readModelFile: join(dir, 'read-models.sqlite'), mongoDbUrl: null, mongoBulkChunk: 40 },
    (report: PipelineReport) => {
      if (report.type === 'error') throw new Error(`${report.where}: ${report.message}`);
      if (report.type !== 'projected') return;
      projected = report.position;
      if (waiting && projected !== null && projected >= waiting.position) waiting.resolve();
    },
  );
  // What the node's thread does before the hand-over (serializeLedgerEvent), timed apart: it is not the pipeline's work.
  const serializeStarted = process.hrtime.bigint();
  const handed: HandedEntry[] = entries.map((e) => ({ index: e.index, timestampMs: e.timestampMs, events: e.events.map(serializeLedgerEvent) }));
  const serializeMicrosPerEvent = Number(process.hrtime.bigint() - serializeStarted) / 1e3 / entries.reduce((sum, e) => sum + e.events.length, 0);
  const feed = async (slice: HandedEntry[]) => {
    for (let i = 0; i < slice.length; i += HANDOVER) {
      take({ type: 'entries', entries: slice.slice(i, i + HANDOVER) } satisfies PipelineRequest);
      // One hand-over per turn of the event loop, as the worker receives them.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const last = slice.at(-1)!.events.at(-1)!.position;
    if (projected === null || projected < last) await new Promise<void>((resolve) => (waiting = { position: last, resolve }));
  };
  await feed(handed.slice(0, WARMUP_ENTRIES + 1));
  const measured = handed.slice(WARMUP_ENTRIES + 1);
  const events = measured.reduce((sum, e) => sum + e.events.length, 0);
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  await feed(measured);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const used = process.cpuUsage(cpu);
  take({ type: 'stop' });
  console.log(
    JSON.stringify({
      events,
      handover: HANDOVER,
      eventsPerSecond: Math.round(events / seconds),
      cpuMicrosPerEvent: Number(((used.user + used.system) / events).toFixed(1)),
      seconds: Number(seconds.toFixed(2)),
      nodeThreadSerializeMicrosPerEvent: Number(serializeMicrosPerEvent.toFixed(1)),
      nodeThreadDecideMicrosPerEvent: Number(decideMicrosPerEvent.toFixed(1)),
    }),
  );
  await new Promise((resolve) => setTimeout(resolve, 200));
  rmSync(dir, { recursive: true, force: true });
}

main().catch((error: Error) => {
  console.error(error.stack ?? error.message);
  process.exit(1);
});
