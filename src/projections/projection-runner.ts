import type { LedgerEvent } from '../domain/events';
import type { EventStore, RecordedEvent, Subscription } from '../eventstore/event-store';
import { LEDGER_STREAM } from '../eventstore/ledger-event-publisher';
import { PositionWaiters } from './position-waiters';
import type { Projector } from './projectors';
import type { Checkpoint, ReadModelStore, ReadModelWrite } from './read-model-store';

export interface ProjectionRunnerOptions {
  /** Events handed to the projectors per read-model write. */
  batchSizeMax?: number;
  /** After the subscription fails (store unreachable), wait this long and resubscribe from the checkpoint. */
  retryDelayMs?: number;
  onError?: (error: Error) => void;
}

export interface ProjectionStatusReport {
  name: string;
  /** Ledger position of the last event applied; null before the first. */
  position: string | null;
  /** How far the read models trail the newest event they know of, in ms of ledger time; null before the first. */
  lagMs: number | null;
}

/** One projected event, for live feeds that follow the read models. */
export interface ProjectedEvent {
  position: string;
  event: LedgerEvent;
}

/**
 * Feeds the projectors from the event store: subscribes to all events after the stored checkpoint,
 * turns each batch into guarded read-model writes and stores them with the new checkpoints.
 * Queries wait on it for `atLeast`; live feeds listen to what it has projected.
 */
export class ProjectionRunner {
  private readonly checkpoints = new Map<string, Checkpoint | null>();
  private subscription: Subscription | null = null;
  private readonly waiters = new PositionWaiters();
  private readonly listeners: Array<(events: ProjectedEvent[]) => void> = [];
  private stopped = false;
  private lastEventTimestampMs: number | null = null;
  private newestKnownTimestampMs: number | null = null;

  constructor(
    private readonly eventStore: EventStore,
    private readonly readModels: ReadModelStore,
    private readonly projectors: readonly Projector[],
    private readonly options: ProjectionRunnerOptions = {},
  ) {}

  async start(): Promise<void> {
    for (const projector of this.projectors) this.checkpoints.set(projector.name, await this.readModels.loadCheckpoint(projector.name));
    this.subscribe();
  }

  /** The lowest position every projection has reached (null: not all have started). */
  get position(): string | null {
    let lowest: string | null = null;
    for (const checkpoint of this.checkpoints.values()) {
      if (!checkpoint) return null;
      if (lowest === null || checkpoint.position < lowest) lowest = checkpoint.position;
    }
    return lowest;
  }

  /** Resolves true once every projection includes `position`, false after `timeoutMs`. */
  waitFor(position: string, timeoutMs: number): Promise<boolean> {
    return this.waiters.wait(position, this.position, timeoutMs);
  }

  onProjected(listener: (events: ProjectedEvent[]) => void): () => void {
    this.listeners.push(listener);
    return () => {
      const at = this.listeners.indexOf(listener);
      if (at >= 0) this.listeners.splice(at, 1);
    };
  }

  /** The node tells the runner how new the newest committed entry is, so lag can be reported. */
  noteCommittedTimestamp(timestampMs: number): void {
    this.newestKnownTimestampMs = timestampMs;
  }

  status(): ProjectionStatusReport[] {
    const lagMs =
      this.lastEventTimestampMs === null ? null : Math.max(0, (this.newestKnownTimestampMs ?? this.lastEventTimestampMs) - this.lastEventTimestampMs);
    return this.projectors.map((p) => ({ name: p.name, position: this.checkpoints.get(p.name)?.position ?? null, lagMs }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.subscription?.close();
    this.waiters.cancelAll();
  }

  private subscribe(): void {
    if (this.stopped) return;
    const storePositions = [...this.checkpoints.values()].map((c) => c?.storePosition ?? null);
    // Checkpoints are written together; if they differ (a projector was added), replay from the start: guards make it safe.
    const after = storePositions.every((p) => p !== null && p === storePositions[0]) ? storePositions[0]! : null;
    const subscription = this.eventStore.subscribeAll({ after, batchSizeMax: this.options.batchSizeMax ?? 1024 }, (batch) => this.handle(batch));
    this.subscription = subscription;
    subscription.done.catch((error: Error) => {
      if (this.stopped) return;
      this.options.onError?.(error);
      setTimeout(() => this.subscribe(), this.options.retryDelayMs ?? 1000).unref();
    });
  }

  private async handle(batch: RecordedEvent[]): Promise<void> {
    // Within a batch only the newest write of each document matters (writes are whole documents).
    const writes = new Map<string, ReadModelWrite>();
    const projected: ProjectedEvent[] = [];
    let lastPosition: string | null = null;
    let lastTimestampMs: number | null = null;
    for (const recorded of batch) {
      if (recorded.streamId !== LEDGER_STREAM) continue;
      const position = recorded.metadata.position;
      const event = { type: recorded.type, data: recorded.data } as unknown as LedgerEvent;
      for (const projector of this.projectors) {
        const checkpoint = this.checkpoints.get(projector.name);
        if (checkpoint && position <= checkpoint.position) continue;
        for (const write of projector.project(event, position)) writes.set(`${write.collection}\u0000${write.doc._id}`, write);
      }
      projected.push({ position, event });
      lastPosition = position;
      lastTimestampMs = typeof recorded.metadata.timestampMs === 'number' ? recorded.metadata.timestampMs : null;
    }
    const last = batch.at(-1);
    if (!last) return;
    const updatedAtMs = Date.now();
    const next: Record<string, Checkpoint> = {};
    for (const projector of this.projectors) {
      const previous = this.checkpoints.get(projector.name);
      const position = lastPosition !== null && (!previous || lastPosition > previous.position) ? lastPosition : (previous?.position ?? null);
      if (position === null) continue;
      next[projector.name] = { position, storePosition: last.storePosition, updatedAtMs };
    }
    await this.readModels.applyBatch([...writes.values()], next);
    for (const [name, checkpoint] of Object.entries(next)) this.checkpoints.set(name, checkpoint);
    if (lastTimestampMs !== null) this.lastEventTimestampMs = lastTimestampMs;
    this.waiters.reached(this.position);
    if (projected.length > 0) for (const listener of this.listeners) listener(projected);
  }

}
