/**
 * The embedded event store: one SQLite file (better-sqlite3), WAL journal, `synchronous = FULL`, so
 * an append has been fsync'd when its promise resolves.
 *
 * The store position is the row's global AUTOINCREMENT sequence, written as a zero-padded decimal
 * string (string order = store order, should anyone compare them). SQLite has a single writer and a
 * sequence is assigned inside the writing transaction, so a reader can never see sequence n+1
 * committed while n is still to come: reading "after n" never skips an event.
 */
import fs from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import Database from 'better-sqlite3';
import {
  APPEND_EVENTS_MAX,
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
import { checkAppend, checkBatchSizeMax, checkReadCount, checkRevision, checkStreamId } from './input-checks';

/** SQLite integers are signed 64-bit: the largest sequence and revision. */
const INT64_MAX = 9223372036854775807n;
/** Digits of INT64_MAX: every store position has this width. */
const STORE_POSITION_WIDTH = 19;
const STORE_POSITION_PATTERN = /^[0-9]{1,19}$/;
const SUBSCRIPTION_BATCH_SIZE_DEFAULT = 512;
/** Appends from another process on the same file send no in-process notification: poll for them. */
const SUBSCRIPTION_POLL_MS = 250;
/**
 * Default bound on the bytes of one append to this store (what the publisher packs into one): an
 * append is one transaction and one fsync, so under load one hand-over of several entries should
 * be one append. EventStoreDB's bound (APPEND_BYTES_MAX_DEFAULT, 768 KiB) would split even a single
 * batch of 1,000 transfers in two.
 */
export const SQLITE_APPEND_BYTES_MAX_DEFAULT = 32 * 1024 * 1024;
/** A writer from another process holds the lock for one transaction at most; wait that long for it. */
const BUSY_TIMEOUT_MS = 5000;
/**
 * WAL pages past which the writing connection checkpoints by itself (SQLite's wal_autocheckpoint):
 * appends come in large batches, so rarer checkpoints than SQLite's 1,000 pages. With a
 * WalCheckpointer on another thread (the ledger's pipeline) that checkpoint finds nearly all of the
 * WAL copied already: it copies the rest and lets the WAL start over, which only a checkpoint between
 * the writer's own commits can do under a steady stream of appends.
 */
const WAL_AUTOCHECKPOINT_PAGES = 8192;
/** What is left of a WAL file that grew past it once it starts over (SQLite's journal_size_limit). */
const WAL_FILE_BYTES_KEPT = 64 * 1024 * 1024;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT    NOT NULL UNIQUE,
    stream_id     TEXT    NOT NULL,
    revision      INTEGER NOT NULL CHECK (revision >= 0),
    type          TEXT    NOT NULL,
    data          TEXT    NOT NULL,
    metadata      TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    -- crc32 of the event's identity and content (rowChecksum): a flipped byte on the disk is found, never served. NULL in rows written before it existed.
    crc           INTEGER,
    UNIQUE (stream_id, revision)
  );
`;

const EVENT_COLUMNS = 'seq, id, stream_id, revision, type, data, metadata, created_at_ms, crc';

/** A row as read with safe integers (every INTEGER column comes back as a bigint). */
interface EventRow {
  seq: bigint;
  id: string;
  stream_id: string;
  revision: bigint;
  type: string;
  data: string;
  metadata: string;
  created_at_ms: bigint;
  crc: bigint | null;
}

interface StoredIdRow {
  seq: bigint;
  id: string;
  revision: bigint;
}

interface AppendOutcome {
  result: AppendResult;
  /** False when the append was an idempotent re-append and nothing was written. */
  written: boolean;
  /** Store sequence and stream revision of the first event written. */
  firstSeq: bigint;
  firstRevision: bigint;
  createdAtMs: number;
  /** The events took consecutive sequences from firstSeq (what the tail cache and CommittedAppend rely on). */
  consecutive: boolean;
}

/**
 * One committed append as its rows hold it, for another connection to the same file that follows
 * the store's tail (the event pipeline's projection thread; see SqliteEventStore.onCommitted and
 * acceptCommitted). Plain data, so it crosses threads as strings.
 */
export interface CommittedAppend {
  /** Store sequence of the first event; the others follow one by one. */
  firstSeq: bigint;
  streamId: string;
  /** Stream revision of the first event; the others follow one by one. */
  firstRevision: bigint;
  createdAtMs: number;
  /** Each event's data and metadata exactly as stored (JSON text). */
  events: Array<{ id: string; type: string; data: string; metadata: string }>;
}

/**
 * At most this many appended events are kept for the subscriptions following the store (see
 * TailCache), however far behind the slowest of them is; beyond, it reads from the file.
 */
const TAIL_CACHE_EVENTS_MAX = 32_768;

/**
 * Events appended last that a subscription of this connection following the store's tail (the
 * projections) has not handled yet, so that it gets them without reading them back from the file.
 * Only for appends whose events came serialized (NewEvent.json, the ledger's publisher): their caller
 * promises not to change them, so handing the same objects to readers is safe. The appends are this
 * connection's own, or another connection's handed over with acceptCommitted. Consecutive in store
 * order; what every subscription has handled is let go (see SqliteEventStore.releaseTail).
 */
class TailCache {
  /** The events from `head` on are the cache; the ones before it are let go, and cut off now and then. */
  private events: RecordedEvent[] = [];
  private head = 0;
  /** Store sequence of events[head]. */
  private firstSeq = 0n;

  get size(): number {
    return this.events.length - this.head;
  }

  clear(): void {
    this.events = [];
    this.head = 0;
  }

  /** `recorded`: consecutive events from `firstSeq`, as readers will see them. */
  add(firstSeq: bigint, recorded: readonly RecordedEvent[]): void {
    // Another writer's events may lie before these (another process on the file): then the cache starts anew.
    if (this.size === 0 || this.firstSeq + BigInt(this.size) !== firstSeq) {
      this.clear();
      this.firstSeq = firstSeq;
    }
    for (const event of recorded) this.events.push(event);
    const excess = this.size - TAIL_CACHE_EVENTS_MAX;
    if (excess > 0) this.drop(excess);
  }

  /** Up to `maxCount` events right after sequence `after`, or null when the cache does not start there or before. */
  read(after: bigint, maxCount: number): RecordedEvent[] | null {
    const offset = after + 1n - this.firstSeq;
    if (this.size === 0 || offset < 0n || offset >= BigInt(this.size)) return null;
    const from = this.head + Number(offset);
    return this.events.slice(from, from + maxCount);
  }

  /** Lets go of the events up to and including sequence `seq`. */
  releaseThrough(seq: bigint): void {
    if (this.size === 0) return;
    const count = seq + 1n - this.firstSeq;
    if (count <= 0n) return;
    if (count >= BigInt(this.size)) return this.clear();
    this.drop(Number(count));
  }

  private drop(count: number): void {
    for (let i = this.head; i < this.head + count; i += 1) this.events[i] = undefined as unknown as RecordedEvent;
    this.head += count;
    this.firstSeq += BigInt(count);
    // Cut the let-go front off once it is the larger part: each event is moved a bounded number of times.
    if (this.head > this.size) {
      this.events = this.events.slice(this.head);
      this.head = 0;
    }
  }
}

export function formatSqliteStorePosition(seq: bigint): string {
  return seq.toString().padStart(STORE_POSITION_WIDTH, '0');
}

/** Accepts the padded form and any plain decimal (`"42"`), so a hand-written position works too. */
export function parseSqliteStorePosition(value: string): bigint {
  if (typeof value !== 'string' || !STORE_POSITION_PATTERN.test(value)) {
    throw new RangeError(`invalid store position "${String(value)}": expected up to 19 decimal digits`);
  }
  const seq = BigInt(value);
  if (seq > INT64_MAX) throw new RangeError(`invalid store position "${value}": beyond the largest sequence`);
  return seq;
}

export class SqliteEventStore implements EventStore {
  readonly kind = 'embedded';

  private readonly db: Database.Database;
  private readonly lastRevisionStatement: Database.Statement;
  private readonly insertStatement: Database.Statement;
  private readonly storedAfterRevisionStatement: Database.Statement;
  private readonly findByIdStatement: Database.Statement;
  private readonly readForwardsStatement: Database.Statement;
  private readonly readBackwardsStatement: Database.Statement;
  private readonly readAllStatement: Database.Statement;
  private readonly appendTransaction: (streamId: string, events: NewEvent[], expected: ExpectedRevision) => AppendOutcome;
  /** Wakes the subscriptions waiting for new events; called after each committed append. */
  private readonly appendListeners = new Set<() => void>();
  private readonly subscriptions = new Set<SqliteSubscription>();
  private closed = false;
  /** Appended events that this connection's subscriptions have not all handled yet. */
  private readonly tail = new TailCache();
  private readonly committedListeners: Array<(appended: CommittedAppend) => void> = [];

  private constructor(db: Database.Database) {
    this.db = db;
    db.pragma('journal_mode = WAL');
    // FULL: the WAL is fsync'd at every commit, so an acknowledged append survives a power loss.
    db.pragma('synchronous = FULL');
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    // Appends come in large batches: a bigger page cache and rarer WAL checkpoints (durability is
    // unchanged: every commit is still fsync'd to the WAL).
    db.pragma('cache_size = -65536');
    db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
    // The WAL file is reused, not shrunk, after a checkpoint: cut back to this whenever it starts over.
    db.pragma(`journal_size_limit = ${WAL_FILE_BYTES_KEPT}`);
    db.exec(SCHEMA);
    const columns = db.pragma('table_info(events)') as Array<{ name: string }>;
    if (!columns.some((c) => c.name === 'crc')) db.exec('ALTER TABLE events ADD COLUMN crc INTEGER');

    const prepare = (sql: string): Database.Statement => db.prepare(sql).safeIntegers(true);
    this.lastRevisionStatement = prepare(
      'SELECT revision FROM events WHERE stream_id = ? ORDER BY revision DESC LIMIT 1',
    );
    this.insertStatement = prepare(
      'INSERT INTO events (id, stream_id, revision, type, data, metadata, created_at_ms, crc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.storedAfterRevisionStatement = prepare(
      'SELECT seq, id, revision FROM events WHERE stream_id = ? AND revision > ? ORDER BY revision ASC LIMIT ?',
    );
    this.findByIdStatement = prepare('SELECT seq, id, stream_id, revision FROM events WHERE id = ?');
    this.readForwardsStatement = prepare(
      `SELECT ${EVENT_COLUMNS} FROM events WHERE stream_id = ? AND revision >= ? ORDER BY revision ASC LIMIT ?`,
    );
    this.readBackwardsStatement = prepare(
      `SELECT ${EVENT_COLUMNS} FROM events WHERE stream_id = ? AND revision <= ? ORDER BY revision DESC LIMIT ?`,
    );
    this.readAllStatement = prepare(`SELECT ${EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq ASC LIMIT ?`);

    const transaction = db.transaction((streamId: string, events: NewEvent[], expected: ExpectedRevision) =>
      this.appendInTransaction(streamId, events, expected),
    );
    // IMMEDIATE takes the write lock before reading the current revision: no other process can
    // append between our check and our insert, and no deferred-lock upgrade can fail with SQLITE_BUSY.
    this.appendTransaction = (streamId, events, expected) => transaction.immediate(streamId, events, expected);
  }

  /**
   * Opens (or creates) the store in `filePath`, creating its parent directories; with `mustExist`,
   * only a file that exists (another connection's store, say), and fails otherwise.
   */
  static open(filePath: string, options: { mustExist?: boolean } = {}): SqliteEventStore {
    if (options.mustExist) {
      if (!fs.existsSync(filePath)) throw new Error(`no embedded event store at ${filePath}`);
      return new SqliteEventStore(new Database(filePath, { fileMustExist: true }));
    }
    fs.mkdirSync(path.dirname(path.resolve(filePath)), { recursive: true });
    return new SqliteEventStore(new Database(filePath));
  }

  /**
   * Reads the whole file: SQLite's quick_check, every row's checksum, and every stream's revisions
   * gap-free from 0. Null when all check out; otherwise the first problem.
   */
  verifyIntegrity(): string | null {
    this.assertOpen();
    const check = (this.db.pragma('quick_check') as Array<{ quick_check: string }>).map((r) => r.quick_check).join('; ');
    if (check !== 'ok') return `quick_check: ${check.slice(0, 500)}`;
    const next = new Map<string, bigint>();
    for (const row of this.db.prepare(`SELECT ${EVENT_COLUMNS} FROM events ORDER BY seq ASC`).safeIntegers(true).iterate() as IterableIterator<EventRow>) {
      const problem = rowProblem(row);
      if (problem) return problem;
      const expected = next.get(row.stream_id) ?? 0n;
      if (row.revision !== expected) return `stream "${row.stream_id}" has revision ${row.revision} where ${expected} was expected (store position ${formatSqliteStorePosition(row.seq)})`;
      next.set(row.stream_id, expected + 1n);
    }
    return null;
  }

  async append(streamId: string, events: NewEvent[], expectedRevision: ExpectedRevision): Promise<AppendResult> {
    this.assertOpen();
    checkAppend(streamId, events, expectedRevision);
    const outcome = this.appendTransaction(streamId, events, expectedRevision);
    if (outcome.written) {
      const serialized = outcome.consecutive && events.every((event) => event.json !== undefined);
      // Subscriptions in this connection get the events from the tail, another connection from
      // onCommitted: the data is parsed only where somebody reads it (NewEvent.data may be lazy).
      if (this.subscriptions.size > 0 && serialized) this.tail.add(outcome.firstSeq, events.map((event, i) => recordedFromNew(event, streamId, outcome, i)));
      else this.tail.clear();
      if (this.committedListeners.length > 0 && serialized) {
        const appended: CommittedAppend = {
          firstSeq: outcome.firstSeq,
          streamId,
          firstRevision: outcome.firstRevision,
          createdAtMs: outcome.createdAtMs,
          events: events.map((event) => ({ id: event.id, type: event.type, data: event.json!.data, metadata: event.json!.metadata })),
        };
        for (const listener of this.committedListeners) listener(appended);
      }
      this.notifyAppend();
    }
    return outcome.result;
  }

  /**
   * Calls `listener` after every committed append whose events came serialized, with its rows: how a
   * connection on another thread learns of them at once (acceptCommitted) instead of polling the file.
   */
  onCommitted(listener: (appended: CommittedAppend) => void): void {
    this.committedListeners.push(listener);
  }

  /**
   * Takes an append that another connection to this file committed (its onCommitted), so that this
   * connection's subscriptions get those events from memory and at once. The events must be in the
   * file already; passing anything else is a bug.
   */
  acceptCommitted(appended: CommittedAppend): void {
    this.assertOpen();
    // Nobody here follows the store: a subscription made later reads the file.
    if (this.subscriptions.size === 0) {
      this.tail.clear();
      return;
    }
    // The rows as this connection would read them (their crc was checked when they were written).
    const recorded = appended.events.map((event, i) =>
      toRecordedEvent({
        seq: appended.firstSeq + BigInt(i),
        id: event.id,
        stream_id: appended.streamId,
        revision: appended.firstRevision + BigInt(i),
        type: event.type,
        data: event.data,
        metadata: event.metadata,
        created_at_ms: BigInt(appended.createdAtMs),
        crc: null,
      }),
    );
    this.tail.add(appended.firstSeq, recorded);
    // A subscription may have read some of them from the file before they were handed over.
    this.releaseTail();
    this.notifyAppend();
  }

  async readStream(streamId: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    this.assertOpen();
    checkStreamId(streamId);
    const maxCount = checkReadCount(options.maxCount);
    const direction = options.direction ?? 'forwards';
    if (options.fromRevision !== undefined) checkRevision(options.fromRevision, 'fromRevision');
    let rows: unknown[];
    if (direction === 'forwards') {
      // Nothing is stored beyond INT64_MAX (and it could not be bound).
      if (options.fromRevision !== undefined && options.fromRevision > INT64_MAX) return [];
      rows = this.readForwardsStatement.all(streamId, options.fromRevision ?? 0n, maxCount);
    } else if (direction === 'backwards') {
      // A revision beyond INT64_MAX cannot be bound; nothing is stored above it anyway.
      const from = options.fromRevision === undefined || options.fromRevision > INT64_MAX ? INT64_MAX : options.fromRevision;
      rows = this.readBackwardsStatement.all(streamId, from, maxCount);
    } else {
      throw new RangeError(`invalid direction "${String(direction)}": expected "forwards" or "backwards"`);
    }
    return (rows as EventRow[]).map(toRecordedEvent);
  }

  async readAll(options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    this.assertOpen();
    const maxCount = checkReadCount(options.maxCount);
    const after = options.after === undefined || options.after === null ? 0n : parseSqliteStorePosition(options.after);
    return this.readAllAfter(after, maxCount);
  }

  subscribeAll(options: { after?: string | null; batchSizeMax?: number }, handler: BatchHandler): Subscription {
    this.assertOpen();
    const batchSizeMax = checkBatchSizeMax(options.batchSizeMax, SUBSCRIPTION_BATCH_SIZE_DEFAULT);
    const after = options.after === undefined || options.after === null ? 0n : parseSqliteStorePosition(options.after);
    const subscription = new SqliteSubscription(
      {
        readAfter: (seq, count) => this.readAllAfter(seq, count),
        addAppendListener: (listener) => this.appendListeners.add(listener),
        removeAppendListener: (listener) => this.appendListeners.delete(listener),
        ended: (ended) => {
          this.subscriptions.delete(ended);
          this.releaseTail();
        },
        delivered: () => this.releaseTail(),
      },
      after,
      batchSizeMax,
      handler,
    );
    this.subscriptions.add(subscription);
    return subscription;
  }

  /** Ends every subscription (their `done` resolves), then closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((subscription) => subscription.close()));
    this.db.close();
  }

  private readAllAfter(after: bigint, maxCount: number): RecordedEvent[] {
    // The rows right after `after` are the tail this process appended last: they are what a read
    // would return (the tail is consecutive in store order, and nothing is stored between its events).
    const kept = this.tail.read(after, maxCount);
    if (kept !== null) return kept;
    return (this.readAllStatement.all(after, maxCount) as EventRow[]).map(toRecordedEvent);
  }

  /**
   * Lets go of the tail's events that every subscription has handled. Keeping them, parsed (whole
   * object trees), until TAIL_CACHE_EVENTS_MAX more had been appended moved every one of them into
   * the old generation: under batched load the projection thread's heap peaked at ~360 MiB against
   * ~170 MiB since (bench/ledger-variant.ts VARIANT=gc-stats).
   */
  private releaseTail(): void {
    if (this.tail.size === 0) return;
    let delivered: bigint | null = null;
    for (const subscription of this.subscriptions) {
      if (delivered === null || subscription.deliveredUpTo < delivered) delivered = subscription.deliveredUpTo;
    }
    // With no subscription left nobody follows the tail; the next one starts from the file.
    if (delivered === null) this.tail.clear();
    else this.tail.releaseThrough(delivered);
  }

  private appendInTransaction(streamId: string, events: NewEvent[], expected: ExpectedRevision): AppendOutcome {
    const last = this.lastRevisionStatement.get(streamId) as { revision: bigint } | undefined;
    const actual: bigint | 'no_stream' = last === undefined ? 'no_stream' : last.revision;
    const createdAtMs = Date.now();
    if (!expectedRevisionHolds(expected, actual)) {
      const replayed = this.findEarlierAppend(streamId, events, expected);
      if (replayed !== null) return { result: replayed, written: false, firstSeq: 0n, firstRevision: 0n, createdAtMs, consecutive: false };
      throw new WrongExpectedRevisionError(streamId, expected, actual);
    }

    const firstRevision = actual === 'no_stream' ? 0n : actual + 1n;
    let revision = firstRevision - 1n;
    let seq = 0n;
    let firstSeq = 0n;
    let consecutive = true;
    for (const event of events) {
      revision += 1n;
      try {
        const data = event.json?.data ?? serializeJson(event.data, event.id, 'data');
        const metadata = event.json?.metadata ?? serializeJson(event.metadata, event.id, 'metadata');
        const info = this.insertStatement.run(
          event.id,
          streamId,
          revision,
          event.type,
          data,
          metadata,
          createdAtMs,
          rowChecksum(event.id, streamId, revision, event.type, data, metadata),
        );
        const inserted = BigInt(info.lastInsertRowid);
        // One transaction's rows take consecutive sequences (it holds the write lock); the tail cache relies on it.
        if (firstSeq !== 0n && inserted !== seq + 1n) consecutive = false;
        seq = inserted;
        if (firstSeq === 0n) firstSeq = seq;
      } catch (error) {
        throw this.explainInsertFailure(error, event.id);
      }
    }
    return { result: { nextExpectedRevision: revision, storePosition: formatSqliteStorePosition(seq) }, written: true, firstSeq, firstRevision, createdAtMs, consecutive };
  }

  /**
   * The idempotent re-append after a crash: the expected revision is stale, but the events stored
   * right after it are these very events (same ids, same order). Returns what the first append returned.
   */
  private findEarlierAppend(streamId: string, events: NewEvent[], expected: ExpectedRevision): AppendResult | null {
    const afterRevision = expected === 'no_stream' ? -1n : typeof expected === 'bigint' ? expected : null;
    // `any` never fails and `stream_exists` only fails on a missing stream: nothing to compare with.
    // Nothing can be stored after the largest revision SQLite holds (and it could not be bound).
    if (afterRevision === null || afterRevision >= INT64_MAX) return null;
    const stored = this.storedAfterRevisionStatement.all(streamId, afterRevision, events.length) as StoredIdRow[];
    if (!sameEventIds(stored, events)) return null;
    const last = stored[stored.length - 1];
    if (last === undefined) return null;
    return { nextExpectedRevision: last.revision, storePosition: formatSqliteStorePosition(last.seq) };
  }

  private explainInsertFailure(error: unknown, eventId: string): unknown {
    if (isSqliteError(error) && error.code === 'SQLITE_CONSTRAINT_UNIQUE' && error.message.includes('events.id')) {
      const existing = this.findByIdStatement.get(eventId) as { stream_id: string; revision: bigint } | undefined;
      const where = existing === undefined ? '' : ` (stream "${existing.stream_id}", revision ${existing.revision})`;
      return new Error(`event id ${eventId} is already stored${where}: event ids are unique in the store`, { cause: error });
    }
    return error;
  }

  private notifyAppend(): void {
    for (const listener of [...this.appendListeners]) listener();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the event store is closed');
  }
}

/** What a subscription needs from its store; keeps the subscription from reaching into the store. */
interface SubscriptionSource {
  readAfter(seq: bigint, maxCount: number): RecordedEvent[];
  addAppendListener(listener: () => void): void;
  removeAppendListener(listener: () => void): void;
  ended(subscription: SqliteSubscription): void;
  /** A batch was handled: the events up to the subscription's deliveredUpTo are no longer needed for it. */
  delivered(): void;
}

/**
 * Catch-up and live delivery are the same loop: read the next batch after the last delivered
 * sequence; when there is none, wait for an append in this process or the poll interval. Since the
 * cursor only moves to the last delivered event, there is never a gap or a duplicate.
 */
class SqliteSubscription implements Subscription {
  readonly done: Promise<void>;
  private closing = false;
  private wakeWaiter: (() => void) | null = null;
  /** Store sequence of the last event handled (or the starting point): where the next read starts. */
  deliveredUpTo: bigint;

  constructor(
    private readonly source: SubscriptionSource,
    after: bigint,
    private readonly batchSizeMax: number,
    private readonly handler: BatchHandler,
  ) {
    this.deliveredUpTo = after;
    this.done = this.deliver().finally(() => source.ended(this));
  }

  async close(): Promise<void> {
    this.closing = true;
    this.wakeWaiter?.();
    // A handler failure is reported through `done`; closing after it is not an error.
    await this.done.catch(() => undefined);
  }

  private async deliver(): Promise<void> {
    // The first handler call must not happen inside subscribeAll(), before the caller holds the subscription.
    await Promise.resolve();
    while (!this.closing) {
      const batch = this.source.readAfter(this.deliveredUpTo, this.batchSizeMax);
      const last = batch[batch.length - 1];
      if (last === undefined) {
        await this.waitForAppend();
        continue;
      }
      await this.handler(batch);
      this.deliveredUpTo = parseSqliteStorePosition(last.storePosition);
      this.source.delivered();
      // Reads are synchronous and a handler may resolve at once: without this, catching up on a long
      // backlog would run on microtasks alone and starve timers and I/O until it is done.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  private waitForAppend(): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.source.removeAppendListener(wake);
        this.wakeWaiter = null;
        resolve();
      };
      const timer = setTimeout(wake, SUBSCRIPTION_POLL_MS);
      this.source.addAppendListener(wake);
      this.wakeWaiter = wake;
    });
  }
}

/** What a row's crc covers: everything but the store's own sequence and clock. */
function rowChecksum(id: string, streamId: string, revision: bigint, type: string, data: string, metadata: string): number {
  return crc32(`${id}\n${streamId}\n${revision}\n${type}\n${data}\n${metadata}`);
}

/** Null when the row checks out; otherwise why not. */
function rowProblem(row: EventRow): string | null {
  if (row.crc === null) return null;
  return rowChecksum(row.id, row.stream_id, row.revision, row.type, row.data, row.metadata) === Number(row.crc)
    ? null
    : `event at store position ${formatSqliteStorePosition(row.seq)} fails its checksum`;
}

export class EventStoreCorruptionError extends Error {
  constructor(detail: string) {
    super(`the embedded event store is corrupt: ${detail}`);
    this.name = 'EventStoreCorruptionError';
  }
}

function toRecordedEvent(row: EventRow): RecordedEvent {
  const problem = rowProblem(row);
  if (problem) throw new EventStoreCorruptionError(problem);
  return {
    id: row.id,
    streamId: row.stream_id,
    revision: row.revision,
    type: row.type,
    data: JSON.parse(row.data) as Record<string, unknown>,
    metadata: JSON.parse(row.metadata) as EventMetadata,
    storePosition: formatSqliteStorePosition(row.seq),
    createdAtMs: Number(row.created_at_ms),
  };
}

/** The i-th event of a written append, as a reader of the tail gets it (the same data and metadata objects). */
function recordedFromNew(event: NewEvent, streamId: string, outcome: AppendOutcome, i: number): RecordedEvent {
  return {
    id: event.id,
    streamId,
    revision: outcome.firstRevision + BigInt(i),
    type: event.type,
    data: event.data,
    metadata: event.metadata,
    storePosition: formatSqliteStorePosition(outcome.firstSeq + BigInt(i)),
    createdAtMs: outcome.createdAtMs,
  };
}

function serializeJson(value: unknown, eventId: string, field: string): string {
  try {
    return JSON.stringify(value);
  } catch (error) {
    throw new TypeError(`event ${eventId}: ${field} is not serializable as JSON`, { cause: error });
  }
}

function expectedRevisionHolds(expected: ExpectedRevision, actual: bigint | 'no_stream'): boolean {
  switch (expected) {
    case 'any':
      return true;
    case 'no_stream':
      return actual === 'no_stream';
    case 'stream_exists':
      return actual !== 'no_stream';
    default:
      return actual === expected;
  }
}

function sameEventIds(stored: ReadonlyArray<{ id: string }>, events: ReadonlyArray<{ id: string }>): boolean {
  return stored.length === events.length && stored.every((event, index) => event.id === events[index]?.id);
}

/**
 * better-sqlite3's native addon throws the SqliteError class it was first loaded with; under a test
 * runner that isolates modules (jest) that class differs from this module's, so match by shape.
 */
function isSqliteError(error: unknown): error is Error & { code: string } {
  return typeof error === 'object' && error !== null && typeof (error as { code?: unknown }).code === 'string' && (error as { code: string }).code.startsWith('SQLITE_');
}
