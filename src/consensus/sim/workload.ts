import type { LedgerCommand } from '../../domain/commands';
import type { CommandOutcome } from '../../domain/ledger';
import type { SimRandom } from './random';

/** One client operation, from its first attempt to the answer it finally got. */
export interface ClientOp {
  id: number;
  client: number;
  key: string;
  command: LedgerCommand;
  invokedAtMs: number;
  attempt: number;
  /** The replica the next attempt goes to (a NotLeader hint), or null to pick one. */
  target: number | null;
  lastTarget: number;
  done: boolean;
  outcome?: CommandOutcome;
  /** The log index whose application produced `outcome`. */
  outcomeIndex?: number;
  respondedAtMs?: number;
}

export interface WorkloadParams {
  accounts: string[];
  openingBalances: bigint[];
  overdraftLimits: bigint[];
  transferAmountMax: number;
  pendingShare: number;
  batchShare: number;
  settleShare: number;
}

export function drawWorkload(random: SimRandom): WorkloadParams {
  const count = random.int(3, 7);
  const accounts = Array.from({ length: count }, (_, i) => `acct-${i}`);
  return {
    accounts,
    openingBalances: accounts.map(() => BigInt(random.int(0, 10) * 1000)),
    overdraftLimits: accounts.map(() => (random.chance(0.3) ? BigInt(random.int(1, 5) * 100) : 0n)),
    transferAmountMax: random.int(100, 5000),
    pendingShare: random.real(0, 0.3),
    batchShare: random.real(0, 0.25),
    settleShare: random.real(0, 0.2),
  };
}

/** Deep-freezes a command, so that no replica can change what another one applies. */
export function freeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const inner of Object.values(value as object)) freeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** The first operation: every account opened in one batch, with its opening balance. */
export function genesisCommand(params: WorkloadParams): LedgerCommand {
  return freeze({
    type: 'ExecuteBatch',
    idempotencyKey: 'genesis',
    input: {
      operations: params.accounts.map((id, i) => ({
        openAccount: { id, initialBalance: params.openingBalances[i]!.toString(), overdraftLimit: params.overdraftLimits[i]!.toString() },
      })),
    },
  });
}

/** A random transfer, pending transfer, batch of transfers, or settle/cancel of a hold someone made. */
export function randomCommand(random: SimRandom, params: WorkloadParams, key: string, holds: readonly string[]): LedgerCommand {
  const r = random.next();
  if (r < params.settleShare && holds.length > 0) {
    const transactionId = random.pick(holds);
    return freeze({ type: random.chance(0.5) ? 'SettleTransaction' : 'CancelTransaction', input: { transactionId }, idempotencyKey: key });
  }
  if (r < params.settleShare + params.batchShare) {
    const operations = Array.from({ length: random.int(2, 4) }, () => ({ transfer: transferInput(random, params, false) }));
    return freeze({ type: 'ExecuteBatch', input: { operations }, idempotencyKey: key });
  }
  const pending = random.chance(params.pendingShare);
  return freeze({ type: 'Transfer', input: transferInput(random, params, pending), idempotencyKey: key });
}

function transferInput(random: SimRandom, params: WorkloadParams, pending: boolean) {
  const from = random.int(0, params.accounts.length - 1);
  let to = random.int(0, params.accounts.length - 2);
  if (to >= from) to += 1;
  const input = {
    fromAccountId: params.accounts[from]!,
    toAccountId: params.accounts[to]!,
    amount: String(random.int(1, params.transferAmountMax)),
  };
  return pending ? { ...input, pending: true, holdTimeoutSeconds: random.int(1, 3) } : input;
}
