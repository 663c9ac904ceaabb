/**
 * The read-model contract against the embedded adapter, plus what only a file-backed, transactional
 * store promises: documents and checkpoints survive a reopen, and a batch commits all or nothing.
 *
 * The MongoDB adapter will run the same contract (readModelStoreContract) when MONGODB_URL is set.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { formatPosition } from '../../src/domain/position';
import type { AccountDoc, Checkpoint, TransactionDoc } from '../../src/projections/read-model-store';
import { SqliteReadModelStore } from '../../src/projections/sqlite-read-model-store';
import { readModelStoreContract } from './read-model-store.contract';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'ledger-read-models-'));
}

readModelStoreContract('SqliteReadModelStore', async () => {
  const dir = tempDir();
  // A nested path: open() creates the parent directories.
  const store = SqliteReadModelStore.open(join(dir, 'nested', 'read-models.db'));
  return {
    store,
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

const p = (index: number, eventIndex = 0): string => formatPosition(index, eventIndex);

const alice: AccountDoc = {
  _id: 'alice',
  id: 'alice',
  position: p(2),
  currency: 'USD',
  balance: '9223372036854775807',
  availableBalance: '9223372036854775000',
  overdraftLimit: '0',
  createdAt: '2024-03-01T10:00:00.000Z',
  lastTransactionAt: '2024-03-01T10:01:00.000Z',
  transactionCount: 1,
  metadata: { segment: 'retail' },
};

const deposit: TransactionDoc = {
  _id: 't1',
  id: 't1',
  position: p(2),
  createdPosition: p(2),
  kind: 'DEPOSIT',
  status: 'SETTLED',
  amount: '9007199254740993',
  currency: 'USD',
  fromAccountId: null,
  toAccountId: 'alice',
  description: 'salary',
  metadata: { ref: 'R-1' },
  createdAt: '2024-03-01T10:01:00.000Z',
  updatedAt: '2024-03-01T10:01:00.000Z',
  expiresAt: null,
  large: true,
  accountIds: ['alice'],
};

describe('SqliteReadModelStore', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps documents, indexes and checkpoints across close and reopen', async () => {
    const file = join(dir, 'read-models.db');
    const checkpoint: Checkpoint = { position: p(2), storePosition: '2', updatedAtMs: 1_709_287_260_000 };
    const first = SqliteReadModelStore.open(file);
    await first.applyBatch(
      [
        { collection: 'accounts', doc: alice },
        { collection: 'transactions', doc: deposit },
        { collection: 'balanceHistory', doc: { _id: `alice:${p(2)}`, accountId: 'alice', at: deposit.createdAt, balance: alice.balance, position: p(2) } },
      ],
      { transactions: checkpoint },
    );
    await first.close();

    const reopened = SqliteReadModelStore.open(file);
    try {
      expect(await reopened.getAccounts(['alice'])).toEqual([alice]);
      expect(await reopened.findTransactions({ accountId: 'alice', minAmount: 9007199254740993n }, null, 10)).toEqual({
        docs: [deposit],
        totalCount: 1,
        hasMore: false,
      });
      expect(await reopened.balanceAt('alice', '2024-03-01T10:05:00.000Z')).toBe(alice.balance);
      expect(await reopened.loadCheckpoint('transactions')).toEqual(checkpoint);
      // The guard survives too: the stored position still wins over a replay.
      await reopened.applyBatch([{ collection: 'accounts', doc: { ...alice, position: p(1), balance: '1' } }], {});
      expect(await reopened.getAccounts(['alice'])).toEqual([alice]);
    } finally {
      await reopened.close();
    }
  });

  it('uses WAL journaling', async () => {
    const file = join(dir, 'wal.db');
    const store = SqliteReadModelStore.open(file);
    await store.close();
    const raw = new Database(file, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      raw.close();
    }
  });

  it('commits a batch and its checkpoints all or nothing', async () => {
    const store = SqliteReadModelStore.open(join(dir, 'atomic.db'));
    try {
      const broken = { ...deposit, _id: 't2', id: 't2', createdPosition: 'not-a-position' };
      await expect(
        store.applyBatch(
          [
            { collection: 'accounts', doc: alice },
            { collection: 'transactions', doc: broken },
          ],
          { transactions: { position: p(3), storePosition: '3', updatedAtMs: 1 } },
        ),
      ).rejects.toThrow(/invalid position/);
      expect(await store.getAccounts(['alice'])).toEqual([null]);
      expect(await store.loadCheckpoint('transactions')).toBeNull();
    } finally {
      await store.close();
    }
  });

  it('refuses amounts that do not fit in 64 bits instead of rounding them', async () => {
    const store = SqliteReadModelStore.open(join(dir, 'int64.db'));
    try {
      await expect(
        store.applyBatch([{ collection: 'transactions', doc: { ...deposit, amount: '9223372036854775808' } }], {}),
      ).rejects.toThrow(/64-bit/);
      expect(await store.getTransactions(['t1'])).toEqual([null]);
    } finally {
      await store.close();
    }
  });

  it('rejects a cursor that is not a position', async () => {
    const store = SqliteReadModelStore.open(join(dir, 'cursor.db'));
    try {
      await expect(store.findTransactions({}, 'garbage', 10)).rejects.toThrow(/cursor/);
    } finally {
      await store.close();
    }
  });
});
