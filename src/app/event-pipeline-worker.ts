import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import type { EventPipelineStores } from './event-pipeline';
import { type PipelineReport, type PipelineRequest, type PipelineStage, type ProjectionStageRequest, startEventStoreStage, startProjectionStage } from './event-pipeline-core';

export type { PipelineReport, PipelineRequest } from './event-pipeline-core';

/** What WorkerEventPipeline gives each of its two workers. */
export interface PipelineWorkerData {
  stage: PipelineStage;
  stores: EventPipelineStores;
  /** The events stage writes to it, the projections stage reads from it: what the event store committed, in order. */
  port: MessagePort;
  /** Projections stage: the ledger position the event store held at start (the events stage's 'ready'). */
  storedPosition?: string | null;
}

/** The worker side of WorkerEventPipeline: runs one stage of the pipeline on this thread. */
async function run(): Promise<void> {
  const parent = parentPort;
  if (!parent) throw new Error('event-pipeline-worker must run in a worker thread');
  const data = workerData as PipelineWorkerData;
  const report = (message: PipelineReport) => parent.postMessage(message);
  if (data.stage === 'events') {
    const { take } = await startEventStoreStage(data.stores, report, (request) => data.port.postMessage(request));
    parent.on('message', (request: PipelineRequest) => take(request));
    return;
  }
  const take = await startProjectionStage(data.stores, data.storedPosition ?? null, report);
  data.port.on('message', (request: ProjectionStageRequest) => {
    take(request);
    if (request.type === 'stop') data.port.close();
  });
}

run().catch((error: Error) => {
  parentPort?.postMessage({ type: 'error', where: 'event pipeline start', message: error.stack ?? error.message } satisfies PipelineReport);
  throw error;
});
