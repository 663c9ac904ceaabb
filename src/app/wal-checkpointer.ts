import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

/** How often the embedded stores' WAL files are checkpointed (WalCheckpointer). */
export const WAL_CHECKPOINT_INTERVAL_MS = 200;

/** After a failed checkpoint, the file is opened and tried again at most this often. */
export const WAL_CHECKPOINT_RETRY_DELAY_MS = 5000;

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
 * appends (the read models' checkpoints, before), each took 20-130 ms of that thread.
 *
 * The writers keep checkpoints of their own, rarer: the event store's every 8,192 pages, the read
 * models' (opened `checkpointedElsewhere`) at 16,384. They find nearly all of the WAL
 * copied here and finish the job, which matters: under a steady stream of commits a checkpoint from
 * another connection seldom lets the WAL start over (SQLite restarts it only when the writer begins a
 * transaction with all of it copied), and without the writer's own the event store's WAL grew to
 * 74 MiB in 30 s of batches (156 MB in a test committing every millisecond).
 *
 * Nothing is lost if a checkpoint fails or the thread stops: the failure is reported, the file is
 * tried again every few seconds, and meanwhile its writer's backstop checkpoints keep its WAL
 * bounded. Durability never rests on checkpoints: every commit is in the WAL (fsync'd by the writer
 * where the store requires it) before it is acknowledged, and a checkpoint fsyncs the file before the
 * WAL may be reused (the driver's default `synchronous` in WAL mode, NORMAL, does).
 */
export class WalCheckpointer {
  private readonly exited: Promise<void>;
  private readonly pending = new Map<number, () => void>();
  private nextRequestId = 0;
  private closed = false;
  /** The thread has exited (closed, or failed): requests are answered at once. */
  private gone = false;

  private constructor(
    private readonly worker: Worker,
    onError: (error: Error) => void,
    onRecovered: (file: string) => void,
  ) {
    worker.on('message', (message: WorkerMessage) => {
      if (message.type === 'checkpointed') {
        this.pending.get(message.id)?.();
        this.pending.delete(message.id);
      } else if (message.type === 'recovered') {
        onRecovered(message.file);
      } else {
        onError(new Error(`WAL checkpoints of ${message.file} failed (its writer's own checkpoints take over; tried again every few seconds): ${message.message}`));
      }
    });
    this.exited = new Promise((resolve) => {
      worker.once('exit', () => {
        this.gone = true;
        for (const resolvePending of this.pending.values()) resolvePending();
        this.pending.clear();
        resolve();
      });
    });
    worker.once('error', (error) => onError(new Error(`the WAL checkpoint thread failed (the writers' own checkpoints take over): ${error.message}`)));
    // Never what keeps the process alive (close() holds it while it waits).
    worker.unref();
  }

  /**
   * Starts the thread; it checkpoints the files given with `add`, every `intervalMs`. A file whose
   * checkpoint fails goes to `onError` once (its message names the file) and is tried again every few
   * seconds (`onRecovered` when it works again); meanwhile its writer's own checkpoints keep its WAL
   * bounded.
   */
  static start(
    intervalMs: number,
    onError: (error: Error) => void,
    onRecovered: (file: string) => void = () => undefined,
    { retryDelayMs = WAL_CHECKPOINT_RETRY_DELAY_MS }: { retryDelayMs?: number } = {},
  ): WalCheckpointer {
    if (!(Number.isInteger(intervalMs) && intervalMs > 0)) throw new Error(`WalCheckpointer: intervalMs must be a positive integer, got ${intervalMs}`);
    const worker = new Worker(join(__dirname, 'wal-checkpoint-worker.js'), { name: WAL_CHECKPOINT_THREAD_NAME, workerData: { intervalMs, retryDelayMs } });
    return new WalCheckpointer(worker, onError, onRecovered);
  }

  /**
   * Checkpoints `file` from now on (a file already added: nothing more). It must exist (its writer
   * has opened it): one that does not is reported, never created.
   */
  add(file: string): void {
    if (this.closed || this.gone) return;
    this.worker.postMessage({ type: 'add', file });
  }

  /** Checkpoints every file now; resolves when done, or at once once the thread is gone (tests). */
  checkpointNow(): Promise<void> {
    if (this.closed || this.gone) return Promise.resolve();
    const id = this.nextRequestId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.worker.postMessage({ type: 'checkpoint', id });
    });
  }

  /** Stops checkpointing and closes the thread's connections; resolves once the thread has exited. */
  close(): Promise<void> {
    if (!this.closed && !this.gone) {
      // Held until it has exited: a caller awaiting this must not see the process end first.
      this.worker.ref();
      this.worker.postMessage({ type: 'stop' });
    }
    this.closed = true;
    return this.exited;
  }
}

type WorkerMessage =
  | { type: 'error'; file: string; message: string }
  | { type: 'recovered'; file: string; message: string }
  | { type: 'checkpointed'; id: number };
