import { join } from 'node:path';
import {
  type AppliedListener,
  type CommandLog,
  type ConsensusStatus,
  type LogEntry,
  LogOverloadedError,
  LogStoppedError,
  type StateMachine,
} from './command-log';
import { LogStorage } from './log-storage';
import { SnapshotStore } from './snapshot-store';

export interface SingleNodeLogOptions {
  /** Directory of the log segments and snapshots. */
  dir: string;
  nodeId: string;
  /** Source of entry timestamps; the leader's clock, read only here. */
  clock?: () => number;
  /** Take a snapshot after this many applied entries. */
  snapshotEveryEntries?: number;
  /** Proposals waiting for the disk beyond this are refused with LogOverloadedError. */
  queuedMax?: number;
  /** At most this many entries go into one write + fdatasync. */
  groupEntriesMax?: number;
  /** A broken invariant or a failed disk write: the node must stop rather than go on with doubtful state. */
  onFatal?: (error: Error) => void;
}

interface Pending<C, R> {
  entry: LogEntry<C>;
  record: Buffer;
  resolve: (result: R) => void;
  reject: (error: Error) => void;
}

interface SnapshotImage {
  timestampMs: number;
  machine: unknown;
}

const SINGLE_NODE_TERM = 1;

/**
 * A durable single-node command log. Proposals are stamped (index, timestamp), queued, and written in
 * groups: one write and one fdatasync for every command that arrived while the previous group was on
 * its way to the disk. Nothing is applied or acknowledged before its group is durable.
 */
export class SingleNodeLog<C, R> implements CommandLog<C, R> {
  private storage: LogStorage<C> | null = null;
  private readonly snapshots: SnapshotStore;
  private readonly listeners: AppliedListener<C, R>[] = [];
  private queue: Pending<C, R>[] = [];
  private flushing: Promise<void> | null = null;
  private nextIndex = 1;
  private lastTimestampMs = 0;
  private snapshotIndex = 0;
  private durableElsewhereIndex = 0;
  private pendingSnapshot: { index: number; serialized: string } | null = null;
  private state: 'new' | 'running' | 'stopped' | 'failed' = 'new';
  private readonly clock: () => number;
  private readonly snapshotEveryEntries: number;
  private readonly queuedMax: number;
  private readonly groupEntriesMax: number;

  constructor(
    private readonly machine: StateMachine<C, R>,
    private readonly options: SingleNodeLogOptions,
  ) {
    this.snapshots = new SnapshotStore(join(options.dir, 'snapshots'));
    this.clock = options.clock ?? Date.now;
    this.snapshotEveryEntries = options.snapshotEveryEntries ?? 50_000;
    this.queuedMax = options.queuedMax ?? 20_000;
    this.groupEntriesMax = options.groupEntriesMax ?? 4096;
  }

  onApplied(listener: AppliedListener<C, R>): void {
    this.listeners.push(listener);
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('the command log was already started');
    const snapshot = this.snapshots.loadLatest();
    if (snapshot) {
      const image = snapshot.state as SnapshotImage;
      this.machine.restore(image.machine);
      this.lastTimestampMs = image.timestampMs;
      this.snapshotIndex = snapshot.index;
      this.durableElsewhereIndex = snapshot.index;
      if (this.machine.appliedIndex !== snapshot.index) throw new Error(`snapshot ${snapshot.index} restored the machine to ${this.machine.appliedIndex}`);
    }
    const { storage, recovery } = await LogStorage.open<C>(join(this.options.dir, 'log'), this.snapshotIndex);
    this.storage = storage;
    for (const entry of recovery.entries) {
      this.applyEntry(entry);
      this.lastTimestampMs = entry.timestampMs;
    }
    this.nextIndex = storage.lastIndex + 1;
    this.state = 'running';
  }

  get idle(): boolean {
    return this.queue.length === 0 && this.flushing === null;
  }

  propose(command: C): Promise<R> {
    if (this.state !== 'running') return Promise.reject(new LogStoppedError());
    if (this.queue.length >= this.queuedMax) return Promise.reject(new LogOverloadedError(this.queuedMax));
    const timestampMs = Math.max(this.clock(), this.lastTimestampMs);
    const entry: LogEntry<C> = { index: this.nextIndex, term: SINGLE_NODE_TERM, timestampMs, command };
    let record: Buffer;
    try {
      record = LogStorage.encode(entry);
    } catch (error) {
      return Promise.reject(error);
    }
    this.nextIndex += 1;
    this.lastTimestampMs = timestampMs;
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ entry, record, resolve, reject });
      if (this.flushing === null) this.flushing = this.flushLoop();
    });
  }

  status(): ConsensusStatus {
    return {
      nodeId: this.options.nodeId,
      role: 'STANDALONE',
      leaderId: this.options.nodeId,
      term: SINGLE_NODE_TERM,
      commitIndex: this.storage?.lastIndex ?? 0,
      appliedIndex: this.machine.appliedIndex,
      snapshotIndex: this.snapshotIndex,
    };
  }

  setDurableElsewhereIndex(index: number): void {
    if (index < this.durableElsewhereIndex) return;
    this.durableElsewhereIndex = index;
    this.writePendingSnapshot();
  }

  async stop(): Promise<void> {
    if (this.state === 'running') this.state = 'stopped';
    while (this.flushing) await this.flushing;
    // After a fatal error the machine's state is doubtful (an apply may have stopped half-way): never snapshot it.
    if (this.state !== 'failed' && this.machine.appliedIndex > this.snapshotIndex && this.pendingSnapshot === null) this.captureSnapshot();
    this.writePendingSnapshot();
    await this.storage?.close();
    this.storage = null;
  }

  private async flushLoop(): Promise<void> {
    // Let every proposal made in this turn of the event loop join the first group.
    await new Promise<void>((resolve) => setImmediate(resolve));
    try {
      while (this.queue.length > 0 && this.storage) {
        const group = this.queue.length <= this.groupEntriesMax ? this.queue : this.queue.slice(0, this.groupEntriesMax);
        this.queue = this.queue.length <= this.groupEntriesMax ? [] : this.queue.slice(this.groupEntriesMax);
        try {
          await this.storage.append(group[0]!.entry.index, group.at(-1)!.entry.index, group.map((p) => p.record));
        } catch (error) {
          this.fail(error as Error, group);
          return;
        }
        for (const pending of group) {
          let result: R;
          try {
            result = this.applyEntry(pending.entry);
          } catch (error) {
            this.fail(error as Error, group.slice(group.indexOf(pending)));
            return;
          }
          pending.resolve(result);
        }
        if (this.machine.appliedIndex - this.snapshotIndex >= this.snapshotEveryEntries && this.pendingSnapshot === null) {
          this.captureSnapshot();
          this.writePendingSnapshot();
        }
      }
    } finally {
      this.flushing = null;
    }
  }

  private applyEntry(entry: LogEntry<C>): R {
    const result = this.machine.apply(entry);
    for (const listener of this.listeners) listener(entry, result);
    return result;
  }

  private captureSnapshot(): void {
    // lastTimestampMs may already cover proposals not yet applied; that is fine, timestamps only need
    // to stay non-decreasing across a restart.
    const image: SnapshotImage = { timestampMs: this.lastTimestampMs, machine: this.machine.snapshot() };
    this.pendingSnapshot = { index: this.machine.appliedIndex, serialized: JSON.stringify(image) };
  }


  /** A snapshot is written only once the entries it covers are durable elsewhere too (the event store). */
  private writePendingSnapshot(): void {
    const pending = this.pendingSnapshot;
    if (!pending || pending.index > this.durableElsewhereIndex) return;
    this.pendingSnapshot = null;
    const previousSnapshotIndex = this.snapshotIndex;
    this.snapshots.save(pending.index, pending.serialized);
    this.snapshotIndex = pending.index;
    // Compact only through the previous snapshot (the store keeps it too), so that if the newest one
    // turns out unreadable, the previous one still finds every entry after it in the log.
    this.storage?.compactThrough(previousSnapshotIndex);
  }

  private fail(error: Error, unresolved: Pending<C, R>[]): void {
    this.state = 'failed';
    const all = [...unresolved, ...this.queue];
    this.queue = [];
    for (const pending of all) pending.reject(error);
    (this.options.onFatal ?? defaultFatal)(error);
  }
}

function defaultFatal(error: Error): void {
  // eslint-disable-next-line no-console
  console.error('command log: fatal error, the node stops', error);
  process.exitCode = 1;
}
