import { type EventStore, READ_COUNT_MAX, type RecordedEvent } from '../eventstore/event-store';
import { LEDGER_STREAM } from '../eventstore/ledger-event-publisher';
import { POSITION_ZERO } from '../domain/position';
import type { Projector } from './projectors';
import type { ReadModelStore } from './read-model-store';
import { Replayer } from './replay';

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
  let after = replayer.resumeAfter;
  let doneEvents = 0;
  let processedEvents = 0;
  options.onStart?.({ doneEvents, totalEvents, processedEvents, resumed });
  await store.beginBulkLoad(collections);
  let finished = false;
  for (;;) {
    if (options.shouldStop?.()) break;
    const chunk: RecordedEvent[] = [];
    let exhausted = false;
    while (chunk.length < chunkEventsMax) {
      const page = await eventStore.readAll({ after, maxCount: Math.min(READ_COUNT_MAX, chunkEventsMax - chunk.length) });
      if (page.length === 0) {
        exhausted = true;
        break;
      }
      for (const event of page) chunk.push(event);
      after = page.at(-1)!.storePosition;
    }
    if (chunk.length > 0) {
      await replayer.apply(chunk);
      processedEvents += chunk.length;
      for (const event of chunk) if (event.streamId === LEDGER_STREAM) doneEvents = Number(event.revision) + 1;
      options.onProgress?.({ doneEvents, totalEvents: Math.max(totalEvents, doneEvents), processedEvents, resumed });
    }
    if (exhausted) {
      finished = true;
      break;
    }
  }
  // Also when stopped early: the store goes back to its normal, durable state with every index.
  await store.endBulkLoad(collections);
  if (!finished) return false;
  for (const projector of projectors) await store.reset([], [rebuildMarker(projector.name)]);
  return true;
}
