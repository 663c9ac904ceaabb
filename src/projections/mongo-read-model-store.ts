/**
 * The MongoDB adapter of the read-model port (see read-model-store.ts), on the official `mongodb`
 * driver. It runs on real MongoDB and on FerretDB 1.24 (what CI has), so it uses only what both do
 * the same way: no multi-document transactions, no change streams, no `{$sum: 1}` in `$group` (0 on
 * FerretDB: counts use `$count`), no pipeline updates, and bulk writes in chunks (FerretDB hangs on
 * an `update` of more than about 50 statements; real MongoDB takes any chunk size).
 *
 * Documents are the port's documents keyed by `_id`, plus a few fields only queries use (see
 * Stored* below), which reads strip again. Metadata is stored as JSON text: it is client input with
 * arbitrary keys, and keys with `$` or `.` (legal in JSON) are not storable as BSON field names on
 * every server; as text it round-trips exactly, as in the embedded store.
 *
 * Every write is guarded by position, atomically on the server: a new document is inserted (insert
 * if absent), an existing one is replaced by a filtered upsert `replaceOne({_id, position: {$lt: p}},
 * doc, {upsert: true})`. When the stored document is as new or newer the filter misses, the upsert
 * tries to insert a second `_id` and the server answers duplicate key (E11000): that is the skipped
 * stale write. `_id` is the only unique index of these collections, so E11000 can mean nothing else.
 * A read of the stored positions first (by _id, per chunk) picks the form and drops stale writes
 * without sending them (see writeGuarded: on FerretDB the filtered form costs a collection scan).
 * Checkpoints live in the same database and are written after all the batch's documents, so a crash
 * between the two leaves a checkpoint that is behind, and the replay from it changes nothing.
 */
import { Long, MongoClient, type AnyBulkWriteOperation, type Collection, type Db, type Filter, type IndexDescription, MongoBulkWriteError, type MongoServerError } from 'mongodb';
import { INT64_MAX, INT64_MIN, isInt64 } from '../domain/money';
import { isPosition } from '../domain/position';
import { assertDocId, assertLimit, assertPosition, assertTransactionAccounts, assertVolumeQuery, int64Amount } from './read-model-asserts';
import {
  READ_MODEL_COLLECTIONS,
  VOLUME_INTERVALS,
  counterTotal,
  volumeBucketId,
  type ChangedTransactionsQuery,
  type CounterCollection,
  type CounterFields,
  type CounterIncrement,
  type CurrencyTotalsDoc,
  type ReadModelCollection,
  type VolumeBucketDoc,
  type VolumeInterval,
  type AccountDoc,
  type BalanceHistoryDoc,
  type Checkpoint,
  type Page,
  type ReadModelStore,
  type ReadModelWrite,
  type TransactionDoc,
  type TransactionQuery,
} from './read-model-store';

/** Statements per bulk `update`: FerretDB 1.24 exhausts its pool and hangs above about 50; 40 works. */
export const MONGO_BULK_CHUNK_DEFAULT = 40;
/** Largest accepted chunk: MongoDB's own maximum batch of write operations. */
export const MONGO_BULK_CHUNK_MAX = 100_000;
/** How long connecting waits for a server before failing with an error naming MONGODB_URL. */
export const MONGO_SERVER_SELECTION_TIMEOUT_MS = 5000;
export const MONGO_DATABASE_DEFAULT = 'ledger';

const DUPLICATE_KEY = 11000;
const NAMESPACE_NOT_FOUND = 26;

export interface MongoReadModelStoreOptions {
  /** Write statements per bulk command (default MONGO_BULK_CHUNK_DEFAULT). */
  bulkChunk?: number;
  /** Default MONGO_SERVER_SELECTION_TIMEOUT_MS. */
  serverSelectionTimeoutMs?: number;
}

/** Account as stored: metadata as JSON text. */
type StoredAccount = Omit<AccountDoc, 'metadata'> & { metadataJson: string };

/** Transaction as stored: metadata as JSON text, plus the exact amount and the instant in sortable types. */
type StoredTransaction = Omit<TransactionDoc, 'metadata'> & {
  metadataJson: string;
  /** Exact minor units as int64, for minAmount (the digit string stays in `amount`). */
  amountMinor: Long;
  /** createdAt as a BSON date, so bounds compare as instants whatever ISO form they come in. */
  createdAtDate: Date;
};

type StoredBalanceHistory = BalanceHistoryDoc & { atDate: Date };

/**
 * Counters, summed in JS with bigint: counts as int64, sums as digit strings like every amount of
 * the read models (a sum over accounts need not fit 64 bits; FerretDB 1.24 has no Decimal128).
 */
interface StoredCurrencyTotals {
  _id: string;
  currency: string;
  position: string;
  accountCount: Long;
  transactionCount: Long;
  totalBalance: string;
}

interface StoredVolumeBucket {
  _id: string;
  currency: string;
  interval: VolumeInterval;
  /** Canonical ISO form, so string order is time order. */
  start: string;
  position: string;
  count: Long;
  amount: string;
}

interface StoredCheckpoint {
  _id: string;
  position: string;
  storePosition: string;
  updatedAtMs: number;
}

/** Thrown when the server cannot be reached: names the setting to check. */
export class MongoUnreachableError extends Error {
  constructor(url: string, cause: Error) {
    super(`cannot reach the MongoDB read-model store at MONGODB_URL=${redactMongoUrl(url)}: ${cause.message}`);
    this.name = 'MongoUnreachableError';
  }
}

export class MongoReadModelStore implements ReadModelStore {
  readonly kind = 'mongodb';

  private readonly accounts: Collection<StoredAccount>;
  private readonly transactions: Collection<StoredTransaction>;
  private readonly balanceHistory: Collection<StoredBalanceHistory>;
  private readonly currencyTotalsCollection: Collection<StoredCurrencyTotals>;
  private readonly volumeBucketsCollection: Collection<StoredVolumeBucket>;
  private readonly checkpoints: Collection<StoredCheckpoint>;

  private constructor(
    private readonly client: MongoClient,
    readonly db: Db,
    private readonly bulkChunk: number,
  ) {
    this.accounts = db.collection('accounts');
    this.transactions = db.collection('transactions');
    this.balanceHistory = db.collection('balanceHistory');
    this.currencyTotalsCollection = db.collection('currencyTotals');
    this.volumeBucketsCollection = db.collection('volumeBuckets');
    this.checkpoints = db.collection('checkpoints');
  }

  /**
   * Connects (failing within serverSelectionTimeoutMs with a MongoUnreachableError), then creates the
   * indexes the queries need (idempotent). Database from the URL's path, default `ledger`.
   */
  static async connect(url: string, options: MongoReadModelStoreOptions = {}): Promise<MongoReadModelStore> {
    const bulkChunk = options.bulkChunk ?? MONGO_BULK_CHUNK_DEFAULT;
    if (!Number.isInteger(bulkChunk) || bulkChunk < 1 || bulkChunk > MONGO_BULK_CHUNK_MAX) {
      throw new RangeError(`MongoDB bulk chunk must be an integer from 1 to ${MONGO_BULK_CHUNK_MAX}, got ${bulkChunk}`);
    }
    const timeoutMs = options.serverSelectionTimeoutMs ?? MONGO_SERVER_SELECTION_TIMEOUT_MS;
    const client = new MongoClient(url, { serverSelectionTimeoutMS: timeoutMs, connectTimeoutMS: timeoutMs, ignoreUndefined: true });
    try {
      await client.connect();
    } catch (error) {
      await client.close().catch(() => undefined);
      throw new MongoUnreachableError(url, error as Error);
    }
    try {
      const store = new MongoReadModelStore(client, client.db(mongoDatabaseName(url)), bulkChunk);
      await store.createIndexes();
      return store;
    } catch (error) {
      await client.close().catch(() => undefined);
      throw error;
    }
  }

  private async createIndexes(collections: readonly ReadModelCollection[] = READ_MODEL_COLLECTIONS): Promise<void> {
    // The feed (newest first), per-account history (multikey on accountIds, already in feed order),
    // large transactions in feed order (overall and per currency, for analytics), and time bounds.
    // Other filters (kinds, statuses, minAmount) narrow what one of these walks.
    const indexes: Record<ReadModelCollection, () => Promise<void>> = {
      accounts: () => createMissingIndexes(this.accounts, [{ key: { currency: 1, transactionCount: -1, _id: 1 }, name: 'by_activity' }]),
      transactions: () =>
        createMissingIndexes(this.transactions, [
          { key: { createdPosition: -1 }, name: 'by_created_position' },
          { key: { accountIds: 1, createdPosition: -1 }, name: 'by_account' },
          { key: { large: 1, createdPosition: -1 }, name: 'by_large' },
          { key: { currency: 1, large: 1, createdPosition: -1 }, name: 'by_currency_large' },
          { key: { createdAtDate: 1 }, name: 'by_created_at' },
          // The live feeds' catch-up: changes in position order, overall and per account.
          { key: { position: 1 }, name: 'by_position' },
          { key: { accountIds: 1, position: 1 }, name: 'by_account_position' },
        ]),
      balanceHistory: () => createMissingIndexes(this.balanceHistory, [{ key: { accountId: 1, atDate: -1, position: -1 }, name: 'by_account_at' }]),
      // currencyTotals is read by _id only.
      currencyTotals: async () => undefined,
      volumeBuckets: () => createMissingIndexes(this.volumeBucketsCollection, [{ key: { currency: 1, interval: 1, start: 1 }, name: 'by_range' }]),
    };
    for (const collection of collections) await indexes[collection]();
  }

  async applyBatch(writes: ReadModelWrite[], checkpoints: Record<string, Checkpoint>): Promise<void> {
    for (const [projection, checkpoint] of Object.entries(checkpoints)) assertPosition(checkpoint.position, `checkpoint of "${projection}"`);
    // Only the newest write of each document can apply, so the others are dropped before sending:
    // fewer statements, and the order of the statements inside an unordered bulk write cannot matter.
    const accounts = new Map<string, AccountDoc>();
    const transactions = new Map<string, TransactionDoc>();
    const histories = new Map<string, BalanceHistoryDoc>();
    const currencyTotals = new Map<string, CounterIncrement<'currencyTotals'>>();
    const volumeBuckets = new Map<string, CounterIncrement<'volumeBuckets'>>();
    for (const write of writes) {
      switch (write.collection) {
        case 'accounts':
          keepNewest(accounts, write.doc);
          break;
        case 'transactions':
          keepNewest(transactions, write.doc);
          break;
        case 'balanceHistory':
          if (!histories.has(write.doc._id)) histories.set(write.doc._id, write.doc);
          break;
        case 'currencyTotals':
          mergeSteps(currencyTotals, write.increment);
          break;
        case 'volumeBuckets':
          mergeSteps(volumeBuckets, write.increment);
          break;
        default: {
          const unknownWrite: never = write;
          throw new Error(`unknown read-model collection in ${JSON.stringify(unknownWrite)}`);
        }
      }
    }
    // Everything is converted (and checked) before anything is written: a bad document fails the batch whole.
    for (const increment of currencyTotals.values()) assertDocId(increment._id, increment.keys.currency, 'currency totals');
    for (const increment of volumeBuckets.values()) {
      const { _id, keys } = increment;
      if (!VOLUME_INTERVALS.includes(keys.interval)) throw new Error(`invariant: volume bucket ${_id} has unknown interval "${String(keys.interval)}"`);
      if (instant(keys.start, `volume bucket ${_id} start`).toISOString() !== keys.start) {
        throw new Error(`invariant: volume bucket ${_id} start "${keys.start}" is not in canonical ISO form`);
      }
      assertDocId(_id, volumeBucketId(keys.currency, keys.interval, keys.start), 'volume bucket');
    }
    const storedAccounts = [...accounts.values()].map(toStoredAccount);
    const storedTransactions = [...transactions.values()].map(toStoredTransaction);
    const storedHistories = [...histories.values()].map(toStoredHistory);
    await this.writeGuarded(this.accounts, storedAccounts);
    await this.writeGuarded(this.transactions, storedTransactions);
    await this.insertAbsent(this.balanceHistory, storedHistories);
    await this.applyCounters(this.currencyTotalsCollection, [...currencyTotals.values()], (increment, stored, total, position) => ({
      _id: increment._id,
      currency: increment.keys.currency,
      position,
      accountCount: addInt64(stored?.accountCount, total.accountCount, `accountCount of ${increment._id}`),
      transactionCount: addInt64(stored?.transactionCount, total.transactionCount, `transactionCount of ${increment._id}`),
      totalBalance: String(BigInt(stored?.totalBalance ?? '0') + total.totalBalance),
    }));
    await this.applyCounters(this.volumeBucketsCollection, [...volumeBuckets.values()], (increment, stored, total, position) => ({
      _id: increment._id,
      currency: increment.keys.currency,
      interval: increment.keys.interval,
      start: increment.keys.start,
      position,
      count: addInt64(stored?.count, total.count, `count of ${increment._id}`),
      amount: String(BigInt(stored?.amount ?? '0') + total.amount),
    }));
    // Last, after every document of the batch: a checkpoint never covers a write that is not stored.
    const checkpointOps: Array<AnyBulkWriteOperation<StoredCheckpoint>> = Object.entries(checkpoints).map(([projection, c]) => ({
      replaceOne: {
        filter: { _id: projection },
        replacement: { _id: projection, position: c.position, storePosition: c.storePosition, updatedAtMs: c.updatedAtMs },
        upsert: true,
      },
    }));
    await this.bulkWrite(this.checkpoints, checkpointOps);
  }

  async loadCheckpoint(projection: string): Promise<Checkpoint | null> {
    const stored = await this.checkpoints.findOne({ _id: projection });
    if (!stored) return null;
    return { position: stored.position, storePosition: stored.storePosition, updatedAtMs: stored.updatedAtMs };
  }

  async getAccounts(ids: readonly string[]): Promise<Array<AccountDoc | null>> {
    return inOrder(ids, await this.accounts.find({ _id: { $in: [...new Set(ids)] } }).toArray(), fromStoredAccount);
  }

  async listAccounts(afterId: string | null, limit: number): Promise<Page<AccountDoc>> {
    assertLimit(limit);
    const filter: Filter<StoredAccount> = afterId === null ? {} : { _id: { $gt: afterId } };
    // Without transactions the count and the page are two reads and may straddle a write; the
    // page itself is always consistent (a cursor on _id), the count is a moment later at most.
    const [stored, totalCount] = await Promise.all([
      // Cost: O(limit) on the _id index. limit + 1 tells hasMore (and is never 0, which would mean "no limit").
      this.accounts.find(filter).sort({ _id: 1 }).limit(limit + 1).toArray(),
      count(this.accounts, {}),
    ]);
    return toPage(stored, limit, totalCount, fromStoredAccount);
  }

  async getTransactions(ids: readonly string[]): Promise<Array<TransactionDoc | null>> {
    return inOrder(ids, await this.transactions.find({ _id: { $in: [...new Set(ids)] } }).toArray(), fromStoredTransaction);
  }

  async findTransactions(query: TransactionQuery, beforeCreatedPosition: string | null, limit: number): Promise<Page<TransactionDoc>> {
    assertLimit(limit);
    if (beforeCreatedPosition !== null && !isPosition(beforeCreatedPosition)) {
      throw new Error(`invalid transaction cursor "${beforeCreatedPosition}"`);
    }
    // Stored amounts are int64 (asserted on write): a larger minimum matches nothing, a smaller one everything.
    if (query.minAmount != null && query.minAmount > INT64_MAX) return { docs: [], totalCount: 0, hasMore: false };

    const filter: Filter<StoredTransaction> = {};
    if (query.accountId != null) filter.accountIds = query.accountId;
    if (query.kinds != null) filter.kind = { $in: query.kinds };
    if (query.statuses != null) filter.status = { $in: query.statuses };
    if (query.minAmount != null) filter.amountMinor = { $gte: Long.fromBigInt(query.minAmount < INT64_MIN ? INT64_MIN : query.minAmount) };
    if (query.from != null || query.to != null) {
      filter.createdAtDate = {
        ...(query.from != null ? { $gte: instant(query.from, 'from') } : {}),
        ...(query.to != null ? { $lte: instant(query.to, 'to') } : {}),
      };
    }
    if (query.large != null) filter.large = query.large;
    if (query.currency != null) filter.currency = query.currency;
    const paged: Filter<StoredTransaction> = beforeCreatedPosition === null ? filter : { ...filter, createdPosition: { $lt: beforeCreatedPosition } };
    // Cost: the page walks an index in feed order (by_account for accountId, by_currency_large for
    // analytics' large transactions of a currency, by_large for large, else by_created_position) and stops after limit + 1 matches; the count reads every match once
    // (as the embedded store's COUNT does). Count and page are two reads, see listAccounts.
    const [stored, totalCount] = await Promise.all([
      this.transactions.find(paged).sort({ createdPosition: -1 }).limit(limit + 1).toArray(),
      count(this.transactions, filter),
    ]);
    return toPage(stored, limit, totalCount, fromStoredTransaction);
  }

  async transactionsChangedBetween(query: ChangedTransactionsQuery, afterPosition: string, upToPosition: string, limit: number): Promise<TransactionDoc[]> {
    assertLimit(limit);
    assertPosition(afterPosition, 'catch-up start');
    assertPosition(upToPosition, 'catch-up end');
    if (query.minAmount != null && query.minAmount > INT64_MAX) return [];
    const filter: Filter<StoredTransaction> = { position: { $gt: afterPosition, $lte: upToPosition } };
    if (query.accountId != null) filter.accountIds = query.accountId;
    if (query.minAmount != null) filter.amountMinor = { $gte: Long.fromBigInt(query.minAmount < INT64_MIN ? INT64_MIN : query.minAmount) };
    // Cost: one range of by_position (by_account_position for an account), at most `limit` documents.
    const stored = await this.transactions.find(filter).sort({ position: 1 }).limit(limit).toArray();
    return stored.map(fromStoredTransaction);
  }

  async balanceAt(accountId: string, at: string): Promise<string | null> {
    // Cost: one seek on by_account_at.
    const [stored] = await this.balanceHistory
      .find({ accountId, atDate: { $lte: instant(at, 'at') } })
      .sort({ atDate: -1, position: -1 })
      .limit(1)
      .toArray();
    return stored ? stored.balance : null;
  }

  async currencyTotals(currency: string): Promise<CurrencyTotalsDoc | null> {
    // Cost: one document by _id, maintained by the analytics projector.
    const stored = await this.currencyTotalsCollection.findOne({ _id: currency }, { useBigInt64: true });
    if (!stored) return null;
    return {
      _id: stored._id,
      currency: stored.currency,
      accountCount: safeCount(stored.accountCount, `accountCount of ${currency}`),
      transactionCount: safeCount(stored.transactionCount, `transactionCount of ${currency}`),
      totalBalance: stored.totalBalance,
      position: stored.position,
    };
  }

  async volumeBuckets(
    currency: string,
    interval: VolumeInterval,
    fromStart: string | null,
    toStart: string | null,
    limit: number,
  ): Promise<{ docs: VolumeBucketDoc[]; hasMore: boolean }> {
    assertVolumeQuery(interval, limit);
    const start: Filter<StoredVolumeBucket>['start'] = {
      ...(fromStart !== null ? { $gte: instant(fromStart, 'fromStart').toISOString() } : {}),
      ...(toStart !== null ? { $lt: instant(toStart, 'toStart').toISOString() } : {}),
    };
    // Cost: one range of by_range (currency, interval, start), at most limit + 1 documents.
    const stored = await this.volumeBucketsCollection
      .find({ currency, interval, ...(fromStart !== null || toStart !== null ? { start } : {}) }, { useBigInt64: true })
      .sort({ start: 1 })
      .limit(limit + 1)
      .toArray();
    return {
      docs: stored.slice(0, limit).map((b) => ({
        _id: b._id,
        currency: b.currency,
        interval: b.interval,
        start: b.start,
        count: safeCount(b.count, `count of bucket ${b._id}`),
        amount: b.amount,
        position: b.position,
      })),
      hasMore: stored.length > limit,
    };
  }

  async mostActiveAccounts(currency: string, limit: number): Promise<AccountDoc[]> {
    assertLimit(limit);
    // limit(0) would mean "no limit" to MongoDB.
    if (limit === 0) return [];
    // Cost: the first `limit` entries of by_activity (currency, transactionCount desc, _id).
    const stored = await this.accounts.find({ currency }).sort({ transactionCount: -1, _id: 1 }).limit(limit).toArray();
    return stored.map(fromStoredAccount);
  }

  async reset(collections: readonly ReadModelCollection[], projections: readonly string[]): Promise<void> {
    for (const collection of collections) {
      if (!READ_MODEL_COLLECTIONS.includes(collection)) throw new Error(`unknown read-model collection "${String(collection)}"`);
    }
    // Checkpoints first: an interrupted reset leaves no checkpoint claiming documents that are gone.
    if (projections.length > 0) await this.checkpoints.deleteMany({ _id: { $in: [...projections] } });
    // Dropping is O(1) where deleting a million documents one by one is not; the indexes come back at once.
    for (const collection of collections) {
      try {
        await this.db.collection(collection).drop();
      } catch (error) {
        if ((error as MongoServerError).code !== NAMESPACE_NOT_FOUND) throw error;
      }
    }
    await this.createIndexes(collections);
  }

  /** Nothing is dropped: `reset` has just recreated the indexes, and MongoDB builds them as documents arrive. */
  async beginBulkLoad(collections: readonly ReadModelCollection[]): Promise<void> {
    for (const collection of collections) {
      if (!READ_MODEL_COLLECTIONS.includes(collection)) throw new Error(`unknown read-model collection "${String(collection)}"`);
    }
  }

  /** Makes sure the indexes exist (idempotent), as at startup. */
  async endBulkLoad(collections: readonly ReadModelCollection[]): Promise<void> {
    await this.createIndexes(collections);
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  /**
   * Counters: one read of the batch's counter documents by _id (a handful per batch: currencies and
   * buckets touched), the exact sums in JS (counterTotal adds only the steps newer than the stored
   * position, which makes a replay cut at other batch boundaries exact), then one write per document
   * that applies only if the document is still as read (a compare-and-set on position). A counter has
   * a single writer, the projection; a lost compare-and-set means another writer and fails the batch,
   * which the projection then retries from its checkpoint.
   */
  private async applyCounters<C extends CounterCollection, S extends { _id: string; position: string }>(
    collection: Collection<S>,
    increments: Array<CounterIncrement<C>>,
    build: (increment: CounterIncrement<C>, stored: S | null, add: CounterFields[C], position: string) => S,
  ): Promise<void> {
    if (increments.length === 0) return;
    const ids = increments.map((i) => i._id);
    const storedById = new Map<string, S>();
    for (let start = 0; start < ids.length; start += this.bulkChunk) {
      const found = await collection.find({ _id: { $in: ids.slice(start, start + this.bulkChunk) } } as Filter<S>, { useBigInt64: true }).toArray();
      for (const doc of found) storedById.set(doc._id, doc as S);
    }
    const inserts: Array<AnyBulkWriteOperation<S>> = [];
    const updates: Array<AnyBulkWriteOperation<S>> = [];
    for (const increment of increments) {
      const stored = storedById.get(increment._id) ?? null;
      const total = counterTotal(increment, stored?.position ?? null);
      if (!total) continue;
      assertPosition(total.position, `counter ${increment._id}`);
      const doc = build(increment, stored, total.add, total.position);
      if (stored) updates.push({ replaceOne: { filter: { _id: stored._id, position: stored.position } as Filter<S>, replacement: doc } });
      else inserts.push({ insertOne: { document: doc as never } });
    }
    for (let start = 0; start < inserts.length; start += this.bulkChunk) {
      await collection.bulkWrite(inserts.slice(start, start + this.bulkChunk), { ordered: false });
    }
    for (let start = 0; start < updates.length; start += this.bulkChunk) {
      const chunk = updates.slice(start, start + this.bulkChunk);
      const result = await collection.bulkWrite(chunk, { ordered: false });
      if (result.matchedCount !== chunk.length) {
        throw new Error(`counters in ${collection.collectionName} changed while this batch was written (another writer?): ${chunk.length - result.matchedCount} not applied`);
      }
    }
  }

  /**
   * Whole documents, each written only over an older one. Per chunk: one read of the stored
   * positions by _id; a stale write is dropped there; an absent document is inserted (insert-if-absent
   * is its own guard); a present, older one is replaced by a filtered upsert guarded by position
   * (`{_id, position: {$lt: p}}`, the E11000 of a failed filter is a stale write skipped). The read only
   * chooses the cheap form: insert costs about 0.1 ms on FerretDB 1.24, where any filter beyond _id
   * is not pushed down and costs a collection scan; on MongoDB both are index seeks. A document
   * inserted by someone else between the read and the insert (E11000) gets the guarded upsert.
   */
  private async writeGuarded<T extends { _id: string; position: string }>(collection: Collection<T>, docs: T[]): Promise<void> {
    for (let start = 0; start < docs.length; start += this.bulkChunk) {
      const chunk = docs.slice(start, start + this.bulkChunk);
      const stored = await this.storedPositions(collection, chunk);
      const absent: T[] = [];
      const older: T[] = [];
      for (const doc of chunk) {
        const position = stored.get(doc._id);
        if (position === undefined) absent.push(doc);
        else if (doc.position > position) older.push(doc);
      }
      older.push(...(await this.insert(collection, absent)));
      await this.bulkWrite(collection, older.map(guardedReplace));
    }
  }

  /** Documents whose _id fixes their content (balance history: one position, one balance): inserted when absent, else left. */
  private async insertAbsent<T extends { _id: string; position: string }>(collection: Collection<T>, docs: T[]): Promise<void> {
    for (let start = 0; start < docs.length; start += this.bulkChunk) {
      const chunk = docs.slice(start, start + this.bulkChunk);
      const stored = await this.storedPositions(collection, chunk);
      // Whatever lost a race to an identical insert is already there.
      await this.insert(collection, chunk.filter((doc) => !stored.has(doc._id)));
    }
  }

  private async storedPositions<T extends { _id: string; position: string }>(collection: Collection<T>, docs: T[]): Promise<Map<string, string>> {
    if (docs.length === 0) return new Map();
    const found = await collection.find({ _id: { $in: docs.map((d) => d._id) } } as Filter<T>, { projection: { _id: 1, position: 1 } }).toArray();
    return new Map(found.map((d) => [d._id as string, d.position as string]));
  }

  /** Inserts (at most one chunk), unordered; returns the documents that were already there (E11000 on _id). */
  private async insert<T extends { _id: string }>(collection: Collection<T>, docs: T[]): Promise<T[]> {
    if (docs.length === 0) return [];
    try {
      await collection.bulkWrite(docs.map((document) => ({ insertOne: { document } }) as AnyBulkWriteOperation<T>), { ordered: false });
      return [];
    } catch (error) {
      return docs.filter((_, index) => duplicateKeyIndexes(error).has(index));
    }
  }

  /** Unordered (a stale write must not stop the ones after it), in chunks, each chunk awaited before the next. */
  private async bulkWrite<T extends { _id: string }>(collection: Collection<T>, ops: Array<AnyBulkWriteOperation<T>>): Promise<void> {
    for (let start = 0; start < ops.length; start += this.bulkChunk) {
      try {
        await collection.bulkWrite(ops.slice(start, start + this.bulkChunk), { ordered: false });
      } catch (error) {
        // Duplicate key on _id (the only unique index) is a guarded upsert whose stored document is as new or newer.
        duplicateKeyIndexes(error);
      }
    }
  }
}

/**
 * The statements of a failed bulk write that failed on a duplicate _id (the only unique index of
 * these collections). Rethrows anything else: another write error, a write concern error, a network error.
 */
function duplicateKeyIndexes(error: unknown): Set<number> {
  if (!(error instanceof MongoBulkWriteError)) throw error;
  const writeErrors = Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors];
  if (writeErrors.length === 0 || error.writeConcernError || writeErrors.some((e) => e.code !== DUPLICATE_KEY)) throw error;
  return new Set(writeErrors.map((e) => e.index));
}

/**
 * Creates the indexes not there yet. Asking for existing ones is a no-op on MongoDB but a server panic
 * (dropped connection) on FerretDB 1.24, so the existing ones are listed first. An index of the same
 * name with other keys is left alone: read models are rebuildable, drop the database to change one.
 */
async function createMissingIndexes<T extends { _id: string }>(collection: Collection<T>, indexes: IndexDescription[]): Promise<void> {
  let existing: string[];
  try {
    existing = (await collection.listIndexes().toArray()).map((index) => String(index.name));
  } catch (error) {
    if ((error as MongoServerError).code !== NAMESPACE_NOT_FOUND) throw error;
    existing = [];
  }
  const missing = indexes.filter((index) => !existing.includes(index.name!));
  if (missing.length > 0) await collection.createIndexes(missing);
}

/** Steps of the same counter document within one batch are concatenated, in position order. */
function mergeSteps<C extends CounterCollection>(byId: Map<string, CounterIncrement<C>>, increment: CounterIncrement<C>): void {
  const kept = byId.get(increment._id);
  if (kept) kept.steps = [...kept.steps, ...increment.steps];
  else byId.set(increment._id, { ...increment, steps: [...increment.steps] });
}

/** int64 as the driver may hand it back: bigint (useBigInt64), a Long, or a number for int32 values. */
function int64Of(value: bigint | Long | number): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') return BigInt(value);
  return value.toBigInt();
}

function addInt64(stored: bigint | Long | number | undefined, add: bigint, what: string): Long {
  const sum = (stored === undefined ? 0n : int64Of(stored)) + add;
  if (!isInt64(sum)) throw new Error(`invariant: ${what} ${sum} does not fit in a signed 64-bit integer`);
  return Long.fromBigInt(sum);
}

function safeCount(value: bigint | Long | number, what: string): number {
  const n = int64Of(value);
  if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < 0n) throw new Error(`invariant: ${what} is ${n}`);
  return Number(n);
}

function keepNewest<T extends { _id: string; position: string }>(byId: Map<string, T>, doc: T): void {
  const kept = byId.get(doc._id);
  if (!kept || doc.position > kept.position) byId.set(doc._id, doc);
}

function guardedReplace<T extends { _id: string; position: string }>(doc: T): AnyBulkWriteOperation<T> {
  return { replaceOne: { filter: { _id: doc._id, position: { $lt: doc.position } } as Filter<T>, replacement: doc, upsert: true } };
}

/** `$count`, not countDocuments: the driver counts with `{$sum: 1}`, which FerretDB 1.24 answers with 0. */
async function count<T extends { _id: string }>(collection: Collection<T>, filter: Filter<T>): Promise<number> {
  const [result] = await collection.aggregate<{ n: number }>([{ $match: filter }, { $count: 'n' }]).toArray();
  return result?.n ?? 0;
}

function toStoredAccount(doc: AccountDoc): StoredAccount {
  assertDocId(doc._id, doc.id, 'account');
  assertPosition(doc.position, `account ${doc._id}`);
  const { metadata, ...fields } = doc;
  return { ...fields, metadataJson: JSON.stringify(metadata) };
}

function fromStoredAccount(stored: StoredAccount): AccountDoc {
  const { metadataJson, ...fields } = stored;
  return { ...fields, metadata: JSON.parse(metadataJson) as AccountDoc['metadata'] };
}

function toStoredTransaction(doc: TransactionDoc): StoredTransaction {
  assertDocId(doc._id, doc.id, 'transaction');
  assertPosition(doc.position, `transaction ${doc._id}`);
  assertPosition(doc.createdPosition, `transaction ${doc._id} createdPosition`);
  assertTransactionAccounts(doc.accountIds, doc._id);
  const { metadata, ...fields } = doc;
  return {
    ...fields,
    metadataJson: JSON.stringify(metadata),
    amountMinor: Long.fromBigInt(int64Amount(doc.amount, `transaction ${doc._id} amount`)),
    createdAtDate: instant(doc.createdAt, `transaction ${doc._id} createdAt`),
  };
}

function fromStoredTransaction(stored: StoredTransaction): TransactionDoc {
  const { metadataJson, amountMinor: _amountMinor, createdAtDate: _createdAtDate, ...fields } = stored;
  return { ...fields, metadata: JSON.parse(metadataJson) as TransactionDoc['metadata'] };
}

function toStoredHistory(doc: BalanceHistoryDoc): StoredBalanceHistory {
  assertDocId(doc._id, `${doc.accountId}:${doc.position}`, 'balance history');
  assertPosition(doc.position, `balance history ${doc._id}`);
  return { ...doc, atDate: instant(doc.at, `balance history ${doc._id} at`) };
}

/** In the order of `ids`, null where missing; converted per slot, so a repeated id gets its own object. */
function inOrder<S extends { _id: string }, T>(ids: readonly string[], stored: S[], convert: (s: S) => T): Array<T | null> {
  const byId = new Map(stored.map((s) => [s._id, s]));
  return ids.map((id) => {
    const found = byId.get(id);
    return found === undefined ? null : convert(found);
  });
}

function toPage<S, T>(stored: S[], limit: number, totalCount: number, convert: (s: S) => T): Page<T> {
  return { docs: stored.slice(0, limit).map(convert), totalCount, hasMore: stored.length > limit };
}

function instant(value: string, what: string): Date {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new Error(`${what} must be an ISO 8601 date-time, got "${value}"`);
  return new Date(ms);
}

/** The database named in the URL's path (`mongodb://host/ledger_prod?…`), default `ledger`. */
export function mongoDatabaseName(url: string): string {
  const match = /^mongodb(?:\+srv)?:\/\/[^/]*\/([^?]*)/.exec(url);
  const name = match?.[1] ? decodeURIComponent(match[1]) : '';
  return name === '' ? MONGO_DATABASE_DEFAULT : name;
}

/** The URL without its password, for messages and logs. */
export function redactMongoUrl(url: string): string {
  return url.replace(/\/\/([^@/:]*):[^@/]*@/, '//$1:***@');
}
