import type { BatchOperation, LedgerCommand } from '../../src/domain/commands';
import { EXPIRIES_PER_ENTRY_MAX } from '../../src/domain/decider';
import { ERROR_CODES } from '../../src/domain/errors';
import type { LedgerEvent, SuccessOutcome } from '../../src/domain/events';
import { type EntryResult, LedgerMachine } from '../../src/domain/ledger';
import { INT64_MAX } from '../../src/domain/money';
import { comparePositions, formatPosition, isPosition } from '../../src/domain/position';
import { DEFAULT_RULES, type LedgerRules } from '../../src/domain/rules';
import {
  BASE_MS,
  at,
  batch,
  cancel,
  deposit,
  ledgerSpec,
  op,
  open,
  rejectedCodesSeen,
  settle,
  tick,
  transfer,
  withdraw,
} from './decider-specification';

const spec = ledgerSpec();
const iso = (ms: number) => new Date(ms).toISOString();
const MAX = DEFAULT_RULES.amountMaxMinor.toString();
const OVER_MAX = (DEFAULT_RULES.amountMaxMinor + 1n).toString();
const THRESHOLD = DEFAULT_RULES.largeTransactionThresholdMinor;

function outcomeOf(result: EntryResult): SuccessOutcome {
  if (!result.outcome.ok) throw new Error(`rejected: ${result.outcome.rejection.code} ${result.outcome.rejection.message}`);
  return result.outcome.outcome;
}

function accountOf(machine: LedgerMachine, id: string) {
  const account = machine.account(id);
  if (!account) throw new Error(`no account ${id}`);
  return account;
}

function balances(machine: LedgerMachine, id: string) {
  const a = accountOf(machine, id);
  return { balance: a.balance, availableBalance: a.availableBalance };
}

describe('opening an account', () => {
  it('records the account with zero balances and no transaction when there is no opening balance', () => {
    spec.given().when(open('acc-1', { currency: 'EUR', overdraftLimit: '250', metadata: { owner: 'x' } }), at(5)).then([
      {
        type: 'AccountOpened',
        data: {
          account: {
            id: 'acc-1',
            currency: 'EUR',
            balance: '0',
            availableBalance: '0',
            overdraftLimit: '250',
            createdAt: iso(at(5)),
            lastTransactionAt: null,
            transactionCount: 0,
            metadata: { owner: 'x' },
          },
        },
      },
    ]);
  });

  it('defaults the currency to USD and the balances and overdraft limit to 0', () => {
    const { machine } = spec.given().when({ type: 'OpenAccount', input: { id: 'plain' } }).then([{ type: 'AccountOpened' }]);
    expect(accountOf(machine, 'plain')).toMatchObject({ currency: 'USD', balance: '0', availableBalance: '0', overdraftLimit: '0' });
  });

  it('records an opening balance as a settled DEPOSIT "Opening balance"', () => {
    const { machine } = spec.given().when(open('A', { initialBalance: '5000' }), at(3)).then([
      { type: 'AccountOpened', data: { account: { id: 'A', balance: '0' } } },
      {
        type: 'TransactionRecorded',
        data: {
          transaction: {
            id: 'tx-1',
            kind: 'DEPOSIT',
            status: 'SETTLED',
            amount: '5000',
            currency: 'USD',
            fromAccountId: null,
            toAccountId: 'A',
            description: 'Opening balance',
            createdAt: iso(at(3)),
            large: false,
          },
          accounts: [{ id: 'A', balance: '5000', availableBalance: '5000', transactionCount: 1, lastTransactionAt: iso(at(3)) }],
        },
      },
    ]);
    expect(accountOf(machine, 'A')).toMatchObject({ balance: '5000', availableBalance: '5000', transactionCount: 1 });
  });

  it.each(['a', 'A-b_9', 'x'.repeat(50), 'ABCxyz0123456789_-'])('accepts the account id %j', (id) => {
    spec.given().when(open(id)).then([{ type: 'AccountOpened', data: { account: { id } } }]);
  });

  it.each(['', 'x'.repeat(51), 'a b', 'a.b', 'a/b', 'é', 'a\n'])('refuses the account id %j with VALIDATION', (id) => {
    spec.given().when(open(id)).thenRejected('VALIDATION');
  });

  it.each(['usd', 'US', 'USDD', 'U5D', '', ' USD'])('refuses the currency %j with VALIDATION', (currency) => {
    spec.given().when(open('A', { currency })).thenRejected('VALIDATION');
  });

  it.each(['-1', '1.5', 'abc', '', '1e3', '+5'])('refuses the initial balance %j with VALIDATION', (initialBalance) => {
    spec.given().when(open('A', { initialBalance })).thenRejected('VALIDATION');
  });

  it.each(['-1', '2.5', 'x'])('refuses the overdraft limit %j with VALIDATION', (overdraftLimit) => {
    spec.given().when(open('A', { overdraftLimit })).thenRejected('VALIDATION');
  });

  it('accepts an initial balance above the movement maximum and up to int64, and refuses one beyond int64', () => {
    spec.given().when(open('A', { initialBalance: INT64_MAX.toString() })).then([
      { type: 'AccountOpened' },
      { type: 'TransactionRecorded', data: { transaction: { amount: INT64_MAX.toString(), large: true } } },
    ]);
    spec.given().when(open('A', { initialBalance: (INT64_MAX + 1n).toString() })).thenRejected('AMOUNT_LIMIT_EXCEEDED');
    spec.given().when(open('A', { overdraftLimit: (INT64_MAX + 1n).toString() })).thenRejected('AMOUNT_LIMIT_EXCEEDED');
  });

  it('refuses an id that is taken with ACCOUNT_ALREADY_EXISTS, whatever the currency', () => {
    spec.given([open('A')]).when(open('A', { currency: 'EUR' })).thenRejected('ACCOUNT_ALREADY_EXISTS');
  });

  it('marks an opening balance at the large threshold as large', () => {
    spec.given().when(open('A', { initialBalance: THRESHOLD.toString() })).then([
      { type: 'AccountOpened' },
      { type: 'TransactionRecorded', data: { transaction: { large: true } } },
    ]);
  });
});

describe('amounts of deposits, withdrawals and transfers', () => {
  const given = () => spec.given([open('A', { initialBalance: '2000000000' }), open('B')]);
  const movements: Array<[string, (amount: string) => LedgerCommand]> = [
    ['deposit', (amount) => deposit('A', amount)],
    ['withdraw', (amount) => withdraw('A', amount)],
    ['transfer', (amount) => transfer('A', 'B', amount)],
  ];

  describe.each(movements)('%s', (_name, build) => {
    it.each(['0', '-0', '-1', '-500', 'abc', '1.5', '1e3', '', ' 5', '0x10', '12345678901234567890'])('refuses %j with VALIDATION', (amount) => {
      given().when(build(amount)).thenRejected('VALIDATION');
    });

    it('refuses one minor unit above the maximum with AMOUNT_LIMIT_EXCEEDED', () => {
      given().when(build(OVER_MAX)).thenRejected('AMOUNT_LIMIT_EXCEEDED');
      given().when(build('9999999999999999999')).thenRejected('AMOUNT_LIMIT_EXCEEDED');
    });

    it('accepts 1 and exactly the maximum', () => {
      given().when(build('1')).then([{ type: 'TransactionRecorded', data: { transaction: { amount: '1' } } }]);
      given().when(build(MAX)).then([{ type: 'TransactionRecorded', data: { transaction: { amount: MAX } } }]);
    });

    it('marks a transaction large exactly from the threshold on', () => {
      given().when(build((THRESHOLD - 1n).toString())).then([{ type: 'TransactionRecorded', data: { transaction: { large: false } } }]);
      given().when(build(THRESHOLD.toString())).then([{ type: 'TransactionRecorded', data: { transaction: { large: true } } }]);
    });
  });

  it('follows configured maximum and threshold', () => {
    const rules: LedgerRules = { ...DEFAULT_RULES, amountMaxMinor: 100n, largeTransactionThresholdMinor: 50n };
    const custom = ledgerSpec(rules);
    custom.given([open('A')]).when(deposit('A', '101')).thenRejected('AMOUNT_LIMIT_EXCEEDED');
    custom.given([open('A')]).when(deposit('A', '100')).then([{ type: 'TransactionRecorded', data: { transaction: { large: true } } }]);
    custom.given([open('A')]).when(deposit('A', '49')).then([{ type: 'TransactionRecorded', data: { transaction: { large: false } } }]);
  });
});

describe('deposits', () => {
  it('credit the balance and the available balance', () => {
    spec.given([open('A', { initialBalance: '100' })]).when(deposit('A', '250', { description: 'salary', metadata: { ref: 7 } }), at(10)).then([
      {
        type: 'TransactionRecorded',
        data: {
          transaction: {
            id: 'tx-2',
            kind: 'DEPOSIT',
            status: 'SETTLED',
            amount: '250',
            currency: 'USD',
            fromAccountId: null,
            toAccountId: 'A',
            description: 'salary',
            metadata: { ref: 7 },
            createdAt: iso(at(10)),
            updatedAt: iso(at(10)),
            expiresAt: null,
          },
          accounts: [{ id: 'A', balance: '350', availableBalance: '350', transactionCount: 2, lastTransactionAt: iso(at(10)) }],
        },
      },
    ]);
  });

  it('to an unknown account are ACCOUNT_NOT_FOUND, to a malformed id VALIDATION', () => {
    spec.given([open('A')]).when(deposit('B', '1')).thenRejected('ACCOUNT_NOT_FOUND');
    spec.given([open('A')]).when(deposit('bad id', '1')).thenRejected('VALIDATION');
  });

  it('in the account currency', () => {
    spec.given([open('E', { currency: 'EUR' })]).when(deposit('E', '5')).then([{ type: 'TransactionRecorded', data: { transaction: { currency: 'EUR' } } }]);
  });
});

describe('withdrawals', () => {
  it('debit the balance and the available balance', () => {
    spec.given([open('A', { initialBalance: '100' })]).when(withdraw('A', '30')).then([
      {
        type: 'TransactionRecorded',
        data: {
          transaction: { kind: 'WITHDRAWAL', status: 'SETTLED', amount: '30', fromAccountId: 'A', toAccountId: null },
          accounts: [{ id: 'A', balance: '70', availableBalance: '70', transactionCount: 2 }],
        },
      },
    ]);
  });

  it('may take the whole balance but not one unit more: INSUFFICIENT_FUNDS', () => {
    spec.given([open('A', { initialBalance: '100' })]).when(withdraw('A', '100')).then([{ type: 'TransactionRecorded', data: { accounts: [{ balance: '0' }] } }]);
    spec.given([open('A', { initialBalance: '100' })]).when(withdraw('A', '101')).thenRejected('INSUFFICIENT_FUNDS');
    spec.given([open('A')]).when(withdraw('A', '1')).thenRejected('INSUFFICIENT_FUNDS');
  });

  it('from an unknown account are ACCOUNT_NOT_FOUND', () => {
    spec.given([open('A', { initialBalance: '100' })]).when(withdraw('Z', '1')).thenRejected('ACCOUNT_NOT_FOUND');
  });

  describe('with an overdraft limit', () => {
    const given = () => spec.given([open('A', { initialBalance: '100', overdraftLimit: '500' })]);

    it('may go exactly down to minus the limit', () => {
      const { machine } = given().when(withdraw('A', '600')).then([{ type: 'TransactionRecorded', data: { accounts: [{ balance: '-500', availableBalance: '-500' }] } }]);
      expect(accountOf(machine, 'A').overdraftLimit).toBe('500');
    });

    it('refuses one unit beyond the limit', () => {
      given().when(withdraw('A', '601')).thenRejected('INSUFFICIENT_FUNDS');
    });

    it('refuses any further debit once at the limit', () => {
      spec.given([open('A', { initialBalance: '100', overdraftLimit: '500' }), withdraw('A', '600')]).when(withdraw('A', '1')).thenRejected('INSUFFICIENT_FUNDS');
    });

    it('bounds pending debits as well', () => {
      given().when(withdraw('A', '600', { pending: true })).then([{ type: 'TransactionRecorded', data: { accounts: [{ balance: '100', availableBalance: '-500' }] } }]);
      given().when(withdraw('A', '601', { pending: true })).thenRejected('INSUFFICIENT_FUNDS');
    });
  });
});

describe('transfers', () => {
  const given = () => spec.given([open('A', { initialBalance: '100' }), open('B', { initialBalance: '10' }), open('E', { currency: 'EUR', initialBalance: '100' })]);

  it('move money atomically from one account to another', () => {
    const { machine } = given().when(transfer('A', 'B', '40', { description: 'rent' })).then([
      {
        type: 'TransactionRecorded',
        data: {
          transaction: { id: 'tx-4', kind: 'TRANSFER', status: 'SETTLED', amount: '40', currency: 'USD', fromAccountId: 'A', toAccountId: 'B', description: 'rent' },
          accounts: [
            { id: 'A', balance: '60', availableBalance: '60' },
            { id: 'B', balance: '50', availableBalance: '50' },
          ],
        },
      },
    ]);
    expect(balances(machine, 'A')).toEqual({ balance: '60', availableBalance: '60' });
    expect(balances(machine, 'B')).toEqual({ balance: '50', availableBalance: '50' });
  });

  it('to the same account are SAME_ACCOUNT', () => {
    given().when(transfer('A', 'A', '1')).thenRejected('SAME_ACCOUNT');
  });

  it('between currencies are CURRENCY_MISMATCH', () => {
    given().when(transfer('A', 'E', '1')).thenRejected('CURRENCY_MISMATCH');
    given().when(transfer('E', 'A', '1')).thenRejected('CURRENCY_MISMATCH');
  });

  it('need both accounts: ACCOUNT_NOT_FOUND', () => {
    given().when(transfer('Z', 'B', '1')).thenRejected('ACCOUNT_NOT_FOUND');
    given().when(transfer('A', 'Z', '1')).thenRejected('ACCOUNT_NOT_FOUND');
    given().when(transfer('A', 'bad id', '1')).thenRejected('VALIDATION');
  });

  it('need funds on the sending side: INSUFFICIENT_FUNDS', () => {
    given().when(transfer('A', 'B', '100')).then([{ type: 'TransactionRecorded' }]);
    given().when(transfer('A', 'B', '101')).thenRejected('INSUFFICIENT_FUNDS');
  });

  it('may use the sender overdraft down to exactly its limit', () => {
    const withOverdraft = () => spec.given([open('A', { overdraftLimit: '50' }), open('B')]);
    withOverdraft().when(transfer('A', 'B', '50')).then([{ type: 'TransactionRecorded', data: { accounts: [{ availableBalance: '-50' }, { balance: '50' }] } }]);
    withOverdraft().when(transfer('A', 'B', '51')).thenRejected('INSUFFICIENT_FUNDS');
  });
});

describe('holds (pending transactions)', () => {
  const funded = [open('A', { initialBalance: '100' }), open('B', { initialBalance: '10' })];

  describe('a pending debit', () => {
    it('(withdrawal) lowers only the available balance', () => {
      spec.given(funded).when(withdraw('A', '30', { pending: true })).then([
        {
          type: 'TransactionRecorded',
          data: {
            transaction: { id: 'tx-3', kind: 'WITHDRAWAL', status: 'PENDING', amount: '30', expiresAt: null },
            accounts: [{ id: 'A', balance: '100', availableBalance: '70', transactionCount: 2 }],
          },
        },
      ]);
    });

    it('(transfer) lowers only the sender available balance and leaves the receiver as it was', () => {
      const { machine } = spec.given(funded).when(transfer('A', 'B', '30', { pending: true })).then([
        {
          type: 'TransactionRecorded',
          data: {
            transaction: { kind: 'TRANSFER', status: 'PENDING' },
            accounts: [
              { id: 'A', balance: '100', availableBalance: '70' },
              { id: 'B', balance: '10', availableBalance: '10' },
            ],
          },
        },
      ]);
      expect(machine.view.hold('tx-3')?.amount).toBe(30n);
    });

    it('is settled into the balance', () => {
      const { machine } = spec.given([...funded, transfer('A', 'B', '30', { pending: true })]).when(settle('tx-3'), at(60)).then([
        {
          type: 'TransactionSettled',
          data: {
            transaction: { id: 'tx-3', status: 'SETTLED', updatedAt: iso(at(60)) },
            accounts: [
              { id: 'A', balance: '70', availableBalance: '70' },
              { id: 'B', balance: '40', availableBalance: '40' },
            ],
          },
        },
      ]);
      expect(machine.view.hold('tx-3')).toBeUndefined();
    });

    it('(withdrawal) is settled into the balance', () => {
      spec.given([...funded, withdraw('A', '30', { pending: true })]).when(settle('tx-3')).then([
        { type: 'TransactionSettled', data: { transaction: { status: 'SETTLED' }, accounts: [{ id: 'A', balance: '70', availableBalance: '70' }] } },
      ]);
    });

    it('is cancelled back into the available balance', () => {
      spec.given([...funded, transfer('A', 'B', '30', { pending: true })]).when(cancel('tx-3')).then([
        { type: 'TransactionCancelled', data: { transaction: { status: 'CANCELLED' }, accounts: [{ id: 'A', balance: '100', availableBalance: '100' }] } },
      ]);
      spec.given([...funded, withdraw('A', '30', { pending: true })]).when(cancel('tx-3')).then([
        { type: 'TransactionCancelled', data: { accounts: [{ id: 'A', balance: '100', availableBalance: '100' }] } },
      ]);
    });

    it('makes a later debit fail on available funds although the balance would cover it', () => {
      const given = () => spec.given([...funded, withdraw('A', '80', { pending: true })]);
      given().when(withdraw('A', '21')).thenRejected('INSUFFICIENT_FUNDS');
      given().when(transfer('A', 'B', '21', { pending: true })).thenRejected('INSUFFICIENT_FUNDS');
      given().when(withdraw('A', '20')).then([{ type: 'TransactionRecorded', data: { accounts: [{ balance: '80', availableBalance: '0' }] } }]);
    });
  });

  describe('a pending credit', () => {
    it('(deposit) changes nothing until settled', () => {
      const { machine } = spec.given(funded).when(deposit('A', '30', { pending: true })).then([
        { type: 'TransactionRecorded', data: { transaction: { status: 'PENDING' }, accounts: [{ id: 'A', balance: '100', availableBalance: '100' }] } },
      ]);
      expect(balances(machine, 'A')).toEqual({ balance: '100', availableBalance: '100' });
      spec.given([...funded, deposit('A', '30', { pending: true })]).when(settle('tx-3')).then([
        { type: 'TransactionSettled', data: { accounts: [{ id: 'A', balance: '130', availableBalance: '130' }] } },
      ]);
      spec.given([...funded, deposit('A', '30', { pending: true })]).when(cancel('tx-3')).then([{ type: 'TransactionCancelled', data: { accounts: [] } }]);
    });

    it('(receiving side of a pending transfer) cannot be spent before settlement', () => {
      spec.given([...funded, transfer('A', 'B', '50', { pending: true })]).when(withdraw('B', '11')).thenRejected('INSUFFICIENT_FUNDS');
    });
  });

  describe('expiry', () => {
    const withTimeout = [...funded, { command: withdraw('A', '30', { pending: true, holdTimeoutSeconds: 60 }), atMs: at(10) }];

    it('records the deadline and reports it as the next one', () => {
      const { machine } = spec.given(funded).when(withdraw('A', '30', { pending: true, holdTimeoutSeconds: 60 }), at(10)).then([
        { type: 'TransactionRecorded', data: { transaction: { expiresAt: iso(at(70)) } } },
      ]);
      expect(machine.nextHoldDeadlineMs()).toBe(at(70));
    });

    it('does nothing before the deadline', () => {
      const { machine } = spec.given(withTimeout).when(tick(), at(70) - 1).then([]);
      expect(machine.view.hold('tx-3')).toBeDefined();
    });

    it('expires the hold on a Tick at the deadline, restoring the available balance', () => {
      const { machine, outcome, events } = spec.given(withTimeout).when(tick(), at(70)).then([
        {
          type: 'TransactionExpired',
          data: { transaction: { id: 'tx-3', status: 'EXPIRED', updatedAt: iso(at(70)) }, accounts: [{ id: 'A', balance: '100', availableBalance: '100' }] },
        },
      ]);
      expect(outcome).toEqual({ ok: true, replayed: false, outcome: { type: 'Tick', position: events[0]?.position } });
      expect(machine.view.hold('tx-3')).toBeUndefined();
      expect(machine.nextHoldDeadlineMs()).toBeNull();
    });

    it('expires due holds before any command of a later entry, in deadline order', () => {
      const given = spec.given([
        ...funded,
        { command: withdraw('A', '10', { pending: true, holdTimeoutSeconds: 100 }), atMs: at(10) },
        { command: withdraw('A', '20', { pending: true, holdTimeoutSeconds: 50 }), atMs: at(10) },
      ]);
      const { events } = given.when(deposit('B', '5'), at(500)).then([
        { type: 'TransactionExpired', data: { transaction: { id: 'tx-4' } } },
        { type: 'TransactionExpired', data: { transaction: { id: 'tx-3' } } },
        { type: 'TransactionRecorded', data: { transaction: { id: 'tx-5' } } },
      ]);
      expect(events.map((e) => e.position)).toEqual([0, 1, 2].map((i) => formatPosition(given.machine.appliedIndex, i)));
      expect(balances(given.machine, 'A')).toEqual({ balance: '100', availableBalance: '100' });
    });

    it('of a pending credit marks it EXPIRED and changes no account', () => {
      const { machine } = spec
        .given([...funded, { command: deposit('A', '30', { pending: true, holdTimeoutSeconds: 1 }), atMs: at(10) }])
        .when(tick(), at(11))
        .then([{ type: 'TransactionExpired', data: { transaction: { status: 'EXPIRED', kind: 'DEPOSIT' }, accounts: [] } }]);
      expect(balances(machine, 'A')).toEqual({ balance: '100', availableBalance: '100' });
    });

    it('happens before a settle in the same entry, which then finds it not pending', () => {
      const { outcome, events } = spec.given(withTimeout).when(settle('tx-3'), at(70)).result();
      expect(outcome).toMatchObject({ ok: false, rejection: { code: 'TRANSACTION_NOT_PENDING' } });
      expect(events.map((e) => e.event.type)).toEqual(['TransactionExpired']);
      spec.given(withTimeout).when(settle('tx-3'), at(70)).thenRejected('TRANSACTION_NOT_PENDING');
    });

    it(`expires at most ${EXPIRIES_PER_ENTRY_MAX} holds per entry, the rest in the next entries`, () => {
      const holds = (n: number, holdTimeoutSeconds: number) => batch(Array.from({ length: n }, () => op(withdraw('A', '1', { pending: true, holdTimeoutSeconds }))));
      // Both batches' holds fall due at at(102); the first batch's were created first.
      const given = spec.given([open('A', { initialBalance: '5000' }), holds(EXPIRIES_PER_ENTRY_MAX, 100), holds(1, 99)]);
      expect(given.machine.view.holds.size).toBe(EXPIRIES_PER_ENTRY_MAX + 1);
      const first = given.when(tick(), at(200)).result();
      expect(first.events).toHaveLength(EXPIRIES_PER_ENTRY_MAX);
      expect(first.events.every((e) => e.event.type === 'TransactionExpired')).toBe(true);
      expect(given.machine.nextHoldDeadlineMs()).toBe(at(102));
      given.when(tick(), at(200)).then([{ type: 'TransactionExpired', data: { transaction: { id: `tx-${EXPIRIES_PER_ENTRY_MAX + 2}` } } }]);
      expect(balances(given.machine, 'A')).toEqual({ balance: '5000', availableBalance: '5000' });
    });

    it('no longer applies to a hold settled before its deadline', () => {
      const { machine } = spec.given([...withTimeout, { command: settle('tx-3'), atMs: at(20) }]).when(tick(), at(100)).then([]);
      expect(balances(machine, 'A')).toEqual({ balance: '70', availableBalance: '70' });
      expect(machine.nextHoldDeadlineMs()).toBeNull();
    });
  });

  describe('holdTimeoutSeconds', () => {
    it('only goes with a pending transaction', () => {
      spec.given(funded).when(withdraw('A', '1', { holdTimeoutSeconds: 10 })).thenRejected('VALIDATION');
      spec.given(funded).when(deposit('A', '1', { holdTimeoutSeconds: 10, pending: false })).thenRejected('VALIDATION');
      spec.given(funded).when(transfer('A', 'B', '1', { holdTimeoutSeconds: 10 })).thenRejected('VALIDATION');
    });

    it.each([0, -1, 1.5, DEFAULT_RULES.holdTimeoutSecondsMax + 1])('refuses %p', (holdTimeoutSeconds) => {
      spec.given(funded).when(withdraw('A', '1', { pending: true, holdTimeoutSeconds })).thenRejected('VALIDATION');
    });

    it('accepts 1 to the maximum', () => {
      spec.given(funded).when(withdraw('A', '1', { pending: true, holdTimeoutSeconds: 1 })).then([{ type: 'TransactionRecorded' }]);
      spec.given(funded).when(withdraw('A', '1', { pending: true, holdTimeoutSeconds: DEFAULT_RULES.holdTimeoutSecondsMax })).then([{ type: 'TransactionRecorded' }]);
    });
  });

  describe('settle and cancel', () => {
    const ended: Array<[string, LedgerCommand[]]> = [
      ['settled', [withdraw('A', '5')]],
      ['settled after pending', [withdraw('A', '5', { pending: true }), settle('tx-3')]],
      ['cancelled', [withdraw('A', '5', { pending: true }), cancel('tx-3')]],
      ['expired', [withdraw('A', '5', { pending: true, holdTimeoutSeconds: 1 }), tick()]],
    ];

    it.each(ended)('of a %s transaction are TRANSACTION_NOT_PENDING', (_status, commands) => {
      const given = () => spec.given([...funded, ...commands.map((command, i) => ({ command, atMs: at(10 + i * 5) }))]);
      expect(given().machine.view.hold('tx-3')).toBeUndefined();
      expect(given().machine.view.transactionSeq).toBe(3);
      given().when(settle('tx-3'), at(60)).thenRejected('TRANSACTION_NOT_PENDING');
      given().when(cancel('tx-3'), at(60)).thenRejected('TRANSACTION_NOT_PENDING');
    });

    it.each(['tx-99', 'tx-0', 'tx-01', 'nope', '', 'tx-'])('of the unknown transaction %j are TRANSACTION_NOT_FOUND', (id) => {
      spec.given(funded).when(settle(id)).thenRejected('TRANSACTION_NOT_FOUND');
      spec.given(funded).when(cancel(id)).thenRejected('TRANSACTION_NOT_FOUND');
    });

    it('refuse to settle a pending credit that would overflow int64, leaving it pending', () => {
      const given = spec.given([open('A', { initialBalance: (INT64_MAX - 10n).toString() }), deposit('A', '11', { pending: true })]);
      given.when(settle('tx-2')).thenRejected('AMOUNT_LIMIT_EXCEEDED');
      expect(given.machine.view.hold('tx-2')).toBeDefined();
    });
  });
});

describe('int64 arithmetic', () => {
  const full = () => spec.given([open('A', { initialBalance: INT64_MAX.toString() }), open('B', { initialBalance: '100' })]);

  it('refuses a credit beyond int64 with AMOUNT_LIMIT_EXCEEDED', () => {
    full().when(deposit('A', '1')).thenRejected('AMOUNT_LIMIT_EXCEEDED');
    full().when(transfer('B', 'A', '1')).thenRejected('AMOUNT_LIMIT_EXCEEDED');
  });

  it('still allows a pending credit, which changes no balance, and debits', () => {
    full().when(deposit('A', '1', { pending: true })).then([{ type: 'TransactionRecorded', data: { accounts: [{ balance: INT64_MAX.toString() }] } }]);
    full().when(withdraw('A', '1')).then([{ type: 'TransactionRecorded', data: { accounts: [{ balance: (INT64_MAX - 1n).toString() }] } }]);
  });

  it('keeps the largest overdraft representable', () => {
    const { machine } = spec.given([open('A', { overdraftLimit: INT64_MAX.toString() })]).when(withdraw('A', MAX)).then([{ type: 'TransactionRecorded' }]);
    expect(accountOf(machine, 'A').balance).toBe(`-${MAX}`);
  });
});

describe('limits on descriptions and metadata', () => {
  const given = () => spec.given([open('A', { initialBalance: '100' })]);
  /** A metadata object whose JSON is exactly `bytes` bytes long. */
  const metadataOf = (bytes: number, char = 'x') => ({ k: char.repeat(bytes - '{"k":""}'.length) });

  it('accepts a description of the maximum length and refuses a longer one', () => {
    given().when(deposit('A', '1', { description: 'd'.repeat(500) })).then([{ type: 'TransactionRecorded' }]);
    given().when(deposit('A', '1', { description: 'd'.repeat(501) })).thenRejected('VALIDATION');
    given().when(withdraw('A', '1', { description: 'd'.repeat(501) })).thenRejected('VALIDATION');
  });

  it('accepts metadata of exactly 4 KiB serialized and refuses one byte more', () => {
    expect(JSON.stringify(metadataOf(4096)).length).toBe(4096);
    given().when(deposit('A', '1', { metadata: metadataOf(4096) })).then([{ type: 'TransactionRecorded' }]);
    given().when(deposit('A', '1', { metadata: metadataOf(4097) })).thenRejected('VALIDATION');
    given().when(transfer('A', 'A2', '1', { metadata: metadataOf(4097) })).thenRejected('VALIDATION');
    given().when(open('B', { metadata: metadataOf(4097) })).thenRejected('VALIDATION');
    spec.given().when(open('B', { metadata: metadataOf(4096) })).then([{ type: 'AccountOpened', data: { account: { metadata: metadataOf(4096) } } }]);
  });

  it('counts metadata in UTF-8 bytes, not characters', () => {
    // 'é' is two bytes: 2048 of them serialize to 4096 + 8 bytes although only 2056 characters.
    given().when(deposit('A', '1', { metadata: { k: 'é'.repeat(2048) } })).thenRejected('VALIDATION');
  });

  it('refuses metadata that is not a JSON object', () => {
    given().when(deposit('A', '1', { metadata: [1, 2] as unknown as Record<string, unknown> })).thenRejected('VALIDATION');
  });
});

describe('batches', () => {
  it('apply their operations in order, each seeing the effects of the earlier ones', () => {
    const { outcome, machine, events } = spec
      .given()
      .when(batch([op(open('A')), op(deposit('A', '100')), op(open('B', { initialBalance: '5' })), op(transfer('A', 'B', '60')), op(withdraw('B', '65'))]))
      .then([
        { type: 'AccountOpened', data: { account: { id: 'A' } } },
        { type: 'TransactionRecorded', data: { transaction: { id: 'tx-1', kind: 'DEPOSIT' }, accounts: [{ balance: '100' }] } },
        { type: 'AccountOpened', data: { account: { id: 'B' } } },
        { type: 'TransactionRecorded', data: { transaction: { id: 'tx-2', description: 'Opening balance' } } },
        { type: 'TransactionRecorded', data: { transaction: { id: 'tx-3', kind: 'TRANSFER' }, accounts: [{ balance: '40' }, { balance: '65' }] } },
        { type: 'TransactionRecorded', data: { transaction: { id: 'tx-4', kind: 'WITHDRAWAL' }, accounts: [{ balance: '0' }] } },
      ]);
    expect(balances(machine, 'A')).toEqual({ balance: '40', availableBalance: '40' });
    expect(balances(machine, 'B')).toEqual({ balance: '0', availableBalance: '0' });
    expect(outcome).toMatchObject({
      ok: true,
      outcome: {
        type: 'ExecuteBatch',
        transactions: [{ id: 'tx-1' }, { id: 'tx-2' }, { id: 'tx-3' }, { id: 'tx-4' }],
        accounts: [machine.account('A'), machine.account('B')],
        position: events.at(-1)?.position,
      },
    });
  });

  it('are all or nothing: a failing third operation leaves the first two unapplied', () => {
    const given = spec.given([open('A', { initialBalance: '100' })]);
    const rejection = given.when(batch([op(open('B')), op(deposit('A', '50')), op(withdraw('A', '151'))])).thenRejected('BATCH_FAILED', {
      index: 2,
      causeCode: 'INSUFFICIENT_FUNDS',
    });
    expect(rejection.message).toMatch(/operation 2/);
    expect(given.machine.account('B')).toBeUndefined();
    expect(balances(given.machine, 'A')).toEqual({ balance: '100', availableBalance: '100' });
    expect(given.machine.view.transactionSeq).toBe(1);
  });

  it('report the failing operation index and its cause for each kind of failure', () => {
    const given = () => spec.given([open('A', { initialBalance: '100' }), open('E', { currency: 'EUR' })]);
    given().when(batch([op(deposit('Z', '1'))])).thenRejected('BATCH_FAILED', { index: 0, causeCode: 'ACCOUNT_NOT_FOUND' });
    given().when(batch([op(deposit('A', '1')), op(open('A'))])).thenRejected('BATCH_FAILED', { index: 1, causeCode: 'ACCOUNT_ALREADY_EXISTS' });
    given().when(batch([op(open('C')), op(open('C'))])).thenRejected('BATCH_FAILED', { index: 1, causeCode: 'ACCOUNT_ALREADY_EXISTS' });
    given().when(batch([op(transfer('A', 'E', '1'))])).thenRejected('BATCH_FAILED', { index: 0, causeCode: 'CURRENCY_MISMATCH' });
    given().when(batch([op(transfer('A', 'A', '1'))])).thenRejected('BATCH_FAILED', { index: 0, causeCode: 'SAME_ACCOUNT' });
    given().when(batch([op(deposit('A', OVER_MAX))])).thenRejected('BATCH_FAILED', { index: 0, causeCode: 'AMOUNT_LIMIT_EXCEEDED' });
    given().when(batch([op(deposit('A', '0'))])).thenRejected('BATCH_FAILED', { index: 0, causeCode: 'VALIDATION' });
    // A later operation sees the hold an earlier one took.
    given().when(batch([op(withdraw('A', '60', { pending: true })), op(withdraw('A', '41'))])).thenRejected('BATCH_FAILED', { index: 1, causeCode: 'INSUFFICIENT_FUNDS' });
  });

  it('refuse malformed operations inside the batch', () => {
    const given = () => spec.given([open('A', { initialBalance: '100' })]);
    const two = { deposit: { accountId: 'A', amount: '1' }, withdraw: { accountId: 'A', amount: '1' } } as unknown as BatchOperation;
    given().when(batch([op(deposit('A', '1')), two])).thenRejected('BATCH_FAILED', { index: 1, causeCode: 'VALIDATION' });
    const keyed = { deposit: { accountId: 'A', amount: '1', idempotencyKey: 'k' } } as unknown as BatchOperation;
    given().when(batch([keyed])).thenRejected('BATCH_FAILED', { index: 0, causeCode: 'VALIDATION' });
  });

  it('need between one and the maximum number of operations', () => {
    spec.given([open('A')]).when(batch([])).thenRejected('VALIDATION');
    const small = ledgerSpec({ ...DEFAULT_RULES, batchOperationsMax: 2 });
    small.given([open('A')]).when(batch([op(deposit('A', '1')), op(deposit('A', '1')), op(deposit('A', '1'))])).thenRejected('VALIDATION');
    small.given([open('A')]).when(batch([op(deposit('A', '1')), op(deposit('A', '1'))])).then([{ type: 'TransactionRecorded' }, { type: 'TransactionRecorded' }]);
  });
});

describe('idempotency keys', () => {
  const funded = [open('A', { initialBalance: '100' }), open('B')];

  it('record the outcome after the command events', () => {
    const { outcome } = spec.given(funded).when(withdraw('A', '10', { idempotencyKey: 'k1' }), at(9)).then([
      { type: 'TransactionRecorded' },
      { type: 'IdempotencyKeyRecorded', data: { key: 'k1', recordedAtMs: at(9) } },
    ]);
    expect(outcome.ok && outcome.outcome.type).toBe('Withdraw');
  });

  it('with the same input replay the first outcome and change nothing', () => {
    const given = spec.given(funded);
    const firstResult = given.when(withdraw('A', '10', { idempotencyKey: 'k1' })).result().outcome;
    const first = firstResult.ok ? firstResult.outcome : undefined;
    const before = given.machine.snapshot();
    const { outcome, events } = given.when(withdraw('A', '10', { idempotencyKey: 'k1' })).then([]);
    expect(outcome).toEqual({ ok: true, replayed: true, outcome: first });
    expect(first).toMatchObject({ type: 'Withdraw', transaction: { id: 'tx-2' }, account: { balance: '90' } });
    expect(events).toEqual([]);
    expect({ ...given.machine.snapshot(), appliedIndex: 0, lastTimestampMs: 0 }).toEqual({ ...before, appliedIndex: 0, lastTimestampMs: 0 });
    expect(balances(given.machine, 'A').balance).toBe('90');
  });

  it('replay even when the command would now be refused', () => {
    const given = spec.given([...funded, withdraw('A', '10', { pending: true }), settle('tx-2', 's1')]);
    const { outcome } = given.when(settle('tx-2', 's1')).then([]);
    expect(outcome).toMatchObject({ ok: true, replayed: true, outcome: { type: 'SettleTransaction', transaction: { id: 'tx-2', status: 'SETTLED' } } });
    given.when(settle('tx-2', 's2')).thenRejected('TRANSACTION_NOT_PENDING');
  });

  it('ignore the key order inside metadata', () => {
    const given = spec.given([...funded, deposit('A', '5', { metadata: { a: 1, b: { c: 2, d: [1, { e: 3, f: 4 }] } }, idempotencyKey: 'k' })]);
    const { outcome } = given.when(deposit('A', '5', { metadata: { b: { d: [1, { f: 4, e: 3 }], c: 2 }, a: 1 }, idempotencyKey: 'k' })).then([]);
    expect(outcome).toMatchObject({ ok: true, replayed: true });
  });

  it('with a different input are IDEMPOTENCY_CONFLICT', () => {
    const given = () => spec.given([...funded, deposit('A', '5', { metadata: { a: [1, 2] }, idempotencyKey: 'k' })]);
    given().when(deposit('A', '6', { metadata: { a: [1, 2] }, idempotencyKey: 'k' })).thenRejected('IDEMPOTENCY_CONFLICT');
    given().when(deposit('A', '5', { metadata: { a: [2, 1] }, idempotencyKey: 'k' })).thenRejected('IDEMPOTENCY_CONFLICT');
    given().when(deposit('A', '5', { idempotencyKey: 'k' })).thenRejected('IDEMPOTENCY_CONFLICT');
    given().when(withdraw('A', '5', { metadata: { a: [1, 2] }, idempotencyKey: 'k' })).thenRejected('IDEMPOTENCY_CONFLICT');
    given().when(batch([op(deposit('A', '5', { metadata: { a: [1, 2] } }))], 'k')).thenRejected('IDEMPOTENCY_CONFLICT');
  });

  it('replay a batch, and a batch key is not reused by other commands', () => {
    const given = spec.given([...funded, batch([op(deposit('A', '1')), op(transfer('A', 'B', '2'))], 'b1')]);
    given.when(batch([op(deposit('A', '1')), op(transfer('A', 'B', '2'))], 'b1')).then([]);
    expect(balances(given.machine, 'B').balance).toBe('2');
  });

  it('are forgotten after the retention period, so the command runs again', () => {
    const rules = { ...DEFAULT_RULES, idempotencyRetentionMs: 60_000 };
    const given = ledgerSpec(rules).given([...funded, { command: deposit('A', '5', { idempotencyKey: 'k' }), atMs: at(10) }]);
    given.when(deposit('A', '5', { idempotencyKey: 'k' }), at(70)).then([]);
    given.when(deposit('A', '5', { idempotencyKey: 'k' }), at(71)).then([
      { type: 'TransactionRecorded', data: { transaction: { id: 'tx-3' } } },
      { type: 'IdempotencyKeyRecorded', data: { key: 'k', recordedAtMs: at(71) } },
    ]);
    expect(balances(given.machine, 'A').balance).toBe('110');
  });

  it('are not claimed by a rejected command', () => {
    const given = spec.given(funded);
    given.when(withdraw('A', '150', { idempotencyKey: 'w' })).thenRejected('INSUFFICIENT_FUNDS');
    expect(given.machine.view.idempotency('w')).toBeUndefined();
  });

  it('must be 1 to the maximum length', () => {
    spec.given(funded).when(deposit('A', '1', { idempotencyKey: '' })).thenRejected('VALIDATION');
    spec.given(funded).when(deposit('A', '1', { idempotencyKey: 'k'.repeat(201) })).thenRejected('VALIDATION');
    spec.given(funded).when(deposit('A', '1', { idempotencyKey: 'k'.repeat(200) })).then([{ type: 'TransactionRecorded' }, { type: 'IdempotencyKeyRecorded' }]);
  });
});

describe('rejected commands', () => {
  it('produce no events and leave the state unchanged', () => {
    const given = spec.given([open('A', { initialBalance: '100' }), withdraw('A', '10', { pending: true }), open('B')]);
    const before = given.machine.snapshot();
    const { events, outcome } = given.when(transfer('A', 'B', '91')).result();
    expect(outcome.ok).toBe(false);
    expect(events).toEqual([]);
    expect(given.machine.snapshot()).toEqual({ ...before, appliedIndex: before.appliedIndex + 1, lastTimestampMs: given.machine.snapshot().lastTimestampMs });
    expect(given.machine.snapshot().lastTimestampMs).toBeGreaterThan(before.lastTimestampMs);
  });
});

describe('determinism', () => {
  const commands: LedgerCommand[] = [
    open('A', { initialBalance: '1000' }),
    open('B', { currency: 'USD' }),
    transfer('A', 'B', '10', { pending: true, holdTimeoutSeconds: 3 }),
    batch([op(deposit('B', '7')), op(withdraw('A', '3', { pending: true }))], 'k'),
    settle('tx-4'),
    tick(),
    withdraw('B', '1000'),
    deposit('A', '2', { idempotencyKey: 'k2' }),
  ];

  function run(): EntryResult[] {
    const machine = new LedgerMachine(DEFAULT_RULES);
    return commands.map((command, i) => machine.apply({ index: i + 1, timestampMs: BASE_MS + i * 1000 }, command));
  }

  it('gives the same ids, events and outcomes on two machines', () => {
    const first = run();
    expect(run()).toEqual(first);
    const ids = first.flatMap((r) => r.events.flatMap((e) => (e.event.type === 'TransactionRecorded' ? [e.event.data.transaction.id] : [])));
    expect(ids).toEqual(['tx-1', 'tx-2', 'tx-3', 'tx-4', 'tx-5']);
    expect(first[5]?.events.map((e) => e.event.type)).toEqual(['TransactionExpired']);
  });
});

describe('outcomes and positions', () => {
  it('of a deposit carry the post-command account and the transaction with its position', () => {
    const { outcome, events, machine } = spec.given([open('A', { initialBalance: '1' })]).when(deposit('A', '9')).result();
    const position = events[0]?.position;
    expect(position).toBe(formatPosition(2, 0));
    expect(outcome).toEqual({
      ok: true,
      replayed: false,
      outcome: {
        type: 'Deposit',
        account: machine.account('A'),
        transaction: { ...(events[0]?.event as Extract<LedgerEvent, { type: 'TransactionRecorded' }>).data.transaction, position },
        position,
      },
    });
    expect(machine.account('A')).toMatchObject({ balance: '10', transactionCount: 2 });
  });

  it('of a withdrawal and a transfer carry every touched account as it is afterwards', () => {
    const given = spec.given([open('A', { initialBalance: '100' }), open('B')]);
    const w = outcomeOf(given.when(withdraw('A', '10')).result());
    expect(w).toMatchObject({ type: 'Withdraw', account: given.machine.account('A') });
    const t = outcomeOf(given.when(transfer('A', 'B', '20', { pending: true })).result());
    expect(t).toMatchObject({
      type: 'Transfer',
      from: { id: 'A', balance: '90', availableBalance: '70' },
      to: { id: 'B', balance: '0' },
      transaction: { id: 'tx-3', status: 'PENDING', position: formatPosition(4, 0) },
      position: formatPosition(4, 0),
    });
    const s = outcomeOf(given.when(settle('tx-3')).result());
    expect(s).toEqual({ type: 'SettleTransaction', transaction: expect.objectContaining({ id: 'tx-3', status: 'SETTLED', position: formatPosition(5, 0) }), position: formatPosition(5, 0) });
    expect(given.machine.account('B')?.balance).toBe('20');
  });

  it('of an account opening carry the account after its opening balance', () => {
    const { outcome, events } = spec.given().when(open('A', { initialBalance: '70' })).result();
    expect(outcome).toMatchObject({ ok: true, outcome: { type: 'OpenAccount', account: { id: 'A', balance: '70' }, position: events[1]?.position } });
  });

  it('leave out the due expiries and the idempotency record from the command position', () => {
    const given = spec.given([open('A', { initialBalance: '100' }), { command: withdraw('A', '5', { pending: true, holdTimeoutSeconds: 1 }), atMs: at(2) }]);
    const { outcome, events } = given.when(cancel('tx-99'), at(2)).result();
    expect(outcome.ok).toBe(false);
    expect(events).toHaveLength(0);
    const result = given.when(deposit('A', '1', { idempotencyKey: 'x' }), at(10)).result();
    expect(result.events.map((e) => e.event.type)).toEqual(['TransactionExpired', 'TransactionRecorded', 'IdempotencyKeyRecorded']);
    expect(outcomeOf(result).position).toBe(result.events[1]?.position);
    expect(outcomeOf(result)).toMatchObject({ transaction: { id: 'tx-3', createdPosition: result.events[1]?.position, position: result.events[1]?.position } });
  });

  it('record the creation position on the transaction, kept through later status changes', () => {
    const given = spec.given([open('A', { initialBalance: '100' })]);
    const recorded = given.when(batch([op(deposit('A', '1')), op(withdraw('A', '5', { pending: true }))])).result();
    const pending = recorded.events[1];
    expect(pending?.event).toMatchObject({ type: 'TransactionRecorded', data: { transaction: { id: 'tx-3', createdPosition: pending?.position } } });
    const settled = given.when(settle('tx-3')).result();
    expect(settled.events[0]?.event).toMatchObject({ data: { transaction: { createdPosition: pending?.position } } });
  });

  it('are well formed and increase along the log', () => {
    const machine = new LedgerMachine(DEFAULT_RULES);
    const all: string[] = [];
    const commands = [open('A', { initialBalance: '5' }), batch([op(open('B')), op(deposit('B', '1')), op(transfer('A', 'B', '2'))]), tick(), deposit('A', '1')];
    commands.forEach((command, i) => all.push(...machine.apply({ index: i + 1, timestampMs: at(i) }, command).events.map((e) => e.position)));
    expect(all).toHaveLength(6);
    all.forEach((p) => expect(isPosition(p)).toBe(true));
    expect([...all].sort(comparePositions)).toEqual(all);
    expect(new Set(all).size).toBe(all.length);
  });
});

describe('given events', () => {
  it('decide exactly as given the commands that produced them', () => {
    const priors = [open('A', { initialBalance: '100' }), open('A2'), withdraw('A', '30', { pending: true })];
    const source = spec.given(priors).machine;
    const events: LedgerEvent[] = [];
    const machine = new LedgerMachine(DEFAULT_RULES);
    priors.forEach((command, i) => events.push(...machine.apply({ index: i + 1, timestampMs: at(i + 1) }, command).events.map((e) => e.event)));
    const fromEvents = spec.givenEvents(events);
    expect(fromEvents.machine.account('A')).toEqual(source.account('A'));
    fromEvents.when(settle('tx-2')).then([{ type: 'TransactionSettled', data: { accounts: [{ id: 'A', balance: '70', availableBalance: '70' }] } }]);
    spec.givenEvents(events).when(withdraw('A', '71')).thenRejected('INSUFFICIENT_FUNDS');
  });
});

describe('the error codes', () => {
  it('all have a spec above', () => {
    expect(ERROR_CODES.filter((code) => !rejectedCodesSeen.has(code))).toEqual([]);
  });
});
