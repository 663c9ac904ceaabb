import type { BatchOperation, DepositInput, JsonObject, LedgerCommand, OpenAccountInput, TransactionRefInput, TransferInput, WithdrawInput } from './commands';
import { type Rejection, reject } from './errors';
import { INT64_MAX, parseAmount } from './money';
import { ACCOUNT_ID_PATTERN, CURRENCY_PATTERN, DEFAULT_CURRENCY, type LedgerRules } from './rules';
import { transactionSeqOf } from './state';

/**
 * The ledger's stateless rules: what a command must satisfy whatever the ledger holds (shape,
 * amounts, ids, currency, metadata, batch size, idempotency key). Pure; the one place these rules
 * are written. The decider calls them (they decide replayed entries too), and the node calls
 * validateCommand before proposing, so that a command the decider would refuse without reading
 * any state never reaches the log (issue 8). The rejections are the decider's, word for word.
 */

type Step = { ok: true } | { ok: false; rejection: Rejection };
const OK: Step = { ok: true };
const fail = (rejection: Rejection): { ok: false; rejection: Rejection } => ({ ok: false, rejection });

/**
 * The rejection the decider gives this command before it reads any state other than its
 * idempotency key, or null. Order matters and is the decider's: the key's length first, then the
 * command's own rules, a batch's size before its operations, the operations in order.
 * The caller decides whether the key's record may change the answer (see LedgerNode.execute).
 */
export function validateCommand(command: LedgerCommand, rules: LedgerRules): Rejection | null {
  if (command.type === 'Tick') return null;
  const key = idempotencyKeyRejection(command.idempotencyKey, rules);
  if (key) return key;
  const step = validateOperation(command, rules);
  return step.ok ? null : step.rejection;
}

/** Checked before the key is looked up: a key of the wrong length is refused whatever it names. */
export function idempotencyKeyRejection(key: string | undefined, rules: LedgerRules): Rejection | null {
  if (key === undefined) return null;
  if (key.length === 0 || key.length > rules.idempotencyKeyLengthMax) {
    return reject('VALIDATION', `idempotencyKey must be 1 to ${rules.idempotencyKeyLengthMax} characters`);
  }
  return null;
}

function validateOperation(command: Exclude<LedgerCommand, { type: 'Tick' }>, rules: LedgerRules): Step {
  switch (command.type) {
    case 'OpenAccount':
      return checkOpenAccount(command.input, rules);
    case 'Deposit':
    case 'Withdraw':
      return checkAccountMovement(command.input, rules);
    case 'Transfer':
      return checkTransfer(command.input, rules);
    case 'SettleTransaction':
    case 'CancelTransaction':
      return checkTransactionRef(command.input);
    case 'ExecuteBatch':
      return checkBatch(command.input.operations, rules);
  }
}

/** The size of a batch, checked before any of its operations (and, at the API, before they are coerced). */
export function batchSizeRejection(operationCount: number, rules: LedgerRules): Rejection | null {
  if (operationCount === 0) return reject('VALIDATION', 'a batch needs at least one operation');
  if (operationCount > rules.batchOperationsMax) {
    return reject('VALIDATION', `a batch takes at most ${rules.batchOperationsMax} operations, got ${operationCount}`);
  }
  return null;
}

/**
 * A batch's size, then each operation's own rules in order. Unlike the decider, which decides each
 * operation against the state before it checks the next, this never reads the state: its answer is
 * the decider's only when no operation before the one it names fails on the state (the caller
 * confirms that; see LedgerMachine.refusalBeforeLog).
 */
export function checkBatch(operations: BatchOperation[], rules: LedgerRules): Step {
  const size = batchSizeRejection(Array.isArray(operations) ? operations.length : 0, rules);
  if (size) return fail(size);
  for (let index = 0; index < operations.length; index += 1) {
    const step = checkBatchOperation(operations[index]!, rules);
    if (!step.ok) return fail(batchFailed(index, step.rejection));
  }
  return OK;
}

export function batchFailed(index: number, cause: Rejection): Rejection {
  return { code: 'BATCH_FAILED', message: `operation ${index} failed: ${cause.message}`, index, cause };
}

const BATCH_OPERATION_KINDS = ['openAccount', 'deposit', 'withdraw', 'transfer'];

/** An operation sets exactly one known kind, and leaves the idempotency key to its batch. */
export function batchOperationShapeRejection(operation: BatchOperation): Rejection | null {
  const keys = operation && typeof operation === 'object' ? Object.keys(operation).filter((k) => (operation as Record<string, unknown>)[k] != null) : [];
  if (keys.length !== 1) return reject('VALIDATION', 'each batch operation sets exactly one of openAccount, deposit, withdraw, transfer');
  const input = (operation as Record<string, unknown>)[keys[0]!] as Record<string, unknown>;
  if (input.idempotencyKey != null) return reject('VALIDATION', 'idempotencyKey belongs on the batch, not on its operations');
  if (!BATCH_OPERATION_KINDS.includes(keys[0]!) || !input) return reject('VALIDATION', `unknown batch operation "${keys[0]}"`);
  return null;
}

function checkBatchOperation(operation: BatchOperation, rules: LedgerRules): Step {
  const shape = batchOperationShapeRejection(operation);
  if (shape) return fail(shape);
  if ('openAccount' in operation && operation.openAccount) return checkOpenAccount(operation.openAccount, rules);
  if ('deposit' in operation && operation.deposit) return checkAccountMovement(operation.deposit, rules);
  if ('withdraw' in operation && operation.withdraw) return checkAccountMovement(operation.withdraw, rules);
  return checkTransfer((operation as { transfer: TransferInput }).transfer, rules);
}

export type OpenAccountCheck = { ok: true; currency: string; initialBalance: bigint; overdraftLimit: bigint } | { ok: false; rejection: Rejection };

export function checkOpenAccount(input: OpenAccountInput, rules: LedgerRules): OpenAccountCheck {
  const idCheck = checkAccountId(input.id, 'id');
  if (!idCheck.ok) return idCheck;
  const currency = input.currency ?? DEFAULT_CURRENCY;
  if (typeof currency !== 'string' || !CURRENCY_PATTERN.test(currency)) return fail(reject('VALIDATION', `currency must be 3 upper-case letters, got "${String(currency)}"`));
  const initial = checkNonNegative(input.initialBalance ?? '0', 'initialBalance');
  if (!initial.ok) return initial;
  const overdraft = checkNonNegative(input.overdraftLimit ?? '0', 'overdraftLimit');
  if (!overdraft.ok) return overdraft;
  const metadata = checkMetadata(input.metadata, rules);
  if (!metadata.ok) return metadata;
  return { ok: true, currency, initialBalance: initial.value, overdraftLimit: overdraft.value };
}

export type AmountCheck = { ok: true; amount: bigint } | { ok: false; rejection: Rejection };

/** A deposit's or withdrawal's own rules: the movement's, then the account id. */
export function checkAccountMovement(input: DepositInput | WithdrawInput, rules: LedgerRules): AmountCheck {
  const common = checkMovement(input, rules);
  if (!common.ok) return common;
  const idCheck = checkAccountId(input.accountId, 'accountId');
  if (!idCheck.ok) return idCheck;
  return common;
}

/** A transfer's own rules: the movement's, both ids, two different accounts. */
export function checkTransfer(input: TransferInput, rules: LedgerRules): AmountCheck {
  const common = checkMovement(input, rules);
  if (!common.ok) return common;
  const fromCheck = checkAccountId(input.fromAccountId, 'fromAccountId');
  if (!fromCheck.ok) return fromCheck;
  const toCheck = checkAccountId(input.toAccountId, 'toAccountId');
  if (!toCheck.ok) return toCheck;
  if (input.fromAccountId === input.toAccountId) {
    return fail(reject('SAME_ACCOUNT', `a transfer needs two different accounts, got "${input.fromAccountId}" twice`));
  }
  return common;
}

/** An id that is not of the form the ledger gives can name no transaction. */
export function checkTransactionRef(input: TransactionRefInput): Step {
  if (typeof input.transactionId !== 'string' || transactionSeqOf(input.transactionId) === null) return fail(transactionNotFound(input.transactionId));
  return OK;
}

export function transactionNotFound(id: unknown): Rejection {
  return reject('TRANSACTION_NOT_FOUND', `transaction "${String(id)}" does not exist`);
}

function checkMovement(input: DepositInput | WithdrawInput | TransferInput, rules: LedgerRules): AmountCheck {
  const parsed = parseAmount(input.amount);
  if (!parsed.ok) return fail(reject('VALIDATION', `amount ${parsed.reason}`));
  if (parsed.value <= 0n) return fail(reject('VALIDATION', `amount must be greater than 0, got ${parsed.value}`));
  if (parsed.value > rules.amountMaxMinor) {
    return fail(reject('AMOUNT_LIMIT_EXCEEDED', `amount ${parsed.value} exceeds the limit of ${rules.amountMaxMinor} minor units`));
  }
  if (input.holdTimeoutSeconds != null) {
    if (!input.pending) return fail(reject('VALIDATION', 'holdTimeoutSeconds applies only to a pending transaction'));
    if (!Number.isInteger(input.holdTimeoutSeconds) || input.holdTimeoutSeconds < 1 || input.holdTimeoutSeconds > rules.holdTimeoutSecondsMax) {
      return fail(reject('VALIDATION', `holdTimeoutSeconds must be an integer from 1 to ${rules.holdTimeoutSecondsMax}`));
    }
  }
  if (input.description != null && (typeof input.description !== 'string' || input.description.length > rules.descriptionLengthMax)) {
    return fail(reject('VALIDATION', `description must be at most ${rules.descriptionLengthMax} characters`));
  }
  const metadata = checkMetadata(input.metadata, rules);
  if (!metadata.ok) return metadata;
  return { ok: true, amount: parsed.value };
}

function checkNonNegative(value: string, field: string): { ok: true; value: bigint } | { ok: false; rejection: Rejection } {
  const parsed = parseAmount(value);
  if (!parsed.ok) return fail(reject('VALIDATION', `${field} ${parsed.reason}`));
  if (parsed.value < 0n) return fail(reject('VALIDATION', `${field} must be at least 0, got ${parsed.value}`));
  if (parsed.value > INT64_MAX) return fail(reject('AMOUNT_LIMIT_EXCEEDED', `${field} exceeds ${INT64_MAX}`));
  return { ok: true, value: parsed.value };
}

function checkAccountId(id: unknown, field: string): Step {
  if (typeof id !== 'string' || !ACCOUNT_ID_PATTERN.test(id)) {
    return fail(reject('VALIDATION', `${field} must be 1 to 50 characters of A-Z a-z 0-9 _ -, got "${String(id).slice(0, 60)}"`));
  }
  return OK;
}

function checkMetadata(metadata: JsonObject | null | undefined, rules: LedgerRules): Step {
  if (metadata == null) return OK;
  if (typeof metadata !== 'object' || Array.isArray(metadata)) return fail(reject('VALIDATION', 'metadata must be a JSON object'));
  const bytes = Buffer.byteLength(JSON.stringify(metadata), 'utf8');
  if (bytes > rules.metadataBytesMax) {
    return fail(reject('VALIDATION', `metadata must be at most ${rules.metadataBytesMax} bytes serialized, got ${bytes}`));
  }
  return OK;
}
