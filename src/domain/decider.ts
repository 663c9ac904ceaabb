import type {
  BatchOperation,
  CommandEnvelope,
  DepositInput,
  JsonObject,
  LedgerCommand,
  OpenAccountInput,
  TransactionRefInput,
  TransferInput,
  WithdrawInput,
} from './commands';
import { type Rejection, reject } from './errors';
import type { AccountRecord, IdempotencyRecord, LedgerEvent, TransactionKind, TransactionRecord } from './events';
import { fingerprintOfCanonical } from './idempotency';
import { INT64_MAX, INT64_MIN } from './money';
import { formatPosition } from './position';
import type { LedgerRules } from './rules';
import {
  type AccountState,
  Draft,
  type LedgerView,
  type MutableLedger,
  accountFromRecord,
  accountToRecord,
  holdFromRecord,
  isoTime,
  transactionId,
  transactionSeqOf,
} from './state';
import {
  batchFailed,
  checkAccountMovement,
  batchOperationShapeRejection,
  batchSizeRejection,
  checkOpenAccount,
  checkTransactionRef,
  checkTransfer,
  idempotencyKeyRejection,
  transactionNotFound,
} from './validate-command';

/**
 * The banking aggregate as a Decider over the whole ledger:
 *   decide(command, state) → events | rejection      (pure: reads state, never changes it)
 *   evolve(state, event)                              (applies one event)
 * Time comes from the log entry's envelope and transaction ids from the ledger's own sequence, so
 * every replica decides identically.
 */

export interface DecisionContext {
  envelope: CommandEnvelope;
  rules: LedgerRules;
  /** How many events the entry produced before this command's (due expiries); positions count from here. */
  eventIndexBase?: number;
}

export type Decision =
  | { kind: 'accepted'; events: LedgerEvent[] }
  | { kind: 'rejected'; rejection: Rejection }
  /** A same-input retry of an idempotency key: the first command's record (its outcome is rebuilt from it), and nothing changes. */
  | { kind: 'replayed'; record: IdempotencyRecord };

type Step = { ok: true } | { ok: false; rejection: Rejection };
const OK: Step = { ok: true };
const fail = (rejection: Rejection): Step => ({ ok: false, rejection });

export function decide(command: LedgerCommand, state: LedgerView, ctx: DecisionContext): Decision {
  if (command.type === 'Tick') return { kind: 'accepted', events: [] };

  if (command.idempotencyKey !== undefined) {
    const key = command.idempotencyKey;
    const keyRejection = idempotencyKeyRejection(key, ctx.rules);
    if (keyRejection) return { kind: 'rejected', rejection: keyRejection };
    const previous = state.idempotency(key);
    if (previous && previous.recordedAtMs >= ctx.envelope.timestampMs - ctx.rules.idempotencyRetentionMs) {
      if (previous.fingerprint === fingerprintOf(command)) return { kind: 'replayed', record: previous };
      return {
        kind: 'rejected',
        rejection: reject('IDEMPOTENCY_CONFLICT', `idempotencyKey "${key}" was already used with a different input`),
      };
    }
  }

  const draft = new Draft(state);
  const events: LedgerEvent[] = [];
  const step = decideOperation(command, draft, events, ctx);
  if (!step.ok) return { kind: 'rejected', rejection: step.rejection };
  return { kind: 'accepted', events };
}

/** At most this many holds expire in one entry; the rest expire in the next ones (the node keeps ticking). */
export const EXPIRIES_PER_ENTRY_MAX = 1000;

/** Holds due at the entry's timestamp expire before the entry's own command is decided. */
export function decideExpiries(
  state: { dueHolds(nowMs: number, limit: number): { transaction: TransactionRecord }[] } & LedgerView,
  nowMs: number,
): LedgerEvent[] {
  const due = state.dueHolds(nowMs, EXPIRIES_PER_ENTRY_MAX);
  if (due.length === 0) return [];
  const draft = new Draft(state);
  const events: LedgerEvent[] = [];
  for (const hold of due) endHold(draft, events, hold.transaction.id, 'EXPIRED', nowMs);
  return events;
}

function decideOperation(command: Exclude<LedgerCommand, { type: 'Tick' }>, draft: Draft, events: LedgerEvent[], ctx: DecisionContext): Step {
  switch (command.type) {
    case 'OpenAccount':
      return openAccount(draft, events, command.input, ctx);
    case 'Deposit':
      return deposit(draft, events, command.input, ctx);
    case 'Withdraw':
      return withdraw(draft, events, command.input, ctx);
    case 'Transfer':
      return transfer(draft, events, command.input, ctx);
    case 'SettleTransaction':
      return settleOrCancel(draft, events, command.input, 'SETTLED', ctx);
    case 'CancelTransaction':
      return settleOrCancel(draft, events, command.input, 'CANCELLED', ctx);
    case 'ExecuteBatch':
      return batch(draft, events, command.input.operations, ctx);
  }
}

function batch(draft: Draft, events: LedgerEvent[], operations: BatchOperation[], ctx: DecisionContext): Step {
  const size = batchSizeRejection(Array.isArray(operations) ? operations.length : 0, ctx.rules);
  if (size) return fail(size);
  // Each operation is checked and decided before the next is looked at: a batch fails where its
  // operations, run one by one, would first fail (test/domain/properties.test.ts).
  for (let index = 0; index < operations.length; index += 1) {
    const step = batchOperation(draft, events, operations[index]!, ctx);
    if (!step.ok) return fail(batchFailed(index, step.rejection));
  }
  return OK;
}

function batchOperation(draft: Draft, events: LedgerEvent[], operation: BatchOperation, ctx: DecisionContext): Step {
  const shape = batchOperationShapeRejection(operation);
  if (shape) return fail(shape);
  if ('openAccount' in operation && operation.openAccount) return openAccount(draft, events, operation.openAccount, ctx);
  if ('deposit' in operation && operation.deposit) return deposit(draft, events, operation.deposit, ctx);
  if ('withdraw' in operation && operation.withdraw) return withdraw(draft, events, operation.withdraw, ctx);
  if ('transfer' in operation && operation.transfer) return transfer(draft, events, operation.transfer, ctx);
  throw new Error('invariant: batchOperationShapeRejection let through an operation that sets none of openAccount, deposit, withdraw, transfer');
}

function openAccount(draft: Draft, events: LedgerEvent[], input: OpenAccountInput, ctx: DecisionContext): Step {
  const own = checkOpenAccount(input, ctx.rules);
  if (!own.ok) return own;
  const { currency } = own;
  if (draft.account(input.id)) return fail(reject('ACCOUNT_ALREADY_EXISTS', `account "${input.id}" already exists`));

  const now = ctx.envelope.timestampMs;
  const account: AccountState = {
    id: input.id,
    currency,
    balance: 0n,
    availableBalance: 0n,
    overdraftLimit: own.overdraftLimit,
    createdAtMs: now,
    lastTransactionAtMs: null,
    transactionCount: 0,
    metadata: input.metadata ?? null,
  };
  emit(draft, events, { type: 'AccountOpened', data: { account: accountToRecord(account) } });
  if (own.initialBalance > 0n) {
    // Every unit in the ledger traces to a transaction: an opening balance is a settled deposit.
    recordTransaction(draft, events, ctx, {
      kind: 'DEPOSIT',
      amount: own.initialBalance,
      currency,
      from: null,
      to: account.id,
      pending: false,
      holdTimeoutSeconds: null,
      description: 'Opening balance',
      metadata: null,
    });
  }
  return OK;
}

function deposit(draft: Draft, events: LedgerEvent[], input: DepositInput, ctx: DecisionContext): Step {
  const common = checkAccountMovement(input, ctx.rules);
  if (!common.ok) return common;
  const account = draft.account(input.accountId);
  if (!account) return fail(notFound(input.accountId));
  if (!input.pending) {
    const credit = checkCredit(account, common.amount);
    if (!credit.ok) return credit;
  }
  recordTransaction(draft, events, ctx, {
    kind: 'DEPOSIT',
    amount: common.amount,
    currency: account.currency,
    from: null,
    to: account.id,
    pending: input.pending === true,
    holdTimeoutSeconds: input.holdTimeoutSeconds ?? null,
    description: input.description ?? null,
    metadata: input.metadata ?? null,
  });
  return OK;
}

function withdraw(draft: Draft, events: LedgerEvent[], input: WithdrawInput, ctx: DecisionContext): Step {
  const common = checkAccountMovement(input, ctx.rules);
  if (!common.ok) return common;
  const account = draft.account(input.accountId);
  if (!account) return fail(notFound(input.accountId));
  const funds = checkDebit(account, common.amount);
  if (!funds.ok) return funds;
  recordTransaction(draft, events, ctx, {
    kind: 'WITHDRAWAL',
    amount: common.amount,
    currency: account.currency,
    from: account.id,
    to: null,
    pending: input.pending === true,
    holdTimeoutSeconds: input.holdTimeoutSeconds ?? null,
    description: input.description ?? null,
    metadata: input.metadata ?? null,
  });
  return OK;
}

function transfer(draft: Draft, events: LedgerEvent[], input: TransferInput, ctx: DecisionContext): Step {
  const common = checkTransfer(input, ctx.rules);
  if (!common.ok) return common;
  const from = draft.account(input.fromAccountId);
  if (!from) return fail(notFound(input.fromAccountId));
  const to = draft.account(input.toAccountId);
  if (!to) return fail(notFound(input.toAccountId));
  if (from.currency !== to.currency) {
    return fail(reject('CURRENCY_MISMATCH', `account "${from.id}" holds ${from.currency} but "${to.id}" holds ${to.currency}`));
  }
  const funds = checkDebit(from, common.amount);
  if (!funds.ok) return funds;
  if (!input.pending) {
    const credit = checkCredit(to, common.amount);
    if (!credit.ok) return credit;
  }
  recordTransaction(draft, events, ctx, {
    kind: 'TRANSFER',
    amount: common.amount,
    currency: from.currency,
    from: from.id,
    to: to.id,
    pending: input.pending === true,
    holdTimeoutSeconds: input.holdTimeoutSeconds ?? null,
    description: input.description ?? null,
    metadata: input.metadata ?? null,
  });
  return OK;
}

function settleOrCancel(draft: Draft, events: LedgerEvent[], input: TransactionRefInput, outcome: 'SETTLED' | 'CANCELLED', ctx: DecisionContext): Step {
  const own = checkTransactionRef(input);
  if (!own.ok) return own;
  if (transactionSeqOf(input.transactionId)! > draft.transactionSeq) return fail(transactionNotFound(input.transactionId));
  const hold = draft.hold(input.transactionId);
  if (!hold) {
    const verb = outcome === 'SETTLED' ? 'settled' : 'cancelled';
    return fail(reject('TRANSACTION_NOT_PENDING', `transaction "${input.transactionId}" is not pending and cannot be ${verb}`));
  }
  if (outcome === 'SETTLED') {
    const creditTo = hold.transaction.toAccountId === null ? undefined : draft.account(hold.transaction.toAccountId);
    if (creditTo) {
      const credit = checkCredit(creditTo, hold.amount);
      if (!credit.ok) return credit;
    }
  }
  endHold(draft, events, input.transactionId, outcome, ctx.envelope.timestampMs);
  return OK;
}

interface NewTransaction {
  kind: TransactionKind;
  amount: bigint;
  currency: string;
  from: string | null;
  to: string | null;
  pending: boolean;
  holdTimeoutSeconds: number | null;
  description: string | null;
  metadata: JsonObject | null;
}

/** Records a new transaction; the caller has checked every rule. */
function recordTransaction(draft: Draft, events: LedgerEvent[], ctx: DecisionContext, t: NewTransaction) {
  const now = ctx.envelope.timestampMs;
  const at = isoTime(now);
  const seq = draft.transactionSeq + 1;
  const transaction: TransactionRecord = {
    id: transactionId(seq),
    kind: t.kind,
    status: t.pending ? 'PENDING' : 'SETTLED',
    amount: t.amount.toString(),
    currency: t.currency,
    fromAccountId: t.from,
    toAccountId: t.to,
    description: t.description,
    metadata: t.metadata,
    createdAt: at,
    updatedAt: at,
    createdPosition: formatPosition(ctx.envelope.index, (ctx.eventIndexBase ?? 0) + events.length),
    expiresAt: t.pending && t.holdTimeoutSeconds !== null ? isoTime(now + t.holdTimeoutSeconds * 1000) : null,
    large: t.amount >= ctx.rules.largeTransactionThresholdMinor,
  };
  const accounts: AccountRecord[] = [];
  if (t.from !== null) {
    const from = draft.account(t.from)!;
    accounts.push(
      accountToRecord({
        ...from,
        // A pending debit is taken from the available balance at once, from the balance on settle.
        balance: t.pending ? from.balance : from.balance - t.amount,
        availableBalance: from.availableBalance - t.amount,
        transactionCount: from.transactionCount + 1,
        lastTransactionAtMs: now,
      }),
    );
  }
  if (t.to !== null) {
    const to = draft.account(t.to)!;
    accounts.push(
      accountToRecord({
        ...to,
        // A pending credit changes no balance until it is settled.
        balance: t.pending ? to.balance : to.balance + t.amount,
        availableBalance: t.pending ? to.availableBalance : to.availableBalance + t.amount,
        transactionCount: to.transactionCount + 1,
        lastTransactionAtMs: now,
      }),
    );
  }
  emit(draft, events, { type: 'TransactionRecorded', data: { transaction, accounts } });
}

/** Settles, cancels or expires a pending transaction; the caller has checked that it is pending. */
function endHold(draft: MutableLedger, events: LedgerEvent[], id: string, status: 'SETTLED' | 'CANCELLED' | 'EXPIRED', nowMs: number) {
  const hold = draft.hold(id)!;
  const t = hold.transaction;
  const transaction: TransactionRecord = { ...t, status, updatedAt: isoTime(nowMs) };
  const accounts: AccountRecord[] = [];
  const from = t.fromAccountId === null ? undefined : draft.account(t.fromAccountId);
  const to = t.toAccountId === null ? undefined : draft.account(t.toAccountId);
  if (status === 'SETTLED') {
    if (from) accounts.push(accountToRecord({ ...from, balance: from.balance - hold.amount, lastTransactionAtMs: nowMs }));
    if (to) {
      accounts.push(
        accountToRecord({
          ...to,
          balance: to.balance + hold.amount,
          availableBalance: to.availableBalance + hold.amount,
          lastTransactionAtMs: nowMs,
        }),
      );
    }
  } else if (from) {
    // Cancel and expiry give a pending debit back to the available balance; a pending credit had changed nothing.
    accounts.push(accountToRecord({ ...from, availableBalance: from.availableBalance + hold.amount, lastTransactionAtMs: nowMs }));
  }
  const type = status === 'SETTLED' ? 'TransactionSettled' : status === 'CANCELLED' ? 'TransactionCancelled' : 'TransactionExpired';
  emit(draft, events, { type, data: { transaction, accounts } });
}

function emit(draft: MutableLedger, events: LedgerEvent[], event: Exclude<LedgerEvent, { type: 'IdempotencyKeyRecorded' }>) {
  events.push(event);
  evolveInto(draft, event);
}

/**
 * Applies one event. Events carry the post-event records of everything they touch, so evolving is
 * setting: replaying the same events always rebuilds the same state.
 * Mutates `state` in place (the state machine owns it; decisions work on a Draft overlay).
 */
export function evolve(state: MutableLedger, event: LedgerEvent, rules: LedgerRules): void {
  if (event.type === 'IdempotencyKeyRecorded') {
    state.recordIdempotency(event.data, rules.idempotencyRetentionMs, rules.idempotencyKeysMax);
    return;
  }
  evolveInto(state, event);
}

function evolveInto(state: MutableLedger, event: Exclude<LedgerEvent, { type: 'IdempotencyKeyRecorded' }>): void {
  switch (event.type) {
    case 'AccountOpened':
      state.setAccount(accountFromRecord(event.data.account));
      return;
    case 'TransactionRecorded': {
      const seq = transactionSeqOf(event.data.transaction.id);
      if (seq !== state.transactionSeq + 1) {
        throw new Error(`invariant: transaction ${event.data.transaction.id} does not follow sequence ${state.transactionSeq}`);
      }
      state.setTransactionSeq(seq);
      for (const account of event.data.accounts) state.setAccount(accountFromRecord(account));
      if (event.data.transaction.status === 'PENDING') state.setHold(holdFromRecord(event.data.transaction));
      return;
    }
    case 'TransactionSettled':
    case 'TransactionCancelled':
    case 'TransactionExpired':
      for (const account of event.data.accounts) state.setAccount(accountFromRecord(account));
      state.deleteHold(event.data.transaction.id);
      return;
  }
}

// ---- stateful checks (the stateless ones are in validate-command.ts) -----------------------

/** The available balance may not fall below minus the overdraft limit. */
function checkDebit(account: AccountState, amount: bigint): Step {
  const after = account.availableBalance - amount;
  if (after < -account.overdraftLimit) {
    return fail(
      reject(
        'INSUFFICIENT_FUNDS',
        `account "${account.id}" has an available balance of ${account.availableBalance} and an overdraft limit of ${account.overdraftLimit}; ${amount} is more than that`,
      ),
    );
  }
  if (account.balance - amount < INT64_MIN) return fail(reject('AMOUNT_LIMIT_EXCEEDED', `account "${account.id}" balance would leave the 64-bit range`));
  return OK;
}

function checkCredit(account: AccountState, amount: bigint): Step {
  if (account.balance + amount > INT64_MAX || account.availableBalance + amount > INT64_MAX) {
    return fail(reject('AMOUNT_LIMIT_EXCEEDED', `account "${account.id}" balance would exceed ${INT64_MAX}`));
  }
  return OK;
}

function notFound(id: string): Rejection {
  return reject('ACCOUNT_NOT_FOUND', `account "${id}" does not exist`);
}

/**
 * Same command type and same input (key order of objects ignored) give the same fingerprint: a
 * SHA-256 of the canonical JSON, 64 characters whatever the input's size.
 */
export function fingerprintOf(command: LedgerCommand): string {
  return fingerprintOfCanonical(canonicalJson({ type: command.type, input: 'input' in command ? command.input : null }));
}

function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

