import { parentPort, workerData } from 'node:worker_threads';
import type { PositionedEvent } from '../domain/ledger';
import type { EventStore } from '../eventstore/event-store';
import { EventStoreDbEventStore } from '../eventstore/eventstoredb-event-store';
import { LedgerEventPublisher } from '../eventstore/ledger-event-publisher';
import { SqliteEventStore } from '../eventstore/sqlite-event-store';
import { ProjectionRunner, type ProjectionStatusReport } from '../projections/projection-runner';
import { LEDGER_PROJECTORS } from '../projections/projectors';
import type { EventPipelineStores } from './event-pipeline';
import { openReadModelStore } from './read-model-stores';

export type PipelineRequest =
  | { type: 'entries'; entries: Array<{ index: number; timestampMs: number; events: PositionedEvent[] }> }
  | { type: 'stop' };

export type PipelineReport =
  | { type: 'ready' }
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
  const readModels = await openReadModelStore(stores);

  const publisher = new LedgerEventPublisher(eventStore, {
    onDurable: (index) => report({ type: 'durable', index }),
    onError: (error) => report({ type: 'error', where: 'event store append', message: error.message }),
  });
  const projections = new ProjectionRunner(eventStore, readModels, LEDGER_PROJECTORS, {
    onError: (error) => report({ type: 'error', where: 'projections', message: error.message }),
  });
  projections.onProjected(() => report({ type: 'projected', position: projections.position, status: projections.status() }));

  await publisher.start();
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
  report({ type: 'ready' });
}

run().catch((error: Error) => {
  parentPort?.postMessage({ type: 'error', where: 'event pipeline start', message: error.stack ?? error.message } satisfies PipelineReport);
  throw error;
});
