/**
 * The ledger's configurable rules. Every replica must run with the same values: they take part in
 * every decision.
 */
export interface LedgerRules {
  /** Largest deposit, withdrawal or transfer, in minor units. */
  amountMaxMinor: bigint;
  /** A transaction is `large` when its amount is at least this. */
  largeTransactionThresholdMinor: bigint;
  /** How long a recorded idempotency key answers retries, by log time. */
  idempotencyRetentionMs: number;
  /** At most this many idempotency keys are kept; the oldest go first. */
  idempotencyKeysMax: number;
  batchOperationsMax: number;
  holdTimeoutSecondsMax: number;
  metadataBytesMax: number;
  descriptionLengthMax: number;
  idempotencyKeyLengthMax: number;
}

export const DEFAULT_RULES: LedgerRules = {
  amountMaxMinor: 1_000_000_000n,
  largeTransactionThresholdMinor: 1_000_000n,
  idempotencyRetentionMs: 24 * 60 * 60 * 1000,
  idempotencyKeysMax: 1_000_000,
  batchOperationsMax: 1000,
  holdTimeoutSecondsMax: 30 * 24 * 60 * 60,
  metadataBytesMax: 4096,
  descriptionLengthMax: 500,
  idempotencyKeyLengthMax: 200,
};

export const ACCOUNT_ID_PATTERN = /^[A-Za-z0-9_-]{1,50}$/;
export const CURRENCY_PATTERN = /^[A-Z]{3}$/;
export const DEFAULT_CURRENCY = 'USD';
