import { parentPort, workerData } from 'node:worker_threads';
import type { PositionedEvent } from '../domain/ledger';
import type { EventStore } from '../eventstore/event-store';
import { EventStoreDbEventStore } from '../eventstore/eventstoredb-event-store';
import { LedgerEventPublisher } from '../eventstore/ledger-event-publisher';
import { SqliteEventStore } from '../eventstore/sqlite-event-store';
import { ProjectionRunner, type ProjectionStatusReport } from '../projections/projection-runner';
import { LEDGER_PROJECTORS } from '../projections/projectors';
import { checkpointAheadOf, dropEmbeddedReadModels, embeddedReadModelProblem } from '../projections/read-model-check';
import { SqliteReadModelStore } from '../projections/sqlite-read-model-store';
import type { EventPipelineStores } from './event-pipeline';

export type PipelineRequest =
  | { type: 'entries'; entries: Array<{ index: number; timestampMs: number; events: PositionedEvent[] }> }
  | { type: 'stop' };

export type PipelineReport =
  | { type: 'ready'; storedPosition: string | null; notes: string[] }
  | { type: 'durable'; index: number }
  | { type: 'projected'; position: string | null; status: ProjectionStatusReport[] }
  | { type: 'error'; where: string; message: string }
  | { type: 'stopped' };

/** The worker side of WorkerEventPipeline: its own store connections, publisher and projections. */
async function run(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('event-pipeline-worker must run in a worker thread');
  const stores = workerData as EventPipelineStores;
  const report = (message: PipelineReport) => port.postMessage(message);

  const eventStore: EventStore = stores.eventStoreUrl
    ? EventStoreDbEventStore.connect(stores.eventStoreUrl)
    : SqliteEventStore.open(stores.eventStoreFile!);
  const notes: string[] = [];
  const corrupt = embeddedReadModelProblem(stores.readModelFile);
  if (corrupt) {
    dropEmbeddedReadModels(stores.readModelFile);
    notes.push(`read models at ${stores.readModelFile} were unreadable (${corrupt}): dropped, re-projecting from the event store`);
  }
  let readModels = SqliteReadModelStore.open(stores.readModelFile);

  const publisher = new LedgerEventPublisher(eventStore, {
    onDurable: (index) => report({ type: 'durable', index }),
    onError: (error) => report({ type: 'error', where: 'event store append', message: error.message }),
  });
  const newProjections = () =>
    new ProjectionRunner(eventStore, readModels, LEDGER_PROJECTORS, {
      onError: (error) => report({ type: 'error', where: 'projections', message: error.message }),
    });
  let projections = newProjections();

  await publisher.start();
  const ahead = await checkpointAheadOf(readModels, LEDGER_PROJECTORS, publisher.storedLedgerPosition);
  if (ahead) {
    await readModels.close();
    dropEmbeddedReadModels(stores.readModelFile);
    readModels = SqliteReadModelStore.open(stores.readModelFile);
    projections = newProjections();
    notes.push(`read models were ahead of the event store (${ahead}): dropped, re-projecting from the event store`);
  }
  projections.onProjected(() => report({ type: 'projected', position: projections.position, status: projections.status() }));
  await projections.start();
  report({ type: 'projected', position: projections.position, status: projections.status() });

  port.on('message', (request: PipelineRequest) => {
    if (request.type === 'entries') {
      for (const entry of request.entries) {
        if (entry.events.length > 0) projections.noteCommittedTimestamp(entry.timestampMs);
        publisher.enqueue(entry.index, entry.timestampMs, entry.events);
      }
      return;
    }
    void (async () => {
      await publisher.stop();
      await projections.stop();
      await readModels.close();
      await eventStore.close();
      report({ type: 'stopped' });
    })();
  });
  report({ type: 'ready', storedPosition: publisher.storedLedgerPosition, notes });
}

run().catch((error: Error) => {
  parentPort?.postMessage({ type: 'error', where: 'event pipeline start', message: error.stack ?? error.message } satisfies PipelineReport);
  throw error;
});
