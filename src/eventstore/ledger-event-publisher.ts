import type { PositionedEvent } from '../domain/ledger';
import { POSITION_ZERO, parsePosition } from '../domain/position';
import {
  APPEND_BYTES_MAX_DEFAULT,
  APPEND_EVENTS_MAX,
  AppendRefusedError,
  type EventStore,
  type ExpectedRevision,
  type NewEvent,
  WrongExpectedRevisionError,
} from './event-store';

/** The one stream the ledger's events go to, in log order. */
export const LEDGER_STREAM = 'ledger';

/** The last 11 hex digits of every ledger event id: marks the id as one spelt from a position. */
const EVENT_ID_TAG = '1ed9e700000';

/**
 * A ledger event's id: a UUID of version 8 (RFC 9562's layout for ids of one's own design) that
 * spells the event's position in hex: the log index in the first 14 digits (around the version digit),
 * the event index in the next 5 (around the variant digit), then EVENT_ID_TAG.
 * - Deterministic: every replica and every re-append derives the same id from the same position.
 * - In position order, as text and as bytes: the embedded store's unique index on ids grows at its
 *   end. With hashed ids (UUIDv5, before 2026-12-07) each append dirtied a random page of that index
 *   per event: ~20 µs of the event store's ~35 µs per event at 1,000,000 events, growing with the store.
 * - Unlike any UUIDv5 (its version digit is 5): events stored before keep their ids and no new id can
 *   equal one. Exactly-once never rests on ids matching across versions: the publisher skips what the
 *   stream already holds by position (expected revision).
 */
export function eventIdOf(position: string): string {
  const { index, eventIndex } = parsePosition(position);
  // Sixteen digits can spell more than a JS number holds exactly; two such positions would share an id.
  if (!Number.isSafeInteger(index)) throw new Error(`position ${position}: log index beyond ${Number.MAX_SAFE_INTEGER}, which no event id can spell exactly`);
  const i = index.toString(16).padStart(14, '0');
  const e = eventIndex.toString(16).padStart(5, '0');
  return `${i.slice(0, 8)}-${i.slice(8, 12)}-8${i.slice(12)}${e.slice(0, 1)}-8${e.slice(1, 4)}-${e.slice(4)}${EVENT_ID_TAG}`;
}

/** The ledger event as the store takes it, serialized once: its JSON is what sizes appends and what the embedded store writes. */
export function toNewEvent(positioned: PositionedEvent, timestampMs: number): NewEvent {
  const data = positioned.event.data as unknown as Record<string, unknown>;
  return storeEvent(eventIdOf(positioned.position), positioned.event.type, positioned.position, timestampMs, data, JSON.stringify(data));
}

/**
 * A ledger event already serialized for the store, as the node hands it to the pipeline worker: a
 * string crosses threads far more cheaply than an object graph, and the JSON and the id are made on
 * the thread that has time for them (see serializeLedgerEvent).
 */
export interface SerializedLedgerEvent {
  position: string;
  type: string;
  /** eventIdOf(position) */
  id: string;
  /** JSON.stringify of the event's data. */
  data: string;
}

export function serializeLedgerEvent(positioned: PositionedEvent): SerializedLedgerEvent {
  return { position: positioned.position, type: positioned.event.type, id: eventIdOf(positioned.position), data: JSON.stringify(positioned.event.data) };
}

/**
 * The store's event from a serialized one, its JSON kept. Its data is parsed on first read, and only
 * then: a store that keeps the JSON text (the embedded one) never reads it, unless its own
 * subscriptions follow its tail (the pipeline in one thread), which then share the parsed object.
 */
export function newEventFromSerialized(event: SerializedLedgerEvent, timestampMs: number): NewEvent {
  const metadata = { position: event.position, timestampMs };
  let data: Record<string, unknown> | null = null;
  return {
    id: event.id,
    type: event.type,
    get data(): Record<string, unknown> {
      data ??= JSON.parse(event.data) as Record<string, unknown>;
      return data;
    },
    metadata,
    json: { data: event.data, metadata: JSON.stringify(metadata) },
  };
}

function storeEvent(id: string, type: string, position: string, timestampMs: number, data: Record<string, unknown>, dataJson: string): NewEvent {
  const metadata = { position, timestampMs };
  return { id, type, data, metadata, json: { data: dataJson, metadata: JSON.stringify(metadata) } };
}

interface QueuedEntry {
  index: number;
  timestampMs: number;
  /** The entry's events as the store takes them. */
  events: NewEvent[];
  /** Their weight in an append (eventBytes). */
  bytes: number;
}

export interface PublisherOptions {
  /** Called with the highest log index whose events are all in the store. */
  onDurable?: (index: number) => void;
  /** Wait this long after a failed append before trying again. */
  retryDelayMs?: number;
  onError?: (error: Error) => void;
  /** One append carries at most this many bytes of event data and metadata (JSON); an entry with more is split across appends. */
  appendBytesMax?: number;
  /** The store refused an append for good: the publisher stopped and will not retry. */
  onHalted?: (error: Error) => void;
  /** Least time between the starts of two drains of the queue (group commit, see kick); default APPEND_INTERVAL_MS_DEFAULT, 0 for none. */
  appendIntervalMs?: number;
}

/**
 * Drains of the queue start at least this far apart under load (group commit). Measured with `npm run bench`,
 * single transfers, 50 connections, A/B in the same minutes: 0 → 5 ms took the ledger from 1,581 and
 * 1,560 to 1,693 and 1,758 transfers/s (each append is a transaction, an fsync and then a read-model
 * commit on the pipeline's thread, all on the same two cores as the node's thread); read-model lag p99
 * 45–54 → 58–82 ms, within its 100 ms target. Under batch load an append takes longer than this anyway.
 */
export const APPEND_INTERVAL_MS_DEFAULT = 5;

/**
 * Appends the events of applied log entries to the event store, in log order, exactly once.
 * Exactly-once comes from the stream's expected revision: on start (and after any conflict) it reads
 * where the stream stands and skips every event at or before that position, so re-appending after a
 * crash neither loses nor doubles anything. Acknowledgements never wait for it: the log is the
 * source of truth, and this catches up from it.
 */
export class LedgerEventPublisher {
  private queue: QueuedEntry[] = [];
  private queuedEvents = 0;
  private storedPosition = POSITION_ZERO;
  private expectedRevision: ExpectedRevision = 'no_stream';
  private durableIndex = 0;
  private lastEnqueuedIndex = 0;
  private running: Promise<void> | null = null;
  /** Resolves when the scheduled drain starts (see kick). */
  private scheduled: Promise<void> | null = null;
  private lastDrainStartMs = Number.NEGATIVE_INFINITY;
  private stopped = false;
  private haltedBy: Error | null = null;

  constructor(
    private readonly store: EventStore,
    private readonly options: PublisherOptions = {},
  ) {}

  /** Reads where the stream stands; call before entries are enqueued. */
  async start(): Promise<void> {
    await this.syncWithStore();
  }

  get backlogEvents(): number {
    return this.queuedEvents;
  }

  /** Takes the events of one applied entry (possibly none). Entries must come in log order. */
  enqueue(index: number, timestampMs: number, events: PositionedEvent[]): void {
    this.push(index, timestampMs, events.map((positioned) => toNewEvent(positioned, timestampMs)));
  }

  /** The same as enqueue, for events serialized by the node (serializeLedgerEvent). */
  enqueueSerialized(index: number, timestampMs: number, events: SerializedLedgerEvent[]): void {
    this.push(index, timestampMs, events.map((event) => newEventFromSerialized(event, timestampMs)));
  }

  private push(index: number, timestampMs: number, events: NewEvent[]): void {
    if (index <= this.lastEnqueuedIndex) throw new Error(`invariant: entry ${index} published after ${this.lastEnqueuedIndex}`);
    this.lastEnqueuedIndex = index;
    this.queue.push({ index, timestampMs, events, bytes: events.reduce((sum, event) => sum + eventBytes(event), 0) });
    this.queuedEvents += events.length;
    this.kick();
  }

  private kick(): void {
    if (this.running || this.scheduled || this.stopped) return;
    // The drain starts after the current turn of the event loop, so that every entry handed over in
    // that turn (several hand-overs may arrive together under load) goes into one append: one
    // transaction and one fsync instead of one each. Drains also start at least appendIntervalMs
    // apart: under a stream of small entries (single transfers) each drain then takes several turns'
    // entries; an entry after a quiet spell goes at once. (Within one drain, what arrived during an
    // append goes in the next append straight away, as before.)
    const wait = this.lastDrainStartMs + (this.options.appendIntervalMs ?? APPEND_INTERVAL_MS_DEFAULT) - performance.now();
    this.scheduled = new Promise<void>((resolve) => {
      const start = () => {
        this.scheduled = null;
        resolve();
        if (this.running || this.stopped) return;
        this.lastDrainStartMs = performance.now();
        // drain() may finish without awaiting anything; clear `running` only once it has settled, and
        // pick up whatever was enqueued meanwhile.
        this.running = this.drain().finally(() => {
          this.running = null;
          if (this.queue.length > 0) this.kick();
        });
      };
      if (wait > 0) setTimeout(start, wait);
      else setImmediate(start);
    });
  }

  /** Resolves when everything enqueued so far is in the store (or the publisher stopped). */
  async flush(): Promise<void> {
    while (this.running || this.scheduled) await (this.running ?? this.scheduled);
  }

  async stop(): Promise<void> {
    await this.flush();
    this.stopped = true;
  }

  /** The permanent refusal that stopped the publisher, or null. */
  get halted(): Error | null {
    return this.haltedBy;
  }

  private async drain(): Promise<void> {
    let conflicts = 0;
    while (this.queue.length > 0 && !this.stopped) {
        const { entries, events } = this.takeBatch();
        const fresh = events.filter((e) => e.metadata.position > this.storedPosition);
        try {
          // An entry larger than one append goes in several: the stored position lets a restart resume mid-entry.
          for (const chunk of chunkByBytes(fresh, this.appendBytesMax)) {
            const result = await this.store.append(LEDGER_STREAM, chunk, this.expectedRevision);
            this.expectedRevision = result.nextExpectedRevision;
            this.storedPosition = chunk.at(-1)!.metadata.position;
          }
          conflicts = 0;
        } catch (error) {
          if (error instanceof AppendRefusedError) {
            // Retrying the same append can never succeed: stop, say so, keep the queue (the log keeps the entries).
            this.queue = [...entries, ...this.queue];
            this.queuedEvents += events.length;
            this.haltedBy = error;
            this.stopped = true;
            this.options.onHalted?.(error);
            return;
          }
          if (error instanceof WrongExpectedRevisionError) {
            conflicts += 1;
            // One conflict is expected after a crash or a competing replica; a run of them means
            // something else writes this stream: back off rather than spin.
            if (conflicts > 1) {
              this.options.onError?.(error);
              await delay(Math.min((this.options.retryDelayMs ?? 500) * conflicts, 5000));
            }
          } else {
            this.options.onError?.(error as Error);
            await delay(this.options.retryDelayMs ?? 500);
          }
          // Someone (a previous run of this node, another replica) appended first: read where the
          // stream stands, and put the batch back to skip what is already there.
          this.queue = [...entries, ...this.queue];
          this.queuedEvents += events.length;
          await this.syncWithStore().catch((e: Error) => this.options.onError?.(e));
          continue;
        }
        const lastIndex = entries.at(-1)!.index;
        this.durableIndex = lastIndex;
        this.options.onDurable?.(lastIndex);
    }
  }

  private get appendBytesMax(): number {
    return this.options.appendBytesMax ?? APPEND_BYTES_MAX_DEFAULT;
  }

  /** Whole entries, up to APPEND_EVENTS_MAX events and appendBytesMax bytes (at least one entry, however large). */
  private takeBatch(): { entries: QueuedEntry[]; events: NewEvent[] } {
    const entries: QueuedEntry[] = [];
    const events: NewEvent[] = [];
    let bytes = 0;
    while (this.queue.length > 0) {
      const next = this.queue[0]!;
      if (entries.length > 0 && (events.length + next.events.length > APPEND_EVENTS_MAX || bytes + next.bytes > this.appendBytesMax)) break;
      this.queue.shift();
      entries.push(next);
      events.push(...next.events);
      bytes += next.bytes;
    }
    this.queuedEvents -= events.length;
    return { entries, events };
  }

  private async syncWithStore(): Promise<void> {
    const [last] = await this.store.readStream(LEDGER_STREAM, { direction: 'backwards', maxCount: 1 });
    if (!last) {
      this.expectedRevision = 'no_stream';
      this.storedPosition = POSITION_ZERO;
      return;
    }
    this.expectedRevision = last.revision;
    this.storedPosition = last.metadata.position;
    // The entry of the last stored event may be only partly stored (its events were split across
    // appends): only the entries before it are known to be complete.
    const completeIndex = parsePosition(last.metadata.position).index - 1;
    if (completeIndex > this.durableIndex) this.durableIndex = completeIndex;
  }

  /** The ledger position of the last event in the store (null: none), as read at start or after a conflict. */
  get storedLedgerPosition(): string | null {
    return this.storedPosition === POSITION_ZERO ? null : this.storedPosition;
  }

  get publishedIndex(): number {
    return this.durableIndex;
  }
}

/** What an event weighs in an append: its data and metadata as JSON (what EventStoreDB's MaxAppendSize counts, bar framing). */
export function eventBytes(event: NewEvent): number {
  const data = event.json?.data ?? JSON.stringify(event.data);
  const metadata = event.json?.metadata ?? JSON.stringify(event.metadata);
  return Buffer.byteLength(data) + Buffer.byteLength(metadata) + event.type.length + event.id.length;
}

/** Consecutive runs of at most bytesMax bytes and APPEND_EVENTS_MAX events; an event alone over bytesMax can never be appended. */
export function chunkByBytes(events: NewEvent[], bytesMax: number): NewEvent[][] {
  const chunks: NewEvent[][] = [];
  let chunk: NewEvent[] = [];
  let bytes = 0;
  for (const event of events) {
    const size = eventBytes(event);
    if (size > bytesMax) {
      throw new AppendRefusedError(`event at position ${event.metadata.position} is ${size} bytes, more than one append may carry (${bytesMax}): it can never be appended`);
    }
    if (chunk.length > 0 && (bytes + size > bytesMax || chunk.length >= APPEND_EVENTS_MAX)) {
      chunks.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(event);
    bytes += size;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
