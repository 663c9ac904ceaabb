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
import { GROUP_BYTES_MAX, LogStorage, type LogStorageOptions, type TornTail } from './log-storage';
import { SnapshotStore } from './snapshot-store';
import { OutcomeUnknownError, StorageWriteError } from './storage-errors';

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
  /** A broken invariant: the node must stop rather than go on with doubtful state. */
  onFatal?: (error: Error) => void;
  /** A failure the log survives (a failed append answered with a retryable error, a failed snapshot that will be retried). */
  onError?: (where: string, error: Error) => void;
  /** After a failed snapshot, wait this long (doubling up to 60 s) before taking the next one. */
  snapshotRetryDelayMs?: number;
  /** Largest snapshot body written. */
  snapshotBytesMax?: number;
  /** Passed to the log storage (test seams). */
  storage?: LogStorageOptions;
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
  private pendingSnapshot: { index: number; image: SnapshotImage } | null = null;
  private snapshotWriting: Promise<void> | null = null;
  private snapshotFailures = 0;
  private snapshotNotBeforeMs = 0;
  private tornTail: TornTail | null = null;
  private state: 'new' | 'running' | 'stopped' | 'failed' = 'new';
  private readonly clock: () => number;
  private readonly snapshotEveryEntries: number;
  private readonly queuedMax: number;
  private readonly groupEntriesMax: number;

  constructor(
    private readonly machine: StateMachine<C, R>,
    private readonly options: SingleNodeLogOptions,
  ) {
    this.snapshots = new SnapshotStore(join(options.dir, 'snapshots'), { bytesMax: options.snapshotBytesMax });
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
    const { storage, recovery } = await LogStorage.open<C>(join(this.options.dir, 'log'), this.snapshotIndex, this.options.storage);
    if (snapshot && recovery.lastStoredIndex < snapshot.index) {
      await storage.close();
      // The tail segment is never compacted away, so it always reaches at least the newest snapshot.
      throw new Error(
        `the newest snapshot covers up to index ${snapshot.index} but the log ends at ${recovery.lastStoredIndex}: the log lost entries. ` +
          'Refusing to start: restore the data folder from a backup (see README, "When the node refuses to start")',
      );
    }
    this.storage = storage;
    this.tornTail = recovery.tornTail;
    for (const entry of recovery.entries) {
      this.applyEntry(entry);
      this.lastTimestampMs = entry.timestampMs;
    }
    this.nextIndex = storage.lastIndex + 1;
    this.state = 'running';
  }

  /** What recovery had to cut (a torn final write), for the startup output; null when nothing. */
  get recoveredTornTail(): TornTail | null {
    return this.tornTail;
  }

  /** Resolves once no snapshot is being written. */
  async snapshotsSettled(): Promise<void> {
    while (this.snapshotWriting) await this.snapshotWriting;
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
    await this.snapshotsSettled();
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
        const size = this.groupSize();
        const group = this.queue.length <= size ? this.queue : this.queue.slice(0, size);
        this.queue = this.queue.length <= size ? [] : this.queue.slice(size);
        try {
          await this.storage.append(group[0]!.entry.index, group.at(-1)!.entry.index, group.map((p) => p.record));
        } catch (error) {
          if (error instanceof StorageWriteError || error instanceof OutcomeUnknownError) {
            this.refuseAfterFailedWrite(error, group);
            continue;
          }
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
        if (
          this.machine.appliedIndex - this.snapshotIndex >= this.snapshotEveryEntries &&
          this.pendingSnapshot === null &&
          this.snapshotWriting === null &&
          this.clock() >= this.snapshotNotBeforeMs
        ) {
          this.captureSnapshot();
          this.writePendingSnapshot();
        }
      }
    } finally {
      this.flushing = null;
    }
  }

  /** As many queued entries as one group write may carry: groupEntriesMax, and GROUP_BYTES_MAX bytes (one entry always fits). */
  private groupSize(): number {
    let bytes = 0;
    const most = Math.min(this.queue.length, this.groupEntriesMax);
    for (let i = 0; i < most; i += 1) {
      bytes += this.queue[i]!.record.length;
      if (bytes > GROUP_BYTES_MAX) return Math.max(1, i);
    }
    return most;
  }

  /**
   * The disk refused a group (full, I/O error) and the storage cut it back: nothing of it was applied.
   * Its proposals, and those queued behind it (their indexes followed it), are answered with the
   * retryable error; the next proposal takes the first free index again. Reads go on being served.
   */
  private refuseAfterFailedWrite(error: StorageWriteError | OutcomeUnknownError, group: Pending<C, R>[]): void {
    const refused = [...group, ...this.queue];
    this.queue = [];
    this.nextIndex = this.storage!.lastIndex + 1;
    this.options.onError?.('command log append', error);
    for (const pending of refused) pending.reject(error);
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
    this.pendingSnapshot = { index: this.machine.appliedIndex, image };
  }


  /** A snapshot is written only once the entries it covers are durable elsewhere too (the event store). */
  /**
   * While the log runs the snapshot is streamed to disk off the acknowledgement path (the flush loop
   * goes on); once it stopped, written at once. A failure (disk full, too large) is reported and a
   * new snapshot is tried later: the log keeps every entry meanwhile, so nothing depends on it.
   */
  private writePendingSnapshot(): void {
    const pending = this.pendingSnapshot;
    if (!pending || pending.index > this.durableElsewhereIndex || this.snapshotWriting) return;
    this.pendingSnapshot = null;
    if (this.state === 'running') {
      this.snapshotWriting = this.snapshots.write(pending.index, pending.image).then(
        () => this.snapshotWritten(pending.index),
        (error: Error) => this.snapshotFailed(error),
      ).finally(() => {
        this.snapshotWriting = null;
        this.writePendingSnapshot();
      });
      return;
    }
    try {
      this.snapshots.writeSync(pending.index, pending.image);
    } catch (error) {
      this.snapshotFailed(error as Error);
      return;
    }
    this.snapshotWritten(pending.index);
  }

  private snapshotWritten(index: number): void {
    const previousSnapshotIndex = this.snapshotIndex;
    this.snapshotIndex = index;
    this.snapshotFailures = 0;
    this.snapshotNotBeforeMs = 0;
    // Compact only through the previous snapshot (the store keeps it too), so that if the newest one
    // turns out unreadable, the previous one still finds every entry after it in the log.
    try {
      this.storage?.compactThrough(previousSnapshotIndex);
    } catch (error) {
      this.options.onError?.('log compaction', error as Error);
    }
  }

  private snapshotFailed(error: Error): void {
    this.snapshotFailures += 1;
    const delayMs = Math.min((this.options.snapshotRetryDelayMs ?? 1000) * 2 ** (this.snapshotFailures - 1), 60_000);
    this.snapshotNotBeforeMs = this.clock() + delayMs;
    this.options.onError?.('snapshot', error);
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
