/**
 * Commands as they travel through the command log. Plain JSON: amounts are digit strings,
 * metadata a JSON object. Shape is checked at the API edge; every ledger rule is the decider's, and
 * those that need no state (validate-command.ts) are also checked before a command is proposed.
 */
export type JsonObject = { [key: string]: unknown };

export interface OpenAccountInput {
  id: string;
  /** Default DEFAULT_CURRENCY (USD). */
  currency?: string;
  /** Default "0". */
  initialBalance?: string;
  /** Default "0". */
  overdraftLimit?: string;
  metadata?: JsonObject | null;
}

export interface MovementCommon {
  amount: string;
  description?: string | null;
  metadata?: JsonObject | null;
  pending?: boolean;
  holdTimeoutSeconds?: number | null;
}
export interface DepositInput extends MovementCommon { accountId: string }
export interface WithdrawInput extends MovementCommon { accountId: string }
export interface TransferInput extends MovementCommon { fromAccountId: string; toAccountId: string }
export interface TransactionRefInput { transactionId: string }

export type BatchOperation =
  | { openAccount: OpenAccountInput }
  | { deposit: DepositInput }
  | { withdraw: WithdrawInput }
  | { transfer: TransferInput };

export type LedgerCommand =
  | { type: 'OpenAccount'; input: OpenAccountInput; idempotencyKey?: string }
  | { type: 'Deposit'; input: DepositInput; idempotencyKey?: string }
  | { type: 'Withdraw'; input: WithdrawInput; idempotencyKey?: string }
  | { type: 'Transfer'; input: TransferInput; idempotencyKey?: string }
  | { type: 'SettleTransaction'; input: TransactionRefInput; idempotencyKey?: string }
  | { type: 'CancelTransaction'; input: TransactionRefInput; idempotencyKey?: string }
  | { type: 'ExecuteBatch'; input: { operations: BatchOperation[] }; idempotencyKey?: string }
  /** Proposed by the node when a hold falls due and nothing else is being written. */
  | { type: 'Tick' };

export type LedgerCommandType = LedgerCommand['type'];

/**
 * What the log stamps on a command when it is proposed: every replica sees the same values,
 * so time and ids derived from them agree bit for bit.
 */
export interface CommandEnvelope {
  /** Log index, 1-based, gap-free. */
  index: number;
  /** Milliseconds since the epoch, assigned by the leader, never decreasing along the log. */
  timestampMs: number;
}
