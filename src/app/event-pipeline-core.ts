import type { EventStore } from '../eventstore/event-store';
import { EventStoreDbEventStore } from '../eventstore/eventstoredb-event-store';
import { LedgerEventPublisher, type SerializedLedgerEvent } from '../eventstore/ledger-event-publisher';
import { SQLITE_APPEND_BYTES_MAX_DEFAULT, SqliteEventStore } from '../eventstore/sqlite-event-store';
import { ProjectionRunner, type ProjectionStatusReport } from '../projections/projection-runner';
import { LEDGER_PROJECTORS } from '../projections/projectors';
import { checkpointAheadOf, dropEmbeddedReadModels, embeddedReadModelProblem } from '../projections/read-model-check';
import { SqliteReadModelStore } from '../projections/sqlite-read-model-store';
import type { ReadModelStore } from '../projections/read-model-store';
import type { EventPipelineStores } from './event-pipeline';
import { openReadModelStore } from './read-model-stores';

export type PipelineRequest =
  | { type: 'entries'; entries: Array<{ index: number; timestampMs: number; events: SerializedLedgerEvent[] }> }
  | { type: 'stop' };

export type PipelineReport =
  | { type: 'ready'; storedPosition: string | null; notes: string[] }
  | { type: 'durable'; index: number }
  | { type: 'projected'; position: string | null; status: ProjectionStatusReport[] }
  | { type: 'error'; where: string; message: string }
  | { type: 'stopped' };

/**
 * The pipeline itself (publisher + projections, with their own store connections), wherever it
 * runs: on the worker thread in production, in the caller's thread for fast tests. Checks the read
 * models against the event store first (dropping and re-projecting one that is unreadable or
 * ahead), then reports 'ready'. Returns the function that takes requests.
 */
export async function startPipelineCore(stores: EventPipelineStores, report: (message: PipelineReport) => void): Promise<(request: PipelineRequest) => void> {
  const eventStore: EventStore = stores.eventStoreUrl ? EventStoreDbEventStore.connect(stores.eventStoreUrl) : openCheckedEventStore(stores.eventStoreFile!);
  const notes: string[] = [];
  let readModels: ReadModelStore = stores.mongoDbUrl ? await openReadModelStore(stores) : openReadModelsOrRebuild(stores.readModelFile, notes);

  const publisher = new LedgerEventPublisher(eventStore, {
    onDurable: (index) => report({ type: 'durable', index }),
    onError: (error) => report({ type: 'error', where: 'event store append', message: error.message }),
    onHalted: (error) =>
      report({ type: 'error', where: 'event store append (refused for good: the event pipeline stopped, nothing is retried)', message: error.message }),
    appendBytesMax: stores.appendBytesMax ?? (stores.eventStoreUrl ? undefined : SQLITE_APPEND_BYTES_MAX_DEFAULT),
    appendIntervalMs: stores.appendIntervalMs,
  });
  const newProjections = () =>
    new ProjectionRunner(eventStore, readModels, LEDGER_PROJECTORS, {
      onError: (error) => report({ type: 'error', where: 'projections', message: error.message }),
    });
  let projections = newProjections();

  await publisher.start();
  const ahead = await checkpointAheadOf(readModels, LEDGER_PROJECTORS, publisher.storedLedgerPosition).catch(
    (error: Error) => `its checkpoints cannot be read: ${error.message}`,
  );
  if (ahead) {
    if (stores.mongoDbUrl) {
      await readModels.reset(
        LEDGER_PROJECTORS.flatMap((projector) => projector.collections),
        LEDGER_PROJECTORS.map((projector) => projector.name),
      );
    } else {
      await readModels.close();
      dropEmbeddedReadModels(stores.readModelFile);
      readModels = SqliteReadModelStore.open(stores.readModelFile);
    }
    projections = newProjections();
    notes.push(`read models were ahead of the event store (${ahead}): dropped, re-projecting from the event store`);
  }
  projections.onProjected(() => report({ type: 'projected', position: projections.position, status: projections.status() }));
  await projections.start();
  report({ type: 'projected', position: projections.position, status: projections.status() });

  const take = (request: PipelineRequest) => {
    if (request.type === 'entries') {
      for (const entry of request.entries) {
        if (entry.events.length > 0) projections.noteCommittedTimestamp(entry.timestampMs);
        publisher.enqueueSerialized(entry.index, entry.timestampMs, entry.events);
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
  };
  report({ type: 'ready', storedPosition: publisher.storedLedgerPosition, notes });
  return take;
}


/** The embedded event store, read through once: it is the audit trail, so one that does not check out stops the node. */
function openCheckedEventStore(file: string): SqliteEventStore {
  let store: SqliteEventStore | null = null;
  let problem: string | null;
  try {
    store = SqliteEventStore.open(file);
    problem = store.verifyIntegrity();
  } catch (error) {
    problem = (error as Error).message;
  }
  if (problem === null && store) return store;
  void store?.close().catch(() => undefined);
  throw new Error(
    `the embedded event store at ${file} cannot be read or does not check out (${problem}). Refusing to start: restore the data folder from a backup (see README, "When the node refuses to start")`,
  );
}

/** The embedded read models, dropped and re-created when the file does not check out or cannot be opened. */
function openReadModelsOrRebuild(file: string, notes: string[]): SqliteReadModelStore {
  let problem = embeddedReadModelProblem(file);
  if (problem === null) {
    try {
      return SqliteReadModelStore.open(file);
    } catch (error) {
      problem = (error as Error).message;
    }
  }
  dropEmbeddedReadModels(file);
  notes.push(`read models at ${file} were unreadable (${problem}): dropped, re-projecting from the event store`);
  return SqliteReadModelStore.open(file);
}
