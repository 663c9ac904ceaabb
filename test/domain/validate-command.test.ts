/**
 * The stateless rules (validate-command.ts) and the refusal the node gives before the log
 * (LedgerMachine.refusalBeforeLog): whatever they refuse, the decider, applying the command in a log
 * entry, refuses the same way, word for word, and changes nothing.
 */
import fc from 'fast-check';
import type { BatchOperation, LedgerCommand } from '../../src/domain/commands';
import { LedgerMachine } from '../../src/domain/ledger';
import { DEFAULT_RULES } from '../../src/domain/rules';
import { validateCommand } from '../../src/domain/validate-command';
import { BASE_MS, batch, cancel, deposit, op, open, settle, transfer, withdraw } from './decider-specification';

const rules = DEFAULT_RULES;

/** A machine with USD accounts A (1000) and B (0), EUR account E, a pending withdrawal from A, and the key "used". */
function machineWithAccounts(): LedgerMachine {
  const machine = new LedgerMachine(rules);
  const setup = [open('A', { initialBalance: '1000' }), open('B'), open('E', { currency: 'EUR' }), withdraw('A', '5', { pending: true }), deposit('A', '1', { idempotencyKey: 'used' })];
  setup.forEach((command, i) => machine.apply({ index: i + 1, timestampMs: BASE_MS + i * 1000 }, command));
  return machine;
}

/** Applies the command in the next entry, at the last entry's time (no hold falls due). */
function applyNext(machine: LedgerMachine, command: LedgerCommand) {
  const last = machine.snapshot().lastTimestampMs;
  return machine.apply({ index: machine.appliedIndex + 1, timestampMs: last }, command);
}

const oversized = (count: number): BatchOperation[] => Array.from({ length: count }, () => op(deposit('A', '1')));

describe('validateCommand gives the decider’s rejection', () => {
  const cases: Array<[string, LedgerCommand]> = [
    ['batch of 1001', batch(oversized(1001))],
    ['empty batch', batch([])],
    ['amount 0', deposit('A', '0')],
    ['amount not digits', withdraw('A', '12a')],
    ['amount of 20 digits', deposit('A', '1'.repeat(20))],
    ['amount over the limit', transfer('A', 'B', '1000000001')],
    ['initial balance below 0', open('N', { initialBalance: '-1' })],
    ['overdraft beyond 64 bits', open('N', { overdraftLimit: '9223372036854775808' })],
    ['bad id', open('has space')],
    ['bad account id', deposit('', '1')],
    ['bad currency', open('N', { currency: 'usd' })],
    ['metadata too big', deposit('A', '1', { metadata: { blob: 'x'.repeat(5000) } })],
    ['metadata not an object', open('N', { metadata: [1] as never })],
    ['key too long', deposit('A', '1', { idempotencyKey: 'k'.repeat(201) })],
    ['empty key', batch(oversized(2), '')],
    ['timeout without pending', deposit('A', '1', { holdTimeoutSeconds: 5 })],
    ['timeout not an integer', withdraw('A', '1', { pending: true, holdTimeoutSeconds: 1.5 })],
    ['description too long', transfer('A', 'B', '1', { description: 'd'.repeat(501) })],
    ['same account', transfer('A', 'A', '1')],
    ['malformed transaction id', settle('tx-01')],
    ['not a transaction id', cancel('nope')],
    ['operation with two kinds', batch([{ deposit: { accountId: 'A', amount: '1' }, withdraw: { accountId: 'A', amount: '1' } } as never])],
    ['key on an operation', batch([{ deposit: { accountId: 'A', amount: '1', idempotencyKey: 'k' } } as never])],
    ['unknown operation', batch([{ refund: { accountId: 'A' } } as never])],
    ['bad operation after good ones', batch([op(deposit('A', '1')), op(transfer('A', 'B', '2')), op(open('N', { currency: 'EURO' }))])],
  ];

  it.each(cases)('%s', (_name, command) => {
    const machine = machineWithAccounts();
    const stateless = validateCommand(command, rules);
    expect(stateless).not.toBeNull();
    expect(machine.refusalBeforeLog(command)?.rejection).toEqual(stateless);
    const applied = applyNext(machine, command);
    expect(applied.outcome).toEqual({ ok: false, rejection: stateless });
    expect(applied.events).toEqual([]);
  });

  it('is null for commands only the state can refuse', () => {
    for (const command of [deposit('Z', '1'), withdraw('B', '1'), transfer('A', 'E', '1'), open('A'), settle('tx-999'), batch([op(deposit('Z', '1'))])]) {
      expect(validateCommand(command, rules)).toBeNull();
      expect(machineWithAccounts().refusalBeforeLog(command)).toBeNull();
    }
  });
});

describe('refusalBeforeLog leaves to the log what the state answers first', () => {
  it('a used key with an invalid input: the decider reads the key first (IDEMPOTENCY_CONFLICT)', () => {
    const machine = machineWithAccounts();
    const command = batch(oversized(1001), 'used');
    expect(validateCommand(command, rules)?.code).toBe('VALIDATION');
    expect(machine.refusalBeforeLog(command)).toBeNull();
    expect(applyNext(machine, command).outcome).toMatchObject({ ok: false, rejection: { code: 'IDEMPOTENCY_CONFLICT' } });
  });

  it('a batch whose earlier operation fails on the state: the decider names that one', () => {
    const machine = machineWithAccounts();
    const command = batch([op(withdraw('B', '1')), op(deposit('A', '0'))]);
    expect(validateCommand(command, rules)).toMatchObject({ code: 'BATCH_FAILED', index: 1 });
    expect(machine.refusalBeforeLog(command)).toBeNull();
    expect(applyNext(machine, command).outcome).toMatchObject({ ok: false, rejection: { code: 'BATCH_FAILED', index: 0, cause: { code: 'INSUFFICIENT_FUNDS' } } });
  });

  it('gives its answer without reading the state when no key and no earlier operation could change it', () => {
    const machine = machineWithAccounts();
    expect(machine.refusalBeforeLog(batch(oversized(1001)))?.readsState).toBe(false);
    expect(machine.refusalBeforeLog(deposit('A', '0', { idempotencyKey: 'fresh' }))?.readsState).toBe(true);
    expect(machine.refusalBeforeLog(batch([op(deposit('A', '1')), op(deposit('A', '0'))]))?.readsState).toBe(true);
    expect(machine.refusalBeforeLog(batch([op(deposit('A', '0')), op(deposit('A', '1'))]))?.readsState).toBe(false);
  });
});

// ---- property: a refusal before the log is the decider's -------------------------------------

const id = fc.constantFrom('A', 'B', 'E', 'Z', '', 'bad id');
const amount = fc.constantFrom('1', '7', '600', '0', '-2', '1x', '1000000001', '99999999999999999999');
const movement = fc.record(
  {
    amount,
    pending: fc.boolean(),
    holdTimeoutSeconds: fc.constantFrom(null, 1, 0, 30 * 24 * 3600 + 1),
    description: fc.constantFrom(null, 'ok', 'd'.repeat(501)),
    metadata: fc.constantFrom(null, { ref: 1 }, { blob: 'x'.repeat(5000) }),
  },
  { requiredKeys: ['amount'] },
);
const single: fc.Arbitrary<LedgerCommand> = fc.oneof(
  fc.record({ id, currency: fc.constantFrom('USD', 'EUR', 'usd'), initialBalance: fc.constantFrom('0', '10', '-1'), overdraftLimit: fc.constantFrom('0', '9223372036854775808') }).map(({ id: accountId, ...rest }) => open(accountId, rest)),
  fc.tuple(id, movement).map(([accountId, m]) => deposit(accountId, m.amount, m)),
  fc.tuple(id, movement).map(([accountId, m]) => withdraw(accountId, m.amount, m)),
  fc.tuple(id, id, movement).map(([from, to, m]) => transfer(from, to, m.amount, m)),
);
const keyed = fc.option(fc.constantFrom('used', 'fresh', '', 'k'.repeat(201)), { freq: 2 });
const command: fc.Arbitrary<LedgerCommand> = fc.oneof(
  fc.tuple(single, keyed).map(([c, key]) => (key === null || c.type === 'Tick' ? c : { ...c, idempotencyKey: key })),
  fc.tuple(fc.constantFrom('tx-1', 'tx-2', 'tx-9', 'tx-0', 'x'), fc.boolean()).map(([t, s]) => (s ? settle(t) : cancel(t))),
  fc.tuple(fc.array(single, { minLength: 0, maxLength: 6 }), keyed).map(([cs, key]) => batch(cs.map(op), key ?? undefined)),
  fc.tuple(fc.integer({ min: 1001, max: 1010 }), keyed).map(([n, key]) => batch(oversized(n), key ?? undefined)),
);

it('whatever refusalBeforeLog refuses, the decider refuses in the log the same way and nothing changes', () => {
  fc.assert(
    fc.property(command, (c) => {
      const machine = machineWithAccounts();
      const refusal = machine.refusalBeforeLog(c);
      if (validateCommand(c, rules) === null) expect(refusal).toBeNull();
      if (refusal === null) return;
      const before = machine.snapshot();
      const applied = applyNext(machine, c);
      expect(applied.outcome).toEqual({ ok: false, rejection: refusal.rejection });
      expect(applied.events).toEqual([]);
      expect({ ...machine.snapshot(), appliedIndex: before.appliedIndex }).toEqual(before);
    }),
    { numRuns: 500 },
  );
});
