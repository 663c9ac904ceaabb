import { createHash } from 'node:crypto';
import type { AccountBefore, CompactIdempotencyRecord, IdempotencyRecord, TransactionRecord } from './events';
import { type AccountState, type HoldState, type LedgerView, holdFromRecord } from './state';

/**
 * Idempotency records stay small: a record keeps no result, only what the decider read from the
 * state when the key's first command was decided (the touched accounts' balances and counters, the
 * settled or cancelled hold) and where that command stood in the log. A same-input retry decides the
 * command again against that recorded view, with the first entry's index, timestamp and event
 * offset, and so gets the first result back event for event. This is pure: every replica rebuilds
 * the same result, whatever it holds of the log or the event store.
 *
 * Why it is exact:
 * - The decider is a pure function of the command, the rules, the envelope and what it reads; the
 *   recorded view answers every read with what the first decision saw (an account it did not record
 *   did not exist then).
 * - An account's id, currency, overdraft limit, opening time and metadata never change once opened,
 *   and accounts are never removed, so the view takes those from the current state and only the
 *   changing fields are recorded.
 * - The retry's input equals the first one (same SHA-256 of the canonical input), so amounts,
 *   descriptions and metadata come from the retry. Objects in metadata follow the retry's key order
 *   (the same JSON value; a client resending the same request gets the same bytes).
 * - The rules must be those of the first decision: the same assumption that log replay makes.
 *
 * Size bound of a record, as JSON (it is an event, and a line of the snapshot):
 *   ~1.6 KB fixed (key ≤ 200 characters, at most 6 bytes each escaped; a 64-character fingerprint;
 *   four integers), plus ≤ 140 bytes per account the command read (a 50-character id, two signed
 *   64-bit amounts, a counter, a time), plus one hold's transaction for a settle or cancel
 *   (≤ ~8 KB: 4 KiB metadata, 500-character description).
 *   A command reads at most 2 accounts per operation, so a 1,000-operation batch is at most
 *   ~282 KB, whatever metadata its operations carry (before: every transaction and account record
 *   of the result, about 4.5 MB with 4 KiB metadata on each operation).
 */

/** The first command of a key, as a fixed-size digest: SHA-256 (hex) of the canonical input. */
export function fingerprintOfCanonical(canonicalInput: string): string {
  return createHash('sha256').update(canonicalInput, 'utf8').digest('hex');
}

/** A view over the real state that remembers what each account and hold read first returned. */
export class ReadRecorder implements LedgerView {
  private readonly accountsRead = new Map<string, AccountState | undefined>();
  private readonly holdsRead = new Map<string, HoldState | undefined>();

  constructor(private readonly base: LedgerView) {}

  get transactionSeq(): number {
    return this.base.transactionSeq;
  }
  account(id: string): AccountState | undefined {
    if (!this.accountsRead.has(id)) this.accountsRead.set(id, this.base.account(id));
    return this.accountsRead.get(id);
  }
  hold(transactionId: string): HoldState | undefined {
    if (!this.holdsRead.has(transactionId)) this.holdsRead.set(transactionId, this.base.hold(transactionId));
    return this.holdsRead.get(transactionId);
  }
  idempotency(key: string) {
    return this.base.idempotency(key);
  }

  /** The accounts that existed when read, in read order, reduced to their changing fields. */
  accountsBefore(): AccountBefore[] {
    const before: AccountBefore[] = [];
    for (const account of this.accountsRead.values()) {
      if (account) before.push([account.id, account.balance.toString(), account.availableBalance.toString(), account.transactionCount, account.lastTransactionAtMs]);
    }
    return before;
  }
  holdsBefore(): TransactionRecord[] {
    const before: TransactionRecord[] = [];
    for (const hold of this.holdsRead.values()) if (hold) before.push(hold.transaction);
    return before;
  }
}

/** The state as the first command of a record saw it, for deciding it again. */
export class RecordedView implements LedgerView {
  private readonly accounts = new Map<string, AccountBefore>();
  private readonly holds = new Map<string, HoldState>();
  readonly transactionSeq: number;

  constructor(
    record: CompactIdempotencyRecord,
    private readonly current: LedgerView,
  ) {
    for (const account of record.accounts) this.accounts.set(account[0], account);
    for (const hold of record.holds) this.holds.set(hold.id, holdFromRecord(hold));
    this.transactionSeq = record.transactionSeq;
  }

  account(id: string): AccountState | undefined {
    const before = this.accounts.get(id);
    if (!before) return undefined;
    const now = this.current.account(id);
    if (!now) throw new Error(`invariant: account "${id}" of an idempotency record no longer exists`);
    const [, balance, availableBalance, transactionCount, lastTransactionAtMs] = before;
    return { ...now, balance: BigInt(balance), availableBalance: BigInt(availableBalance), transactionCount, lastTransactionAtMs };
  }
  hold(transactionId: string): HoldState | undefined {
    return this.holds.get(transactionId);
  }
  idempotency(): undefined {
    return undefined;
  }
}

/**
 * Snapshot version 1 kept the whole result and the canonical input itself as the fingerprint. Its
 * records keep their result (they leave within the retention window) under the new fingerprint.
 */
export function upcastIdempotencyRecordV1(old: { key: string; fingerprint: string; recordedAtMs: number; outcome: unknown }): IdempotencyRecord {
  return {
    key: old.key,
    fingerprint: fingerprintOfCanonical(old.fingerprint),
    recordedAtMs: old.recordedAtMs,
    outcome: old.outcome as Extract<IdempotencyRecord, { outcome: unknown }>['outcome'],
  };
}
