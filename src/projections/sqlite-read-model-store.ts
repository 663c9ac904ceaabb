/**
 * The embedded adapter of the read-model port (see read-model-store.ts), on SQLite through
 * better-sqlite3. Each collection is a table with real columns for what queries filter and sort on,
 * plus the whole document as JSON, which is what reads return (so documents round-trip exactly,
 * metadata included, and amounts stay digit strings: no INTEGER amount is ever read back as a JS number).
 *
 * Every write is an upsert guarded by position (`ON CONFLICT ... DO UPDATE ... WHERE excluded.position >
 * stored.position`), and a whole batch plus its checkpoints commits in one SQLite transaction.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { INT64_MAX, INT64_MIN, isInt64 } from '../domain/money';
import { isoTime, epochMs as parseEpochMs } from '../domain/state';
import { EVENTS_PER_ENTRY_MAX, formatPosition, isPosition, parsePosition } from '../domain/position';
import { assertDocId, assertLimit, assertPosition, assertTransactionAccounts, assertVolumeQuery, int64Amount } from './read-model-asserts';
import {
  flatCounterTotal,
  flattenCounterSteps,
  volumeBucketId,
  type FlatCounterSteps,
  type CounterCollection,
  type CounterIncrement,
  type AccountDoc,
  type CurrencyTotalsDoc,
  type ReadModelCollection,
  type VolumeBucketDoc,
  type VolumeInterval,
  type BalanceHistoryDoc,
  type Checkpoint,
  type Page,
  type ReadModelStore,
  type ReadModelWrite,
  type TransactionDoc,
  type TransactionQuery,
  type ChangedTransactionsQuery,
} from './read-model-store';

/** Bumped when the tables change; read models are rebuildable, so a mismatch means "rebuild", not "migrate". */
const SCHEMA_VERSION = 6;

/** Dynamic find statements are keyed by which filters are present (IN lists are bound as one JSON array): 2^8 count and 2^9 page shapes at most. */
const FIND_STATEMENTS_MAX = 1024;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS accounts (
    id                TEXT PRIMARY KEY,
    position          TEXT NOT NULL,
    currency          TEXT NOT NULL,
    transaction_count INTEGER NOT NULL,
    doc               TEXT NOT NULL
  ) WITHOUT ROWID;
  -- mostActiveAccounts reads the first entries of this index.
  CREATE INDEX IF NOT EXISTS accounts_by_activity ON accounts (currency, transaction_count DESC, id);

  -- Keyed by creation order (createdSeq: the createdPosition as one integer), so new transactions
  -- append to the table instead of landing all over it, and the feed order needs no index of its own.
  CREATE TABLE IF NOT EXISTS transactions (
    created_seq      INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    position         TEXT NOT NULL,
    -- canonical toISOString() form, so string order is time order whatever form the writer used
    created_at       TEXT NOT NULL,
    kind             TEXT NOT NULL,
    status           TEXT NOT NULL,
    -- exact minor units for minAmount (int64; the exact digits live in doc)
    amount_minor     INTEGER NOT NULL,
    large            INTEGER NOT NULL,
    currency         TEXT NOT NULL,
    -- The document without what the columns above hold exactly (see slimTransactionJson): a third
    -- smaller, and the row is the read side's largest write per transfer.
    doc              TEXT NOT NULL
  );
  -- Analytics' largeTransactions: one currency's large transactions, newest first (an index ends in the created_seq).
  CREATE INDEX IF NOT EXISTS transactions_by_currency_large ON transactions (currency, large);
  -- Large transactions of every currency, newest first: only they are indexed (queries name large = 1 literally).
  CREATE INDEX IF NOT EXISTS transactions_large ON transactions (large) WHERE large = 1;
  CREATE INDEX IF NOT EXISTS transactions_by_created_at ON transactions (created_at);
  -- Catch-up of the live feeds reads transactions by the position of their last change.
  CREATE INDEX IF NOT EXISTS transactions_by_position ON transactions (position);

  -- Per-account history: one row per entry of the document's accountIds, in the same order as the feed.
  CREATE TABLE IF NOT EXISTS transaction_accounts (
    account_id  TEXT NOT NULL,
    created_seq INTEGER NOT NULL,
    PRIMARY KEY (account_id, created_seq)
  ) WITHOUT ROWID;

  -- Keyed the way balanceAt reads it; a document's _id is account_id:position, so the key is unique too.
  -- Integers, not text, after the account: the instant in epoch milliseconds (what the ledger records)
  -- and the position as one integer (see createdSeqOf). A row is half the size and its key compares in
  -- two integer steps: with two rows per transfer, this is one of the read side's busiest tables.
  CREATE TABLE IF NOT EXISTS balance_history (
    account_id TEXT NOT NULL,
    at_ms      INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    balance    TEXT NOT NULL,
    PRIMARY KEY (account_id, at_ms, seq)
  ) WITHOUT ROWID;

  -- Maintained counters (see CounterIncrement): one row per currency, one per bucket.
  CREATE TABLE IF NOT EXISTS currency_totals (
    currency          TEXT PRIMARY KEY,
    position          TEXT NOT NULL,
    account_count     INTEGER NOT NULL,
    transaction_count INTEGER NOT NULL,
    -- decimal digits: a sum over accounts may exceed 64 bits although every balance fits
    total_balance     TEXT NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS volume_buckets (
    currency  TEXT NOT NULL,
    interval  TEXT NOT NULL,
    -- canonical toISOString() form of the bucket's start
    start     TEXT NOT NULL,
    position  TEXT NOT NULL,
    count     INTEGER NOT NULL,
    -- decimal digits, like currency_totals.total_balance
    amount    TEXT NOT NULL,
    PRIMARY KEY (currency, interval, start)
  ) WITHOUT ROWID;

  CREATE TABLE IF NOT EXISTS checkpoints (
    projection     TEXT PRIMARY KEY,
    position       TEXT NOT NULL,
    store_position TEXT NOT NULL,
    updated_at_ms  INTEGER NOT NULL
  ) WITHOUT ROWID;
`;

/**
 * Secondary indexes that a bulk load (a rebuild) drops and builds once at the end: one sorted build
 * costs far less than a million scattered inserts into each. Their CREATE statements are in SCHEMA,
 * which every open runs, so a store opened after a crash mid-rebuild has them all again.
 */
const BULK_LOAD_INDEXES: Readonly<Record<ReadModelCollection, readonly string[]>> = {
  accounts: ['accounts_by_activity'],
  transactions: ['transactions_by_currency_large', 'transactions_large', 'transactions_by_created_at', 'transactions_by_position'],
  balanceHistory: [],
  currencyTotals: [],
  volumeBuckets: [],
};
/** WAL pages past which the writing connection checkpoints by itself (SQLite's wal_autocheckpoint). */
const WAL_AUTOCHECKPOINT_PAGES = 8192;
/**
 * The same when a WalCheckpointer (src/app/wal-checkpointer.ts) checkpoints the file on its own
 * thread, which does the copying: checkpointing copies every page the WAL holds into the file (and
 * writes it), a tenth of the projection thread's time under sustained batches when it checkpointed
 * by itself. Under a steady stream of commits only a checkpoint by the writer lets the WAL start over
 * (see WalCheckpointer); by then the thread has copied nearly all of it. At 65,536 pages the WAL
 * reached 261-279 MiB in 20 s of batches; at 16,384, 124-146 MiB, at the same rates (two pairs,
 * 2026-12-07, bench/RESULTS.md eighth pass).
 */
const WAL_AUTOCHECKPOINT_BACKSTOP_PAGES = 16_384;
/** What is left of a WAL file that grew past it once it starts over (SQLite's journal_size_limit). */
const WAL_FILE_BYTES_KEPT = 64 * 1024 * 1024;
/** Page cache while bulk loading (KiB, negative as SQLite wants it), and in normal use. */
const BULK_LOAD_CACHE_KIB = 262_144;
const CACHE_KIB = 65_536;

interface DocRow {
  doc: string;
}
interface CountRow {
  n: number;
}
interface CheckpointRow {
  position: string;
  store_position: string;
  updated_at_ms: number;
}

export class SqliteReadModelStore implements ReadModelStore {
  readonly kind = 'embedded';

  private readonly upsertAccount;
  private readonly upsertTransaction;
  /** Row inserts of the running applyBatch, sent ROWS_PER_INSERT at a time (see RowBuffer). */
  private readonly transactionAccountRows: RowBuffer;
  private readonly balanceHistoryRows: RowBuffer;
  private readonly upsertCheckpoint;
  private readonly selectCheckpoint;
  private readonly selectAccountsByIds;
  private readonly selectTransactionsByIds;
  private readonly selectAccountsAfter;
  private readonly selectAccountsFirst;
  private readonly countAccounts;
  private readonly selectBalanceAt;
  private readonly selectCurrencyTotals;
  private readonly upsertCurrencyTotals;
  private readonly selectVolumeBucket;
  private readonly upsertVolumeBucket;
  private readonly selectVolumeBuckets;
  private readonly selectMostActive;
  private readonly findStatements = new Map<string, Database.Statement<[Record<string, unknown>], unknown>>();
  /** Runs `rows` (which writes a batch's rows into the sink) and stores the checkpoints, in one transaction. */
  private readonly applyBatchTransaction: (rows: (sink: RowSink) => void, checkpoints: Record<string, Checkpoint>) => void;
  /** Rows go straight into the statements. */
  private readonly sink: RowSink;

  private constructor(private readonly db: Database.Database) {
    this.upsertAccount = db.prepare<[string, string, string, number, string]>(
      `INSERT INTO accounts (id, position, currency, transaction_count, doc) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET position = excluded.position, currency = excluded.currency,
         transaction_count = excluded.transaction_count, doc = excluded.doc
       WHERE excluded.position > accounts.position`,
    );
    this.upsertTransaction = db.prepare<[number, string, string, string, string, string, bigint, number, string, string]>(
      `INSERT INTO transactions (created_seq, id, position, created_at, kind, status, amount_minor, large, currency, doc)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET
         position = excluded.position, created_at = excluded.created_at,
         kind = excluded.kind, status = excluded.status, amount_minor = excluded.amount_minor, large = excluded.large,
         currency = excluded.currency, doc = excluded.doc
       WHERE excluded.position > transactions.position`,
    );
    // One position is one balance, so a replayed balance row is simply skipped; a transaction's accounts never change.
    this.transactionAccountRows = new RowBuffer(db, 'INSERT OR IGNORE INTO transaction_accounts (account_id, created_seq) VALUES', 2);
    this.balanceHistoryRows = new RowBuffer(db, 'INSERT OR IGNORE INTO balance_history (account_id, at_ms, seq, balance) VALUES', 4);
    this.upsertCheckpoint = db.prepare<[string, string, string, number]>(
      `INSERT INTO checkpoints (projection, position, store_position, updated_at_ms) VALUES (?, ?, ?, ?)
       ON CONFLICT (projection) DO UPDATE SET position = excluded.position, store_position = excluded.store_position,
         updated_at_ms = excluded.updated_at_ms`,
    );
    this.selectCheckpoint = db.prepare<[string], CheckpointRow>(
      'SELECT position, store_position, updated_at_ms FROM checkpoints WHERE projection = ?',
    );
    // The ids travel as one JSON array, so one statement serves any number of ids (the dataloader's batches).
    this.selectAccountsByIds = db.prepare<[string], { id: string; doc: string }>(
      'SELECT id, doc FROM accounts WHERE id IN (SELECT value FROM json_each(?))',
    );
    this.selectTransactionsByIds = db.prepare<[string], TransactionRow>(
      `SELECT ${TRANSACTION_COLUMNS} FROM transactions t WHERE t.id IN (SELECT value FROM json_each(?))`,
    );
    this.selectAccountsAfter = db.prepare<[string, number], DocRow>('SELECT doc FROM accounts WHERE id > ? ORDER BY id LIMIT ?');
    this.selectAccountsFirst = db.prepare<[number], DocRow>('SELECT doc FROM accounts ORDER BY id LIMIT ?');
    this.countAccounts = db.prepare<[], CountRow>('SELECT COUNT(*) AS n FROM accounts');
    this.selectBalanceAt = db.prepare<[string, number], { balance: string }>(
      `SELECT balance FROM balance_history WHERE account_id = ? AND at_ms <= ?
       ORDER BY at_ms DESC, seq DESC LIMIT 1`,
    );
    // Counters are read with exact integers and written back summed in JS, so an overflow is an error, not a float.
    this.selectCurrencyTotals = db
      .prepare<[string], CurrencyTotalsRow>('SELECT currency, position, account_count, transaction_count, total_balance FROM currency_totals WHERE currency = ?')
      .safeIntegers(true);
    this.upsertCurrencyTotals = db.prepare<[string, string, bigint, bigint, string]>(
      `INSERT INTO currency_totals (currency, position, account_count, transaction_count, total_balance) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (currency) DO UPDATE SET position = excluded.position, account_count = excluded.account_count,
         transaction_count = excluded.transaction_count, total_balance = excluded.total_balance`,
    );
    this.selectVolumeBucket = db
      .prepare<[string, string, string], VolumeBucketRow>('SELECT currency, interval, start, position, count, amount FROM volume_buckets WHERE currency = ? AND interval = ? AND start = ?')
      .safeIntegers(true);
    this.upsertVolumeBucket = db.prepare<[string, string, string, string, bigint, string]>(
      `INSERT INTO volume_buckets (currency, interval, start, position, count, amount) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (currency, interval, start) DO UPDATE SET position = excluded.position, count = excluded.count, amount = excluded.amount`,
    );
    this.selectVolumeBuckets = db
      .prepare<[string, string, string, string, number], VolumeBucketRow>(
        `SELECT currency, interval, start, position, count, amount FROM volume_buckets
         WHERE currency = ? AND interval = ? AND start >= ? AND start < ? ORDER BY start LIMIT ?`,
      )
      .safeIntegers(true);
    this.selectMostActive = db.prepare<[string, number], DocRow>(
      'SELECT doc FROM accounts WHERE currency = ? ORDER BY transaction_count DESC, id ASC LIMIT ?',
    );
    this.sink = {
      account: (id, position, currency, transactionCount, doc) => {
        this.upsertAccount.run(id, position, currency, transactionCount, doc);
      },
      transaction: (createdSeq, id, position, createdAt, kind, status, amountMinor, large, currency, doc, firstAccountId, secondAccountId) => {
        // Positional parameters: binding a named-parameter object costs a property lookup per column per row.
        const applied = this.upsertTransaction.run(createdSeq, id, position, createdAt, kind, status, amountMinor, large, currency, doc);
        // A transaction's accounts and createdPosition never change: its index rows are written once.
        if (applied.changes > 0) {
          if (firstAccountId !== null) this.transactionAccountRows.add(firstAccountId, createdSeq);
          if (secondAccountId !== null) this.transactionAccountRows.add(secondAccountId, createdSeq);
        }
      },
      counter: (counter) => (counter.collection === 'currencyTotals' ? this.applyCurrencyTotals(counter) : this.applyVolumeBucket(counter)),
      balance: (accountId, atMs, seq, balance) => this.balanceHistoryRows.add(accountId, atMs, seq, balance),
    };
    this.applyBatchTransaction = db.transaction((rows: (sink: RowSink) => void, checkpoints: Record<string, Checkpoint>) => {
      try {
        rows(this.sink);
        // Nothing in the batch reads these tables, so their rows may go in after the other writes.
        this.transactionAccountRows.flush();
        this.balanceHistoryRows.flush();
      } finally {
        // A failed batch rolls back: none of its rows may leak into the next one.
        this.transactionAccountRows.discard();
        this.balanceHistoryRows.discard();
      }
      for (const [projection, checkpoint] of Object.entries(checkpoints)) {
        assertPosition(checkpoint.position, `checkpoint of "${projection}"`);
        this.upsertCheckpoint.run(projection, checkpoint.position, checkpoint.storePosition, checkpoint.updatedAtMs);
      }
    });
  }

  /** `checkpointedElsewhere`: a WalCheckpointer keeps the WAL short; this connection checkpoints only as a backstop. */
  static open(filePath: string, options: { checkpointedElsewhere?: boolean } = {}): SqliteReadModelStore {
    mkdirSync(dirname(filePath), { recursive: true });
    const db = new Database(filePath);
    try {
      db.pragma('journal_mode = WAL');
      // NORMAL in WAL mode may lose the last commits on power loss (never corrupts). That is acceptable
      // here and only here: read models are derived and the projections re-apply from their checkpoint,
      // which commits in the same transaction as the documents, so both go back together.
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      // Projections write in large batches: a bigger page cache and rarer WAL checkpoints pay off.
      db.pragma(`cache_size = -${CACHE_KIB}`);
      db.pragma(`wal_autocheckpoint = ${options.checkpointedElsewhere ? WAL_AUTOCHECKPOINT_BACKSTOP_PAGES : WAL_AUTOCHECKPOINT_PAGES}`);
      // The WAL file is reused, not shrunk, after a checkpoint: cut back to this whenever it starts over.
      db.pragma(`journal_size_limit = ${WAL_FILE_BYTES_KEPT}`);
      const version = db.pragma('user_version', { simple: true });
      if (version !== 0 && version !== SCHEMA_VERSION) {
        throw new Error(`read-model database ${filePath} has schema version ${String(version)}, expected ${SCHEMA_VERSION}: delete it to rebuild`);
      }
      db.exec(SCHEMA);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
      return new SqliteReadModelStore(db);
    } catch (error) {
      db.close();
      throw error;
    }
  }

  async applyBatch(writes: ReadModelWrite[], checkpoints: Record<string, Checkpoint>): Promise<void> {
    this.applyBatchTransaction((sink) => writeRows(writes, sink), checkpoints);
  }

  /**
   * applyBatch of writes already made rows by prepareWrites, perhaps on another thread (a rebuild
   * reads and projects on one thread while this one writes): the same transaction, the same effect.
   */
  async applyPreparedBatch(prepared: PreparedWrites, checkpoints: Record<string, Checkpoint>): Promise<void> {
    this.applyBatchTransaction((sink) => replayPrepared(prepared, sink), checkpoints);
  }

  async loadCheckpoint(projection: string): Promise<Checkpoint | null> {
    const row = this.selectCheckpoint.get(projection);
    if (!row) return null;
    return { position: row.position, storePosition: row.store_position, updatedAtMs: row.updated_at_ms };
  }

  async getAccounts(ids: readonly string[]): Promise<Array<AccountDoc | null>> {
    return this.getByIds<AccountDoc>(this.selectAccountsByIds, ids);
  }

  async listAccounts(afterId: string | null, limit: number): Promise<Page<AccountDoc>> {
    assertLimit(limit);
    // One read transaction, so the count and the page see the same snapshot.
    return this.db.transaction(() => {
      const rows = afterId === null ? this.selectAccountsFirst.all(limit + 1) : this.selectAccountsAfter.all(afterId, limit + 1);
      const totalCount = this.countAccounts.get()?.n ?? 0;
      return toPage<AccountDoc>(rows, limit, totalCount);
    })();
  }

  async getTransactions(ids: readonly string[]): Promise<Array<TransactionDoc | null>> {
    if (ids.length === 0) return [];
    const rowById = new Map<string, TransactionRow>();
    for (const row of this.selectTransactionsByIds.all(JSON.stringify(ids))) rowById.set(row.id, row);
    // Built per slot: a repeated id gets its own object, so no caller can alter another's copy.
    return ids.map((id) => {
      const row = rowById.get(id);
      return row === undefined ? null : transactionDoc(row);
    });
  }

  async findTransactions(query: TransactionQuery, beforeCreatedPosition: string | null, limit: number): Promise<Page<TransactionDoc>> {
    assertLimit(limit);
    if (beforeCreatedPosition !== null && !isPosition(beforeCreatedPosition)) {
      throw new Error(`invalid transaction cursor "${beforeCreatedPosition}"`);
    }
    // Stored amounts are int64 (asserted on write): a larger minimum matches nothing, a smaller one everything.
    if (query.minAmount != null && query.minAmount > INT64_MAX) return { docs: [], totalCount: 0, hasMore: false };

    const where: string[] = [];
    const params: Record<string, unknown> = {};
    let from = 'transactions t';
    let orderColumn = 't.created_seq';
    if (query.accountId != null) {
      // Driven by the per-account index, which is already in feed order.
      from = 'transaction_accounts ta JOIN transactions t ON t.created_seq = ta.created_seq';
      orderColumn = 'ta.created_seq';
      where.push('ta.account_id = @accountId');
      params.accountId = query.accountId;
    }
    // IN lists are bound as one JSON array, so the SQL text (and the cached statement) does not depend on their length.
    if (query.kinds != null) {
      where.push('t.kind IN (SELECT value FROM json_each(@kinds))');
      params.kinds = JSON.stringify(query.kinds);
    }
    if (query.statuses != null) {
      where.push('t.status IN (SELECT value FROM json_each(@statuses))');
      params.statuses = JSON.stringify(query.statuses);
    }
    if (query.minAmount != null) {
      where.push('t.amount_minor >= @minAmount');
      params.minAmount = query.minAmount < INT64_MIN ? INT64_MIN : query.minAmount;
    }
    if (query.from != null) {
      where.push('t.created_at >= @from');
      params.from = canonicalInstant(query.from, 'from');
    }
    if (query.to != null) {
      where.push('t.created_at <= @to');
      params.to = canonicalInstant(query.to, 'to');
    }
    // A literal, not a parameter: only then can SQLite use the partial index of large transactions.
    if (query.large != null) where.push(query.large ? 't.large = 1' : 't.large = 0');
    if (query.currency != null) {
      where.push('t.currency = @currency');
      params.currency = query.currency;
    }
    const matching = where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '';
    const count = this.findStatement(`SELECT COUNT(*) AS n FROM ${from}${matching}`);
    if (beforeCreatedPosition !== null) {
      where.push(`${orderColumn} < @before`);
      params.before = createdSeqBound(beforeCreatedPosition);
    }
    const paged = where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '';
    const select = this.findStatement(`SELECT ${TRANSACTION_COLUMNS} FROM ${from}${paged} ORDER BY ${orderColumn} DESC LIMIT @limitPlusOne`);

    return this.db.transaction(() => {
      // better-sqlite3 ignores named parameters a statement does not use, so the count can take @before along.
      const totalCount = (count.get(params) as CountRow | undefined)?.n ?? 0;
      const rows = select.all({ ...params, limitPlusOne: limit + 1 }) as TransactionRow[];
      return { docs: rows.slice(0, limit).map(transactionDoc), totalCount, hasMore: rows.length > limit };
    })();
  }

  async transactionsChangedBetween(query: ChangedTransactionsQuery, afterPosition: string, upToPosition: string, limit: number): Promise<TransactionDoc[]> {
    assertLimit(limit);
    assertPosition(afterPosition, 'catch-up start');
    assertPosition(upToPosition, 'catch-up end');
    if (query.minAmount != null && query.minAmount > INT64_MAX) return [];
    const where = ['t.position > @after', 't.position <= @upTo'];
    const params: Record<string, unknown> = { after: afterPosition, upTo: upToPosition, limit };
    let from = 'transactions t';
    if (query.accountId != null) {
      from = 'transaction_accounts ta JOIN transactions t ON t.created_seq = ta.created_seq';
      where.push('ta.account_id = @accountId');
      params.accountId = query.accountId;
    }
    if (query.minAmount != null) {
      where.push('t.amount_minor >= @minAmount');
      params.minAmount = query.minAmount < INT64_MIN ? INT64_MIN : query.minAmount;
    }
    const select = this.findStatement(`SELECT ${TRANSACTION_COLUMNS} FROM ${from} WHERE ${where.join(' AND ')} ORDER BY t.position LIMIT @limit`);
    return (select.all(params) as TransactionRow[]).map(transactionDoc);
  }

  async balanceAt(accountId: string, at: string): Promise<string | null> {
    const row = this.selectBalanceAt.get(accountId, epochMs(at, 'at'));
    return row ? row.balance : null;
  }

  async currencyTotals(currency: string): Promise<CurrencyTotalsDoc | null> {
    const row = this.selectCurrencyTotals.get(currency);
    if (!row) return null;
    return {
      _id: row.currency,
      currency: row.currency,
      accountCount: safeCount(row.account_count, `accountCount of ${currency}`),
      transactionCount: safeCount(row.transaction_count, `transactionCount of ${currency}`),
      totalBalance: row.total_balance,
      position: row.position,
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
    // '' sorts before and '~' after every canonical instant: the open ends of the range.
    const from = fromStart === null ? '' : canonicalInstant(fromStart, 'fromStart');
    const to = toStart === null ? '~' : canonicalInstant(toStart, 'toStart');
    const rows = this.selectVolumeBuckets.all(currency, interval, from, to, limit + 1);
    return { docs: rows.slice(0, limit).map(volumeBucketDoc), hasMore: rows.length > limit };
  }

  async mostActiveAccounts(currency: string, limit: number): Promise<AccountDoc[]> {
    assertLimit(limit);
    return this.selectMostActive.all(currency, limit).map((row) => JSON.parse(row.doc) as AccountDoc);
  }

  async reset(collections: readonly ReadModelCollection[], projections: readonly string[]): Promise<void> {
    const tables: Record<ReadModelCollection, string[]> = {
      accounts: ['accounts'],
      transactions: ['transactions', 'transaction_accounts'],
      balanceHistory: ['balance_history'],
      currencyTotals: ['currency_totals'],
      volumeBuckets: ['volume_buckets'],
    };
    this.db.transaction(() => {
      const deleteCheckpoint = this.db.prepare('DELETE FROM checkpoints WHERE projection = ?');
      for (const projection of projections) deleteCheckpoint.run(projection);
      for (const collection of collections) {
        const names = tables[collection];
        if (!names) throw new Error(`unknown read-model collection "${String(collection)}"`);
        for (const table of names) this.db.exec(`DELETE FROM ${table}`);
      }
    })();
  }

  /**
   * Drops the collections' secondary indexes and turns syncing off. A process crash (SIGKILL) loses
   * nothing committed (the writes are in the OS's cache); a power loss mid-rebuild may leave the file
   * unusable, which for derived read models means: delete it and rebuild.
   */
  async beginBulkLoad(collections: readonly ReadModelCollection[]): Promise<void> {
    for (const collection of collections) {
      const indexes = BULK_LOAD_INDEXES[collection];
      if (!indexes) throw new Error(`unknown read-model collection "${String(collection)}"`);
      for (const index of indexes) this.db.exec(`DROP INDEX IF EXISTS ${index}`);
    }
    // A rollback journal instead of the WAL: pages added to emptied tables have no old content to
    // journal, so the data is written once, straight into the file, instead of to the WAL and again
    // at each checkpoint. A SIGKILL mid-chunk is rolled back from the journal at the next open. Only
    // possible with no other connection on the file; otherwise the WAL stays (still correct).
    try {
      this.db.pragma('journal_mode = TRUNCATE');
    } catch (error) {
      if ((error as { code?: string }).code !== 'SQLITE_BUSY') throw error;
    }
    this.db.pragma('synchronous = OFF');
    this.db.pragma(`cache_size = -${BULK_LOAD_CACHE_KIB}`);
  }

  /** Builds the dropped indexes, restores syncing and checkpoints the WAL into the file with an fsync. */
  async endBulkLoad(collections: readonly ReadModelCollection[]): Promise<void> {
    for (const collection of collections) {
      if (!BULK_LOAD_INDEXES[collection]) throw new Error(`unknown read-model collection "${String(collection)}"`);
    }
    // FULL from here on: the index build's commit fsyncs the file, and with it every page the load
    // wrote unsynced; the checkpoint does the same when the load stayed in WAL mode (SQLITE_BUSY above).
    this.db.pragma('synchronous = FULL');
    this.db.exec(SCHEMA);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('wal_checkpoint(TRUNCATE)');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma(`cache_size = -${CACHE_KIB}`);
  }

  /** The names of the secondary indexes present (tests check what a bulk load drops and restores). */
  indexNames(): string[] {
    return (this.db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name").all() as Array<{ name: string }>).map((row) => row.name);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  private applyCurrencyTotals(counter: PreparedCounter): void {
    const currency = counter.keys[0]!;
    const row = this.selectCurrencyTotals.get(currency);
    const total = flatCounterTotal(counter.steps, row?.position ?? null);
    if (!total) return;
    const [accountCount, transactionCount, totalBalance] = total.add as [bigint, bigint, bigint];
    this.upsertCurrencyTotals.run(
      currency,
      total.position,
      checkedInt64((row?.account_count ?? 0n) + accountCount, `accountCount of ${counter.id}`),
      checkedInt64((row?.transaction_count ?? 0n) + transactionCount, `transactionCount of ${counter.id}`),
      String(BigInt(row?.total_balance ?? '0') + totalBalance),
    );
  }

  private applyVolumeBucket(counter: PreparedCounter): void {
    const [currency, interval, start] = counter.keys as [string, string, string];
    const row = this.selectVolumeBucket.get(currency, interval, start);
    const total = flatCounterTotal(counter.steps, row?.position ?? null);
    if (!total) return;
    const [count, amount] = total.add as [bigint, bigint];
    this.upsertVolumeBucket.run(
      currency,
      interval,
      start,
      total.position,
      checkedInt64((row?.count ?? 0n) + count, `count of ${counter.id}`),
      String(BigInt(row?.amount ?? '0') + amount),
    );
  }

  private getByIds<T>(statement: Database.Statement<[string], { id: string; doc: string }>, ids: readonly string[]): Array<T | null> {
    if (ids.length === 0) return [];
    const docById = new Map<string, string>();
    for (const row of statement.all(JSON.stringify(ids))) docById.set(row.id, row.doc);
    // Parsed per slot: a repeated id gets its own object, so no caller can alter another's copy.
    return ids.map((id) => {
      const doc = docById.get(id);
      return doc === undefined ? null : (JSON.parse(doc) as T);
    });
  }

  private findStatement(sql: string): Database.Statement<[Record<string, unknown>], unknown> {
    let statement = this.findStatements.get(sql);
    if (!statement) {
      if (this.findStatements.size >= FIND_STATEMENTS_MAX) throw new Error(`invariant: more than ${FIND_STATEMENTS_MAX} find statement shapes`);
      statement = this.db.prepare<[Record<string, unknown>]>(sql);
      this.findStatements.set(sql, statement);
    }
    return statement;
  }
}

/** Values per row in PreparedWrites' flat arrays. */
const ACCOUNT_ROW = 5;
const TRANSACTION_ROW = 12;
const BALANCE_ROW = 4;
/** The fields of each counter, in the order its PreparedCounter's steps hold them. */
const COUNTER_FIELDS = {
  currencyTotals: ['accountCount', 'transactionCount', 'totalBalance'],
  volumeBuckets: ['count', 'amount'],
} as const;

/** One counter document's increment, its steps flat (fields in COUNTER_FIELDS order). */
export interface PreparedCounter {
  collection: CounterCollection;
  id: string;
  /** currencyTotals: [currency]; volumeBuckets: [currency, interval, canonical start]. */
  keys: string[];
  steps: FlatCounterSteps;
}

/**
 * A batch's writes as this store's rows, checked and serialized (prepareWrites): flat arrays of
 * strings and numbers, so that a rebuild can make them on one thread and hand them to the writing
 * one for little more than the copy of their bytes.
 */
export interface PreparedWrites {
  /** ACCOUNT_ROW values per account: id, position, currency, transaction_count, doc. */
  accounts: Array<string | number>;
  /** TRANSACTION_ROW values per transaction: the ten columns of the transactions table, then its first and second account id (null when absent). */
  transactions: Array<string | number | bigint | null>;
  /** BALANCE_ROW values per row: account_id, at_ms, seq, balance. */
  balanceHistory: Array<string | number>;
  counters: PreparedCounter[];
}

/** Where writeRows puts each row of a batch: the store's statements (applyBatch), or PreparedWrites (prepareWrites). */
interface RowSink {
  account(id: string, position: string, currency: string, transactionCount: number, doc: string): void;
  transaction(
    createdSeq: number,
    id: string,
    position: string,
    createdAt: string,
    kind: string,
    status: string,
    amountMinor: bigint,
    large: number,
    currency: string,
    doc: string,
    firstAccountId: string | null,
    secondAccountId: string | null,
  ): void;
  counter(counter: PreparedCounter): void;
  balance(accountId: string, atMs: number, seq: number, balance: string): void;
}

/**
 * The rows SqliteReadModelStore writes for `writes`, into `sink`, in their order; throws on a write
 * that breaks the store's rules. Pure apart from the sink: runs on any thread.
 */
function writeRows(writes: readonly ReadModelWrite[], sink: RowSink): void {
  for (const write of writes) {
    switch (write.collection) {
      case 'accounts': {
        const doc = write.doc;
        assertDocId(doc._id, doc.id, 'account');
        assertPosition(doc.position, `account ${doc._id}`);
        sink.account(doc._id, doc.position, doc.currency, doc.transactionCount, JSON.stringify(doc));
        break;
      }
      case 'transactions': {
        const doc = write.doc;
        assertDocId(doc._id, doc.id, 'transaction');
        assertPosition(doc.position, `transaction ${doc._id}`);
        assertPosition(doc.createdPosition, `transaction ${doc._id} createdPosition`);
        assertTransactionAccounts(doc.accountIds, doc._id);
        sink.transaction(
          createdSeqOf(doc.createdPosition),
          doc._id,
          doc.position,
          canonicalInstant(doc.createdAt, `transaction ${doc._id} createdAt`),
          doc.kind,
          doc.status,
          int64Amount(doc.amount, `transaction ${doc._id} amount`),
          doc.large ? 1 : 0,
          doc.currency,
          slimTransactionJson(doc),
          doc.accountIds[0] ?? null,
          doc.accountIds[1] ?? null,
        );
        break;
      }
      case 'currencyTotals': {
        const increment = write.increment;
        assertDocId(increment._id, increment.keys.currency, 'currency totals');
        sink.counter(preparedCounter('currencyTotals', increment, [increment.keys.currency]));
        break;
      }
      case 'volumeBuckets': {
        const { _id, keys } = write.increment;
        const start = canonicalInstant(keys.start, `volume bucket ${_id} start`);
        assertDocId(_id, volumeBucketId(keys.currency, keys.interval, start), 'volume bucket');
        sink.counter(preparedCounter('volumeBuckets', write.increment, [keys.currency, keys.interval, start]));
        break;
      }
      case 'balanceHistory': {
        const doc = write.doc;
        assertDocId(doc._id, `${doc.accountId}:${doc.position}`, 'balance history');
        assertPosition(doc.position, `balance history ${doc._id}`);
        sink.balance(doc.accountId, epochMs(doc.at, `balance history ${doc._id} at`), createdSeqOf(doc.position), doc.balance);
        break;
      }
      default: {
        const unknownWrite: never = write;
        throw new Error(`unknown read-model collection in ${JSON.stringify(unknownWrite)}`);
      }
    }
  }
}

/**
 * The rows SqliteReadModelStore writes for `writes` (see writeRows), gathered for applyPreparedBatch,
 * perhaps on another thread; throws, before anything is written, on a write that breaks the store's rules.
 */
export function prepareWrites(writes: readonly ReadModelWrite[]): PreparedWrites {
  const prepared: PreparedWrites = { accounts: [], transactions: [], balanceHistory: [], counters: [] };
  writeRows(writes, {
    account(id, position, currency, transactionCount, doc) {
      prepared.accounts.push(id, position, currency, transactionCount, doc);
    },
    transaction(createdSeq, id, position, createdAt, kind, status, amountMinor, large, currency, doc, firstAccountId, secondAccountId) {
      prepared.transactions.push(createdSeq, id, position, createdAt, kind, status, amountMinor, large, currency, doc, firstAccountId, secondAccountId);
    },
    counter(counter) {
      prepared.counters.push(counter);
    },
    balance(accountId, atMs, seq, balance) {
      prepared.balanceHistory.push(accountId, atMs, seq, balance);
    },
  });
  return prepared;
}

/** Puts prepared rows into the sink, table by table, each in its order (the tables are independent). */
function replayPrepared(prepared: PreparedWrites, sink: RowSink): void {
  const a = prepared.accounts;
  for (let i = 0; i < a.length; i += ACCOUNT_ROW) sink.account(a[i] as string, a[i + 1] as string, a[i + 2] as string, a[i + 3] as number, a[i + 4] as string);
  const t = prepared.transactions;
  for (let i = 0; i < t.length; i += TRANSACTION_ROW) {
    sink.transaction(
      t[i] as number,
      t[i + 1] as string,
      t[i + 2] as string,
      t[i + 3] as string,
      t[i + 4] as string,
      t[i + 5] as string,
      t[i + 6] as bigint,
      t[i + 7] as number,
      t[i + 8] as string,
      t[i + 9] as string,
      t[i + 10] as string | null,
      t[i + 11] as string | null,
    );
  }
  for (const counter of prepared.counters) sink.counter(counter);
  const b = prepared.balanceHistory;
  for (let i = 0; i < b.length; i += BALANCE_ROW) sink.balance(b[i] as string, b[i + 1] as number, b[i + 2] as number, b[i + 3] as string);
}

function preparedCounter<C extends CounterCollection>(collection: C, increment: CounterIncrement<C>, keys: string[]): PreparedCounter {
  const steps = flattenCounterSteps(increment, COUNTER_FIELDS[collection]);
  const last = steps.positions.at(-1);
  if (last !== undefined) assertPosition(last, `${collection === 'currencyTotals' ? 'currency totals' : 'volume bucket'} ${increment._id}`);
  return { collection, id: increment._id, keys, steps };
}

/**
 * A position as one integer that sorts the same way (log index × 10^6 + event index), for the integer
 * keys of the transactions table and the per-account history. Exact while the log index stays below
 * 9 × 10^9 (2^53 / 10^6); beyond that the store refuses to write rather than mis-order.
 */
const CREATED_SEQ_INDEX_MAX = Math.floor(Number.MAX_SAFE_INTEGER / EVENTS_PER_ENTRY_MAX) - 1;
function createdSeqOf(position: string): number {
  const { index, eventIndex } = parsePosition(position);
  if (index > CREATED_SEQ_INDEX_MAX) throw new Error(`position ${position}: log index beyond ${CREATED_SEQ_INDEX_MAX}, which the embedded read models cannot key exactly`);
  return index * EVENTS_PER_ENTRY_MAX + eventIndex;
}

/** The position createdSeqOf made an integer of. */
function positionOfSeq(seq: number): string {
  return formatPosition(Math.floor(seq / EVENTS_PER_ENTRY_MAX), seq % EVENTS_PER_ENTRY_MAX);
}

/** A cursor as a created_seq bound: one beyond every storable key (which all lie below it) is the largest safe integer. */
function createdSeqBound(position: string): number {
  return parsePosition(position).index > CREATED_SEQ_INDEX_MAX ? Number.MAX_SAFE_INTEGER : createdSeqOf(position);
}

interface CurrencyTotalsRow {
  currency: string;
  position: string;
  account_count: bigint;
  transaction_count: bigint;
  total_balance: string;
}

interface VolumeBucketRow {
  currency: string;
  interval: VolumeInterval;
  start: string;
  position: string;
  count: bigint;
  amount: string;
}

/** Rows per multi-row INSERT: one statement run per row costs more than binding the row itself. */
const ROWS_PER_INSERT = 128;

/**
 * Rows of one INSERT OR IGNORE, gathered and sent ROWS_PER_INSERT per prepared multi-row statement
 * (the rest one by one at flush). Same effect as one statement per row, in the same order; only
 * for tables whose rows nothing reads in the same transaction before the flush.
 */
class RowBuffer {
  private readonly single: Database.Statement<unknown[]>;
  private readonly multi: Database.Statement<unknown[]>;
  private readonly values: unknown[] = [];

  constructor(db: Database.Database, insert: string, private readonly columns: number) {
    const row = `(${new Array<string>(columns).fill('?').join(', ')})`;
    this.single = db.prepare(`${insert} ${row}`);
    this.multi = db.prepare(`${insert} ${new Array<string>(ROWS_PER_INSERT).fill(row).join(', ')}`);
  }

  add(...row: unknown[]): void {
    if (row.length !== this.columns) throw new Error(`invariant: a row of ${row.length} values for ${this.columns} columns`);
    for (const value of row) this.values.push(value);
    if (this.values.length === this.columns * ROWS_PER_INSERT) {
      this.multi.run(this.values);
      this.values.length = 0;
    }
  }

  flush(): void {
    for (let i = 0; i < this.values.length; i += this.columns) this.single.run(this.values.slice(i, i + this.columns));
    this.values.length = 0;
  }

  discard(): void {
    this.values.length = 0;
  }
}

function volumeBucketDoc(row: VolumeBucketRow): VolumeBucketDoc {
  return {
    _id: volumeBucketId(row.currency, row.interval, row.start),
    currency: row.currency,
    interval: row.interval,
    start: row.start,
    count: safeCount(row.count, `count of bucket ${row.start}`),
    amount: row.amount,
    position: row.position,
  };
}

function safeCount(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < 0n) throw new Error(`invariant: ${what} is ${value}`);
  return Number(value);
}

function checkedInt64(value: bigint, what: string): bigint {
  if (!isInt64(value)) throw new Error(`invariant: ${what} ${value} does not fit in a signed 64-bit integer`);
  return value;
}

/** What reads select of a transaction: its document and the columns that complete it (transactionDoc). */
const TRANSACTION_COLUMNS = 't.created_seq, t.id, t.position, t.kind, t.status, t.large, t.currency, t.doc';
interface TransactionRow {
  created_seq: number;
  id: string;
  position: string;
  kind: TransactionDoc['kind'];
  status: TransactionDoc['status'];
  large: number;
  currency: string;
  doc: string;
}

/**
 * A transaction's stored JSON: the document without the fields its columns hold exactly (ids,
 * positions, kind, status, currency, large), which transactionDoc puts back. createdAt and amount stay:
 * their columns hold a canonical instant and an integer, not necessarily the document's own text.
 */
type SlimTransaction = Omit<TransactionDoc, '_id' | 'id' | 'position' | 'createdPosition' | 'kind' | 'status' | 'currency' | 'large'>;
function slimTransactionJson(doc: TransactionDoc): string {
  const { _id, id, position, createdPosition, kind, status, currency, large, ...rest } = doc;
  return JSON.stringify(rest satisfies SlimTransaction);
}

function transactionDoc(row: TransactionRow): TransactionDoc {
  const rest = JSON.parse(row.doc) as SlimTransaction;
  return { ...rest, id: row.id, kind: row.kind, status: row.status, currency: row.currency, createdPosition: positionOfSeq(row.created_seq), large: row.large === 1, _id: row.id, position: row.position };
}

function toPage<T>(rows: DocRow[], limit: number, totalCount: number): Page<T> {
  return {
    docs: rows.slice(0, limit).map((row) => JSON.parse(row.doc) as T),
    totalCount,
    hasMore: rows.length > limit,
  };
}

/**
 * Instants compare as strings only in one form: "…T10:00:00Z" sorts after "…T10:00:00.500Z" although
 * it is earlier. Columns and query bounds both go through Date's ISO form (millisecond precision,
 * which is what the ledger records).
 */
function canonicalInstant(value: string, what: string): string {
  // Both conversions go through the decider's bounded memos: one ledger entry's events share one instant.
  return isoTime(epochMs(value, what));
}

/** An instant as epoch milliseconds, the precision the ledger records (the same instant canonicalInstant gives). */
function epochMs(value: string, what: string): number {
  const ms = parseEpochMs(value);
  if (Number.isNaN(ms)) throw new Error(`${what} must be an ISO 8601 date-time, got "${value}"`);
  return ms;
}
