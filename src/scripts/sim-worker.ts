import { parentPort } from 'node:worker_threads';
import { runSimulation } from '../consensus/sim/simulation';
import type { SeedTask } from './sim-pool';

// One seed per message; the answer drops the trace unless the seed failed or it was asked for.
parentPort!.on('message', (task: SeedTask) => {
  const result = runSimulation({ seed: task.seed, plantedBug: task.plantedBug, traceLines: task.traceLines });
  if (result.ok && !task.keepTrace) result.trace = [];
  parentPort!.postMessage(result);
});
