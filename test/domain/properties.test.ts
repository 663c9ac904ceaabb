/**
 * Invariants of the ledger over random command sequences: a few accounts in two currencies,
 * deposits, withdrawals, transfers, holds with and without timeouts, settles, cancels, batches,
 * ticks and idempotency keys, some of them invalid, at increasing log times.
 */
import fc from 'fast-check';
import type { LedgerCommand } from '../../src/domain/commands';
import { evolve } from '../../src/domain/decider';
import type { LedgerEvent } from '../../src/domain/events';
import { type EntryResult, LedgerMachine, type LedgerSnapshot } from '../../src/domain/ledger';
import { INT64_MAX, INT64_MIN } from '../../src/domain/money';
import { DEFAULT_RULES } from '../../src/domain/rules';
import { LedgerState } from '../../src/domain/state';
import { BASE_MS, batch, cancel, deposit, op, open, settle, tick, tickedTwin, transfer, withdraw } from './decider-specification';

const rules = DEFAULT_RULES;
const NUM_RUNS = 100;

// ---- generated operations -----------------------------------------------------------------------

const ACCOUNT_IDS = ['A', 'B', 'C', 'D', 'Z'] as const;
const KEYS = ['k1', 'k2', 'k3'] as const;

type Movement = { amount: string; pending: boolean; holdTimeoutSeconds: number | null };
type Single =
  | { kind: 'open'; id: string; currency: string; initialBalance: string; overdraftLimit: string }
  | ({ kind: 'deposit' | 'withdraw'; accountId: string } & Movement)
  | ({ kind: 'transfer'; from: string; to: string } & Movement);
type Step = {
  /** Seconds after the previous entry. */
  dtSeconds: number;
  idempotencyKey: string | null;
  action:
    | Single
    | { kind: 'settle' | 'cancel'; pick: number; ofPending: boolean }
    | { kind: 'batch'; operations: Single[] }
    | { kind: 'tick' }
    /** The `back`-th latest command that carried an idempotency key, again: a retry. */
    | { kind: 'repeat'; back: number };
};

const accountId = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom<string>('A', 'B', 'C', 'D') },
  { weight: 1, arbitrary: fc.constantFrom(...ACCOUNT_IDS) },
);
/** Mostly two accounts of one currency, sometimes any two (then often refused). */
const accountPair = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom<[string, string]>(['A', 'B'], ['B', 'A'], ['C', 'D'], ['D', 'C']) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...ACCOUNT_IDS), fc.constantFrom(...ACCOUNT_IDS)) },
);
const amount = fc.oneof(
  { weight: 12, arbitrary: fc.integer({ min: 1, max: 400 }).map(String) },
  { weight: 1, arbitrary: fc.constantFrom('0', '-3', 'abc', (rules.amountMaxMinor + 1n).toString(), rules.largeTransactionThresholdMinor.toString()) },
);
const movement: fc.Arbitrary<Movement> = fc
  .record({ amount, pending: fc.boolean(), timeout: fc.option(fc.integer({ min: 1, max: 40 }), { freq: 2 }) })
  .map(({ amount, pending, timeout }) => ({ amount, pending, holdTimeoutSeconds: timeout }));

const single: fc.Arbitrary<Single> = fc.oneof(
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('open' as const),
      id: accountId,
      currency: fc.constantFrom('USD', 'EUR', 'usd'),
      initialBalance: fc.constantFrom('0', '50', '1000', '-1'),
      overdraftLimit: fc.constantFrom('0', '0', '200'),
    }),
  },
  { weight: 3, arbitrary: fc.tuple(accountId, movement).map(([id, m]) => ({ kind: 'deposit' as const, accountId: id, ...m })) },
  { weight: 2, arbitrary: fc.tuple(accountId, movement).map(([id, m]) => ({ kind: 'withdraw' as const, accountId: id, ...m })) },
  { weight: 4, arbitrary: fc.tuple(accountPair, movement).map(([[from, to], m]) => ({ kind: 'transfer' as const, from, to, ...m })) },
);

const step: fc.Arbitrary<Step> = fc.record({
  dtSeconds: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 25 })),
  idempotencyKey: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom(...KEYS) }),
  action: fc.oneof(
    { weight: 8, arbitrary: single },
    { weight: 4, arbitrary: fc.record({ kind: fc.constantFrom('settle' as const, 'cancel' as const), pick: fc.nat({ max: 40 }), ofPending: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('batch' as const), operations: fc.array(single, { minLength: 1, maxLength: 4 }) }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'tick' as const }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('repeat' as const), back: fc.integer({ min: 1, max: 3 }) }) },
  ),
});

const steps = fc.array(step, { minLength: 1, maxLength: 40, size: 'max' });

/** Every run starts from the same four accounts, so most generated commands find what they need. */
const PRELUDE: LedgerCommand[] = [
  open('A', { initialBalance: '1000' }),
  open('B', { overdraftLimit: '300' }),
  open('C', { currency: 'EUR', initialBalance: '500' }),
  open('D', { currency: 'EUR', initialBalance: '20', overdraftLimit: '100' }),
];

function commandOf(s: Single): LedgerCommand {
  const movementInput = (m: Movement) => ({
    pending: m.pending,
    ...(m.holdTimeoutSeconds === null ? {} : { holdTimeoutSeconds: m.holdTimeoutSeconds }),
  });
  switch (s.kind) {
    case 'open':
      return open(s.id, { currency: s.currency, initialBalance: s.initialBalance, overdraftLimit: s.overdraftLimit });
    case 'deposit':
      return deposit(s.accountId, s.amount, movementInput(s));
    case 'withdraw':
      return withdraw(s.accountId, s.amount, movementInput(s));
    case 'transfer':
      return transfer(s.from, s.to, s.amount, movementInput(s));
  }
}

/** The command a step stands for in the machine's current state (settle/cancel pick a live hold or any id). */
function resolve(s: Step, machine: LedgerMachine, history: LedgerCommand[]): LedgerCommand {
  const withKey = (command: LedgerCommand): LedgerCommand =>
    s.idempotencyKey === null || command.type === 'Tick' ? command : { ...command, idempotencyKey: s.idempotencyKey };
  const a = s.action;
  switch (a.kind) {
    case 'settle':
    case 'cancel': {
      const pending = [...machine.view.holds.keys()];
      const id = a.ofPending && pending.length > 0 ? pending[a.pick % pending.length]! : `tx-${a.pick}`;
      return withKey(a.kind === 'settle' ? settle(id) : cancel(id));
    }
    case 'batch':
      return withKey(batch(a.operations.map((o) => op(commandOf(o)))));
    case 'tick':
      return tick();
    case 'repeat': {
      const keyed = history.filter((c) => c.type !== 'Tick' && c.idempotencyKey !== undefined);
      return keyed[Math.max(0, keyed.length - a.back)] ?? tick();
    }
    default:
      return withKey(commandOf(a));
  }
}

// ---- checks -------------------------------------------------------------------------------------

interface Entry {
  envelope: { index: number; timestampMs: number };
  command: LedgerCommand;
}

function totalsByCurrency(accounts: LedgerSnapshot['accounts']): Map<string, bigint> {
  const totals = new Map<string, bigint>();
  for (const a of accounts) totals.set(a.currency, (totals.get(a.currency) ?? 0n) + BigInt(a.balance));
  return totals;
}

/** Money that entered (+) or left (-) the ledger through settled deposits and withdrawals. */
function externalFlows(events: LedgerEvent[]): Map<string, bigint> {
  const flows = new Map<string, bigint>();
  for (const event of events) {
    const settledNow =
      (event.type === 'TransactionRecorded' && event.data.transaction.status === 'SETTLED') || event.type === 'TransactionSettled';
    if (!settledNow) continue;
    const t = event.data.transaction;
    const sign = t.kind === 'DEPOSIT' ? 1n : t.kind === 'WITHDRAWAL' ? -1n : 0n;
    flows.set(t.currency, (flows.get(t.currency) ?? 0n) + sign * BigInt(t.amount));
  }
  return flows;
}

function expectMoneyConserved(before: LedgerSnapshot, after: LedgerSnapshot, events: LedgerEvent[]) {
  const was = totalsByCurrency(before.accounts);
  const is = totalsByCurrency(after.accounts);
  const flows = externalFlows(events);
  for (const currency of new Set([...was.keys(), ...is.keys(), ...flows.keys()])) {
    expect({ currency, change: (is.get(currency) ?? 0n) - (was.get(currency) ?? 0n) }).toEqual({ currency, change: flows.get(currency) ?? 0n });
  }
}

function expectBalancesWithinLimits(machine: LedgerMachine) {
  const heldFrom = new Map<string, bigint>();
  for (const hold of machine.view.holds.values()) {
    expect(hold.transaction.status).toBe('PENDING');
    const from = hold.transaction.fromAccountId;
    if (from !== null) heldFrom.set(from, (heldFrom.get(from) ?? 0n) + hold.amount);
  }
  for (const account of machine.view.accounts.values()) {
    expect(account.availableBalance).toBeGreaterThanOrEqual(-account.overdraftLimit);
    expect(account.balance).toBeGreaterThanOrEqual(INT64_MIN);
    expect(account.balance).toBeLessThanOrEqual(INT64_MAX);
    // The available balance is the settled balance minus the outstanding pending debits.
    expect(account.balance - account.availableBalance).toBe(heldFrom.get(account.id) ?? 0n);
  }
}

function stateOf(machine: LedgerMachine) {
  const { accounts, holds, transactionSeq } = machine.view;
  return { accounts, holds: new Map([...holds].map(([id, h]) => [id, { ...h, transaction: { ...h.transaction, createdPosition: '' } }])), transactionSeq };
}

/** A batch is the same as its operations one by one at the same time, stopping at the first failure. */
function expectBatchIsItsOperationsInOrder(before: LedgerSnapshot, entry: Entry, result: EntryResult, machine: LedgerMachine) {
  if (entry.command.type !== 'ExecuteBatch') return;
  if (result.outcome.ok && result.outcome.replayed) return;
  if (!result.outcome.ok && result.outcome.rejection.code !== 'BATCH_FAILED') return;
  const twin = new LedgerMachine(rules);
  twin.restore(before);
  twin.apply(entry.envelope, tick());
  const operations = entry.command.input.operations;
  const outcomes = operations.map((operation, i) => {
    return twin.apply({ index: entry.envelope.index + 1 + i, timestampMs: entry.envelope.timestampMs }, batchOperationCommand(operation)).outcome;
  });
  if (result.outcome.ok) {
    expect(outcomes.map((o) => o.ok)).toEqual(operations.map(() => true));
    expect(stateOf(twin)).toEqual(stateOf(machine));
    const own = result.events.filter((e) => e.event.type === 'AccountOpened' || e.event.type === 'TransactionRecorded');
    const expectedCount = operations.reduce((n, o) => n + ('openAccount' in o && o.openAccount.initialBalance !== '0' ? 2 : 1), 0);
    expect(own).toHaveLength(expectedCount);
  } else {
    const failed = result.outcome.rejection;
    const index = failed.index!;
    expect(outcomes.slice(0, index).every((o) => o.ok)).toBe(true);
    const atFailure = outcomes[index];
    expect(atFailure?.ok === false && atFailure.rejection.code).toBe(failed.cause?.code);
  }
}

function batchOperationCommand(operation: Extract<LedgerCommand, { type: 'ExecuteBatch' }>['input']['operations'][number]): LedgerCommand {
  if ('openAccount' in operation) return { type: 'OpenAccount', input: operation.openAccount };
  if ('deposit' in operation) return { type: 'Deposit', input: operation.deposit };
  if ('withdraw' in operation) return { type: 'Withdraw', input: operation.withdraw };
  return { type: 'Transfer', input: operation.transfer };
}

/** Runs the prelude then the steps, checking the per-entry invariants; returns what happened. */
function run(generated: Step[]) {
  const machine = new LedgerMachine(rules);
  const entries: Entry[] = [];
  const results: EntryResult[] = [];
  const history: LedgerCommand[] = [];
  let timestampMs = BASE_MS;
  const all: Array<Step | LedgerCommand> = [...PRELUDE, ...generated];
  for (const item of all) {
    const isStep = 'action' in item;
    timestampMs += isStep ? item.dtSeconds * 1000 : 1000;
    const command = isStep ? resolve(item, machine, history) : item;
    const entry: Entry = { envelope: { index: machine.appliedIndex + 1, timestampMs }, command };
    const before = machine.snapshot();
    const result = machine.apply(entry.envelope, command);
    const after = machine.snapshot();

    // (c) A rejected or replayed command changes nothing but the hold expiries its entry's time caused.
    if (!result.outcome.ok || result.outcome.replayed) {
      expect(result.events.filter((e) => e.event.type !== 'TransactionExpired')).toEqual([]);
      expect(after).toEqual(tickedTwin(before, entry.envelope, rules));
    }
    if (!isStep) expect(result.outcome.ok).toBe(true);
    for (const { position, event } of result.events) {
      if (event.type === 'TransactionRecorded') expect(event.data.transaction.createdPosition).toBe(position);
    }
    // (a) Money enters and leaves only through settled deposits and withdrawals.
    expectMoneyConserved(before, after, result.events.map((e) => e.event));
    // (b) No available balance below minus the overdraft limit.
    expectBalancesWithinLimits(machine);
    // (e) All or nothing, and in order.
    expectBatchIsItsOperationsInOrder(before, entry, result, machine);

    entries.push(entry);
    results.push(result);
    history.push(command);
  }
  return { machine, entries, results };
}

describe('ledger invariants over random command sequences', () => {
  it('conserve money, respect limits, leave rejections without effect and keep batches atomic', () => {
    const seen = { rejected: 0, replayed: 0, expired: 0, settled: 0, batches: 0, failedBatches: 0 };
    fc.assert(
      fc.property(steps, (generated) => {
        const { results } = run(generated);
        for (const r of results) {
          if (!r.outcome.ok) seen.rejected += 1;
          else if (r.outcome.replayed) seen.replayed += 1;
          if (!r.outcome.ok && r.outcome.rejection.code === 'BATCH_FAILED') seen.failedBatches += 1;
          if (r.outcome.ok && r.outcome.outcome.type === 'ExecuteBatch') seen.batches += 1;
          seen.expired += r.events.filter((e) => e.event.type === 'TransactionExpired').length;
          seen.settled += r.events.filter((e) => e.event.type === 'TransactionSettled').length;
        }
      }),
      { numRuns: NUM_RUNS },
    );
    // The generator reaches every interesting path, or the properties above prove little.
    for (const [what, count] of Object.entries(seen)) expect({ what, reached: count > 0 }).toEqual({ what, reached: true });
  });

  it('(d) rebuild the same state by evolving the produced events into a fresh state', () => {
    fc.assert(
      fc.property(steps, (generated) => {
        const { machine, results } = run(generated);
        const rebuilt = new LedgerState();
        for (const r of results) for (const { event } of r.events) evolve(rebuilt, event, rules);
        expect(rebuilt.accounts).toEqual(machine.view.accounts);
        expect(rebuilt.holds).toEqual(machine.view.holds);
        expect(rebuilt.transactionSeq).toBe(machine.view.transactionSeq);
        expect(rebuilt.idempotencyKeys).toEqual(machine.view.idempotencyKeys);
        expect(rebuilt.nextDeadlineMs()).toBe(machine.nextHoldDeadlineMs());
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('(d) continue identically after a snapshot is serialized and restored', () => {
    fc.assert(
      fc.property(steps, fc.nat(), (generated, cutSeed) => {
        const { machine, entries, results } = run(generated);
        const cut = cutSeed % (entries.length + 1);
        // Re-run up to the cut to take the snapshot there, as a node would before compacting its log.
        const original = new LedgerMachine(rules);
        entries.slice(0, cut).forEach((e) => original.apply(e.envelope, e.command));
        const restored = new LedgerMachine(rules);
        restored.restore(JSON.parse(JSON.stringify(original.snapshot())) as LedgerSnapshot);
        expect(restored.snapshot()).toEqual(original.snapshot());
        expect(restored.nextHoldDeadlineMs()).toBe(original.nextHoldDeadlineMs());
        const continued = entries.slice(cut).map((e) => restored.apply(e.envelope, e.command));
        expect(continued).toEqual(results.slice(cut));
        expect(restored.snapshot()).toEqual(machine.snapshot());
      }),
      { numRuns: NUM_RUNS },
    );
  });
});
