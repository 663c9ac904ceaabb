import { parentPort } from 'node:worker_threads';
import { runSimulation } from '../consensus/sim/simulation';
import type { SeedTask } from './sim-pool';

// One seed per message, in a worker thread or a child process; the answer drops the trace unless the
// seed failed or it was asked for.
const answer = (task: SeedTask) => {
  const result = runSimulation({ seed: task.seed, plantedBug: task.plantedBug, traceLines: task.traceLines });
  if (result.ok && !task.keepTrace) result.trace = [];
  return result;
};
if (parentPort) parentPort.on('message', (task: SeedTask) => parentPort!.postMessage(answer(task)));
else process.on('message', (task: SeedTask) => process.send!(answer(task)));
