import type { LedgerEvent } from '../domain/events';
import type { RecordedEvent } from '../eventstore/event-store';
import { LEDGER_STREAM } from '../eventstore/ledger-event-publisher';
import type { Projector } from './projectors';
import { type Checkpoint, type ReadModelWrite, writeId } from './read-model-store';

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
  const writes = new Map<string, ReadModelWrite>();
  const projected: ProjectedEvent[] = [];
  let lastPosition: string | null = null;
  let lastTimestampMs: number | null = null;
  for (const recorded of batch) {
    if (recorded.streamId !== LEDGER_STREAM) continue;
    const position = recorded.metadata.position;
    const event = { type: recorded.type, data: recorded.data } as unknown as LedgerEvent;
    for (const projector of projectors) {
      const checkpoint = checkpoints.get(projector.name);
      if (checkpoint && position <= checkpoint.position) continue;
      for (const write of projector.project(event, position)) {
        const key = batchKey(write);
        const earlier = writes.get(key);
        if (earlier && 'increment' in earlier && 'increment' in write) earlier.increment.steps.push(...(write.increment.steps as never[]));
        else writes.set(key, write);
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
  return { writes: [...writes.values()], checkpoints: next, projected, lastTimestampMs };
}

/**
 * Which writes of one batch stand for the same thing, the newest replacing the older: a document by
 * its _id; a balance-history row by its account and instant. balanceAt reads the newest row at or
 * before an instant, so of the rows one account gets at one instant (the events of one ledger entry
 * share its instant: a batch of 1,000 transfers between 1,000 accounts touches most accounts twice)
 * only the last is ever read. Dropping the others halves the table's inserts under batch load and
 * changes no answer; a replay cut at other batch boundaries may insert one of them, which the newest
 * still outranks.
 */
function batchKey(write: ReadModelWrite): string {
  if (write.collection === 'balanceHistory') return `balanceHistory\u0000${write.doc.accountId}\u0000${write.doc.at}`;
  return `${write.collection}\u0000${writeId(write)}`;
}
