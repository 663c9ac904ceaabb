import { fork } from 'node:child_process';
import { availableParallelism, setPriority } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { PlantedBug } from '../consensus/raft/types';
import type { SimResult } from '../consensus/sim/simulation';

export interface SeedTask {
  seed: number;
  plantedBug: PlantedBug | null;
  traceLines: number;
  keepTrace: boolean;
}

export interface PoolOptions {
  from: number;
  seeds: number;
  plantedBug?: PlantedBug | null;
  workers?: number;
  /** Trace lines kept for a failing seed's report. */
  traceLines?: number;
  keepTrace?: boolean;
  /** Stop handing out seeds after the first failure (planted-bug hunts). */
  stopOnFailure?: boolean;
  onResult?: (result: SimResult, done: number) => void;
  /**
   * Run each worker as a child process at this nice value (0..19) instead of a thread: the test suite
   * uses 19 so that seeds only take CPU that the real-process tests beside them do not need.
   */
  niceness?: number;
}

export interface PoolSummary {
  results: SimResult[];
  failures: SimResult[];
  wallMs: number;
  simulatedMs: number;
  workers: number;
}

/** Runs seeds [from, from+seeds) on a pool of worker threads, one per core by default. */
export async function runSeedPool(options: PoolOptions): Promise<PoolSummary> {
  const workersWanted = Math.max(1, Math.min(options.workers ?? availableParallelism(), options.seeds));
  const started = process.hrtime.bigint();
  const results: SimResult[] = [];
  const failures: SimResult[] = [];
  let nextSeed = options.from;
  const end = options.from + options.seeds;
  let stop = false;
  const runWorker = () =>
    new Promise<void>((resolve, reject) => {
      const worker = startWorker(options.niceness);
      const feed = () => {
        if (stop || nextSeed >= end) {
          void worker.terminate().then(() => resolve());
          return;
        }
        const task: SeedTask = {
          seed: nextSeed,
          plantedBug: options.plantedBug ?? null,
          traceLines: options.traceLines ?? 200,
          keepTrace: options.keepTrace ?? false,
        };
        nextSeed += 1;
        worker.postMessage(task);
      };
      worker.on('message', (result: SimResult) => {
        results.push(result);
        if (!result.ok) {
          failures.push(result);
          if (options.stopOnFailure) stop = true;
        }
        options.onResult?.(result, results.length);
        feed();
      });
      worker.once('error', reject);
      feed();
    });
  await Promise.all(Array.from({ length: workersWanted }, runWorker));
  results.sort((a, b) => a.seed - b.seed);
  failures.sort((a, b) => a.seed - b.seed);
  return {
    results,
    failures,
    wallMs: Number(process.hrtime.bigint() - started) / 1e6,
    simulatedMs: results.reduce((sum, r) => sum + r.simulatedMs, 0),
    workers: workersWanted,
  };
}

interface PoolWorker {
  postMessage(task: SeedTask): void;
  on(event: 'message', listener: (result: SimResult) => void): void;
  once(event: 'error', listener: (error: Error) => void): void;
  terminate(): Promise<unknown>;
}

function startWorker(niceness: number | undefined): PoolWorker {
  const entry = join(__dirname, 'sim-worker.js');
  if (niceness === undefined) return new Worker(entry);
  const child = fork(entry, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  if (child.pid !== undefined) setPriority(child.pid, niceness);
  return {
    postMessage: (task) => child.send(task),
    on: (_event, listener) => child.on('message', (result) => listener(result as SimResult)),
    once: (_event, listener) => {
      child.once('error', listener);
      child.once('exit', (code) => {
        if (code !== 0 && code !== null) listener(new Error(`simulation worker exited with code ${code}`));
      });
    },
    terminate: () =>
      new Promise((resolve) => {
        child.once('exit', resolve);
        child.kill();
      }),
  };
}

/** The command that replays one seed exactly, with its trace. */
export function replayCommand(seed: number, plantedBug: PlantedBug | null | undefined): string {
  return `${plantedBug ? `SIM_BUG=${plantedBug} ` : ''}npm run sim -- --seeds 1 --from ${seed}`;
}
