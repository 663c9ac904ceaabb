import { GraphQLError } from 'graphql';
import { LogOverloadedError, LogStoppedError, NoLeaderError, NotLeaderError, ReplicationOutcomeUnknownError } from '../../consensus/command-log';
import { OutcomeUnknownError, StorageWriteError } from '../../consensus/storage-errors';
import type { BatchOperation, JsonObject, LedgerCommand } from '../../domain/commands';
import type { ErrorCode } from '../../domain/errors';
import type { SuccessOutcome } from '../../domain/events';
import type { CommandOutcome } from '../../domain/ledger';
import type { AccountRefs } from './accounts';
import { type ApiContext, type Builder, TELLERS } from './builder';
import { errorShape } from './scalars-and-errors';
import type { TransactionRefs } from './transactions';

/** The mutation inputs, success types and result unions; every Mutation field. */
export function registerMutations(builder: Builder, errorTypes: Record<ErrorCode, unknown>, { Account }: AccountRefs, { Transaction }: TransactionRefs): void {
  const OpenAccountInput = builder.inputType('OpenAccountInput', {
    fields: (t) => ({
      id: t.id({ required: true }),
      currency: t.string({ defaultValue: 'USD' }),
      initialBalance: t.field({ type: 'Amount', defaultValue: '0' }),
      overdraftLimit: t.field({ type: 'Amount', defaultValue: '0' }),
      metadata: t.field({ type: 'JSON', required: false }),
      idempotencyKey: t.string({ required: false }),
    }),
  });
  const movementFields = (t: Parameters<Parameters<typeof builder.inputType>[1]['fields']>[0]) => ({
    amount: t.field({ type: 'Amount', required: true }),
    description: t.string({ required: false }),
    metadata: t.field({ type: 'JSON', required: false }),
    pending: t.boolean({ defaultValue: false }),
    holdTimeoutSeconds: t.int({ required: false }),
    idempotencyKey: t.string({ required: false }),
  });
  const DepositInput = builder.inputType('DepositInput', { fields: (t) => ({ accountId: t.id({ required: true }), ...movementFields(t) }) });
  const WithdrawInput = builder.inputType('WithdrawInput', { fields: (t) => ({ accountId: t.id({ required: true }), ...movementFields(t) }) });
  const TransferInput = builder.inputType('TransferInput', {
    fields: (t) => ({ fromAccountId: t.id({ required: true }), toAccountId: t.id({ required: true }), ...movementFields(t) }),
  });
  const TransactionRefInput = builder.inputType('TransactionRefInput', {
    fields: (t) => ({ transactionId: t.id({ required: true }), idempotencyKey: t.string({ required: false }) }),
  });
  const BatchOperationInput = builder.inputType('BatchOperationInput', {
    isOneOf: true,
    fields: (t) => ({
      openAccount: t.field({ type: OpenAccountInput }),
      deposit: t.field({ type: DepositInput }),
      withdraw: t.field({ type: WithdrawInput }),
      transfer: t.field({ type: TransferInput }),
    }),
  });
  const BatchInput = builder.inputType('BatchInput', {
    fields: (t) => ({ operations: t.field({ type: [BatchOperationInput], required: true }), idempotencyKey: t.string({ required: false }) }),
  });

  type SuccessOf<K extends SuccessOutcome['type']> = Extract<SuccessOutcome, { type: K }> & { __typename: string };
  const isNamed = (name: string) => (value: unknown) => (value as { __typename?: string }).__typename === name;

  const OpenAccountSuccess = builder.objectRef<SuccessOf<'OpenAccount'>>('OpenAccountSuccess').implement({
    isTypeOf: isNamed('OpenAccountSuccess'),
    fields: (t) => ({
      account: t.field({ type: Account, resolve: (s) => s.account }),
      position: t.field({ type: 'Position', resolve: (s) => s.position }),
    }),
  });
  const moneySuccess = (name: string) =>
    builder.objectRef<SuccessOf<'Deposit' | 'Withdraw'>>(name).implement({
      isTypeOf: isNamed(name),
      fields: (t) => ({
        account: t.field({ type: Account, resolve: (s) => s.account }),
        transaction: t.field({ type: Transaction, resolve: (s) => s.transaction }),
        position: t.field({ type: 'Position', resolve: (s) => s.position }),
      }),
    });
  const DepositSuccess = moneySuccess('DepositSuccess');
  const WithdrawSuccess = moneySuccess('WithdrawSuccess');
  const TransferSuccess = builder.objectRef<SuccessOf<'Transfer'>>('TransferSuccess').implement({
    isTypeOf: isNamed('TransferSuccess'),
    fields: (t) => ({
      from: t.field({ type: Account, resolve: (s) => s.from }),
      to: t.field({ type: Account, resolve: (s) => s.to }),
      transaction: t.field({ type: Transaction, resolve: (s) => s.transaction }),
      position: t.field({ type: 'Position', resolve: (s) => s.position }),
    }),
  });
  const holdSuccess = (name: string) =>
    builder.objectRef<SuccessOf<'SettleTransaction' | 'CancelTransaction'>>(name).implement({
      isTypeOf: isNamed(name),
      fields: (t) => ({
        transaction: t.field({ type: Transaction, resolve: (s) => s.transaction }),
        position: t.field({ type: 'Position', resolve: (s) => s.position }),
      }),
    });
  const SettleSuccess = holdSuccess('SettleSuccess');
  const CancelSuccess = holdSuccess('CancelSuccess');
  const BatchSuccess = builder.objectRef<SuccessOf<'ExecuteBatch'>>('BatchSuccess').implement({
    isTypeOf: isNamed('BatchSuccess'),
    fields: (t) => ({
      transactions: t.field({ type: [Transaction], resolve: (s) => s.transactions }),
      accounts: t.field({ type: [Account], resolve: (s) => s.accounts }),
      position: t.field({ type: 'Position', resolve: (s) => s.position }),
    }),
  });

  const E = errorTypes;
  // Members are told apart by the __typename every result carries (see run()).
  const resultUnion = (name: string, success: unknown, codes: ErrorCode[]) =>
    builder.unionType(name, {
      types: [success, ...codes.map((c) => E[c])] as never,
      resolveType: (value) => (value as { __typename: string }).__typename,
    });
  // The error codes each mutation can return: its union's members, and what run() lets through.
  const common: ErrorCode[] = ['VALIDATION', 'AMOUNT_LIMIT_EXCEEDED', 'IDEMPOTENCY_CONFLICT'];
  const refCodes: ErrorCode[] = [...common, 'TRANSACTION_NOT_FOUND', 'TRANSACTION_NOT_PENDING'];
  const allowed = {
    OpenAccountResult: [...common, 'ACCOUNT_ALREADY_EXISTS'],
    DepositResult: [...common, 'ACCOUNT_NOT_FOUND'],
    WithdrawResult: [...common, 'ACCOUNT_NOT_FOUND', 'INSUFFICIENT_FUNDS'],
    TransferResult: [...common, 'ACCOUNT_NOT_FOUND', 'INSUFFICIENT_FUNDS', 'SAME_ACCOUNT', 'CURRENCY_MISMATCH'],
    SettleResult: refCodes,
    CancelResult: refCodes,
    BatchResult: [...common, 'BATCH_FAILED'],
  } satisfies Record<string, ErrorCode[]>;
  const OpenAccountResult = resultUnion('OpenAccountResult', OpenAccountSuccess, allowed.OpenAccountResult);
  const DepositResult = resultUnion('DepositResult', DepositSuccess, allowed.DepositResult);
  const WithdrawResult = resultUnion('WithdrawResult', WithdrawSuccess, allowed.WithdrawResult);
  const TransferResult = resultUnion('TransferResult', TransferSuccess, allowed.TransferResult);
  const SettleResult = resultUnion('SettleResult', SettleSuccess, allowed.SettleResult);
  const CancelResult = resultUnion('CancelResult', CancelSuccess, allowed.CancelResult);
  const BatchResult = resultUnion('BatchResult', BatchSuccess, allowed.BatchResult);

  builder.mutationFields((t) => ({
    openAccount: t.field({
      type: OpenAccountResult,
      authScopes: TELLERS,
      args: { input: t.arg({ type: OpenAccountInput, required: true }) },
      resolve: (_root, { input }, ctx) => {
        const { idempotencyKey, ...rest } = input;
        const command: LedgerCommand = {
          type: 'OpenAccount',
          input: { id: String(rest.id), currency: rest.currency ?? 'USD', initialBalance: rest.initialBalance ?? '0', overdraftLimit: rest.overdraftLimit ?? '0', metadata: rest.metadata ?? null },
          ...key(idempotencyKey),
        };
        return run(ctx, command, 'OpenAccountSuccess', allowed.OpenAccountResult);
      },
    }),
    deposit: t.field({
      type: DepositResult,
      authScopes: TELLERS,
      args: { input: t.arg({ type: DepositInput, required: true }) },
      resolve: (_root, { input }, ctx) => {
        const { idempotencyKey, ...rest } = input;
        return run(ctx, { type: 'Deposit', input: movement({ ...rest, accountId: String(rest.accountId) }), ...key(idempotencyKey) }, 'DepositSuccess', allowed.DepositResult);
      },
    }),
    withdraw: t.field({
      type: WithdrawResult,
      authScopes: TELLERS,
      args: { input: t.arg({ type: WithdrawInput, required: true }) },
      resolve: (_root, { input }, ctx) => {
        const { idempotencyKey, ...rest } = input;
        return run(ctx, { type: 'Withdraw', input: movement({ ...rest, accountId: String(rest.accountId) }), ...key(idempotencyKey) }, 'WithdrawSuccess', allowed.WithdrawResult);
      },
    }),
    transfer: t.field({
      type: TransferResult,
      authScopes: TELLERS,
      args: { input: t.arg({ type: TransferInput, required: true }) },
      resolve: (_root, { input }, ctx) => {
        const { idempotencyKey, ...rest } = input;
        const command: LedgerCommand = {
          type: 'Transfer',
          input: movement({ ...rest, fromAccountId: String(rest.fromAccountId), toAccountId: String(rest.toAccountId) }),
          ...key(idempotencyKey),
        };
        return run(ctx, command, 'TransferSuccess', allowed.TransferResult);
      },
    }),
    settleTransaction: t.field({
      type: SettleResult,
      authScopes: TELLERS,
      args: { input: t.arg({ type: TransactionRefInput, required: true }) },
      resolve: (_root, { input }, ctx) =>
        run(ctx, { type: 'SettleTransaction', input: { transactionId: String(input.transactionId) }, ...key(input.idempotencyKey) }, 'SettleSuccess', allowed.SettleResult),
    }),
    cancelTransaction: t.field({
      type: CancelResult,
      authScopes: TELLERS,
      args: { input: t.arg({ type: TransactionRefInput, required: true }) },
      resolve: (_root, { input }, ctx) =>
        run(ctx, { type: 'CancelTransaction', input: { transactionId: String(input.transactionId) }, ...key(input.idempotencyKey) }, 'CancelSuccess', allowed.CancelResult),
    }),
    executeBatch: t.field({
      type: BatchResult,
      authScopes: TELLERS,
      args: { input: t.arg({ type: BatchInput, required: true }) },
      resolve: (_root, { input }, ctx, info) => {
        const refused = ctx.refusedBatches?.get(info.fieldNodes[0]!);
        if (refused) return answer({ ok: false, rejection: refused }, 'BatchSuccess', allowed.BatchResult);
        const coerced = ctx.coercedBatches?.get(info.fieldNodes[0]!) as Array<Record<string, unknown>> | undefined;
        const operations = (coerced ?? input.operations).map(batchOperation);
        return run(ctx, { type: 'ExecuteBatch', input: { operations }, ...key(input.idempotencyKey) }, 'BatchSuccess', allowed.BatchResult);
      },
    }),
  }));
}

function key(idempotencyKey: string | null | undefined): { idempotencyKey?: string } {
  return idempotencyKey == null ? {} : { idempotencyKey };
}

function movement<T extends { amount: string; description?: string | null; metadata?: JsonObject | null; pending?: boolean | null; holdTimeoutSeconds?: number | null }>(
  input: T,
): Omit<T, 'pending'> & { pending: boolean } {
  return { ...input, pending: input.pending === true, description: input.description ?? null, metadata: input.metadata ?? null, holdTimeoutSeconds: input.holdTimeoutSeconds ?? null };
}

function batchOperation(op: Record<string, unknown>): BatchOperation {
  // GraphQL has already enforced @oneOf; the decider checks again.
  const entries = Object.entries(op).filter(([, v]) => v != null);
  const [name, raw] = entries[0] ?? ['', {}];
  const value = raw as Record<string, unknown>;
  switch (name) {
    case 'openAccount':
      return {
        openAccount: {
          id: String(value.id),
          currency: (value.currency as string | undefined) ?? 'USD',
          initialBalance: (value.initialBalance as string | undefined) ?? '0',
          overdraftLimit: (value.overdraftLimit as string | undefined) ?? '0',
          metadata: (value.metadata as JsonObject | undefined) ?? null,
          ...(value.idempotencyKey != null ? { idempotencyKey: value.idempotencyKey } : {}),
        },
      } as BatchOperation;
    case 'deposit':
      return { deposit: movement({ ...(value as { amount: string }), accountId: String(value.accountId) }) } as BatchOperation;
    case 'withdraw':
      return { withdraw: movement({ ...(value as { amount: string }), accountId: String(value.accountId) }) } as BatchOperation;
    default:
      return {
        transfer: movement({ ...(value as { amount: string }), fromAccountId: String(value.fromAccountId), toAccountId: String(value.toAccountId) }),
      } as BatchOperation;
  }
}

// The unions' member shapes are checked by isTypeOf at run time; the static type is deliberately loose.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function run(ctx: ApiContext, command: LedgerCommand, successName: string, allowedCodes: ErrorCode[]): Promise<any> {
  let outcome: CommandOutcome;
  try {
    outcome = await ctx.ledger.execute(command);
  } catch (error) {
    if (error instanceof LogOverloadedError) throw new GraphQLError(error.message, { extensions: { code: 'OVERLOADED' } });
    if (error instanceof NotLeaderError) throw new GraphQLError(error.message, { extensions: { code: 'NOT_LEADER', leaderId: error.leaderId } });
    if (error instanceof NoLeaderError) throw new GraphQLError(error.message, { extensions: { code: 'NO_LEADER', retryable: true } });
    if (error instanceof ReplicationOutcomeUnknownError) throw new GraphQLError(error.message, { extensions: { code: 'OUTCOME_UNKNOWN', retryable: true } });
    if (error instanceof LogStoppedError) throw new GraphQLError('the ledger is shutting down; retry on another node or later', { extensions: { code: 'UNAVAILABLE' } });
    if (error instanceof StorageWriteError) throw new GraphQLError(error.message, { extensions: { code: 'STORAGE_UNAVAILABLE', retryable: true } });
    if (error instanceof OutcomeUnknownError) throw new GraphQLError(error.message, { extensions: { code: 'OUTCOME_UNKNOWN', retryable: true } });
    throw error;
  }
  return answer(outcome, successName, allowedCodes);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function answer(outcome: CommandOutcome, successName: string, allowedCodes: ErrorCode[]): any {
  if (!outcome.ok) {
    const shape = errorShape(outcome.rejection);
    if (!allowedCodes.includes(shape.code)) {
      // Every code the decider can return for this command is in its union; reaching here is a bug.
      throw new Error(`${successName}: rejection ${shape.code} is not in the result union`);
    }
    return shape;
  }
  return { ...outcome.outcome, __typename: successName };
}
