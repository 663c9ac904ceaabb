import { parentPort, workerData } from 'node:worker_threads';
import type { EventPipelineStores } from './event-pipeline';
import { type PipelineReport, type PipelineRequest, startPipelineCore } from './event-pipeline-core';

export type { PipelineReport, PipelineRequest } from './event-pipeline-core';

/** The worker side of WorkerEventPipeline: runs the pipeline core on this thread. */
async function run(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('event-pipeline-worker must run in a worker thread');
  const take = await startPipelineCore(workerData as EventPipelineStores, (message) => port.postMessage(message));
  port.on('message', (request: PipelineRequest) => take(request));
}

run().catch((error: Error) => {
  parentPort?.postMessage({ type: 'error', where: 'event pipeline start', message: error.stack ?? error.message } satisfies PipelineReport);
  throw error;
});
