import type { PositionedEvent } from '../domain/ledger';
import type { ProjectionStatusReport } from '../projections/projection-runner';
import type { ReadModelStoreLocation } from './read-model-stores';

/**
 * Everything downstream of the state machine: applied events go to the event store (exactly once),
 * and projections follow the store into the read models. The node hands every applied entry to it,
 * in log order, and never waits for it: acknowledgements depend on the log alone.
 */
export interface EventPipeline {
  start(): Promise<void>;
  /** The events of one applied entry (possibly none), in log order. */
  enqueue(index: number, timestampMs: number, events: PositionedEvent[]): void;
  /** Known once started: the ledger position of the last event the event store holds (null: none). */
  readonly storedPosition: string | null;
  /** What start had to repair (a read model dropped and re-projected), for the startup output. */
  readonly startupNotes: string[];
  /** Events handed over but not yet in the event store. */
  readonly backlogEvents: number;
  /** Events handed over but not yet in every read model. */
  readonly unprojectedEvents: number;
  /** Wall-clock age (ms) of the oldest handed-over event not yet in every read model; 0 when they hold everything. */
  projectionLagMs(): number;
  /**
   * Resolves true once fewer than `events` events are unprojected (at once while the read models
   * still catch up with what the event store held at start), false after `timeoutMs` (or when the
   * pipeline stops).
   */
  waitForUnprojectedBelow(events: number, timeoutMs: number): Promise<boolean>;
  /** Called with the highest log index whose events are all in the event store. */
  onDurable(listener: (index: number) => void): void;
  /** Resolves true once every read model includes `position`, false after `timeoutMs`. */
  waitForPosition(position: string, timeoutMs: number): Promise<boolean>;
  projectionStatus(): ProjectionStatusReport[];
  /** Publishes everything handed over, then stops projections and closes the stores. */
  stop(): Promise<void>;
}

/** Where the pipeline's stores are: enough for a worker thread to open them itself. */
export interface EventPipelineStores extends ReadModelStoreLocation {
  /** SQLite file of the embedded event store, or null when `eventStoreUrl` is set. */
  eventStoreFile: string | null;
  eventStoreUrl: string | null;
  /** Bound on one event-store append (bytes); null: the default. */
  appendBytesMax?: number | null;
  /** Least time between the starts of two drains of the publisher's queue (ms); absent: the default. */
  appendIntervalMs?: number;
}
