import type { CommandEnvelope, LedgerCommand } from './commands';
import { decide, decideExpiries, evolve, fingerprintOf } from './decider';
import type { Rejection } from './errors';
import type { AccountRecord, IdempotencyRecord, LedgerEvent, SuccessOutcome, TransactionWithPosition } from './events';
import { ReadRecorder, RecordedView, upcastIdempotencyRecordV1 } from './idempotency';
import { EVENTS_PER_ENTRY_MAX, formatPosition } from './position';
import type { LedgerRules } from './rules';
import { type HoldState, LedgerState, accountFromRecord, accountToRecord, holdFromRecord } from './state';
import { idempotencyKeyRejection, validateCommand } from './validate-command';

/** An event with its place in the ledger's one ordering. */
export interface PositionedEvent {
  position: string;
  event: LedgerEvent;
}

export type CommandOutcome =
  | { ok: true; outcome: SuccessOutcome; replayed: boolean }
  | { ok: false; rejection: Rejection };

export interface EntryResult {
  /** Every event the entry produced, expiries first, in order. Empty for a rejection without due holds. */
  events: PositionedEvent[];
  outcome: CommandOutcome;
}

/**
 * The ledger as a replicated state machine: applies log entries in order. Pure and in memory: the
 * same entries give the same state and the same events on every replica.
 */
export class LedgerMachine {
  private state = new LedgerState();
  private appliedIndexValue = 0;
  private lastTimestampMs = 0;

  constructor(readonly rules: LedgerRules) {}

  get appliedIndex(): number {
    return this.appliedIndexValue;
  }

  get view(): LedgerState {
    return this.state;
  }

  apply(envelope: CommandEnvelope, command: LedgerCommand): EntryResult {
    if (envelope.index !== this.appliedIndexValue + 1) {
      throw new Error(`invariant: entry ${envelope.index} applied after ${this.appliedIndexValue}`);
    }
    if (envelope.timestampMs < this.lastTimestampMs) {
      throw new Error(`invariant: entry ${envelope.index} timestamp ${envelope.timestampMs} is before ${this.lastTimestampMs}`);
    }
    const positioned: PositionedEvent[] = [];
    const push = (event: LedgerEvent) => {
      if (positioned.length >= EVENTS_PER_ENTRY_MAX) throw new Error(`invariant: entry ${envelope.index} produced too many events`);
      positioned.push({ position: formatPosition(envelope.index, positioned.length), event });
      evolve(this.state, event, this.rules);
    };

    for (const event of decideExpiries(this.state, envelope.timestampMs)) push(event);
    this.state.pruneDeadlines();

    const key = command.type === 'Tick' ? undefined : command.idempotencyKey;
    // A keyed command's record keeps what the decider read, so a retry can decide it again (idempotency.ts).
    const reads = key === undefined ? null : new ReadRecorder(this.state);
    const ctx = { envelope, rules: this.rules, eventIndexBase: positioned.length };
    const decision = decide(command, reads ?? this.state, ctx);
    let outcome: CommandOutcome;
    if (decision.kind === 'rejected') {
      outcome = { ok: false, rejection: decision.rejection };
    } else if (decision.kind === 'replayed') {
      outcome = { ok: true, outcome: this.firstOutcome(decision.record, command), replayed: true };
    } else {
      const firstOwn = positioned.length;
      const record: IdempotencyRecord | null =
        key === undefined || reads === null
          ? null
          : {
              key,
              fingerprint: fingerprintOf(command),
              recordedAtMs: envelope.timestampMs,
              index: envelope.index,
              eventIndexBase: firstOwn,
              transactionSeq: this.state.transactionSeq,
              accounts: reads.accountsBefore(),
              holds: reads.holdsBefore(),
            };
      for (const event of decision.events) push(event);
      const own = positioned.slice(firstOwn);
      const success = buildOutcome(command, own, positioned.at(-1)?.position ?? null);
      outcome = { ok: true, outcome: success, replayed: false };
      if (record) push({ type: 'IdempotencyKeyRecorded', data: record });
    }
    this.appliedIndexValue = envelope.index;
    this.lastTimestampMs = envelope.timestampMs;
    return { events: positioned, outcome };
  }

  /**
   * The first result of a key, rebuilt by deciding its command again against the state it saw
   * (the retry's input is the first one's: same fingerprint). Changes nothing.
   */
  private firstOutcome(record: IdempotencyRecord, command: LedgerCommand): SuccessOutcome {
    if ('outcome' in record) return record.outcome;
    const envelope = { index: record.index, timestampMs: record.recordedAtMs };
    const decision = decide(command, new RecordedView(record, this.state), { envelope, rules: this.rules, eventIndexBase: record.eventIndexBase });
    if (decision.kind !== 'accepted') {
      const why = decision.kind === 'rejected' ? decision.rejection.message : 'replayed';
      throw new Error(`invariant: idempotency key "${record.key}" (entry ${record.index}) no longer rebuilds its first result: ${why}`);
    }
    const own = decision.events.map((event, i) => ({ position: formatPosition(record.index, record.eventIndexBase + i), event }));
    return buildOutcome(command, own, own.at(-1)?.position ?? null);
  }

  /**
   * The rejection the decider would give this command, found without deciding it in a log entry,
   * or null when only the log may answer. `readsState` is false when the answer is the same whatever
   * the ledger holds (no idempotency key, and in a batch the first operation is the one at fault or
   * its size is): then any node may give it. Otherwise the decider confirmed it against the state
   * as of the last applied entry: a refusal changes nothing, so that answer is as true as a read,
   * on a node whose state holds every acknowledged entry.
   * Pure; the command is never applied.
   */
  refusalBeforeLog(command: LedgerCommand): { rejection: Rejection; readsState: boolean } | null {
    if (command.type === 'Tick') return null;
    // The key's own length is checked before its record is read; a batch's size and its first
    // operation before anything else is decided.
    const keyRejection = idempotencyKeyRejection(command.idempotencyKey, this.rules);
    if (keyRejection) return { rejection: keyRejection, readsState: false };
    const stateless = validateCommand(command, this.rules);
    if (stateless === null) return null;
    const keyed = command.idempotencyKey !== undefined;
    const laterOperation = stateless.code === 'BATCH_FAILED' && stateless.index !== 0;
    if (!keyed && !laterOperation) return { rejection: stateless, readsState: false };
    // The decider reads the key's record first, and decides a batch's earlier operations against
    // the state before it checks the one at fault: ask it, as of the last applied entry.
    const envelope = { index: this.appliedIndexValue + 1, timestampMs: this.lastTimestampMs };
    const decision = decide(command, this.state, { envelope, rules: this.rules });
    if (decision.kind !== 'rejected' || !sameRejection(decision.rejection, stateless)) return null;
    return { rejection: decision.rejection, readsState: true };
  }

  /** The earliest deadline among pending holds, so the node can propose a tick when it falls due. */
  nextHoldDeadlineMs(): number | null {
    return this.state.nextDeadlineMs();
  }

  account(id: string): AccountRecord | undefined {
    const account = this.state.account(id);
    return account && accountToRecord(account);
  }

  snapshot(): LedgerSnapshot {
    return {
      version: 2,
      appliedIndex: this.appliedIndexValue,
      lastTimestampMs: this.lastTimestampMs,
      transactionSeq: this.state.transactionSeq,
      accounts: [...this.state.accounts.values()].map(accountToRecord),
      holds: [...this.state.holds.values()].map((h) => h.transaction),
      idempotencyKeys: [...this.state.idempotencyKeys.values()],
    };
  }

  /** Takes a snapshot of this version or of version 1 (whose idempotency records are upcast). */
  restore(snapshot: LedgerSnapshot | LedgerSnapshotV1): void {
    if (snapshot.version !== 1 && snapshot.version !== 2) throw new Error(`unsupported snapshot version ${(snapshot as { version: unknown }).version}`);
    const records: IdempotencyRecord[] = snapshot.version === 1 ? snapshot.idempotencyKeys.map(upcastIdempotencyRecordV1) : snapshot.idempotencyKeys;
    const state = new LedgerState();
    for (const account of snapshot.accounts) state.setAccount(accountFromRecord(account));
    for (const hold of snapshot.holds) state.setHold(holdFromRecord(hold));
    for (const record of records) state.idempotencyKeys.set(record.key, record);
    state.transactionSeq = snapshot.transactionSeq;
    this.state = state;
    this.appliedIndexValue = snapshot.appliedIndex;
    this.lastTimestampMs = snapshot.lastTimestampMs;
  }
}

export interface LedgerSnapshot {
  version: 2;
  appliedIndex: number;
  lastTimestampMs: number;
  transactionSeq: number;
  accounts: AccountRecord[];
  holds: HoldState['transaction'][];
  idempotencyKeys: IdempotencyRecord[];
}

/** Version 1: the same, but each idempotency record kept its whole result and its canonical input as the fingerprint. */
export type LedgerSnapshotV1 = Omit<LedgerSnapshot, 'version' | 'idempotencyKeys'> & {
  version: 1;
  idempotencyKeys: Array<{ key: string; fingerprint: string; recordedAtMs: number; outcome: SuccessOutcome }>;
};

function sameRejection(a: Rejection, b: Rejection): boolean {
  if (a.code !== b.code || a.message !== b.message || a.index !== b.index) return false;
  if (a.cause === undefined || b.cause === undefined) return a.cause === b.cause;
  return sameRejection(a.cause, b.cause);
}

/** The success payload of a command, from the events it produced. */
function buildOutcome(command: LedgerCommand, own: PositionedEvent[], lastPosition: string | null): SuccessOutcome {
  const position = own.at(-1)?.position ?? lastPosition ?? '';
  const transactions: TransactionWithPosition[] = [];
  const accounts = new Map<string, AccountRecord>();
  for (const { position: p, event } of own) {
    if (event.type === 'AccountOpened') accounts.set(event.data.account.id, event.data.account);
    else if (event.type !== 'IdempotencyKeyRecorded') {
      transactions.push({ ...event.data.transaction, position: p });
      for (const account of event.data.accounts) accounts.set(account.id, account);
    }
  }
  switch (command.type) {
    case 'OpenAccount':
      return { type: 'OpenAccount', account: accounts.get(command.input.id)!, position };
    case 'Deposit':
    case 'Withdraw':
      return { type: command.type, account: accounts.get(command.input.accountId)!, transaction: transactions[0]!, position };
    case 'Transfer':
      return {
        type: 'Transfer',
        from: accounts.get(command.input.fromAccountId)!,
        to: accounts.get(command.input.toAccountId)!,
        transaction: transactions[0]!,
        position,
      };
    case 'SettleTransaction':
    case 'CancelTransaction':
      return { type: command.type, transaction: transactions[0]!, position };
    case 'ExecuteBatch':
      return { type: 'ExecuteBatch', transactions, accounts: [...accounts.values()], position };
    case 'Tick':
      return { type: 'Tick', position: lastPosition };
  }
}

