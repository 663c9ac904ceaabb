import { type EventStore, READ_COUNT_MAX } from '../eventstore/event-store';
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

export interface RebuildOptions {
  /** Events read and projected per store write (at most READ_COUNT_MAX). */
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
 * The marker is removed at the end. Returns false when stopped early.
 */
export async function rebuildProjections(eventStore: EventStore, store: ReadModelStore, projectors: readonly Projector[], options: RebuildOptions = {}): Promise<boolean> {
  const batchSizeMax = Math.min(options.batchSizeMax ?? READ_COUNT_MAX, READ_COUNT_MAX);
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

  const last = await eventStore.readStream(LEDGER_STREAM, { direction: 'backwards', maxCount: 1 });
  const totalEvents = last[0] ? Number(last[0].revision) + 1 : 0;
  const replayer = await Replayer.open(store, projectors);
  let after = replayer.resumeAfter;
  let doneEvents = 0;
  let processedEvents = 0;
  options.onStart?.({ doneEvents, totalEvents, processedEvents, resumed });
  for (;;) {
    if (options.shouldStop?.()) return false;
    const batch = await eventStore.readAll({ after, maxCount: batchSizeMax });
    if (batch.length === 0) break;
    await replayer.apply(batch);
    after = batch.at(-1)!.storePosition;
    processedEvents += batch.length;
    for (const event of batch) if (event.streamId === LEDGER_STREAM) doneEvents = Number(event.revision) + 1;
    options.onProgress?.({ doneEvents, totalEvents: Math.max(totalEvents, doneEvents), processedEvents, resumed });
  }
  for (const projector of projectors) await store.reset([], [rebuildMarker(projector.name)]);
  return true;
}
