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
 *   BENCH_PIPELINE_THREADS   "workers" (default): the two stages on their worker threads, as the server
 *                            runs them (WorkerEventPipeline; the serialization on this thread is then
 *                            part of the CPU figure); "one": both stages in this thread (startPipelineCore)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type PipelineReport, type PipelineRequest, startPipelineCore } from '../src/app/event-pipeline-core';
import type { EventPipelineStores } from '../src/app/event-pipeline';
import { WorkerEventPipeline } from '../src/app/worker-event-pipeline';
import type { PositionedEvent } from '../src/domain/ledger';
import { type SerializedLedgerEvent, serializeLedgerEvent } from '../src/eventstore/ledger-event-publisher';
import { intFromEnv } from './common';
import { transferEntries } from './transfer-entries';

const ENTRIES = intFromEnv('BENCH_PIPELINE_ENTRIES', 200, 1);
const HANDOVER = intFromEnv('BENCH_PIPELINE_HANDOVER', 4, 1);
const WARMUP_ENTRIES = 20;
const THREADS = process.env.BENCH_PIPELINE_THREADS ?? 'workers';
if (THREADS !== 'workers' && THREADS !== 'one') throw new Error(`BENCH_PIPELINE_THREADS must be "workers" or "one", not "${THREADS}"`);
const ACCOUNTS = 1000;

type HandedEntry = { index: number; timestampMs: number; events: SerializedLedgerEvent[] };

async function main(): Promise<void> {
  const generateStarted = process.hrtime.bigint();
  const entries = transferEntries(WARMUP_ENTRIES + ENTRIES, ACCOUNTS);
  // The decider's own cost (the node's thread applies each entry before the hand-over), for the record.
  const decideMicrosPerEvent = Number(process.hrtime.bigint() - generateStarted) / 1e3 / entries.reduce((sum, e) => sum + e.events.length, 0);
  const dir = mkdtempSync(join(tmpdir(), 'ledger-bench-pipeline-'));
  const stores: EventPipelineStores = { eventStoreFile: join(dir, 'events.sqlite'), eventStoreUrl: null, readModelFile: join(dir, 'read-models.sqlite'), mongoDbUrl: null, mongoBulkChunk: 40 };
  const pipeline = THREADS === 'workers' ? await workersPipeline(stores) : await oneThreadPipeline(stores, entries);
  // What the node's thread does before the hand-over (serializeLedgerEvent), timed apart: it is not the pipeline's work.
  const serializeStarted = process.hrtime.bigint();
  entries.forEach((e) => e.events.map(serializeLedgerEvent));
  const serializeMicrosPerEvent = Number(process.hrtime.bigint() - serializeStarted) / 1e3 / entries.reduce((sum, e) => sum + e.events.length, 0);
  const feed = async (slice: typeof entries) => {
    for (let i = 0; i < slice.length; i += HANDOVER) {
      await pipeline.room();
      pipeline.handOver(slice.slice(i, i + HANDOVER));
      // One hand-over per turn of the event loop, as the worker receives them.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await pipeline.projected(slice.at(-1)!.events.at(-1)!.position);
  };
  await feed(entries.slice(0, WARMUP_ENTRIES + 1));
  const measured = entries.slice(WARMUP_ENTRIES + 1);
  const events = measured.reduce((sum, e) => sum + e.events.length, 0);
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  await feed(measured);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const used = process.cpuUsage(cpu);
  await pipeline.stop();
  console.log(
    JSON.stringify({
      threads: THREADS,
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

/** The node's bound on events applied but not yet projected (LEDGER_PROJECTION_BACKLOG_EVENTS_MAX's default): it waits below it before logging more. */
const BACKLOG_EVENTS_MAX = 10_000;

interface BenchPipeline {
  /** Resolves when the node would hand over more (its backpressure). */
  room(): Promise<void>;
  handOver(entries: Array<{ index: number; timestampMs: number; events: PositionedEvent[] }>): void;
  /** Resolves once every read model includes `position`. */
  projected(position: string): Promise<void>;
  stop(): Promise<void>;
}

/** Both stages on their worker threads, as the server runs them. */
async function workersPipeline(stores: EventPipelineStores): Promise<BenchPipeline> {
  const pipeline = new WorkerEventPipeline(stores, { onError: (where, error) => console.error(`${where}: ${error.message}`) }, 'worker');
  await pipeline.start();
  return {
    room: async () => {
      if (!(await pipeline.waitForUnprojectedBelow(BACKLOG_EVENTS_MAX, 600_000))) throw new Error('the read models did not catch up');
    },
    handOver: (entries) => entries.forEach((e) => pipeline.enqueue(e.index, e.timestampMs, e.events)),
    projected: async (position) => {
      if (!(await pipeline.waitForPosition(position, 600_000))) throw new Error(`the read models did not reach ${position}`);
    },
    stop: () => pipeline.stop(),
  };
}

/** Both stages in this thread, fed serialized entries (serialization not measured). */
async function oneThreadPipeline(stores: EventPipelineStores, entries: Array<{ index: number; timestampMs: number; events: PositionedEvent[] }>): Promise<BenchPipeline> {
  let projected: string | null = null;
  let waiting: { position: string; resolve: () => void } | null = null;
  const take = await startPipelineCore(stores, (report: PipelineReport) => {
    if (report.type === 'error') throw new Error(`${report.where}: ${report.message}`);
    if (report.type !== 'projected') return;
    projected = report.position;
    if (waiting && projected !== null && projected >= waiting.position) waiting.resolve();
  });
  const serialized = new Map<number, HandedEntry>(entries.map((e) => [e.index, { index: e.index, timestampMs: e.timestampMs, events: e.events.map(serializeLedgerEvent) }]));
  return {
    // In one thread a hand-over is appended and projected before the next turn's: no backlog builds.
    room: async () => undefined,
    handOver: (handed) => take({ type: 'entries', entries: handed.map((e) => serialized.get(e.index)!) } satisfies PipelineRequest),
    projected: (position) =>
      projected !== null && projected >= position ? Promise.resolve() : new Promise<void>((resolve) => (waiting = { position, resolve })),
    stop: async () => take({ type: 'stop' }),
  };
}

main().catch((error: Error) => {
  console.error(error.stack ?? error.message);
  process.exit(1);
});
