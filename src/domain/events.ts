import type { JsonObject } from './commands';

export type TransactionKind = 'DEPOSIT' | 'WITHDRAWAL' | 'TRANSFER';
export type TransactionStatus = 'PENDING' | 'SETTLED' | 'CANCELLED' | 'EXPIRED';

/** A transaction as recorded in events and payloads. Amounts are digit strings, times ISO 8601 UTC. */
export interface TransactionRecord {
  id: string;
  kind: TransactionKind;
  status: TransactionStatus;
  amount: string;
  currency: string;
  fromAccountId: string | null;
  toAccountId: string | null;
  description: string | null;
  metadata: JsonObject | null;
  createdAt: string;
  updatedAt: string;
  /** Position of the event that recorded the transaction: creation order, stable across status changes. */
  createdPosition: string;
  /** Hold deadline for a pending transaction with a timeout. */
  expiresAt: string | null;
  large: boolean;
}

/** An account's state right after an event, so projections can set it without reading anything. */
export interface AccountRecord {
  id: string;
  currency: string;
  balance: string;
  availableBalance: string;
  overdraftLimit: string;
  createdAt: string;
  lastTransactionAt: string | null;
  transactionCount: number;
  metadata: JsonObject | null;
}

export type LedgerEvent =
  | { type: 'AccountOpened'; data: { account: AccountRecord } }
  | { type: 'TransactionRecorded'; data: { transaction: TransactionRecord; accounts: AccountRecord[] } }
  | { type: 'TransactionSettled'; data: { transaction: TransactionRecord; accounts: AccountRecord[] } }
  | { type: 'TransactionCancelled'; data: { transaction: TransactionRecord; accounts: AccountRecord[] } }
  | { type: 'TransactionExpired'; data: { transaction: TransactionRecord; accounts: AccountRecord[] } }
  | { type: 'IdempotencyKeyRecorded'; data: IdempotencyRecord };

export type LedgerEventType = LedgerEvent['type'];

export const LEDGER_EVENT_TYPES: readonly LedgerEventType[] = [
  'AccountOpened',
  'TransactionRecorded',
  'TransactionSettled',
  'TransactionCancelled',
  'TransactionExpired',
  'IdempotencyKeyRecorded',
];

/**
 * What a key remembers of its first command. Small and bounded (see idempotency.ts): the first
 * result is rebuilt from it on a same-input retry, not kept.
 */
export type IdempotencyRecord = CompactIdempotencyRecord | LegacyIdempotencyRecord;

interface IdempotencyRecordCommon {
  key: string;
  /** SHA-256 (hex) of the canonical JSON of the command's type and input. */
  fingerprint: string;
  recordedAtMs: number;
}

/** An account's changing fields as the first command read them: [id, balance, availableBalance, transactionCount, lastTransactionAtMs]. */
export type AccountBefore = [id: string, balance: string, availableBalance: string, transactionCount: number, lastTransactionAtMs: number | null];

export interface CompactIdempotencyRecord extends IdempotencyRecordCommon {
  /** Log index of the first command's entry. */
  index: number;
  /** Place of the first command's first event among its entry's events (due expiries come before). */
  eventIndexBase: number;
  /** The ledger's transaction sequence before the first command. */
  transactionSeq: number;
  /** The accounts the first command read that existed then, in read order. */
  accounts: AccountBefore[];
  /** The holds it read (a settle or cancel reads one), as they were. */
  holds: TransactionRecord[];
}

/** A record from a version-1 snapshot: it kept the whole first result. */
export interface LegacyIdempotencyRecord extends IdempotencyRecordCommon {
  outcome: SuccessOutcome;
}

/** The authoritative post-command state handed back to the proposer. `position` is the command's last event. */
export type SuccessOutcome =
  | { type: 'OpenAccount'; account: AccountRecord; position: string }
  | { type: 'Deposit' | 'Withdraw'; account: AccountRecord; transaction: TransactionWithPosition; position: string }
  | { type: 'Transfer'; from: AccountRecord; to: AccountRecord; transaction: TransactionWithPosition; position: string }
  | { type: 'SettleTransaction' | 'CancelTransaction'; transaction: TransactionWithPosition; position: string }
  | { type: 'ExecuteBatch'; transactions: TransactionWithPosition[]; accounts: AccountRecord[]; position: string }
  | { type: 'Tick'; position: string | null };

export type TransactionWithPosition = TransactionRecord & { position: string };
