import type { EventStore } from '../eventstore/event-store';
import { EventStoreDbEventStore } from '../eventstore/eventstoredb-event-store';
import { LedgerEventPublisher, type SerializedLedgerEvent } from '../eventstore/ledger-event-publisher';
import { type CommittedAppend, SQLITE_APPEND_BYTES_MAX_DEFAULT, SqliteEventStore } from '../eventstore/sqlite-event-store';
import { ProjectionRunner, type ProjectionStatusReport } from '../projections/projection-runner';
import { LEDGER_PROJECTORS } from '../projections/projectors';
import { checkpointAheadOf, dropEmbeddedReadModels, embeddedReadModelProblem } from '../projections/read-model-check';
import { SqliteReadModelStore } from '../projections/sqlite-read-model-store';
import type { ReadModelStore } from '../projections/read-model-store';
import type { EventPipelineStores } from './event-pipeline';
import { openReadModelStore } from './read-model-stores';
import { assertSqliteDriverLoads } from './sqlite-driver';
import { WAL_CHECKPOINT_INTERVAL_MS, WalCheckpointer } from './wal-checkpointer';

export type PipelineRequest =
  | { type: 'entries'; entries: Array<{ index: number; timestampMs: number; events: SerializedLedgerEvent[] }> }
  /** The projection stage has opened the read models: the event-store stage's WalCheckpointer checkpoints the embedded ones from now on. */
  | { type: 'read models open' }
  | { type: 'stop' };

/** What the event-store stage hands the projection stage, in this order. */
export type ProjectionStageRequest =
  /** An append the embedded event store committed: the projections take its events from here, not from the file. */
  | { type: 'committed'; appended: CommittedAppend }
  /** Ledger time of the newest entry handed over, so that the projections can report their lag. */
  | { type: 'newest'; timestampMs: number }
  /** Sent after the last append: nothing follows. */
  | { type: 'stop' };

export type PipelineReport =
  | { type: 'ready'; stage: 'events'; storedPosition: string | null }
  | { type: 'ready'; stage: 'projections'; notes: string[] }
  | { type: 'durable'; index: number }
  | { type: 'projected'; position: string | null; status: ProjectionStatusReport[] }
  | { type: 'error'; where: string; message: string }
  | { type: 'stopped'; stage: PipelineStage };

export type PipelineStage = 'events' | 'projections';

/** Stages of the pipeline, each of which reports 'ready' and 'stopped' once. */
export const PIPELINE_STAGES: readonly PipelineStage[] = ['events', 'projections'];

/**
 * The pipeline in two stages, each with its own store connections, wherever they run: on two worker
 * threads in production (WorkerEventPipeline), or both in the caller's thread (fast tests, the
 * benchmark). The event-store stage appends; the projection stage follows the event store into the
 * read models. On two threads the projections of one hand-over run while the next is appended and
 * fsync'd, and the event-store thread never parses the events it stores.
 *
 * In one thread: starts the event-store stage, then the projection stage, joined by a direct call.
 * Returns the function that takes requests.
 */
export async function startPipelineCore(stores: EventPipelineStores, report: (message: PipelineReport) => void): Promise<(request: PipelineRequest) => void> {
  let toProjections: ((request: ProjectionStageRequest) => void) | null = null;
  const early: ProjectionStageRequest[] = [];
  const events = await startEventStoreStage(stores, report, (request) => (toProjections ? toProjections(request) : early.push(request)));
  try {
    toProjections = await startProjectionStage(stores, events.storedPosition, report);
  } catch (error) {
    // The event-store stage closes its store; nothing was handed over yet.
    events.take({ type: 'stop' });
    throw error;
  }
  for (const request of early.splice(0)) toProjections(request);
  events.take({ type: 'read models open' });
  return events.take;
}

/**
 * The event-store stage: the publisher into the event store (exactly once, in log order). Opens and
 * checks the store, reports 'ready' with the ledger position it holds, then takes hand-overs. Every
 * committed append of the embedded store goes to `forward` as its rows; on 'stop' it publishes
 * everything handed over, forwards 'stop' and closes the store.
 */
export async function startEventStoreStage(
  stores: EventPipelineStores,
  report: (message: PipelineReport) => void,
  forward: (request: ProjectionStageRequest) => void,
): Promise<{ storedPosition: string | null; take: (request: PipelineRequest) => void }> {
  const eventStore: EventStore = stores.eventStoreUrl ? EventStoreDbEventStore.connect(stores.eventStoreUrl) : openCheckedEventStore(stores.eventStoreFile!);
  if (eventStore instanceof SqliteEventStore) eventStore.onCommitted((appended) => forward({ type: 'committed', appended }));
  // The embedded stores' checkpoints run on a thread of their own, off this thread's appends: the
  // event store's from now on, the read models' once the projection stage has opened them.
  let checkpointer = null as WalCheckpointer | null;
  const checkpoint = (file: string) => {
    checkpointer ??= WalCheckpointer.start(WAL_CHECKPOINT_INTERVAL_MS, (error) => report({ type: 'error', where: 'WAL checkpoint', message: error.message }));
    checkpointer.add(file);
  };
  let publisher: LedgerEventPublisher;
  try {
    if (eventStore instanceof SqliteEventStore) checkpoint(stores.eventStoreFile!);
    publisher = new LedgerEventPublisher(eventStore, {
      onDurable: (index) => report({ type: 'durable', index }),
      onError: (error) => report({ type: 'error', where: 'event store append', message: error.message }),
      onHalted: (error) =>
        report({ type: 'error', where: 'event store append (refused for good: the event pipeline stopped, nothing is retried)', message: error.message }),
      appendBytesMax: stores.appendBytesMax ?? (stores.eventStoreUrl ? undefined : SQLITE_APPEND_BYTES_MAX_DEFAULT),
      appendIntervalMs: stores.appendIntervalMs,
    });
    await publisher.start();
  } catch (error) {
    await checkpointer?.close();
    await eventStore.close().catch(() => undefined);
    throw error;
  }
  let stopping = false;
  const take = (request: PipelineRequest) => {
    if (stopping) return;
    if (request.type === 'entries') {
      let newest: number | null = null;
      for (const entry of request.entries) {
        if (entry.events.length > 0) newest = entry.timestampMs;
        publisher.enqueueSerialized(entry.index, entry.timestampMs, entry.events);
      }
      if (newest !== null) forward({ type: 'newest', timestampMs: newest });
      return;
    }
    if (request.type === 'read models open') {
      if (!stores.mongoDbUrl) checkpoint(stores.readModelFile);
      return;
    }
    stopping = true;
    void (async () => {
      // The last appends first (they need no checkpoint), then the checkpoints, then the store.
      await publisher.stop();
      await checkpointer?.close();
      forward({ type: 'stop' });
      await eventStore.close();
      report({ type: 'stopped', stage: 'events' });
    })();
  };
  const storedPosition = publisher.storedLedgerPosition;
  report({ type: 'ready', stage: 'events', storedPosition });
  return { storedPosition, take };
}

/**
 * The projection stage: follows the event store into the read models, on a connection of its own.
 * Checks the read models against `storedPosition` (what the event-store stage found at start),
 * dropping and re-projecting any that are unreadable or ahead, then reports 'ready'. Takes what the
 * event-store stage forwards, in order.
 */
export async function startProjectionStage(
  stores: EventPipelineStores,
  storedPosition: string | null,
  report: (message: PipelineReport) => void,
): Promise<(request: ProjectionStageRequest) => void> {
  // Not checked again: the event-store stage read the file through before it reported ready.
  const eventStore: EventStore = stores.eventStoreUrl ? EventStoreDbEventStore.connect(stores.eventStoreUrl) : SqliteEventStore.open(stores.eventStoreFile!);
  const notes: string[] = [];
  // The event-store stage's WalCheckpointer checkpoints the embedded read models once they are open ('read models open').
  let readModels: ReadModelStore = stores.mongoDbUrl ? await openReadModelStore(stores) : openReadModelsOrRebuild(stores.readModelFile, notes);
  const newProjections = () =>
    new ProjectionRunner(eventStore, readModels, LEDGER_PROJECTORS, {
      onError: (error) => report({ type: 'error', where: 'projections', message: error.message }),
    });
  let projections = newProjections();

  const ahead = await checkpointAheadOf(readModels, LEDGER_PROJECTORS, storedPosition).catch(
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
      readModels = SqliteReadModelStore.open(stores.readModelFile, CHECKPOINTED_ELSEWHERE);
    }
    projections = newProjections();
    notes.push(`read models were ahead of the event store (${ahead}): dropped, re-projecting from the event store`);
  }
  projections.onProjected(() => report({ type: 'projected', position: projections.position, status: projections.status() }));
  await projections.start();
  report({ type: 'projected', position: projections.position, status: projections.status() });

  const take = (request: ProjectionStageRequest) => {
    switch (request.type) {
      case 'committed':
        (eventStore as SqliteEventStore).acceptCommitted(request.appended);
        return;
      case 'newest':
        projections.noteCommittedTimestamp(request.timestampMs);
        return;
      case 'stop':
        void (async () => {
          await projections.stop();
          await readModels.close();
          await eventStore.close();
          report({ type: 'stopped', stage: 'projections' });
        })();
        return;
    }
  };
  report({ type: 'ready', stage: 'projections', notes });
  return take;
}

/** The embedded event store, read through once: it is the audit trail, so one that does not check out stops the node. Checkpointed by the stage's WalCheckpointer. */
function openCheckedEventStore(file: string): SqliteEventStore {
  assertSqliteDriverLoads();
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

/** The projection stage's read models are checkpointed by the event-store stage's WalCheckpointer. */
const CHECKPOINTED_ELSEWHERE = { checkpointedElsewhere: true } as const;

/** The embedded read models, dropped and re-created when the file does not check out or cannot be opened. */
function openReadModelsOrRebuild(file: string, notes: string[]): SqliteReadModelStore {
  assertSqliteDriverLoads();
  let problem = embeddedReadModelProblem(file);
  if (problem === null) {
    try {
      return SqliteReadModelStore.open(file, CHECKPOINTED_ELSEWHERE);
    } catch (error) {
      problem = (error as Error).message;
    }
  }
  dropEmbeddedReadModels(file);
  notes.push(`read models at ${file} were unreadable (${problem}): dropped, re-projecting from the event store`);
  return SqliteReadModelStore.open(file, CHECKPOINTED_ELSEWHERE);
}
