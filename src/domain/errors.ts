export const ERROR_CODES = [
  'VALIDATION',
  'ACCOUNT_NOT_FOUND',
  'ACCOUNT_ALREADY_EXISTS',
  'INSUFFICIENT_FUNDS',
  'SAME_ACCOUNT',
  'CURRENCY_MISMATCH',
  'TRANSACTION_NOT_FOUND',
  'TRANSACTION_NOT_PENDING',
  'AMOUNT_LIMIT_EXCEEDED',
  'IDEMPOTENCY_CONFLICT',
  'BATCH_FAILED',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** A typed domain rejection: the command changes nothing. */
export interface Rejection {
  code: ErrorCode;
  message: string;
  /** BATCH_FAILED only: the index of the failing operation and why it failed. */
  index?: number;
  cause?: Rejection;
}

export function reject(code: ErrorCode, message: string): Rejection {
  return { code, message };
}
