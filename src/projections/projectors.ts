import type { AccountRecord, LedgerEvent } from '../domain/events';
import type { ReadModelWrite } from './read-model-store';

/**
 * Pure projectors: (event, position) → read-model writes. Events carry the post-event records of
 * everything they touch, so every write is a whole document guarded by position: replaying an event
 * twice, or out of a crash, changes nothing.
 */
export interface Projector {
  readonly name: string;
  project(event: LedgerEvent, position: string): ReadModelWrite[];
}

export const accountsProjector: Projector = {
  name: 'accounts',
  project(event, position) {
    return touchedAccounts(event).map((account) => ({ collection: 'accounts', doc: { ...account, _id: account.id, position } }));
  },
};

export const transactionsProjector: Projector = {
  name: 'transactions',
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
  project(event, position) {
    const at = event.type === 'AccountOpened' ? event.data.account.createdAt : event.type === 'IdempotencyKeyRecorded' ? null : event.data.transaction.updatedAt;
    if (at === null) return [];
    return touchedAccounts(event).map((account) => ({
      collection: 'balanceHistory',
      doc: { _id: `${account.id}:${position}`, accountId: account.id, at, balance: account.balance, position },
    }));
  },
};

export const LEDGER_PROJECTORS: readonly Projector[] = [accountsProjector, transactionsProjector, balanceHistoryProjector];

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
