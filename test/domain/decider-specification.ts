/**
 * Given / when / then for the ledger, in the spirit of Emmett's DeciderSpecification:
 *
 *   ledgerSpec().given([open('A', { initialBalance: '100' })]).when(withdraw('A', '30')).then([{ type: 'TransactionRecorded' }]);
 *   ledgerSpec().given([open('A')]).when(withdraw('A', '1')).thenRejected('INSUFFICIENT_FUNDS');
 *
 * Prior commands go through a fresh LedgerMachine, one log entry each (index 1, 2, … and one second
 * apart from BASE_MS unless a time is given); prior events are evolved straight into its state.
 */
import type { BatchOperation, DepositInput, LedgerCommand, OpenAccountInput, TransferInput, WithdrawInput } from '../../src/domain/commands';
import { evolve } from '../../src/domain/decider';
import type { ErrorCode, Rejection } from '../../src/domain/errors';
import type { LedgerEvent } from '../../src/domain/events';
import { type EntryResult, LedgerMachine, type LedgerSnapshot } from '../../src/domain/ledger';
import { DEFAULT_RULES, type LedgerRules } from '../../src/domain/rules';

export const BASE_MS = Date.UTC(2025, 0, 1);
/** Log time `seconds` after BASE_MS. */
export const at = (seconds: number): number => BASE_MS + seconds * 1000;

/** A prior command, optionally at a given log time. */
export type Prior = LedgerCommand | { command: LedgerCommand; atMs: number };

type DeepPartial<T> = T extends readonly (infer E)[] ? DeepPartial<E>[] : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;
/** An expected event: its type and whichever fields of its data matter (matched with toMatchObject). */
export type ExpectedEvent = DeepPartial<LedgerEvent> & { type: LedgerEvent['type'] };

export interface RejectionDetails {
  index?: number;
  causeCode?: ErrorCode;
}

/** Every code a spec saw rejected, so the suite can check it covered them all. */
export const rejectedCodesSeen = new Set<ErrorCode>();

export interface When {
  /** The entry's events (due expiries, the command's own, the idempotency record) in order. */
  then(expected: ExpectedEvent[]): EntryResult & { machine: LedgerMachine };
  /** Rejected with `code`: no events besides due expiries, and the state exactly as a Tick at the same time leaves it. */
  thenRejected(code: ErrorCode, details?: RejectionDetails): Rejection;
  /** Applied, whatever the result, for assertions of one's own. */
  result(): EntryResult & { machine: LedgerMachine };
}

export interface Given {
  when(command: LedgerCommand, atMs?: number): When;
  readonly machine: LedgerMachine;
}

export function ledgerSpec(rules: LedgerRules = DEFAULT_RULES) {
  return {
    given(priors: Prior[] = []): Given {
      const machine = new LedgerMachine(rules);
      let lastMs = BASE_MS;
      for (const prior of priors) {
        const { command, atMs } = 'command' in prior ? prior : { command: prior, atMs: lastMs + 1000 };
        const result = machine.apply({ index: machine.appliedIndex + 1, timestampMs: atMs }, command);
        if (!result.outcome.ok) throw new Error(`given command ${command.type} was rejected: ${result.outcome.rejection.message}`);
        lastMs = atMs;
      }
      return whenOf(machine, lastMs, rules);
    },
    givenEvents(events: LedgerEvent[]): Given {
      const machine = new LedgerMachine(rules);
      for (const event of events) evolve(machine.view, event, rules);
      return whenOf(machine, BASE_MS, rules);
    },
  };
}

function whenOf(machine: LedgerMachine, lastMs: number, rules: LedgerRules): Given {
  return {
    machine,
    when(command, atMs = lastMs + 1000) {
      const before = machine.snapshot();
      const envelope = { index: machine.appliedIndex + 1, timestampMs: atMs };
      const result = machine.apply(envelope, command);
      return {
        result: () => ({ ...result, machine }),
        then(expected) {
          if (!result.outcome.ok) throw new Error(`expected events but the command was rejected: ${result.outcome.rejection.code} ${result.outcome.rejection.message}`);
          expect(result.events.map((e) => e.event)).toMatchObject(expected);
          return { ...result, machine };
        },
        thenRejected(code, details = {}) {
          if (result.outcome.ok) throw new Error(`expected ${code} but the command was accepted`);
          const rejection = result.outcome.rejection;
          expect(rejection.code).toBe(code);
          if (details.index !== undefined) expect(rejection.index).toBe(details.index);
          if (details.causeCode !== undefined) expect(rejection.cause?.code).toBe(details.causeCode);
          expect(result.events.filter((e) => e.event.type !== 'TransactionExpired')).toEqual([]);
          expect(machine.snapshot()).toEqual(tickedTwin(before, envelope, rules));
          rejectedCodesSeen.add(code);
          if (rejection.cause) rejectedCodesSeen.add(rejection.cause.code);
          return rejection;
        },
      };
    },
  };
}

/** The snapshot a machine restored from `before` has after a Tick with the same envelope: expiries only. */
export function tickedTwin(before: LedgerSnapshot, envelope: { index: number; timestampMs: number }, rules: LedgerRules): LedgerSnapshot {
  const twin = new LedgerMachine(rules);
  twin.restore(before);
  twin.apply(envelope, { type: 'Tick' });
  return twin.snapshot();
}

// ---- command builders -------------------------------------------------------------------------

type Extra = { idempotencyKey?: string };
type Movement<T> = Partial<Omit<T, 'amount'>> & Extra;

export const open = (id: string, input: Partial<Omit<OpenAccountInput, 'id'>> & Extra = {}): LedgerCommand => {
  const { idempotencyKey, ...rest } = input;
  return { type: 'OpenAccount', input: { id, currency: 'USD', initialBalance: '0', overdraftLimit: '0', ...rest }, ...key(idempotencyKey) };
};
export const deposit = (accountId: string, amount: string, input: Movement<DepositInput> = {}): LedgerCommand => {
  const { idempotencyKey, ...rest } = input;
  return { type: 'Deposit', input: { accountId, amount, ...rest }, ...key(idempotencyKey) };
};
export const withdraw = (accountId: string, amount: string, input: Movement<WithdrawInput> = {}): LedgerCommand => {
  const { idempotencyKey, ...rest } = input;
  return { type: 'Withdraw', input: { accountId, amount, ...rest }, ...key(idempotencyKey) };
};
export const transfer = (fromAccountId: string, toAccountId: string, amount: string, input: Movement<TransferInput> = {}): LedgerCommand => {
  const { idempotencyKey, ...rest } = input;
  return { type: 'Transfer', input: { fromAccountId, toAccountId, amount, ...rest }, ...key(idempotencyKey) };
};
export const settle = (transactionId: string, idempotencyKey?: string): LedgerCommand => ({ type: 'SettleTransaction', input: { transactionId }, ...key(idempotencyKey) });
export const cancel = (transactionId: string, idempotencyKey?: string): LedgerCommand => ({ type: 'CancelTransaction', input: { transactionId }, ...key(idempotencyKey) });
export const batch = (operations: BatchOperation[], idempotencyKey?: string): LedgerCommand => ({ type: 'ExecuteBatch', input: { operations }, ...key(idempotencyKey) });
export const tick = (): LedgerCommand => ({ type: 'Tick' });

/** The batch operation form of a single command built above. */
export function op(command: LedgerCommand): BatchOperation {
  switch (command.type) {
    case 'OpenAccount':
      return { openAccount: command.input };
    case 'Deposit':
      return { deposit: command.input };
    case 'Withdraw':
      return { withdraw: command.input };
    case 'Transfer':
      return { transfer: command.input };
    default:
      throw new Error(`${command.type} cannot be a batch operation`);
  }
}

function key(idempotencyKey: string | undefined): Extra {
  return idempotencyKey === undefined ? {} : { idempotencyKey };
}
