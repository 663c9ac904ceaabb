import type { RecordedEvent } from '../eventstore/event-store';
import { projectBatch } from './project-batch';
import type { Projector } from './projectors';
import type { Checkpoint, ReadModelStore } from './read-model-store';

/**
 * Projects batches of recorded events into a store outside the live runner (rebuilds, tests,
 * benchmarks), keeping the projectors' checkpoints as the runner does.
 */
export class Replayer {
  private constructor(
    private readonly store: ReadModelStore,
    private readonly projectors: readonly Projector[],
    private readonly checkpoints: Map<string, Checkpoint | null>,
  ) {}

  static async open(store: ReadModelStore, projectors: readonly Projector[]): Promise<Replayer> {
    const checkpoints = new Map<string, Checkpoint | null>();
    for (const projector of projectors) checkpoints.set(projector.name, await store.loadCheckpoint(projector.name));
    return new Replayer(store, projectors, checkpoints);
  }

  /** Where to resume reading the event store: the lowest store position every projection has reached (null: the start). */
  get resumeAfter(): string | null {
    let lowest: string | null = null;
    for (const checkpoint of this.checkpoints.values()) {
      if (!checkpoint) return null;
      if (lowest === null || checkpoint.storePosition < lowest) lowest = checkpoint.storePosition;
    }
    return lowest;
  }

  checkpoint(projection: string): Checkpoint | null {
    return this.checkpoints.get(projection) ?? null;
  }

  async apply(batch: readonly RecordedEvent[]): Promise<void> {
    if (batch.length === 0) return;
    const { writes, checkpoints } = projectBatch(batch, this.projectors, this.checkpoints, Date.now());
    await this.store.applyBatch(writes, checkpoints);
    for (const [name, checkpoint] of Object.entries(checkpoints)) this.checkpoints.set(name, checkpoint);
  }
}
