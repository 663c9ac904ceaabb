import type { LedgerEvent } from '../domain/events';
import type { RecordedEvent } from '../eventstore/event-store';
import { LEDGER_STREAM } from '../eventstore/ledger-event-publisher';
import type { Projector } from './projectors';
import { type Checkpoint, type ReadModelCollection, type ReadModelWrite, writeId } from './read-model-store';

/** One projected event, for live feeds that follow the read models. */
export interface ProjectedEvent {
  position: string;
  event: LedgerEvent;
}

export interface ProjectedBatch {
  writes: ReadModelWrite[];
  /** The checkpoints to store with the writes (only projections that have a position). */
  checkpoints: Record<string, Checkpoint>;
  projected: ProjectedEvent[];
  /** Ledger time of the last ledger event, when it carried one. */
  lastTimestampMs: number | null;
}

/**
 * Pure: a batch of recorded events → the read-model writes and checkpoints that store it. Each
 * projector sees only events after its own checkpoint. Within the batch, whole-document writes keep
 * only the newest of each document and counter writes keep every event's step, in order (see
 * CounterIncrement: that is what makes a replay at other batch boundaries exact), and balance-history
 * rows keep only the newest of each account and instant (see batchKey). The live server
 * (ProjectionRunner) and `npm run rebuild` both project through here.
 */
export function projectBatch(
  batch: readonly RecordedEvent[],
  projectors: readonly Projector[],
  checkpoints: ReadonlyMap<string, Checkpoint | null>,
  updatedAtMs: number,
): ProjectedBatch {
  // One map per collection, keyed by batchKey: no per-write key string for documents and counters.
  const writes = new Map<ReadModelCollection, Map<string, ReadModelWrite>>();
  const projected: ProjectedEvent[] = [];
  // Each projector's checkpoint position, looked up once per batch rather than once per event.
  const after = projectors.map((projector) => checkpoints.get(projector.name)?.position ?? null);
  let lastPosition: string | null = null;
  let lastTimestampMs: number | null = null;
  for (const recorded of batch) {
    if (recorded.streamId !== LEDGER_STREAM) continue;
    const position = recorded.metadata.position;
    const event = { type: recorded.type, data: recorded.data } as unknown as LedgerEvent;
    for (let p = 0; p < projectors.length; p += 1) {
      const checkpoint = after[p];
      if (checkpoint != null && position <= checkpoint) continue;
      for (const write of projectors[p]!.project(event, position)) {
        let collection = writes.get(write.collection);
        if (!collection) writes.set(write.collection, (collection = new Map()));
        const key = batchKey(write);
        const earlier = collection.get(key);
        if (earlier && 'increment' in earlier && 'increment' in write) {
          for (const step of write.increment.steps) earlier.increment.steps.push(step as never);
        } else collection.set(key, write);
      }
    }
    projected.push({ position, event });
    lastPosition = position;
    lastTimestampMs = typeof recorded.metadata.timestampMs === 'number' ? recorded.metadata.timestampMs : null;
  }
  const next: Record<string, Checkpoint> = {};
  const last = batch.at(-1);
  if (last) {
    for (const projector of projectors) {
      const previous = checkpoints.get(projector.name);
      const position = lastPosition !== null && (!previous || lastPosition > previous.position) ? lastPosition : (previous?.position ?? null);
      if (position === null) continue;
      next[projector.name] = { position, storePosition: last.storePosition, updatedAtMs };
    }
  }
  const all: ReadModelWrite[] = [];
  for (const collection of writes.values()) for (const write of collection.values()) all.push(write);
  return { writes: all, checkpoints: next, projected, lastTimestampMs };
}

/**
 * Which writes of one collection in one batch stand for the same thing, the newest replacing the older: a document by
 * its _id; a balance-history row by its account and instant. balanceAt reads the newest row at or
 * before an instant, so of the rows one account gets at one instant (the events of one ledger entry
 * share its instant: a batch of 1,000 transfers between 1,000 accounts touches most accounts twice)
 * only the last is ever read. Dropping the others halves the table's inserts under batch load and
 * changes no answer; a replay cut at other batch boundaries may insert one of them, which the newest
 * still outranks.
 */
function batchKey(write: ReadModelWrite): string {
  return write.collection === 'balanceHistory' ? `${write.doc.accountId}\u0000${write.doc.at}` : writeId(write);
}
