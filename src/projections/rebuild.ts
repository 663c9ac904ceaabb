import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { type EventStore, READ_COUNT_MAX, type RecordedEvent } from '../eventstore/event-store';
import { LEDGER_STREAM } from '../eventstore/ledger-event-publisher';
import { POSITION_ZERO } from '../domain/position';
import { projectBatch } from './project-batch';
import { LEDGER_PROJECTORS, type Projector } from './projectors';
import type { Checkpoint, ReadModelStore, ReadModelWrite } from './read-model-store';
import { Replayer } from './replay';
import { type PreparedWrites, SqliteReadModelStore } from './sqlite-read-model-store';

export interface RebuildProgress {
  /** Events of the ledger stream read so far (including those before a resume point). */
  doneEvents: number;
  /** Events in the ledger stream when the rebuild started. */
  totalEvents: number;
  /** Events read by this run. */
  processedEvents: number;
  resumed: boolean;
}

/**
 * Events projected per store write in a rebuild by default, and at most. Large chunks are what make a
 * rebuild fast: projectBatch keeps only the newest version of each whole document in a chunk (an
 * account touched a thousand times is written once) and sums each counter's steps, and the embedded
 * store commits once per chunk. Memory: a chunk of recorded events and their writes, ~100 MB at most.
 */
export const REBUILD_CHUNK_EVENTS_MAX = 32_768;

export interface RebuildOptions {
  /** Events read and projected per store write (default and at most REBUILD_CHUNK_EVENTS_MAX). */
  batchSizeMax?: number;
  onStart?: (progress: RebuildProgress) => void;
  onProgress?: (progress: RebuildProgress) => void;
  /** Checked between batches: stop early (what an interrupt does; a later run resumes). */
  shouldStop?: () => boolean;
  /**
   * The file of the embedded event store `eventStore` is open on. Given, and the read models are the
   * embedded store, the events are read, parsed, projected and made rows (prepareWrites) on a worker
   * thread with a connection of its own, up to READ_AHEAD_CHUNKS chunks ahead of the store's writes,
   * which stay on this thread: the two halves of a rebuild's work overlap on two cores. The rows and
   * checkpoints written are the same either way, chunk for chunk.
   */
  eventStoreFile?: string;
}

/**
 * Chunks the read-ahead worker may have ready beyond the one being written (credit comes back when a
 * chunk is taken): at most three chunks' rows are alive at once, plus the events of the one being read.
 */
export const READ_AHEAD_CHUNKS = 2;

/** What a chunk of events read and projected comes with besides its writes. */
interface ChunkProgress {
  checkpoints: Record<string, Checkpoint>;
  /** Events read (of every stream). */
  events: number;
  /** Revision of the chunk's last ledger event, if it had one. */
  lastLedgerRevision: number | null;
  /** Store position of the chunk's last event: where the next chunk is read from. */
  after: string;
  /** The store had no more events after this chunk when it was read: the rebuild is done once it is written. */
  exhausted: boolean;
}

/** A chunk of events read and projected: what the store writes next, in order. */
export interface ProjectedChunk extends ChunkProgress {
  writes: ReadModelWrite[];
}

/** The same, its writes made the embedded store's rows (prepareWrites) on the reading thread. */
export interface PreparedChunk extends ChunkProgress {
  prepared: PreparedWrites;
}

/**
 * Reads the next chunk of at most `chunkEventsMax` events after `after` and projects it, advancing
 * `checkpoints` as the store will once it has written the chunk. Null when no event is left.
 */
export async function readProjectedChunk(
  eventStore: EventStore,
  projectors: readonly Projector[],
  checkpoints: Map<string, Checkpoint | null>,
  after: string | null,
  chunkEventsMax: number,
): Promise<ProjectedChunk | null> {
  const chunk: RecordedEvent[] = [];
  let cursor = after;
  let exhausted = false;
  while (chunk.length < chunkEventsMax) {
    const page = await eventStore.readAll({ after: cursor, maxCount: Math.min(READ_COUNT_MAX, chunkEventsMax - chunk.length) });
    if (page.length === 0) {
      exhausted = true;
      break;
    }
    for (const event of page) chunk.push(event);
    cursor = page.at(-1)!.storePosition;
  }
  const last = chunk.at(-1);
  if (!last) return null;
  const projected = projectBatch(chunk, projectors, checkpoints, Date.now());
  for (const [name, checkpoint] of Object.entries(projected.checkpoints)) checkpoints.set(name, checkpoint);
  let lastLedgerRevision: number | null = null;
  for (let i = chunk.length - 1; i >= 0 && lastLedgerRevision === null; i -= 1) {
    if (chunk[i]!.streamId === LEDGER_STREAM) lastLedgerRevision = Number(chunk[i]!.revision);
  }
  return { writes: projected.writes, checkpoints: projected.checkpoints, events: chunk.length, lastLedgerRevision, after: last.storePosition, exhausted };
}

/** Where the rebuild takes its projected chunks from, in order; null once the events are exhausted. */
interface ChunkSource {
  next(): Promise<ProjectedChunk | PreparedChunk | null>;
  close(): Promise<void>;
}

function inThreadSource(eventStore: EventStore, projectors: readonly Projector[], checkpoints: Map<string, Checkpoint | null>, after: string | null, chunkEventsMax: number): ChunkSource {
  let cursor = after;
  return {
    async next() {
      const chunk = await readProjectedChunk(eventStore, projectors, checkpoints, cursor, chunkEventsMax);
      if (chunk) cursor = chunk.after;
      return chunk;
    },
    async close() {},
  };
}

/** What rebuild-worker.ts is started with. */
export interface ReadAheadWorkerData {
  eventStoreFile: string;
  projectorNames: string[];
  checkpoints: Array<[string, Checkpoint | null]>;
  after: string | null;
  chunkEventsMax: number;
  credit: number;
}
export type ReadAheadMessage = { type: 'chunk'; chunk: PreparedChunk } | { type: 'end' } | { type: 'error'; name: string; message: string; stack: string };
export type ReadAheadRequest = { type: 'credit' };

/** Chunks from rebuild-worker.ts, taken in the order it posts them; each one taken lets it read one more. */
function readAheadSource(data: ReadAheadWorkerData): ChunkSource {
  const worker = new Worker(join(__dirname, 'rebuild-worker.js'), { workerData: data, name: 'ledger-rebuild-read' });
  const arrived: ReadAheadMessage[] = [];
  let failure: Error | null = null;
  let waiter: (() => void) | null = null;
  const wake = () => {
    const w = waiter;
    waiter = null;
    w?.();
  };
  worker.on('message', (message: ReadAheadMessage) => {
    arrived.push(message);
    wake();
  });
  worker.on('error', (error) => {
    failure ??= error;
    wake();
  });
  worker.on('exit', (code) => {
    failure ??= new Error(`the rebuild's reading thread exited (code ${code}) before the events were read`);
    wake();
  });
  let done = false;
  return {
    async next() {
      while (!done) {
        const message = arrived.shift();
        if (message?.type === 'chunk') {
          worker.postMessage({ type: 'credit' } satisfies ReadAheadRequest);
          return message.chunk;
        }
        if (message?.type === 'end') {
          done = true;
          break;
        }
        if (message?.type === 'error') {
          // The thread's own error, under its own name (EventStoreCorruptionError, say).
          const error = new Error(message.message);
          error.name = message.name;
          error.stack = message.stack;
          throw error;
        }
        if (failure) throw failure;
        await new Promise<void>((resolve) => (waiter = resolve));
      }
      return null;
    },
    async close() {
      worker.removeAllListeners('exit');
      await worker.terminate();
    },
  };
}

/** The checkpoint that marks a projection as being rebuilt (its position means nothing). */
export function rebuildMarker(projection: string): string {
  return `rebuild:${projection}`;
}

/**
 * Rebuilds the given projections' read models from the event store, from position zero.
 *
 * Safe to interrupt and resume: a marker checkpoint is written first; then the projection's
 * checkpoint and collections are reset (checkpoint first); then events are replayed with the
 * projection's checkpoint advancing as usual. A later run that finds the marker resumes from that
 * checkpoint if there is one (the reset finished and replay had begun), or resets again if not.
 * Every write is position-guarded, so the batch replayed after an interrupt changes nothing twice.
 * The store is in bulk-load mode meanwhile (ReadModelStore.beginBulkLoad: secondary indexes built
 * once at the end, relaxed syncing); the writes and checkpoints are exactly those of the live path,
 * only in larger chunks, so a rebuild equals the incremental read models by construction. The marker
 * is removed after endBulkLoad (durable), at the end. Returns false when stopped early.
 */
export async function rebuildProjections(eventStore: EventStore, store: ReadModelStore, projectors: readonly Projector[], options: RebuildOptions = {}): Promise<boolean> {
  const chunkEventsMax = Math.min(options.batchSizeMax ?? REBUILD_CHUNK_EVENTS_MAX, REBUILD_CHUNK_EVENTS_MAX);
  let resumed = false;
  for (const projector of projectors) {
    const marker = await store.loadCheckpoint(rebuildMarker(projector.name));
    const checkpoint = await store.loadCheckpoint(projector.name);
    if (marker && checkpoint) {
      resumed = true;
      continue;
    }
    if (!marker) await store.applyBatch([], { [rebuildMarker(projector.name)]: { position: POSITION_ZERO, storePosition: '', updatedAtMs: Date.now() } });
    await store.reset(projector.collections, [projector.name]);
  }

  const collections = projectors.flatMap((projector) => projector.collections);
  const last = await eventStore.readStream(LEDGER_STREAM, { direction: 'backwards', maxCount: 1 });
  const totalEvents = last[0] ? Number(last[0].revision) + 1 : 0;
  const replayer = await Replayer.open(store, projectors);
  const checkpoints = new Map(projectors.map((projector) => [projector.name, replayer.checkpoint(projector.name)] as [string, Checkpoint | null]));
  let doneEvents = 0;
  let processedEvents = 0;
  options.onStart?.({ doneEvents, totalEvents, processedEvents, resumed });
  await store.beginBulkLoad(collections);
  // The worker knows the ledger's projectors by name (any others are projected here), and makes the embedded store's rows.
  const readAhead = options.eventStoreFile !== undefined && store instanceof SqliteReadModelStore && projectors.every((projector) => LEDGER_PROJECTORS.includes(projector));
  const source = readAhead
    ? readAheadSource({
        eventStoreFile: options.eventStoreFile!,
        projectorNames: projectors.map((projector) => projector.name),
        checkpoints: [...checkpoints],
        after: replayer.resumeAfter,
        chunkEventsMax,
        credit: READ_AHEAD_CHUNKS,
      })
    : inThreadSource(eventStore, projectors, checkpoints, replayer.resumeAfter, chunkEventsMax);
  let finished = false;
  try {
    for (;;) {
      if (options.shouldStop?.()) break;
      const chunk = await source.next();
      if (!chunk) {
        finished = true;
        break;
      }
      if ('prepared' in chunk) await (store as SqliteReadModelStore).applyPreparedBatch(chunk.prepared, chunk.checkpoints);
      else await store.applyBatch(chunk.writes, chunk.checkpoints);
      processedEvents += chunk.events;
      if (chunk.lastLedgerRevision !== null) doneEvents = chunk.lastLedgerRevision + 1;
      options.onProgress?.({ doneEvents, totalEvents: Math.max(totalEvents, doneEvents), processedEvents, resumed });
      // As the one-thread rebuild always did: a short chunk that met the end finishes it, whatever shouldStop says now.
      if (chunk.exhausted) {
        finished = true;
        break;
      }
    }
  } finally {
    await source.close();
  }
  // Also when stopped early: the store goes back to its normal, durable state with every index.
  await store.endBulkLoad(collections);
  if (!finished) return false;
  for (const projector of projectors) await store.reset([], [rebuildMarker(projector.name)]);
  return true;
}
