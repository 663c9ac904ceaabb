import { ERROR_CODES, type ErrorCode, type Rejection } from '../../domain/errors';
import {
  literalString,
  parseAmountInput,
  parseAmountLiteral,
  parseDateTimeInput,
  parseJsonObjectInput,
  parseJsonObjectLiteral,
  parsePositionInput,
  serializeAmount,
} from '../scalars';
import type { Builder } from './builder';

/** A domain rejection as the schema returns it: data, not a GraphQL error. */
export interface ErrorShape {
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

/** Amount, DateTime, Position, JSON. */
export function registerScalars(builder: Builder): void {
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
}

/** The ErrorCode enum, the LedgerError interface and one object type per code; returns them by code. */
export function registerErrors(builder: Builder): Record<ErrorCode, unknown> {
  const ErrorCodeEnum = builder.enumType('ErrorCode', { values: ERROR_CODES });
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
  return errorTypes;
}

export function errorShape(rejection: Rejection): ErrorShape {
  return {
    __typename: ERROR_TYPE_NAMES[rejection.code],
    code: rejection.code,
    message: rejection.message,
    ...(rejection.index !== undefined ? { index: rejection.index } : {}),
    ...(rejection.cause ? { cause: errorShape(rejection.cause) } : {}),
  };
}
