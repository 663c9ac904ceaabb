/**
 * The read-model port. Read models are documents keyed by `_id`; every write carries the ledger
 * position of the event that produced it and is applied only when that position is newer than the
 * document's own (a per-document guard), so replaying any event twice changes nothing and no
 * multi-document transaction is needed (MongoDB implements it natively with filtered upserts).
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

/** The settled balance of one account right after one event: `balanceAt` reads the last one at or before an instant. */
export interface BalanceHistoryDoc {
  /** `${accountId}:${position}` */
  _id: string;
  accountId: string;
  at: string;
  balance: string;
  position: string;
}

export type ReadModelWrite =
  | { collection: 'accounts'; doc: AccountDoc }
  | { collection: 'transactions'; doc: TransactionDoc }
  | { collection: 'balanceHistory'; doc: BalanceHistoryDoc };

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

  close(): Promise<void>;
}

/** Query limits: every list has a maximum. */
export const PAGE_SIZE_MAX = 500;
