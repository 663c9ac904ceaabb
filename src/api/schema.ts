import SchemaBuilder from '@pothos/core';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import type DataLoader from 'dataloader';
import { GraphQLError, type GraphQLSchema } from 'graphql';
import type { ConsensusStatus } from '../consensus/command-log';
import { LogOverloadedError, LogStoppedError, NotLeaderError } from '../consensus/command-log';
import type { BatchOperation, JsonObject, LedgerCommand } from '../domain/commands';
import { ERROR_CODES, type ErrorCode, type Rejection } from '../domain/errors';
import type { AccountRecord, SuccessOutcome, TransactionRecord } from '../domain/events';
import type { CommandOutcome } from '../domain/ledger';
import { isPosition } from '../domain/position';
import type { ProjectionStatusReport } from '../projections/projection-runner';
import { PAGE_SIZE_MAX, type ReadModelStore, type TransactionQuery } from '../projections/read-model-store';
import { waitForAtLeast } from './at-least';
import type { Principal } from './auth';
import {
  literalString,
  parseAmountInput,
  parseAmountLiteral,
  parseDateTimeInput,
  parseJsonObjectInput,
  parseJsonObjectLiteral,
  parsePositionInput,
  serializeAmount,
} from './scalars';

/** What the API needs from a ledger node. */
export interface LedgerApi {
  execute(command: LedgerCommand): Promise<CommandOutcome>;
  readModels: ReadModelStore;
  /** Resolves true once every read model includes `position`. */
  waitForPosition(position: string, timeoutMs: number): Promise<boolean>;
  /** Distinct `atLeast` positions one request may wait for (see ./at-least). */
  atLeastWaitsPerRequestMax?: number;
  consensusStatus(): ConsensusStatus;
  projectionStatus(): ProjectionStatusReport[];
}

export interface ApiContext {
  principal: Principal;
  ledger: LedgerApi;
  loaders: {
    accounts: DataLoader<string, AccountRecord | null>;
    transactions: DataLoader<string, (TransactionRecord & { position: string }) | null>;
  };
}

type TransactionShape = TransactionRecord & { position: string };

interface ConnectionShape<T> {
  edges: Array<{ cursor: string; node: T }>;
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
  totalCount: number;
}

interface ErrorShape {
  __typename: string;
  code: ErrorCode;
  message: string;
  index?: number;
  cause?: ErrorShape;
}

const ERROR_TYPE_NAMES: Record<ErrorCode, string> = {
  VALIDATION: 'ValidationError',
  ACCOUNT_NOT_FOUND: 'AccountNotFoundError',
  ACCOUNT_ALREADY_EXISTS: 'AccountAlreadyExistsError',
  INSUFFICIENT_FUNDS: 'InsufficientFundsError',
  SAME_ACCOUNT: 'SameAccountError',
  CURRENCY_MISMATCH: 'CurrencyMismatchError',
  TRANSACTION_NOT_FOUND: 'TransactionNotFoundError',
  TRANSACTION_NOT_PENDING: 'TransactionNotPendingError',
  AMOUNT_LIMIT_EXCEEDED: 'AmountLimitExceededError',
  IDEMPOTENCY_CONFLICT: 'IdempotencyConflictError',
  BATCH_FAILED: 'BatchFailedError',
};

export function buildSchema(): GraphQLSchema {
  const builder = new SchemaBuilder<{
    Context: ApiContext;
    AuthScopes: { teller: boolean; analyst: boolean; compliance: boolean; admin: boolean };
    Scalars: {
      Amount: { Input: string; Output: string | bigint };
      DateTime: { Input: string; Output: string };
      Position: { Input: string; Output: string };
      JSON: { Input: JsonObject; Output: JsonObject };
    };
    DefaultFieldNullability: false;
  }>({
    plugins: [ScopeAuthPlugin],
    defaultFieldNullability: false,
    scopeAuth: {
      authScopes: (context) => {
        const roles = new Set(context.principal.roles);
        const admin = roles.has('admin');
        return { admin, teller: admin || roles.has('teller'), analyst: admin || roles.has('analyst'), compliance: admin || roles.has('compliance') };
      },
      unauthorizedError: (_parent, context, info) =>
        new GraphQLError(`${context.principal.sub} may not read or change ${info.parentType.name}.${info.fieldName} with roles [${context.principal.roles.join(', ')}]`, {
          extensions: { code: 'FORBIDDEN' },
        }),
    },
  });

  // ---- scalars ------------------------------------------------------------------------------
  builder.scalarType('Amount', {
    description:
      'An exact integer number of minor units (cents), serialized as a string of digits with an optional leading "-". Accepted as such a string (at most 19 digits) or as a JSON integer within the safe-integer range.',
    serialize: serializeAmount,
    parseValue: parseAmountInput,
    parseLiteral: parseAmountLiteral,
  });
  builder.scalarType('DateTime', {
    description: 'An instant, ISO 8601 in UTC.',
    serialize: (value) => String(value),
    parseValue: parseDateTimeInput,
    parseLiteral: (ast) => parseDateTimeInput(literalString(ast, 'DateTime')),
  });
  builder.scalarType('Position', {
    description: 'An opaque string that orders every change in the ledger.',
    serialize: (value) => String(value),
    parseValue: parsePositionInput,
    parseLiteral: (ast) => parsePositionInput(literalString(ast, 'Position')),
  });
  builder.scalarType('JSON', {
    description: 'Free-form metadata: a JSON object of at most 4 KiB serialized, stored and returned as given.',
    serialize: (value) => value,
    parseValue: parseJsonObjectInput,
    parseLiteral: (ast, variables) => parseJsonObjectLiteral(ast, variables as Record<string, unknown> | null | undefined),
  });

  // ---- enums ------------------------------------------------------------------------------
  const ErrorCodeEnum = builder.enumType('ErrorCode', { values: ERROR_CODES });
  const TransactionKindEnum = builder.enumType('TransactionKind', { values: ['DEPOSIT', 'WITHDRAWAL', 'TRANSFER'] as const });
  const TransactionStatusEnum = builder.enumType('TransactionStatus', { values: ['PENDING', 'SETTLED', 'CANCELLED', 'EXPIRED'] as const });

  // ---- errors -----------------------------------------------------------------------------
  const LedgerError = builder.interfaceRef<ErrorShape>('LedgerError').implement({
    fields: (t) => ({
      code: t.field({ type: ErrorCodeEnum, resolve: (e) => e.code }),
      message: t.exposeString('message'),
    }),
    resolveType: (e) => ERROR_TYPE_NAMES[e.code],
  });
  const errorTypes = {} as Record<ErrorCode, unknown>;
  for (const code of ERROR_CODES) {
    if (code === 'BATCH_FAILED') continue;
    errorTypes[code] = builder.objectRef<ErrorShape>(ERROR_TYPE_NAMES[code]).implement({
      interfaces: [LedgerError],
      isTypeOf: (value) => (value as ErrorShape).__typename === ERROR_TYPE_NAMES[code],
      fields: () => ({}),
    });
  }
  errorTypes.BATCH_FAILED = builder.objectRef<ErrorShape>('BatchFailedError').implement({
    interfaces: [LedgerError],
    isTypeOf: (value) => (value as ErrorShape).__typename === 'BatchFailedError',
    fields: (t) => ({
      index: t.int({ description: 'The 0-based index of the operation that failed.', resolve: (e) => e.index ?? 0 }),
      cause: t.field({ type: LedgerError, description: 'Why that operation failed.', resolve: (e) => e.cause! }),
    }),
  });

  // ---- accounts and transactions ------------------------------------------------------------
  const PageInfo = builder.objectRef<ConnectionShape<unknown>['pageInfo']>('PageInfo').implement({
    fields: (t) => ({
      hasNextPage: t.exposeBoolean('hasNextPage'),
      hasPreviousPage: t.exposeBoolean('hasPreviousPage'),
      startCursor: t.exposeString('startCursor', { nullable: true }),
      endCursor: t.exposeString('endCursor', { nullable: true }),
    }),
  });

  const Transaction = builder.objectRef<TransactionShape>('Transaction');
  const Account = builder.objectRef<AccountRecord>('Account');

  const TransactionEdge = builder.objectRef<{ cursor: string; node: TransactionShape }>('TransactionEdge').implement({
    fields: (t) => ({ cursor: t.exposeString('cursor'), node: t.field({ type: Transaction, resolve: (e) => e.node }) }),
  });
  const TransactionConnection = builder.objectRef<ConnectionShape<TransactionShape>>('TransactionConnection').implement({
    fields: (t) => ({
      edges: t.field({ type: [TransactionEdge], resolve: (c) => c.edges }),
      pageInfo: t.field({ type: PageInfo, resolve: (c) => c.pageInfo }),
      totalCount: t.exposeInt('totalCount'),
    }),
  });
  const AccountEdge = builder.objectRef<{ cursor: string; node: AccountRecord }>('AccountEdge').implement({
    fields: (t) => ({ cursor: t.exposeString('cursor'), node: t.field({ type: Account, resolve: (e) => e.node }) }),
  });
  const AccountConnection = builder.objectRef<ConnectionShape<AccountRecord>>('AccountConnection').implement({
    fields: (t) => ({
      edges: t.field({ type: [AccountEdge], resolve: (c) => c.edges }),
      pageInfo: t.field({ type: PageInfo, resolve: (c) => c.pageInfo }),
      totalCount: t.exposeInt('totalCount'),
    }),
  });

  const TransactionFilter = builder.inputType('TransactionFilter', {
    fields: (t) => ({
      accountId: t.id({ required: false }),
      kinds: t.field({ type: [TransactionKindEnum], required: false }),
      statuses: t.field({ type: [TransactionStatusEnum], required: false }),
      minAmount: t.field({ type: 'Amount', required: false }),
      from: t.field({ type: 'DateTime', required: false }),
      to: t.field({ type: 'DateTime', required: false }),
      large: t.boolean({ required: false }),
    }),
  });

  Transaction.implement({
    fields: (t) => ({
      id: t.exposeID('id'),
      kind: t.field({ type: TransactionKindEnum, resolve: (x) => x.kind }),
      status: t.field({ type: TransactionStatusEnum, resolve: (x) => x.status }),
      amount: t.field({ type: 'Amount', resolve: (x) => x.amount }),
      currency: t.exposeString('currency'),
      fromAccountId: t.exposeID('fromAccountId', { nullable: true }),
      toAccountId: t.exposeID('toAccountId', { nullable: true }),
      description: t.exposeString('description', { nullable: true }),
      metadata: t.field({ type: 'JSON', nullable: true, resolve: (x) => x.metadata }),
      createdAt: t.field({ type: 'DateTime', resolve: (x) => x.createdAt }),
      updatedAt: t.field({ type: 'DateTime', resolve: (x) => x.updatedAt }),
      expiresAt: t.field({ type: 'DateTime', nullable: true, description: 'When a pending hold with a timeout expires.', resolve: (x) => x.expiresAt }),
      large: t.exposeBoolean('large'),
      position: t.field({ type: 'Position', description: 'Position of the last change to this transaction.', resolve: (x) => x.position }),
    }),
  });

  Account.implement({
    fields: (t) => ({
      id: t.exposeID('id'),
      currency: t.exposeString('currency'),
      balance: t.field({ type: 'Amount', description: 'Settled balance.', resolve: (a) => a.balance }),
      availableBalance: t.field({ type: 'Amount', description: 'Settled balance minus pending debits.', resolve: (a) => a.availableBalance }),
      overdraftLimit: t.field({ type: 'Amount', resolve: (a) => a.overdraftLimit }),
      createdAt: t.field({ type: 'DateTime', resolve: (a) => a.createdAt }),
      lastTransactionAt: t.field({ type: 'DateTime', nullable: true, resolve: (a) => a.lastTransactionAt }),
      transactionCount: t.exposeInt('transactionCount'),
      metadata: t.field({ type: 'JSON', nullable: true, resolve: (a) => a.metadata }),
      transactions: t.field({
        type: TransactionConnection,
        description: 'Transactions from or to this account, newest first.',
        args: {
          first: t.arg.int({ defaultValue: 20 }),
          after: t.arg.string({ required: false }),
          filter: t.arg({ type: TransactionFilter, required: false }),
        },
        resolve: (account, args, ctx) => findTransactions(ctx, { ...toQuery(args.filter), accountId: account.id }, args.first, args.after),
      }),
      balanceAt: t.field({
        type: 'Amount',
        description: 'Settled balance as it was at that instant ("0" before the account existed).',
        args: { at: t.arg({ type: 'DateTime', required: true }) },
        resolve: async (account, args, ctx) => (await ctx.ledger.readModels.balanceAt(account.id, args.at)) ?? '0',
      }),
    }),
  });

  // ---- status ---------------------------------------------------------------------------
  const ProjectionStatus = builder.objectRef<ProjectionStatusReport>('ProjectionStatus').implement({
    fields: (t) => ({
      name: t.exposeString('name'),
      position: t.field({ type: 'Position', nullable: true, resolve: (p) => p.position }),
      lagMs: t.exposeInt('lagMs', { nullable: true }),
    }),
  });
  const LedgerStatus = builder.objectRef<{ consensus: ConsensusStatus; projections: ProjectionStatusReport[] }>('LedgerStatus').implement({
    fields: (t) => ({
      nodeId: t.string({ resolve: (s) => s.consensus.nodeId }),
      role: t.string({ description: 'LEADER, FOLLOWER, CANDIDATE or STANDALONE', resolve: (s) => s.consensus.role }),
      leaderId: t.string({ nullable: true, resolve: (s) => s.consensus.leaderId }),
      term: t.int({ resolve: (s) => s.consensus.term }),
      commitIndex: t.string({ resolve: (s) => String(s.consensus.commitIndex) }),
      appliedIndex: t.string({ resolve: (s) => String(s.consensus.appliedIndex) }),
      projections: t.field({ type: [ProjectionStatus], resolve: (s) => s.projections }),
    }),
  });

  // ---- queries ------------------------------------------------------------------------------
  const readers = { $any: { teller: true, analyst: true, compliance: true } };
  builder.queryType({
    fields: (t) => ({
      account: t.field({
        type: Account,
        nullable: true,
        authScopes: readers,
        args: { id: t.arg.id({ required: true }), atLeast: t.arg({ type: 'Position', required: false }) },
        resolve: async (_root, args, ctx) => {
          await waitForAtLeast(ctx, args.atLeast);
          return ctx.loaders.accounts.load(String(args.id));
        },
      }),
      accounts: t.field({
        type: AccountConnection,
        authScopes: readers,
        description: 'Accounts by id.',
        args: { first: t.arg.int({ defaultValue: 50 }), after: t.arg.string({ required: false }) },
        resolve: async (_root, args, ctx) => {
          const first = checkFirst(args.first);
          const afterId = args.after == null ? null : decodeCursor(args.after, 'a');
          const page = await ctx.ledger.readModels.listAccounts(afterId, first);
          return connection(page.docs, page.totalCount, page.hasMore, (a) => encodeCursor('a', a.id));
        },
      }),
      transaction: t.field({
        type: Transaction,
        nullable: true,
        authScopes: readers,
        args: { id: t.arg.id({ required: true }), atLeast: t.arg({ type: 'Position', required: false }) },
        resolve: async (_root, args, ctx) => {
          await waitForAtLeast(ctx, args.atLeast);
          return ctx.loaders.transactions.load(String(args.id));
        },
      }),
      transactions: t.field({
        type: TransactionConnection,
        authScopes: readers,
        description: 'Transactions matching the filter, newest first.',
        args: {
          filter: t.arg({ type: TransactionFilter, required: false }),
          first: t.arg.int({ defaultValue: 20 }),
          after: t.arg.string({ required: false }),
          atLeast: t.arg({ type: 'Position', required: false }),
        },
        resolve: async (_root, args, ctx) => {
          await waitForAtLeast(ctx, args.atLeast);
          return findTransactions(ctx, toQuery(args.filter), args.first, args.after);
        },
      }),
      ledger: t.field({
        type: LedgerStatus,
        authScopes: { $any: { analyst: true, compliance: true } },
        resolve: (_root, _args, ctx) => ({ consensus: ctx.ledger.consensusStatus(), projections: ctx.ledger.projectionStatus() }),
      }),
    }),
  });

  // ---- mutations ----------------------------------------------------------------------------
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

  const tellers = { teller: true };
  builder.mutationType({
    fields: (t) => ({
      openAccount: t.field({
        type: OpenAccountResult,
        authScopes: tellers,
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
        authScopes: tellers,
        args: { input: t.arg({ type: DepositInput, required: true }) },
        resolve: (_root, { input }, ctx) => {
          const { idempotencyKey, ...rest } = input;
          return run(ctx, { type: 'Deposit', input: movement({ ...rest, accountId: String(rest.accountId) }), ...key(idempotencyKey) }, 'DepositSuccess', allowed.DepositResult);
        },
      }),
      withdraw: t.field({
        type: WithdrawResult,
        authScopes: tellers,
        args: { input: t.arg({ type: WithdrawInput, required: true }) },
        resolve: (_root, { input }, ctx) => {
          const { idempotencyKey, ...rest } = input;
          return run(ctx, { type: 'Withdraw', input: movement({ ...rest, accountId: String(rest.accountId) }), ...key(idempotencyKey) }, 'WithdrawSuccess', allowed.WithdrawResult);
        },
      }),
      transfer: t.field({
        type: TransferResult,
        authScopes: tellers,
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
        authScopes: tellers,
        args: { input: t.arg({ type: TransactionRefInput, required: true }) },
        resolve: (_root, { input }, ctx) =>
          run(ctx, { type: 'SettleTransaction', input: { transactionId: String(input.transactionId) }, ...key(input.idempotencyKey) }, 'SettleSuccess', allowed.SettleResult),
      }),
      cancelTransaction: t.field({
        type: CancelResult,
        authScopes: tellers,
        args: { input: t.arg({ type: TransactionRefInput, required: true }) },
        resolve: (_root, { input }, ctx) =>
          run(ctx, { type: 'CancelTransaction', input: { transactionId: String(input.transactionId) }, ...key(input.idempotencyKey) }, 'CancelSuccess', allowed.CancelResult),
      }),
      executeBatch: t.field({
        type: BatchResult,
        authScopes: tellers,
        args: { input: t.arg({ type: BatchInput, required: true }) },
        resolve: (_root, { input }, ctx) => {
          const operations = input.operations.map(batchOperation);
          return run(ctx, { type: 'ExecuteBatch', input: { operations }, ...key(input.idempotencyKey) }, 'BatchSuccess', allowed.BatchResult);
        },
      }),
    }),
  });

  return builder.toSchema({ sortSchema: false });
}

// ---- helpers ------------------------------------------------------------------------------

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
    if (error instanceof LogStoppedError) throw new GraphQLError('the ledger is shutting down; retry on another node or later', { extensions: { code: 'UNAVAILABLE' } });
    throw error;
  }
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

function errorShape(rejection: Rejection): ErrorShape {
  return {
    __typename: ERROR_TYPE_NAMES[rejection.code],
    code: rejection.code,
    message: rejection.message,
    ...(rejection.index !== undefined ? { index: rejection.index } : {}),
    ...(rejection.cause ? { cause: errorShape(rejection.cause) } : {}),
  };
}

function checkFirst(first: number | null | undefined): number {
  const value = first ?? 20;
  if (!Number.isInteger(value) || value < 0 || value > PAGE_SIZE_MAX) {
    throw new GraphQLError(`first must be between 0 and ${PAGE_SIZE_MAX}, got ${value}`, { extensions: { code: 'BAD_USER_INPUT' } });
  }
  return value;
}

function encodeCursor(kind: string, value: string): string {
  return Buffer.from(`${kind}:${value}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string, kind: string, isValid: (value: string) => boolean = () => true): string {
  const decoded = Buffer.from(cursor, 'base64url').toString('utf8');
  const value = decoded.slice(kind.length + 1);
  // A cursor that decodes but carries no valid value must not reach the store (which throws: an internal error).
  if (!decoded.startsWith(`${kind}:`) || value.length === 0 || !isValid(value)) {
    throw new GraphQLError(`after is not a cursor returned by this connection: "${cursor.slice(0, 80)}"`, { extensions: { code: 'BAD_USER_INPUT' } });
  }
  return value;
}

function connection<T>(docs: T[], totalCount: number, hasMore: boolean, cursorOf: (doc: T) => string): ConnectionShape<T> {
  const edges = docs.map((node) => ({ cursor: cursorOf(node), node }));
  return {
    edges,
    totalCount,
    pageInfo: { hasNextPage: hasMore, hasPreviousPage: false, startCursor: edges[0]?.cursor ?? null, endCursor: edges.at(-1)?.cursor ?? null },
  };
}

function toQuery(filter: Record<string, unknown> | null | undefined): TransactionQuery {
  if (!filter) return {};
  return {
    accountId: (filter.accountId as string | null | undefined) ?? null,
    kinds: (filter.kinds as TransactionQuery['kinds']) ?? null,
    statuses: (filter.statuses as TransactionQuery['statuses']) ?? null,
    minAmount: filter.minAmount == null ? null : BigInt(filter.minAmount as string),
    from: (filter.from as string | null | undefined) ?? null,
    to: (filter.to as string | null | undefined) ?? null,
    large: (filter.large as boolean | null | undefined) ?? null,
  };
}

async function findTransactions(ctx: ApiContext, query: TransactionQuery, first: number | null | undefined, after: string | null | undefined) {
  const limit = checkFirst(first);
  const before = after == null ? null : decodeCursor(after, 't', isPosition);
  const page = await ctx.ledger.readModels.findTransactions(query, before, limit);
  return connection<TransactionShape>(page.docs, page.totalCount, page.hasMore, (doc) => encodeCursor('t', doc.createdPosition));
}

