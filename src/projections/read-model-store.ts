/**
 * The read-model port. Read models are documents keyed by `_id`; every write carries the ledger
 * position of the event that produced it and is applied only when that position is newer than the
 * document's own (a per-document guard), so replaying any event twice changes nothing and no
 * multi-document transaction is needed (MongoDB implements it natively with filtered upserts).
 *
 * Aggregates (per-currency totals, volume buckets) are counters: writes carry per-event increments,
 * guarded by the same per-document position (see CounterIncrement), so they are exact after any replay.
 *
 * Adapters: SqliteReadModelStore (embedded default); a MongoDB adapter implements the same port
 * and passes the same contract suite (test/projections/read-model-store.contract.ts).
 */
import type { AccountRecord, TransactionKind, TransactionRecord, TransactionStatus } from '../domain/events';

export interface AccountDoc extends AccountRecord {
  _id: string;
  /** Position of the last event that changed this account. */
  position: string;
}

export interface TransactionDoc extends TransactionRecord {
  _id: string;
  /** Position of the last event that changed this transaction. */
  position: string;
  /** Position of the event that recorded it: the stable sort key, newest first. */
  createdPosition: string;
  /** The accounts it touches (from and/or to), for per-account history. */
  accountIds: string[];
}

/**
 * The settled balance of one account right after one event: `balanceAt` reads the last one at or
 * before an instant. Of one account's rows at one instant only the last is ever read, so a batch
 * writes only that one (projectBatch).
 */
export interface BalanceHistoryDoc {
  /** `${accountId}:${position}` */
  _id: string;
  accountId: string;
  at: string;
  balance: string;
  position: string;
}

export type VolumeInterval = 'HOUR' | 'DAY';
export const VOLUME_INTERVALS: readonly VolumeInterval[] = ['HOUR', 'DAY'];

/**
 * Analytics of one currency, maintained by the analytics projector (one document per currency, so
 * `Query.analytics` reads one document instead of counting or summing anything).
 */
export interface CurrencyTotalsDoc {
  /** The currency. */
  _id: string;
  currency: string;
  /** Accounts opened in this currency. */
  accountCount: number;
  /** Transactions recorded in this currency, whatever their status. */
  transactionCount: number;
  /** Sum of the settled balances of its accounts, minor units (digit string, exact). */
  totalBalance: string;
  /** Position of the last event applied to this document. */
  position: string;
}

/**
 * Settled volume of one currency in one UTC hour or day, maintained by the analytics projector.
 * A transaction counts, with its amount, in the bucket of its `createdAt` once it is SETTLED
 * (recorded settled, or settled later); pending, cancelled and expired ones move no money.
 */
export interface VolumeBucketDoc {
  /** `${currency}:${interval}:${start}` */
  _id: string;
  currency: string;
  interval: VolumeInterval;
  /** Start of the bucket, canonical ISO form (`2024-03-01T10:00:00.000Z`). */
  start: string;
  count: number;
  /** Minor units (digit string, exact). */
  amount: string;
  /** Position of the last event applied to this document. */
  position: string;
}

/**
 * The fields an event adds to, per counter collection (exact integers). Counts fit 53 bits; sums
 * (totalBalance, amount) do not fit 64 bits in general (every balance does, their sum over accounts
 * need not): a store keeps them exact (SQLite: decimal text summed as bigint; MongoDB: Decimal128,
 * whose 34 digits hold any sum of 10^15 int64 values, or a digit string).
 */
export interface CounterFields {
  currencyTotals: { accountCount: bigint; transactionCount: bigint; totalBalance: bigint };
  volumeBuckets: { count: bigint; amount: bigint };
}
/** What identifies a counter document besides `_id`, written when it is created and never changed. */
export interface CounterKeys {
  currencyTotals: { currency: string };
  volumeBuckets: { currency: string; interval: VolumeInterval; start: string };
}
export type CounterCollection = keyof CounterFields;

/** One event's contribution to a counter document. */
export interface CounterStep<C extends CounterCollection> {
  position: string;
  add: CounterFields[C];
}

/**
 * Increments of one counter document: one step per event, in strictly increasing position order.
 *
 * Why steps and not one summed delta: a position guard on a sum is only safe when the sum covers
 * exactly the events after the document's stored position. After a crash between documents and
 * checkpoint (stores that are not atomic), the replayed batch may be cut at other boundaries than
 * the lost one, so a document may already hold some of a batch's events and not others. The store
 * therefore adds exactly the steps whose position is greater than the document's position and sets
 * the position to the last step's; in the normal case (stored position below the first step) that is
 * one filtered `$inc`/upsert of the precomputed total (see `counterTotal`).
 */
export interface CounterIncrement<C extends CounterCollection> {
  _id: string;
  keys: CounterKeys[C];
  steps: Array<CounterStep<C>>;
}

export type ReadModelWrite =
  | { collection: 'accounts'; doc: AccountDoc }
  | { collection: 'transactions'; doc: TransactionDoc }
  | { collection: 'balanceHistory'; doc: BalanceHistoryDoc }
  | { collection: 'currencyTotals'; increment: CounterIncrement<'currencyTotals'> }
  | { collection: 'volumeBuckets'; increment: CounterIncrement<'volumeBuckets'> };

export type ReadModelCollection = ReadModelWrite['collection'];
export const READ_MODEL_COLLECTIONS: readonly ReadModelCollection[] = ['accounts', 'transactions', 'balanceHistory', 'currencyTotals', 'volumeBuckets'];

/** The `_id` a write addresses (documents and counters alike). */
export function writeId(write: ReadModelWrite): string {
  return 'doc' in write ? write.doc._id : write.increment._id;
}

/**
 * A counter's steps as two flat arrays: `positions[i]`, and its `fields` at `values[i * fields.length ...]`.
 * The same steps in a few objects instead of two per step: cheap to hand to another thread.
 */
export interface FlatCounterSteps {
  fields: readonly string[];
  positions: string[];
  values: bigint[];
}

/** The increment's steps, flat, checked in strictly increasing position order; `fields` default to the first step's. */
export function flattenCounterSteps<C extends CounterCollection>(increment: CounterIncrement<C>, fields: readonly string[] = Object.keys(increment.steps[0]?.add ?? {})): FlatCounterSteps {
  const positions: string[] = [];
  const values: bigint[] = [];
  let previous: string | null = null;
  for (const step of increment.steps) {
    if (previous !== null && step.position <= previous) throw new Error(`invariant: counter ${increment._id} steps out of order at ${step.position}`);
    previous = step.position;
    positions.push(step.position);
    const add = step.add as Record<string, bigint | undefined>;
    for (const field of fields) values.push(add[field] ?? 0n);
  }
  return { fields, positions, values };
}

/**
 * The sum of the steps newer than `storedPosition` (null: the document does not exist yet), field by
 * field in `steps.fields` order, and the position to store; null when every step is already applied.
 */
export function flatCounterTotal(steps: FlatCounterSteps, storedPosition: string | null): { add: bigint[]; position: string } | null {
  const { positions, values } = steps;
  const last = positions.at(-1);
  if (last === undefined || (storedPosition !== null && last <= storedPosition)) return null;
  const width = steps.fields.length;
  const add = new Array<bigint>(width).fill(0n);
  for (let i = 0; i < positions.length; i += 1) {
    if (storedPosition !== null && positions[i]! <= storedPosition) continue;
    for (let f = 0; f < width; f += 1) add[f] = add[f]! + values[i * width + f]!;
  }
  return { add, position: last };
}

/**
 * flatCounterTotal of an increment, its sums by field name. Stores call this (or flatCounterTotal)
 * to honour the guard.
 */
export function counterTotal<C extends CounterCollection>(
  increment: CounterIncrement<C>,
  storedPosition: string | null,
): { add: CounterFields[C]; position: string } | null {
  const steps = flattenCounterSteps(increment);
  const total = flatCounterTotal(steps, storedPosition);
  if (!total) return null;
  const add = {} as Record<string, bigint>;
  steps.fields.forEach((field, f) => (add[field] = total.add[f]!));
  return { add: add as CounterFields[C], position: total.position };
}

/** UTC start of the bucket holding `instant` (ISO 8601), canonical ISO form. */
export function bucketStart(instant: string, interval: VolumeInterval): string {
  // The analytics projector asks twice per settled transaction, and one ledger entry's events share
  // one instant: the last answer per interval is the usual one, and a small bounded memo of valid
  // answers covers the rest, saving the parse and the formatting.
  const last = lastBucketStart[interval];
  if (last.instant === instant) return last.start;
  const key = `${interval}\u0000${instant}`;
  const known = bucketStarts.get(key);
  if (known !== undefined) {
    lastBucketStart[interval] = { instant, start: known };
    return known;
  }
  const ms = Date.parse(instant);
  if (Number.isNaN(ms)) throw new Error(`bucketStart: "${instant}" is not an ISO 8601 date-time`);
  const size = interval === 'HOUR' ? 3_600_000 : 86_400_000;
  const start = new Date(Math.floor(ms / size) * size).toISOString();
  if (bucketStarts.size >= BUCKET_STARTS_MAX) bucketStarts.clear();
  bucketStarts.set(key, start);
  lastBucketStart[interval] = { instant, start };
  return start;
}
const BUCKET_STARTS_MAX = 1024;
const bucketStarts = new Map<string, string>();
const lastBucketStart: Record<VolumeInterval, { instant: string | null; start: string }> = { HOUR: { instant: null, start: '' }, DAY: { instant: null, start: '' } };

export function volumeBucketId(currency: string, interval: VolumeInterval, start: string): string {
  return `${currency}:${interval}:${start}`;
}

export interface Checkpoint {
  /** Ledger position of the last event the projection has applied. */
  position: string;
  /** Event-store position of that event, to resume the subscription. */
  storePosition: string;
  /** Wall-clock time the checkpoint was written (status only). */
  updatedAtMs: number;
}

export interface TransactionQuery {
  /** Transactions from or to this account. */
  accountId?: string | null;
  kinds?: TransactionKind[] | null;
  statuses?: TransactionStatus[] | null;
  /** Minor units, inclusive. */
  minAmount?: bigint | null;
  /** ISO 8601; inclusive bounds on createdAt. */
  from?: string | null;
  to?: string | null;
  large?: boolean | null;
  /** Transactions in this currency. */
  currency?: string | null;
}

/** The filters of the live feeds. */
export interface ChangedTransactionsQuery {
  /** Transactions from or to this account. */
  accountId?: string | null;
  /** Minor units, inclusive. */
  minAmount?: bigint | null;
}

export interface Page<T> {
  docs: T[];
  /** Matching documents in all pages. */
  totalCount: number;
  /** True when more documents follow the returned ones. */
  hasMore: boolean;
}

export interface ReadModelStore {
  /** 'embedded' or 'mongodb'. */
  readonly kind: string;

  /**
   * Applies the writes, each guarded by position (a write whose position is not newer than the
   * stored document's is skipped), then stores the checkpoints. The embedded store does both
   * atomically; others write documents first and checkpoints last, which replay makes safe.
   */
  applyBatch(writes: ReadModelWrite[], checkpoints: Record<string, Checkpoint>): Promise<void>;
  loadCheckpoint(projection: string): Promise<Checkpoint | null>;

  /** In the order of `ids`; null where missing. */
  getAccounts(ids: readonly string[]): Promise<Array<AccountDoc | null>>;
  /** Accounts by id ascending, strictly after the id `afterId`. */
  listAccounts(afterId: string | null, limit: number): Promise<Page<AccountDoc>>;
  getTransactions(ids: readonly string[]): Promise<Array<TransactionDoc | null>>;
  /** Matching transactions newest first (createdPosition descending), strictly before `beforeCreatedPosition`. */
  findTransactions(query: TransactionQuery, beforeCreatedPosition: string | null, limit: number): Promise<Page<TransactionDoc>>;
  /**
   * Transactions whose last change lies in (afterPosition, upToPosition], in position order, at most
   * `limit`: the catch-up of the live feeds (`transactionPosted`/`largeTransaction` with `after`).
   */
  transactionsChangedBetween(query: ChangedTransactionsQuery, afterPosition: string, upToPosition: string, limit: number): Promise<TransactionDoc[]>;
  /** The settled balance of an account at an instant (ISO 8601): null when the account did not exist then. */
  balanceAt(accountId: string, at: string): Promise<string | null>;

  // ---- analytics: every read is one document or one bounded index range, never a scan of history.
  /** The maintained totals of a currency; null before its first account. Cost: one document by _id. */
  currencyTotals(currency: string): Promise<CurrencyTotalsDoc | null>;
  /**
   * Volume buckets of a currency and interval with `fromStart <= start < toStart` (null: unbounded),
   * ascending by start, at most `limit` (0..VOLUME_BUCKETS_MAX) and whether more follow. Only buckets
   * that hold a settled transaction exist. Cost: one range of the index (currency, interval, start),
   * at most limit + 1 documents.
   */
  volumeBuckets(currency: string, interval: VolumeInterval, fromStart: string | null, toStart: string | null, limit: number): Promise<{ docs: VolumeBucketDoc[]; hasMore: boolean }>;
  /**
   * Accounts of a currency by transactionCount descending, then id ascending; at most `limit`
   * (0..PAGE_SIZE_MAX). Cost: the first `limit` entries of the index (currency, transactionCount desc, id).
   * (Large transactions are `findTransactions({ currency, large: true })`: index (currency, large, createdPosition).)
   */
  mostActiveAccounts(currency: string, limit: number): Promise<AccountDoc[]>;

  /**
   * Deletes every document of the given collections, and the given projections' checkpoints first
   * (so an interrupted reset leaves no checkpoint behind and is simply done again). For rebuilds.
   */
  reset(collections: readonly ReadModelCollection[], projections: readonly string[]): Promise<void>;

  /**
   * Bulk-load mode for a rebuild of the given collections after their `reset`: the store may drop
   * what is cheaper to build once at the end (secondary indexes) and relax per-commit durability.
   * Writes keep their position guards, so what is written is the same as without it. `endBulkLoad`
   * restores everything and is durable when it returns. Opening a store always restores what a
   * crash mid-bulk-load left out (indexes), so an interrupted rebuild leaves a complete schema, and
   * calling `beginBulkLoad` again on resume is harmless.
   */
  beginBulkLoad(collections: readonly ReadModelCollection[]): Promise<void>;
  endBulkLoad(collections: readonly ReadModelCollection[]): Promise<void>;

  close(): Promise<void>;
}

/** Query limits: every list has a maximum. */
export const PAGE_SIZE_MAX = 500;
/** At most this many volume buckets per read (31 days of hours is 744). */
export const VOLUME_BUCKETS_MAX = 1000;
