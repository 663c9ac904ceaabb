import { join } from 'node:path';
import { MessageChannel, Worker } from 'node:worker_threads';
import type { PositionedEvent } from '../domain/ledger';
import { type SerializedLedgerEvent, serializeLedgerEvent } from '../eventstore/ledger-event-publisher';
import { PositionWaiters, type PositionWaitersOptions } from '../projections/position-waiters';
import type { ProjectionStatusReport } from '../projections/projection-runner';
import type { EventPipeline, EventPipelineStores } from './event-pipeline';
import { PIPELINE_STAGES, type PipelineReport, type PipelineRequest, type PipelineStage, startPipelineCore } from './event-pipeline-core';
import type { PipelineWorkerData } from './event-pipeline-worker';

/** The stages' thread names, as ps, top and /proc show them (at most 15 characters there): how the benchmark's CPU by thread tells them apart. */
export const PIPELINE_THREAD_NAMES: Readonly<Record<PipelineStage, string>> = { events: 'ledger-events', projections: 'ledger-proj' };

/**
 * Runs the event pipeline on two worker threads (see startPipelineCore): the event-store stage
 * (publisher) and the projection stage, each with its own store connections, so that event-store
 * appends and read-model writes never hold up the thread that serves the API and runs the command
 * log, and the projections of one hand-over run while the next is appended. Entries are handed over
 * in batches, one message per turn of the event loop, to the event-store stage, which passes what
 * it committed on to the projection stage.
 */
export class WorkerEventPipeline implements EventPipeline {
  /** The event-store stage's worker (takes the hand-overs), then the projection stage's. */
  private workers: Worker[] = [];
  private readonly stoppedStages = new Set<PipelineStage>();
  private outbox: Array<{ index: number; timestampMs: number; events: SerializedLedgerEvent[] }> = [];
  private outboxScheduled = false;
  /** Handed-over entries not yet reported durable, by log index. */
  private readonly inFlight = new HandedOver<number>();
  private readonly durableListeners: Array<(index: number) => void> = [];
  /** Handed-over entries with events not yet in every read model, by their last event's position. */
  private readonly unprojected = new HandedOver<string>();
  private readonly unprojectedWaiters = new Set<{ below: number; resolve: (reached: boolean) => void }>();
  private readonly waiters: PositionWaiters;
  private projected: string | null = null;
  private status: ProjectionStatusReport[] = [];
  private stopped: Promise<void> | null = null;
  storedPosition: string | null = null;
  /** The event store's last position when the pipeline started (null: empty): see catchingUpAtStart. */
  private storedPositionAtStart: string | null = null;
  startupNotes: string[] = [];
  private resolveStopped: (() => void) | null = null;

  /** In-thread mode: hands requests to the core directly. */
  private takeInThread: ((request: PipelineRequest) => void) | null = null;

  constructor(
    private readonly stores: EventPipelineStores,
    private readonly hooks: { onError?: (where: string, error: Error) => void; onFatal?: (error: Error) => void } = {},
    /** 'in-thread' runs the same pipeline core on this thread (tests that start many nodes). */
    private readonly mode: 'worker' | 'in-thread' = 'worker',
    waiterOptions: PositionWaitersOptions = {},
  ) {
    this.waiters = new PositionWaiters(waiterOptions);
  }

  async start(): Promise<void> {
    if (this.mode === 'in-thread') {
      // Reports arrive a turn later, as messages from a worker would ('ready' at once: start() returns on it).
      this.takeInThread = await startPipelineCore(this.stores, (report) =>
        report.type === 'ready' ? this.handle(report) : setImmediate(() => this.handle(report)),
      );
      return;
    }
    const { port1, port2 } = new MessageChannel();
    try {
      // The projection stage opens the event store after the event-store stage has checked it, and
      // learns from it where the store ended at start. What the event-store stage forwards meanwhile waits in the channel.
      await this.startWorker({ stage: 'events', stores: this.stores, port: port1 });
      await this.startWorker({ stage: 'projections', stores: this.stores, port: port2, storedPosition: this.storedPositionAtStart });
    } catch (error) {
      // A stage that did start must not keep its store open and the process alive.
      await Promise.all(this.workers.map((worker) => worker.terminate()));
      this.workers = [];
      throw error;
    }
    this.post({ type: 'read models open' });
  }

  private startWorker(data: PipelineWorkerData): Promise<void> {
    const worker = new Worker(join(__dirname, 'event-pipeline-worker.js'), { workerData: data, transferList: [data.port], name: PIPELINE_THREAD_NAMES[data.stage] });
    this.workers.push(worker);
    // A stage whose thread has ended will not report 'stopped': stop() must not wait for it.
    worker.once('exit', () => this.noteStopped(data.stage));
    return new Promise((resolve, reject) => {
      worker.once('error', reject);
      worker.on('message', (report: PipelineReport) => {
        this.handle(report);
        if (report.type !== 'ready') return;
        worker.off('error', reject);
        worker.on('error', (error) => (this.hooks.onFatal ?? ((e: Error) => this.hooks.onError?.('event pipeline', e)))(error));
        resolve();
      });
    });
  }

  get backlogEvents(): number {
    return this.inFlight.events;
  }

  get unprojectedEvents(): number {
    return this.unprojected.events;
  }

  projectionLagMs(): number {
    const oldest = this.unprojected.oldestAtMs;
    return oldest === null ? 0 : Math.max(0, Date.now() - oldest);
  }

  /**
   * True until the read models have reached what the event store held at start: while they are
   * rebuilt or catch up (after an upgrade that drops them, say), the backlog is the event store's,
   * not the handed-over entries', and holding new commands would stop writes for the whole rebuild.
   */
  get catchingUpAtStart(): boolean {
    return this.storedPositionAtStart !== null && (this.projected === null || this.projected < this.storedPositionAtStart);
  }

  waitForUnprojectedBelow(events: number, timeoutMs: number): Promise<boolean> {
    if (this.unprojected.events < events || this.catchingUpAtStart) return Promise.resolve(true);
    if (this.stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter = {
        below: events,
        resolve: (reached: boolean) => {
          clearTimeout(timer);
          this.unprojectedWaiters.delete(waiter);
          resolve(reached);
        },
      };
      const timer = setTimeout(() => waiter.resolve(false), timeoutMs);
      this.unprojectedWaiters.add(waiter);
    });
  }

  enqueue(index: number, timestampMs: number, events: PositionedEvent[]): void {
    // Serialized here: the worker is the busier thread, and strings cross to it far more cheaply than objects.
    this.outbox.push({ index, timestampMs, events: events.map(serializeLedgerEvent) });
    this.inFlight.add(index, events.length);
    const last = events.at(-1);
    // Entries the read models already hold (replayed from the log at start, or projected from a
    // shared event store before this replica applied them) are not behind.
    if (last && (this.projected === null || last.position > this.projected)) this.unprojected.add(last.position, events.length, Date.now());
    if (!this.outboxScheduled) {
      this.outboxScheduled = true;
      setImmediate(() => this.flushOutbox());
    }
  }

  onDurable(listener: (index: number) => void): void {
    this.durableListeners.push(listener);
  }

  waitForPosition(position: string, timeoutMs: number): Promise<boolean> {
    return this.waiters.wait(position, this.projected, timeoutMs);
  }

  projectionStatus(): ProjectionStatusReport[] {
    return this.status;
  }

  stop(): Promise<void> {
    if (this.stopped) return this.stopped;
    this.flushOutbox();
    this.stopped = new Promise<void>((resolve) => {
      this.resolveStopped = resolve;
      if (this.workers.length === 0 && !this.takeInThread) return resolve();
      // An event-store stage whose thread has ended cannot pass 'stop' on: end here (the threads are terminated below).
      if (this.stoppedStages.has('events')) return resolve();
      this.post({ type: 'stop' });
    }).then(async () => {
      this.waiters.cancelAll();
      for (const waiter of [...this.unprojectedWaiters]) waiter.resolve(false);
      await Promise.all(this.workers.map((worker) => worker.terminate()));
      this.workers = [];
    });
    return this.stopped;
  }

  private flushOutbox(): void {
    this.outboxScheduled = false;
    if (this.outbox.length === 0) return;
    const entries = this.outbox;
    this.outbox = [];
    this.post({ type: 'entries', entries });
  }

  private post(request: PipelineRequest): void {
    if (this.takeInThread) this.takeInThread(request);
    else this.workers[0]?.postMessage(request);
  }

  private noteStopped(stage: PipelineStage): void {
    this.stoppedStages.add(stage);
    if (PIPELINE_STAGES.every((each) => this.stoppedStages.has(each))) this.resolveStopped?.();
  }

  /** Drops the handed-over entries the read models now hold, and wakes the waiters that are below their bound. */
  private noteProjected(position: string | null): void {
    if (position === null) return;
    this.unprojected.releaseThrough(position);
    const catchingUp = this.catchingUpAtStart;
    for (const waiter of [...this.unprojectedWaiters]) if (catchingUp || this.unprojected.events < waiter.below) waiter.resolve(true);
  }

  private handle(report: PipelineReport): void {
    switch (report.type) {
      case 'durable':
        this.inFlight.releaseThrough(report.index);
        for (const listener of this.durableListeners) listener(report.index);
        return;
      case 'projected': {
        this.projected = report.position;
        this.status = report.status;
        this.waiters.reached(report.position);
        this.noteProjected(report.position);
        return;
      }
      case 'error':
        this.hooks.onError?.(report.where, new Error(report.message));
        return;
      case 'stopped':
        this.noteStopped(report.stage);
        return;
      case 'ready':
        if (report.stage === 'events') {
          this.storedPosition = report.storedPosition;
          this.storedPositionAtStart = report.storedPosition;
        } else this.startupNotes = report.notes;
        return;
    }
  }
}

/**
 * Entries handed over to the pipeline and not yet through one of its stages, oldest first, keyed by
 * something that grows along the log (a log index, a position): their event count and when each
 * was handed over. A stage reports how far it got; everything up to there is released.
 */
class HandedOver<K extends number | string> {
  private entries: Array<{ key: K; events: number; atMs: number }> = [];
  private head = 0;
  /** Events of the entries not released yet. */
  events = 0;

  /** `atMs`: when it was handed over, for oldestAtMs (0 where nobody asks). */
  add(key: K, events: number, atMs = 0): void {
    this.entries.push({ key, events, atMs });
    this.events += events;
  }

  releaseThrough(key: K): void {
    while (this.head < this.entries.length && this.entries[this.head]!.key <= key) {
      this.events -= this.entries[this.head]!.events;
      this.head += 1;
    }
    if (this.head > 4096) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  /** When the oldest entry not released was handed over (wall ms), or null. */
  get oldestAtMs(): number | null {
    return this.entries[this.head]?.atMs ?? null;
  }
}
