/**
 * The production event store: EventStoreDB over gRPC (@eventstore/db-client 6).
 *
 * The mapping between the port and the client is in the exported pure functions below, unit tested
 * without a server (test/eventstore/eventstoredb-mapping.test.ts); the class is the thin I/O shell.
 *
 * Server requirement: EventStoreDB 22.6 or later, which puts the $all position on events read from
 * a stream (the port gives every recorded event its store position).
 */
import {
  ANY,
  END,
  EventStoreDBClient,
  FORWARDS,
  BACKWARDS,
  MaxAppendSizeExceededError,
  NO_STREAM,
  START,
  STREAM_EXISTS,
  StreamNotFoundError,
  WrongExpectedVersionError,
  excludeSystemEvents,
  jsonEvent,
  type AllStreamResolvedEvent,
  type AllStreamSubscription,
  type AppendExpectedRevision,
  type JSONEventData,
  type Position,
} from '@eventstore/db-client';
import {
  APPEND_EVENTS_MAX,
  AppendRefusedError,
  READ_COUNT_MAX,
  WrongExpectedRevisionError,
  type AppendResult,
  type BatchHandler,
  type EventMetadata,
  type EventStore,
  type ExpectedRevision,
  type NewEvent,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type Subscription,
} from './event-store';
import { checkAppend, checkBatchSizeMax, checkReadCount, checkRevision, checkStreamId, isJsonObject } from './input-checks';

const UINT64_MAX = 2n ** 64n - 1n;
/** Digits of UINT64_MAX: both halves of a store position have this width, so string order = $all order. */
const POSITION_PART_WIDTH = 20;
const STORE_POSITION_PATTERN = /^([0-9]{20})-([0-9]{20})$/;
const SUBSCRIPTION_BATCH_SIZE_DEFAULT = 512;
/**
 * Events buffered while the handler runs, in batches: past this many the subscription's stream is
 * paused, which pushes back on the gRPC stream instead of growing memory without bound.
 */
const SUBSCRIPTION_BUFFER_BATCHES_MAX = 2;
/** readAll pages at least this many events, so that a run of system events is crossed in few calls. */
const READ_ALL_PAGE_MIN = 256;

// ---------------------------------------------------------------------------------------------
// Pure mapping between the port and the client.

/** A recorded event as the client returns it (its RecordedEvent type, structurally). */
export interface DbRecordedEvent {
  streamId: string;
  id: string;
  isJson: boolean;
  revision: bigint;
  type: string;
  created: Date;
  data: unknown;
  metadata: unknown;
  /** $all position; on stream reads only from server 22.6 on. */
  position?: Position;
}

export interface DbResolvedEvent {
  event?: DbRecordedEvent;
}

/**
 * `${commit}-${prepare}`, each zero-padded to 20 digits: exact for any 64-bit position, and string
 * order is EventStoreDB's $all order (commit, then prepare).
 */
export function encodeStorePosition(position: Position): string {
  for (const part of [position.commit, position.prepare]) {
    if (typeof part !== 'bigint' || part < 0n || part > UINT64_MAX) {
      throw new RangeError(`invalid EventStoreDB position part ${String(part)}: expected a 64-bit unsigned bigint`);
    }
  }
  const pad = (part: bigint): string => part.toString().padStart(POSITION_PART_WIDTH, '0');
  return `${pad(position.commit)}-${pad(position.prepare)}`;
}

export function decodeStorePosition(value: string): Position {
  const match = typeof value === 'string' ? STORE_POSITION_PATTERN.exec(value) : null;
  if (match === null || match[1] === undefined || match[2] === undefined) {
    throw new RangeError(`invalid store position "${String(value)}": expected <20-digit commit>-<20-digit prepare>`);
  }
  const position = { commit: BigInt(match[1]), prepare: BigInt(match[2]) };
  if (position.commit > UINT64_MAX || position.prepare > UINT64_MAX) {
    throw new RangeError(`invalid store position "${value}": beyond 64 bits`);
  }
  return position;
}

/** Orders two $all positions: commit first, then prepare. */
export function compareDbPositions(a: Position, b: Position): number {
  if (a.commit !== b.commit) return a.commit < b.commit ? -1 : 1;
  if (a.prepare !== b.prepare) return a.prepare < b.prepare ? -1 : 1;
  return 0;
}

export function toDbExpectedRevision(expected: ExpectedRevision): AppendExpectedRevision {
  switch (expected) {
    case 'no_stream':
      return NO_STREAM;
    case 'stream_exists':
      return STREAM_EXISTS;
    case 'any':
      return ANY;
    default:
      return expected;
  }
}

export function toDbEvent(event: NewEvent): JSONEventData {
  return jsonEvent({ id: event.id, type: event.type, data: event.data, metadata: event.metadata });
}

/** Events the server writes for itself: system streams and system event types (links are `$>`). */
export function isSystemEvent(streamId: string, type: string): boolean {
  return streamId.startsWith('$') || type.startsWith('$');
}

/**
 * Maps one recorded event. Throws on what the port cannot represent (binary data, no position,
 * metadata without the ledger's position): the store is the ledger's, such an event is a fault.
 */
export function toRecordedEvent(event: DbRecordedEvent): RecordedEvent {
  const where = `EventStoreDB event ${event.id} (stream "${event.streamId}", revision ${event.revision})`;
  if (!event.isJson || !isJsonObject(event.data)) throw new TypeError(`${where}: data is not a JSON object`);
  if (!isJsonObject(event.metadata) || typeof event.metadata.position !== 'string') {
    throw new TypeError(`${where}: metadata is not a JSON object with a string "position"`);
  }
  // Servers before 22.6 give stream reads no position, or the all-ones placeholder.
  if (event.position === undefined || event.position.commit === UINT64_MAX) {
    throw new Error(`${where}: the server gave no $all position; EventStoreDB 22.6 or later is required`);
  }
  return {
    id: event.id,
    streamId: event.streamId,
    revision: event.revision,
    type: event.type,
    data: event.data,
    metadata: event.metadata as EventMetadata,
    storePosition: encodeStorePosition(event.position),
    createdAtMs: event.created.getTime(),
  };
}

/** The resolved event's own event, mapped; null for a system event or an empty resolved event. */
export function fromResolvedEvent(resolved: DbResolvedEvent): RecordedEvent | null {
  const event = resolved.event;
  if (event === undefined || isSystemEvent(event.streamId, event.type)) return null;
  return toRecordedEvent(event);
}

export function toWrongExpectedRevisionError(
  error: WrongExpectedVersionError,
  streamId: string,
  expected: ExpectedRevision,
): WrongExpectedRevisionError {
  const reported = error.actualVersion;
  // The server reports a missing stream as no revision, or as -1 in older encodings.
  const actual = typeof reported === 'bigint' && reported >= 0n ? reported : 'no_stream';
  return new WrongExpectedRevisionError(error.streamName || streamId, expected, actual);
}

/** The port's errors for the client's append errors; anything else passes through unchanged. */
export function mapAppendError(error: unknown, streamId: string, expected: ExpectedRevision, eventCount: number): unknown {
  if (error instanceof WrongExpectedVersionError) return toWrongExpectedRevisionError(error, streamId, expected);
  if (error instanceof MaxAppendSizeExceededError) {
    return new AppendRefusedError(
      `append of ${eventCount} events to stream "${streamId}" exceeds EventStoreDB's maximum append size ` +
        `(${error.maxAppendSize} bytes, the server's MaxAppendSize): append fewer events at once`,
      { cause: error },
    );
  }
  return error;
}

/** True when the events stored right after the expected revision are exactly these, in order. */
export function isSameAppend(stored: ReadonlyArray<{ id: string }>, events: ReadonlyArray<{ id: string }>): boolean {
  return stored.length === events.length && stored.every((event, index) => event.id === events[index]?.id);
}

/** The revision the events of a stale append would have started at, or null when it has none. */
export function firstRevisionOf(expected: ExpectedRevision): bigint | null {
  if (expected === 'no_stream') return 0n;
  if (typeof expected === 'bigint') return expected + 1n;
  // `any` never fails and `stream_exists` only fails on a missing stream: nothing to compare with.
  return null;
}

// ---------------------------------------------------------------------------------------------
// The adapter.

export class EventStoreDbEventStore implements EventStore {
  readonly kind = 'eventstoredb';
  private readonly subscriptions = new Set<EventStoreDbSubscription>();
  private closed = false;

  constructor(private readonly client: EventStoreDBClient) {}

  /** The client connects lazily: a bad address surfaces on the first operation. */
  static connect(connectionString: string): EventStoreDbEventStore {
    return new EventStoreDbEventStore(EventStoreDBClient.connectionString(connectionString));
  }

  async append(streamId: string, events: NewEvent[], expectedRevision: ExpectedRevision): Promise<AppendResult> {
    this.assertOpen();
    checkAppend(streamId, events, expectedRevision);
    try {
      const result = await this.client.appendToStream(streamId, events.map(toDbEvent), {
        expectedRevision: toDbExpectedRevision(expectedRevision),
      });
      if (result.position === undefined) {
        throw new Error(`append to stream "${streamId}": the server returned no position; EventStoreDB 22.6 or later is required`);
      }
      return { nextExpectedRevision: result.nextExpectedRevision, storePosition: encodeStorePosition(result.position) };
    } catch (error) {
      const mapped = mapAppendError(error, streamId, expectedRevision, events.length);
      if (mapped instanceof WrongExpectedRevisionError) {
        // The re-append after a crash: the server only drops duplicate ids within a recent window,
        // so compare with what is stored right after the expected revision.
        const earlier = await this.findEarlierAppend(streamId, events, expectedRevision);
        if (earlier !== null) return earlier;
      }
      throw mapped;
    }
  }

  async readStream(streamId: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    this.assertOpen();
    checkStreamId(streamId);
    const maxCount = checkReadCount(options.maxCount);
    const direction = options.direction ?? 'forwards';
    if (direction !== 'forwards' && direction !== 'backwards') {
      throw new RangeError(`invalid direction "${String(direction)}": expected "forwards" or "backwards"`);
    }
    if (options.fromRevision !== undefined) checkRevision(options.fromRevision, 'fromRevision');
    return this.readStreamUnchecked(streamId, {
      direction,
      fromRevision: options.fromRevision ?? (direction === 'forwards' ? START : END),
      maxCount,
    });
  }

  async readAll(options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    this.assertOpen();
    const maxCount = checkReadCount(options.maxCount);
    let after = options.after === undefined || options.after === null ? null : decodeStorePosition(options.after);
    const found: RecordedEvent[] = [];
    // System events are filtered here (this client's readAll takes no server-side filter), so one
    // page may yield fewer than asked: page on until full or at the end of $all.
    while (found.length < maxCount) {
      // +1: a read from a position includes the event at that position, which is not "after" it.
      const pageSize = Math.max(maxCount - found.length, READ_ALL_PAGE_MIN) + 1;
      const page: AllStreamResolvedEvent[] = [];
      for await (const resolved of this.client.readAll({ direction: FORWARDS, fromPosition: after ?? START, maxCount: pageSize })) {
        page.push(resolved);
      }
      let lastSeen: Position | null = null;
      for (const resolved of page) {
        const event = resolved.event;
        if (event === undefined) continue;
        if (after !== null && compareDbPositions(event.position, after) <= 0) continue;
        lastSeen = event.position;
        const recorded = fromResolvedEvent(resolved);
        if (recorded === null) continue;
        found.push(recorded);
        if (found.length === maxCount) break;
      }
      if (page.length < pageSize || lastSeen === null) break;
      after = lastSeen;
    }
    return found;
  }

  subscribeAll(options: { after?: string | null; batchSizeMax?: number }, handler: BatchHandler): Subscription {
    this.assertOpen();
    const batchSizeMax = checkBatchSizeMax(options.batchSizeMax, SUBSCRIPTION_BATCH_SIZE_DEFAULT);
    const after = options.after === undefined || options.after === null ? null : decodeStorePosition(options.after);
    const source = this.client.subscribeToAll({
      fromPosition: after ?? START,
      // Server-side: drops $-typed events before they cross the network; $-streams are dropped here.
      filter: excludeSystemEvents(),
    });
    const subscription = new EventStoreDbSubscription(source, after, batchSizeMax, handler, (ended) =>
      this.subscriptions.delete(ended),
    );
    this.subscriptions.add(subscription);
    return subscription;
  }

  /** Ends every subscription (their `done` resolves), then closes the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((subscription) => subscription.close()));
    await this.client.dispose();
  }

  private async findEarlierAppend(streamId: string, events: NewEvent[], expected: ExpectedRevision): Promise<AppendResult | null> {
    const fromRevision = firstRevisionOf(expected);
    if (fromRevision === null) return null;
    const stored = await this.readStreamUnchecked(streamId, { direction: 'forwards', fromRevision, maxCount: events.length });
    const last = stored[stored.length - 1];
    if (!isSameAppend(stored, events) || last === undefined) return null;
    return { nextExpectedRevision: last.revision, storePosition: last.storePosition };
  }

  private async readStreamUnchecked(
    streamId: string,
    options: { direction: 'forwards' | 'backwards'; fromRevision: bigint | typeof START | typeof END; maxCount: number },
  ): Promise<RecordedEvent[]> {
    const found: RecordedEvent[] = [];
    try {
      const read = this.client.readStream(streamId, {
        direction: options.direction === 'forwards' ? FORWARDS : BACKWARDS,
        fromRevision: options.fromRevision,
        maxCount: options.maxCount,
      });
      for await (const resolved of read) {
        if (resolved.event !== undefined) found.push(toRecordedEvent(resolved.event));
      }
    } catch (error) {
      if (error instanceof StreamNotFoundError) return [];
      throw error;
    }
    return found;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the event store is closed');
  }
}

/**
 * Turns the client's event-at-a-time catch-up subscription into awaited batches: events that arrive
 * while the handler runs are buffered and make the next batch. Only events strictly after the last
 * delivered position pass, so a server that starts at (rather than after) `after`, or redelivers,
 * causes no duplicate.
 */
class EventStoreDbSubscription implements Subscription {
  readonly done: Promise<void>;
  private readonly buffer: RecordedEvent[] = [];
  private readonly bufferMax: number;
  private lastPosition: Position | null;
  private failure: unknown = null;
  private closing = false;
  private wakeDelivery: (() => void) | null = null;

  constructor(
    private readonly source: AllStreamSubscription,
    after: Position | null,
    private readonly batchSizeMax: number,
    private readonly handler: BatchHandler,
    ended: (subscription: EventStoreDbSubscription) => void,
  ) {
    this.lastPosition = after;
    this.bufferMax = batchSizeMax * SUBSCRIPTION_BUFFER_BATCHES_MAX;
    source.on('data', (resolved) => this.receive(resolved));
    source.on('error', (error) => this.fail(error));
    source.on('end', () => this.fail(new Error('EventStoreDB ended the subscription to $all')));
    this.done = this.deliver().finally(() => ended(this));
  }

  async close(): Promise<void> {
    this.closing = true;
    this.wake();
    // A delivery failure is reported through `done`; closing after it is not an error.
    await this.done.catch(() => undefined);
  }

  private receive(resolved: AllStreamResolvedEvent): void {
    if (this.closing || this.failure !== null) return;
    const event = resolved.event;
    if (event === undefined) return;
    if (this.lastPosition !== null && compareDbPositions(event.position, this.lastPosition) <= 0) return;
    this.lastPosition = event.position;
    try {
      const recorded = fromResolvedEvent(resolved);
      if (recorded === null) return;
      this.buffer.push(recorded);
    } catch (error) {
      this.fail(error);
      return;
    }
    if (this.buffer.length >= this.bufferMax) this.source.pause();
    this.wake();
  }

  private fail(error: unknown): void {
    if (this.closing || this.failure !== null) return;
    this.failure = error;
    this.wake();
  }

  private wake(): void {
    const wakeDelivery = this.wakeDelivery;
    this.wakeDelivery = null;
    wakeDelivery?.();
  }

  private async deliver(): Promise<void> {
    try {
      for (;;) {
        if (this.closing) return;
        if (this.failure !== null) throw this.failure;
        if (this.buffer.length === 0) {
          await new Promise<void>((resolve) => (this.wakeDelivery = resolve));
          continue;
        }
        const batch = this.buffer.splice(0, this.batchSizeMax);
        if (this.source.isPaused() && this.buffer.length < this.bufferMax) this.source.resume();
        await this.handler(batch);
      }
    } finally {
      this.closing = true;
      await this.source.unsubscribe();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The port's input rules, the same as the embedded adapter's (the contract suite holds both to them).

