import type { AccountRecord, LedgerEvent, TransactionRecord } from '../domain/events';
import { type CounterFields, type ReadModelCollection, type ReadModelWrite, VOLUME_INTERVALS, bucketStart, volumeBucketId } from './read-model-store';

/**
 * Pure projectors: (event, position) → read-model writes. Events carry the post-event records of
 * everything they touch, so every write is a whole document guarded by position: replaying an event
 * twice, or out of a crash, changes nothing.
 */
export interface Projector {
  readonly name: string;
  /** What it writes: a rebuild resets these. */
  readonly collections: readonly ReadModelCollection[];
  project(event: LedgerEvent, position: string): ReadModelWrite[];
}

export const accountsProjector: Projector = {
  name: 'accounts',
  collections: ['accounts'],
  project(event, position) {
    return touchedAccounts(event).map((account) => ({ collection: 'accounts', doc: { ...account, _id: account.id, position } }));
  },
};

export const transactionsProjector: Projector = {
  name: 'transactions',
  collections: ['transactions'],
  project(event, position) {
    if (event.type === 'AccountOpened' || event.type === 'IdempotencyKeyRecorded') return [];
    const t = event.data.transaction;
    const accountIds = [t.fromAccountId, t.toAccountId].filter((id): id is string => id !== null);
    return [{ collection: 'transactions', doc: { ...t, _id: t.id, position, accountIds } }];
  },
};

/** Settled balance after every change, so `balanceAt` can answer for any instant. */
export const balanceHistoryProjector: Projector = {
  name: 'balanceHistory',
  collections: ['balanceHistory'],
  project(event, position) {
    const at = event.type === 'AccountOpened' ? event.data.account.createdAt : event.type === 'IdempotencyKeyRecorded' ? null : event.data.transaction.updatedAt;
    if (at === null) return [];
    return touchedAccounts(event).map((account) => ({
      collection: 'balanceHistory',
      doc: { _id: `${account.id}:${position}`, accountId: account.id, at, balance: account.balance, position },
    }));
  },
};

/**
 * Counters for Query.analytics, so that no read sums or counts history: per currency the accounts,
 * the transactions and the total settled balance; per currency, UTC hour and UTC day the settled
 * volume (count and amount) by createdAt. At most one step per document per event (three writes
 * for a settled transaction, one otherwise), each a few bigint additions: the write path stays lean.
 */
export const analyticsProjector: Projector = {
  name: 'analytics',
  collections: ['currencyTotals', 'volumeBuckets'],
  project(event, position) {
    switch (event.type) {
      case 'AccountOpened':
        return [totals(event.data.account.currency, position, { accountCount: 1n, transactionCount: 0n, totalBalance: 0n })];
      case 'TransactionRecorded': {
        const t = event.data.transaction;
        const settled = t.status === 'SETTLED';
        const writes = [totals(t.currency, position, { accountCount: 0n, transactionCount: 1n, totalBalance: settled ? settledBalanceChange(t) : 0n })];
        return settled ? [...writes, ...volume(t, position)] : writes;
      }
      case 'TransactionSettled': {
        const t = event.data.transaction;
        const change = settledBalanceChange(t);
        const writes = change === 0n ? [] : [totals(t.currency, position, { accountCount: 0n, transactionCount: 0n, totalBalance: change })];
        return [...writes, ...volume(t, position)];
      }
      // A cancelled or expired hold never touched the settled balance.
      case 'TransactionCancelled':
      case 'TransactionExpired':
      case 'IdempotencyKeyRecorded':
        return [];
      default: {
        const unknownEvent: never = event;
        throw new Error(`analytics: unknown event ${JSON.stringify(unknownEvent)}`);
      }
    }
  },
};

export const LEDGER_PROJECTORS: readonly Projector[] = [accountsProjector, transactionsProjector, balanceHistoryProjector, analyticsProjector];

/** What settling a transaction does to the sum of its currency's settled balances: a transfer moves money within it. */
function settledBalanceChange(t: TransactionRecord): bigint {
  switch (t.kind) {
    case 'DEPOSIT':
      return BigInt(t.amount);
    case 'WITHDRAWAL':
      return -BigInt(t.amount);
    case 'TRANSFER':
      return 0n;
  }
}

function totals(currency: string, position: string, add: CounterFields['currencyTotals']): ReadModelWrite {
  return { collection: 'currencyTotals', increment: { _id: currency, keys: { currency }, steps: [{ position, add }] } };
}

function volume(t: TransactionRecord, position: string): ReadModelWrite[] {
  const add = { count: 1n, amount: BigInt(t.amount) };
  return VOLUME_INTERVALS.map((interval) => {
    const start = bucketStart(t.createdAt, interval);
    return {
      collection: 'volumeBuckets',
      increment: { _id: volumeBucketId(t.currency, interval, start), keys: { currency: t.currency, interval, start }, steps: [{ position, add }] },
    };
  });
}

function touchedAccounts(event: LedgerEvent): AccountRecord[] {
  switch (event.type) {
    case 'AccountOpened':
      return [event.data.account];
    case 'IdempotencyKeyRecorded':
      return [];
    default:
      return event.data.accounts;
  }
}
