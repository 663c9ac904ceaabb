import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

/** How often the embedded stores' WAL files are checkpointed (WalCheckpointer). */
export const WAL_CHECKPOINT_INTERVAL_MS = 200;

/** The checkpointer's thread name, as ps, top and /proc show it (what the benchmark's CPU by thread reports). */
export const WAL_CHECKPOINT_THREAD_NAME = 'ledger-ckpt';

/**
 * Checkpoints the write-ahead logs of the embedded SQLite stores (event store, read models) on a
 * thread of its own, every `intervalMs`, with connections of its own: PASSIVE checkpoints copy what
 * the WAL holds into the file without blocking the writer.
 *
 * Why a thread: a checkpoint copies every page the WAL holds into the file and fsyncs it. Run by the
 * writer itself (SQLite's wal_autocheckpoint) it stalls that writer: the event store's append that
 * crossed 8,192 pages took 80-95 ms under single transfers every ~3 s, and 170-250 ms under batches
 * every ~1 s, and the read models, which follow the event store, stalled with it (read-model lag p99
 * 114-143 ms under single transfers, against a 100 ms target). Run on the event-store thread between
 * appends (the read models' checkpoints, before), each took 20-130 ms of that thread. A writer whose
 * file is checkpointed here keeps its own checkpoints only as a backstop (`checkpointedElsewhere`).
 *
 * Nothing is lost if this thread fails or stops: it reports the failure, lets that file go, and its
 * writer's backstop checkpoints take over. Durability never rests on checkpoints: every commit is in
 * the WAL (fsync'd by the writer where the store requires it) before it is acknowledged.
 */
export class WalCheckpointer {
  private readonly exited: Promise<void>;
  private readonly pending = new Map<number, () => void>();
  private nextRequestId = 0;
  private closed = false;

  private constructor(
    private readonly worker: Worker,
    onError: (error: Error) => void,
  ) {
    worker.on('message', (message: { type: 'error'; file: string; message: string } | { type: 'checkpointed'; id: number }) => {
      if (message.type === 'checkpointed') {
        this.pending.get(message.id)?.();
        this.pending.delete(message.id);
        return;
      }
      onError(new Error(`WAL checkpoints of ${message.file} stopped (its writer's own checkpoints take over): ${message.message}`));
    });
    this.exited = new Promise((resolve) => {
      worker.once('exit', () => {
        for (const resolvePending of this.pending.values()) resolvePending();
        this.pending.clear();
        resolve();
      });
    });
    worker.once('error', (error) => onError(new Error(`the WAL checkpoint thread failed (the writers' own checkpoints take over): ${error.message}`)));
    // Never what keeps the process alive.
    worker.unref();
  }

  /** Starts the thread; it checkpoints the files given with `add`, every `intervalMs`. */
  static start(intervalMs: number, onError: (error: Error) => void): WalCheckpointer {
    if (!(Number.isInteger(intervalMs) && intervalMs > 0)) throw new Error(`WalCheckpointer: intervalMs must be a positive integer, got ${intervalMs}`);
    const worker = new Worker(join(__dirname, 'wal-checkpoint-worker.js'), { name: WAL_CHECKPOINT_THREAD_NAME, workerData: { intervalMs } });
    return new WalCheckpointer(worker, onError);
  }

  /** Checkpoints `file` from now on. It must exist (its writer has opened it): one that does not is reported, never created. */
  add(file: string): void {
    if (this.closed) return;
    this.worker.postMessage({ type: 'add', file });
  }

  /** Checkpoints every file now; resolves when done (tests). */
  checkpointNow(): Promise<void> {
    if (this.closed) return Promise.resolve();
    const id = this.nextRequestId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.worker.postMessage({ type: 'checkpoint', id });
    });
  }

  /** Stops checkpointing and closes the thread's connections; resolves once the thread has exited. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.worker.postMessage({ type: 'stop' });
    }
    return this.exited;
  }
}
