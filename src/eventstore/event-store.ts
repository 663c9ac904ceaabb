/**
 * The event store port. The ledger writes its events to one stream with an expected revision, so
 * exactly-once comes from the revision check, not from id de-duplication (EventStoreDB only drops
 * duplicate ids within a recent window). Projections read everything after a store position.
 *
 * Adapters: SqliteEventStore (embedded default), EventStoreDbEventStore (when EVENTSTORE_URL is set).
 * Both pass test/eventstore/event-store.contract.ts.
 */

/** What the ledger appends. `id` is a UUID derived from the event's ledger position. */
export interface NewEvent {
  id: string;
  type: string;
  /** A JSON object. */
  data: Record<string, unknown>;
  /** A JSON object; the ledger puts `position` (its own ordering) here. */
  metadata: EventMetadata;
  /**
   * `data` and `metadata` already serialized with JSON.stringify, when the caller has them (the
   * publisher needs their size anyway): an adapter that stores JSON text uses them instead of
   * serializing again. They must be exactly JSON.stringify(data) and JSON.stringify(metadata), and
   * the caller must not change `data` or `metadata` afterwards: the embedded store may hand the same
   * objects to readers of the events it just appended instead of parsing them back.
   */
  json?: { data: string; metadata: string };
}

export interface EventMetadata {
  /** The ledger position of the event (see src/domain/position.ts). */
  position: string;
  [key: string]: unknown;
}

export interface RecordedEvent {
  id: string;
  streamId: string;
  /** 0-based place of the event in its stream. */
  revision: bigint;
  type: string;
  data: Record<string, unknown>;
  metadata: EventMetadata;
  /** Opaque to everyone but the adapter; orders events across all streams of one store. */
  storePosition: string;
  /** When the store recorded it (store clock; informational). */
  createdAtMs: number;
}

/**
 * `no_stream`: the stream must not exist yet. `stream_exists`: it must exist. `any`: no check.
 * A bigint: the revision of the stream's last event must be exactly this.
 */
export type ExpectedRevision = 'no_stream' | 'stream_exists' | 'any' | bigint;

export interface AppendResult {
  /** Revision of the last event now in the stream: pass it as the next expected revision. */
  nextExpectedRevision: bigint;
  /** Store position of the last appended event. */
  storePosition: string;
}

export class WrongExpectedRevisionError extends Error {
  constructor(
    readonly streamId: string,
    readonly expected: ExpectedRevision,
    /** The stream's actual last revision, or 'no_stream'. */
    readonly actual: bigint | 'no_stream',
  ) {
    super(`stream "${streamId}": expected revision ${String(expected)}, actual ${String(actual)}`);
    this.name = 'WrongExpectedRevisionError';
  }
}

/**
 * The store refused an append for good (e.g. over EventStoreDB's MaxAppendSize): the same append
 * can never succeed, so it must not be retried.
 */
export class AppendRefusedError extends RangeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AppendRefusedError';
  }
}

export interface ReadStreamOptions {
  /** First revision to read (forwards) or last revision to read (backwards). Default: the start, or the end backwards. */
  fromRevision?: bigint;
  direction?: 'forwards' | 'backwards';
  /** Default and maximum: 4096. */
  maxCount?: number;
}

export interface ReadAllOptions {
  /** Read events strictly after this store position; null/undefined: from the beginning. */
  after?: string | null;
  /** Default and maximum: 4096. */
  maxCount?: number;
}

export interface Subscription {
  /** Stops delivery; resolves once no handler call is running. */
  close(): Promise<void>;
  /** Settles when the subscription ends: resolves on close(), rejects when delivery failed (the handler threw, or the store connection was lost). */
  readonly done: Promise<void>;
}

export type BatchHandler = (events: RecordedEvent[]) => Promise<void>;

export interface EventStore {
  /** 'embedded' or 'eventstoredb', for startup logs and status. */
  readonly kind: string;
  append(streamId: string, events: NewEvent[], expectedRevision: ExpectedRevision): Promise<AppendResult>;
  /** Events of one stream; an empty array when the stream does not exist. */
  readStream(streamId: string, options?: ReadStreamOptions): Promise<RecordedEvent[]>;
  /** Non-system events of all streams strictly after `after`, in store order. */
  readAll(options?: ReadAllOptions): Promise<RecordedEvent[]>;
  /**
   * Every non-system event strictly after `after`, in store order, then live ones as they are
   * appended: no gap, no duplicate. Calls `handler` with batches of at most `batchSizeMax` events and
   * awaits each call before the next.
   */
  subscribeAll(options: { after?: string | null; batchSizeMax?: number }, handler: BatchHandler): Subscription;
  close(): Promise<void>;
}

export const READ_COUNT_MAX = 4096;
/**
 * A subscription hands over at most this many events per handler call. Larger than one read: the
 * projections write one batch per call, and a large batch under backlog is what lets them keep up
 * (an account touched many times is written once, and each commit dirties far fewer pages per event).
 */
export const SUBSCRIPTION_BATCH_MAX = 16_384;
/** One append carries at most this many events. */
export const APPEND_EVENTS_MAX = 8192;
/** Default bound on the bytes (event data + metadata as JSON) of one append: under EventStoreDB's default MaxAppendSize of 1 MiB, with room for framing. */
export const APPEND_BYTES_MAX_DEFAULT = 768 * 1024;
