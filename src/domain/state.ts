import type { JsonObject } from './commands';
import type { AccountRecord, IdempotencyRecord, TransactionRecord } from './events';

/** An account as the decider holds it: money as bigint, times as epoch milliseconds. */
export interface AccountState {
  id: string;
  currency: string;
  balance: bigint;
  availableBalance: bigint;
  overdraftLimit: bigint;
  createdAtMs: number;
  lastTransactionAtMs: number | null;
  transactionCount: number;
  metadata: JsonObject | null;
}

/** A pending transaction (hold) awaiting settle, cancel or expiry. */
export interface HoldState {
  transaction: TransactionRecord;
  amount: bigint;
  /** Epoch ms at which the hold expires, or null for no timeout. */
  deadlineMs: number | null;
}

/** Read access to the ledger state, shared by the real state and a decision draft. */
export interface LedgerView {
  account(id: string): AccountState | undefined;
  hold(transactionId: string): HoldState | undefined;
  idempotency(key: string): IdempotencyRecord | undefined;
  /** The sequence number of the last transaction id handed out; ids are `tx-<n>`, 1-based. */
  readonly transactionSeq: number;
}

export interface MutableLedger extends LedgerView {
  setAccount(account: AccountState): void;
  setHold(hold: HoldState): void;
  deleteHold(transactionId: string): void;
  setTransactionSeq(seq: number): void;
  recordIdempotency(record: IdempotencyRecord, retentionMs: number, keysMax: number): void;
}

/**
 * The decider's whole state. Owned by one state machine; entries are replaced, never mutated in
 * place, so a Draft can overlay it without copying.
 */
export class LedgerState implements MutableLedger {
  readonly accounts = new Map<string, AccountState>();
  readonly holds = new Map<string, HoldState>();
  /** Insertion order is recording order (timestamps never decrease), so pruning pops from the front. */
  readonly idempotencyKeys = new Map<string, IdempotencyRecord>();
  /** Hold deadlines in ascending order; entries whose hold is gone are skipped lazily. */
  readonly deadlines: Array<{ deadlineMs: number; transactionId: string }> = [];
  transactionSeq = 0;

  account(id: string) { return this.accounts.get(id); }
  hold(id: string) { return this.holds.get(id); }
  idempotency(key: string) { return this.idempotencyKeys.get(key); }
  setAccount(account: AccountState) { this.accounts.set(account.id, account); }
  setHold(hold: HoldState) {
    const isNew = !this.holds.has(hold.transaction.id);
    this.holds.set(hold.transaction.id, hold);
    if (isNew && hold.deadlineMs !== null) insertDeadline(this.deadlines, hold.deadlineMs, hold.transaction.id);
  }
  deleteHold(id: string) { this.holds.delete(id); }
  setTransactionSeq(seq: number) {
    if (seq < this.transactionSeq) throw new Error(`invariant: transaction sequence went back from ${this.transactionSeq} to ${seq}`);
    this.transactionSeq = seq;
  }
  recordIdempotency(record: IdempotencyRecord, retentionMs: number, keysMax: number) {
    this.idempotencyKeys.delete(record.key);
    this.idempotencyKeys.set(record.key, record);
    const oldestKeptMs = record.recordedAtMs - retentionMs;
    for (const [key, kept] of this.idempotencyKeys) {
      if (kept.recordedAtMs >= oldestKeptMs && this.idempotencyKeys.size <= keysMax) break;
      this.idempotencyKeys.delete(key);
    }
  }

  /** Pending holds whose deadline is at or before `nowMs`, in deadline order (ties by id order of creation). */
  dueHolds(nowMs: number, limit: number): HoldState[] {
    const due: HoldState[] = [];
    for (const entry of this.deadlines) {
      if (entry.deadlineMs > nowMs || due.length >= limit) break;
      const hold = this.holds.get(entry.transactionId);
      if (hold && hold.deadlineMs === entry.deadlineMs) due.push(hold);
    }
    return due;
  }

  /** Drops leading deadline entries whose hold is no longer pending (settled, cancelled, expired). */
  pruneDeadlines(): void {
    let drop = 0;
    while (drop < this.deadlines.length) {
      const entry = this.deadlines[drop]!;
      if (this.holds.get(entry.transactionId)?.deadlineMs === entry.deadlineMs) break;
      drop += 1;
    }
    if (drop > 0) this.deadlines.splice(0, drop);
  }

  /** The earliest deadline of a still-pending hold, for the node's tick timer. */
  nextDeadlineMs(): number | null {
    for (const entry of this.deadlines) {
      if (this.holds.get(entry.transactionId)?.deadlineMs === entry.deadlineMs) return entry.deadlineMs;
    }
    return null;
  }
}

function insertDeadline(deadlines: LedgerState['deadlines'], deadlineMs: number, transactionId: string) {
  let lo = 0;
  let hi = deadlines.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (deadlines[mid]!.deadlineMs <= deadlineMs) lo = mid + 1;
    else hi = mid;
  }
  deadlines.splice(lo, 0, { deadlineMs, transactionId });
}

/**
 * A copy-on-write overlay used while deciding, so a batch's operations see each other's effects
 * without touching the real state until the whole command is accepted.
 */
export class Draft implements MutableLedger {
  private readonly accounts = new Map<string, AccountState>();
  private readonly holds = new Map<string, HoldState | null>();
  private readonly keys = new Map<string, IdempotencyRecord>();
  transactionSeq: number;

  constructor(private readonly base: LedgerView) {
    this.transactionSeq = base.transactionSeq;
  }

  account(id: string) { return this.accounts.get(id) ?? this.base.account(id); }
  hold(id: string) {
    const own = this.holds.get(id);
    return own === null ? undefined : (own ?? this.base.hold(id));
  }
  idempotency(key: string) { return this.keys.get(key) ?? this.base.idempotency(key); }
  setAccount(account: AccountState) { this.accounts.set(account.id, account); }
  setHold(hold: HoldState) { this.holds.set(hold.transaction.id, hold); }
  deleteHold(id: string) { this.holds.set(id, null); }
  setTransactionSeq(seq: number) { this.transactionSeq = seq; }
  recordIdempotency(record: IdempotencyRecord) { this.keys.set(record.key, record); }
}

export function accountToRecord(a: AccountState): AccountRecord {
  return {
    id: a.id,
    currency: a.currency,
    balance: a.balance.toString(),
    availableBalance: a.availableBalance.toString(),
    overdraftLimit: a.overdraftLimit.toString(),
    createdAt: isoTime(a.createdAtMs),
    lastTransactionAt: a.lastTransactionAtMs === null ? null : isoTime(a.lastTransactionAtMs),
    transactionCount: a.transactionCount,
    metadata: a.metadata,
  };
}

export function accountFromRecord(r: AccountRecord): AccountState {
  return {
    id: r.id,
    currency: r.currency,
    balance: BigInt(r.balance),
    availableBalance: BigInt(r.availableBalance),
    overdraftLimit: BigInt(r.overdraftLimit),
    createdAtMs: epochMs(r.createdAt),
    lastTransactionAtMs: r.lastTransactionAt === null ? null : epochMs(r.lastTransactionAt),
    transactionCount: r.transactionCount,
    metadata: r.metadata,
  };
}

export function holdFromRecord(t: TransactionRecord): HoldState {
  return { transaction: t, amount: BigInt(t.amount), deadlineMs: t.expiresAt === null ? null : Date.parse(t.expiresAt) };
}

/**
 * Epoch ms → ISO 8601, and back. Every transfer formats its entry's instant and both accounts'
 * times, and evolve parses them again: the same few thousand values (one instant per entry, each
 * account's creation time) over and over, so both directions keep a bounded memo. Pure functions:
 * the memo changes no answer.
 */
export function isoTime(ms: number): string {
  let iso = isoTimes.get(ms);
  if (iso === undefined) {
    iso = new Date(ms).toISOString();
    if (isoTimes.size >= TIME_MEMO_MAX) isoTimes.clear();
    isoTimes.set(ms, iso);
  }
  return iso;
}

export function epochMs(iso: string): number {
  let ms = epochsMs.get(iso);
  if (ms === undefined) {
    ms = Date.parse(iso);
    if (epochsMs.size >= TIME_MEMO_MAX) epochsMs.clear();
    epochsMs.set(iso, ms);
  }
  return ms;
}
const TIME_MEMO_MAX = 4096;
const isoTimes = new Map<number, string>();
const epochsMs = new Map<string, number>();

export const TRANSACTION_ID_PREFIX = 'tx-';

export function transactionId(seq: number): string {
  return `${TRANSACTION_ID_PREFIX}${seq}`;
}

/** The sequence number of a transaction id, or null when the id cannot be one of ours. */
export function transactionSeqOf(id: string): number | null {
  if (!id.startsWith(TRANSACTION_ID_PREFIX)) return null;
  const digits = id.slice(TRANSACTION_ID_PREFIX.length);
  if (!/^[1-9][0-9]{0,15}$/.test(digits)) return null;
  const seq = Number(digits);
  return Number.isSafeInteger(seq) ? seq : null;
}
