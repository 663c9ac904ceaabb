import type { EventStore, RecordedEvent, Subscription } from '../eventstore/event-store';
import { PositionWaiters } from './position-waiters';
import type { Projector } from './projectors';
import { type ProjectedEvent, projectBatch } from './project-batch';
import type { Checkpoint, ReadModelStore } from './read-model-store';

/**
 * Events handed to the projectors per read-model write, at most (default). Under a light load each
 * write holds what arrived since the last one, a few events; under a backlog it holds this many, so
 * the cost per event falls as the load rises: an account or counter touched many times is written
 * once, and one commit of many events dirties few pages per event (per-account rows go to the same
 * leaf pages). Measured with `npm run bench:pipeline`.
 */
export const PROJECTION_BATCH_EVENTS_MAX = 8192;

export interface ProjectionRunnerOptions {
  /** Events handed to the projectors per read-model write (default PROJECTION_BATCH_EVENTS_MAX). */
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

export type { ProjectedEvent } from './project-batch';

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
    const subscription = this.eventStore.subscribeAll({ after, batchSizeMax: this.options.batchSizeMax ?? PROJECTION_BATCH_EVENTS_MAX }, (batch) => this.handle(batch));
    this.subscription = subscription;
    subscription.done.catch((error: Error) => {
      if (this.stopped) return;
      this.options.onError?.(error);
      setTimeout(() => this.subscribe(), this.options.retryDelayMs ?? 1000).unref();
    });
  }

  private async handle(batch: RecordedEvent[]): Promise<void> {
    if (batch.length === 0) return;
    const { writes, checkpoints, projected, lastTimestampMs } = projectBatch(batch, this.projectors, this.checkpoints, Date.now());
    await this.readModels.applyBatch(writes, checkpoints);
    for (const [name, checkpoint] of Object.entries(checkpoints)) this.checkpoints.set(name, checkpoint);
    if (lastTimestampMs !== null) this.lastEventTimestampMs = lastTimestampMs;
    this.waiters.reached(this.position);
    if (projected.length > 0) for (const listener of this.listeners) listener(projected);
  }
}
