import type { CommandEnvelope, LedgerCommand } from './commands';
import { decide, decideExpiries, evolve, fingerprintOf } from './decider';
import type { Rejection } from './errors';
import type { AccountRecord, IdempotencyRecord, LedgerEvent, SuccessOutcome, TransactionWithPosition } from './events';
import { EVENTS_PER_ENTRY_MAX, formatPosition } from './position';
import type { LedgerRules } from './rules';
import { type HoldState, LedgerState, accountFromRecord, accountToRecord, holdFromRecord } from './state';

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

    const decision = decide(command, this.state, { envelope, rules: this.rules, eventIndexBase: positioned.length });
    let outcome: CommandOutcome;
    if (decision.kind === 'rejected') {
      outcome = { ok: false, rejection: decision.rejection };
    } else if (decision.kind === 'replayed') {
      outcome = { ok: true, outcome: decision.outcome, replayed: true };
    } else {
      const firstOwn = positioned.length;
      for (const event of decision.events) push(event);
      const own = positioned.slice(firstOwn);
      const success = buildOutcome(command, own, positioned.at(-1)?.position ?? null);
      outcome = { ok: true, outcome: success, replayed: false };
      if (command.type !== 'Tick' && command.idempotencyKey !== undefined) {
        const record: IdempotencyRecord = {
          key: command.idempotencyKey,
          fingerprint: fingerprintOf(command),
          recordedAtMs: envelope.timestampMs,
          outcome: success,
        };
        push({ type: 'IdempotencyKeyRecorded', data: record });
      }
    }
    this.appliedIndexValue = envelope.index;
    this.lastTimestampMs = envelope.timestampMs;
    return { events: positioned, outcome };
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
      version: 1,
      appliedIndex: this.appliedIndexValue,
      lastTimestampMs: this.lastTimestampMs,
      transactionSeq: this.state.transactionSeq,
      accounts: [...this.state.accounts.values()].map(accountToRecord),
      holds: [...this.state.holds.values()].map((h) => h.transaction),
      idempotencyKeys: [...this.state.idempotencyKeys.values()],
    };
  }

  restore(snapshot: LedgerSnapshot): void {
    if (snapshot.version !== 1) throw new Error(`unsupported snapshot version ${snapshot.version}`);
    const state = new LedgerState();
    for (const account of snapshot.accounts) state.setAccount(accountFromRecord(account));
    for (const hold of snapshot.holds) state.setHold(holdFromRecord(hold));
    for (const record of snapshot.idempotencyKeys) state.idempotencyKeys.set(record.key, record);
    state.transactionSeq = snapshot.transactionSeq;
    this.state = state;
    this.appliedIndexValue = snapshot.appliedIndex;
    this.lastTimestampMs = snapshot.lastTimestampMs;
  }
}

export interface LedgerSnapshot {
  version: 1;
  appliedIndex: number;
  lastTimestampMs: number;
  transactionSeq: number;
  accounts: AccountRecord[];
  holds: HoldState['transaction'][];
  idempotencyKeys: IdempotencyRecord[];
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

