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

  it('takes a history cursor beyond every position it can key (log index over 9 × 10^9) as no bound', async () => {
    const store = SqliteReadModelStore.open(join(dir, 'cursor.db'));
    try {
      await store.applyBatch([{ collection: 'accounts', doc: alice }, { collection: 'transactions', doc: deposit }], {});
      expect(await store.findTransactions({}, '9999999999999999-000000', 10)).toMatchObject({ docs: [deposit], totalCount: 1 });
      expect(await store.findTransactions({ accountId: 'alice' }, '9999999999999999-999999', 10)).toMatchObject({ docs: [deposit] });
    } finally {
      await store.close();
    }
  });

  it('stores a transaction document without what its columns hold, and reads it back whole by every path', async () => {
    const file = join(dir, 'read-models.db');
    const store = SqliteReadModelStore.open(file);
    const pending: TransactionDoc = { ...deposit, _id: 't2', id: 't2', position: p(7, 3), createdPosition: p(5, 999_999), kind: 'TRANSFER', status: 'PENDING', large: false, fromAccountId: 'bob', accountIds: ['bob', 'alice'] };
    await store.applyBatch([{ collection: 'transactions', doc: deposit }, { collection: 'transactions', doc: pending }], {});
    expect(await store.getTransactions(['t2', 't1', 't2'])).toEqual([pending, deposit, pending]);
    expect((await store.findTransactions({ accountId: 'alice' }, null, 10)).docs).toEqual([pending, deposit]);
    expect(await store.transactionsChangedBetween({ accountId: 'bob' }, p(0), p(9), 10)).toEqual([pending]);
    await store.close();
    const db = new Database(file, { readonly: true });
    const stored = db.prepare('SELECT doc FROM transactions WHERE id = ?').pluck().get('t2') as string;
    db.close();
    expect(Object.keys(JSON.parse(stored) as object).sort()).toEqual(['accountIds', 'amount', 'createdAt', 'description', 'expiresAt', 'fromAccountId', 'metadata', 'toAccountId', 'updatedAt']);
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

  it('bulk load drops the secondary indexes and builds them again at the end, back in WAL mode; a store closed mid-load reopens with all of them', async () => {
    const file = join(dir, 'bulk.db');
    const store = SqliteReadModelStore.open(file);
    const all = store.indexNames();
    expect(all).toEqual(expect.arrayContaining(['accounts_by_activity', 'transactions_large', 'transactions_by_position']));
    await store.beginBulkLoad(['accounts', 'transactions', 'balanceHistory']);
    expect(store.indexNames()).toEqual([]);
    // Writes and reads stay correct without them (a rebuild resumed on a half-built store, say).
    await store.applyBatch([{ collection: 'accounts', doc: alice }, { collection: 'transactions', doc: deposit }], {});
    expect(await store.findTransactions({ accountId: 'alice' }, null, 10)).toMatchObject({ docs: [deposit], totalCount: 1 });
    await store.endBulkLoad(['accounts', 'transactions', 'balanceHistory']);
    expect(store.indexNames()).toEqual(all);
    expect(await store.mostActiveAccounts('USD', 5)).toEqual([alice]);
    await store.beginBulkLoad(['transactions']);
    expect(store.indexNames()).toEqual(['accounts_by_activity']);
    await expect(store.beginBulkLoad(['nope' as never])).rejects.toThrow(/unknown read-model collection "nope"/);
    await store.close();

    const reopened = SqliteReadModelStore.open(file);
    try {
      expect(reopened.indexNames()).toEqual(all);
      expect(await reopened.getTransactions(['t1'])).toEqual([deposit]);
    } finally {
      await reopened.close();
    }
    const raw = new Database(file, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      raw.close();
    }
  });

  it('writes rows across multi-row insert boundaries, and a failed batch leaks none of its rows into the next', async () => {
    const store = SqliteReadModelStore.open(join(dir, 'rows.db'));
    const history = (i: number, index = i + 1) => ({
      collection: 'balanceHistory' as const,
      doc: { _id: `a${i}:${p(index)}`, accountId: `a${i}`, at: '2024-03-01T10:00:00.000Z', balance: String(i), position: p(index) },
    });
    try {
      const broken = { ...deposit, _id: 't2', id: 't2', createdPosition: 'not-a-position' };
      const many = Array.from({ length: 130 }, (_, i) => history(i));
      await expect(store.applyBatch([...many, { collection: 'transactions', doc: broken }], {})).rejects.toThrow(/invalid position/);
      await store.applyBatch([history(1000)], {});
      for (const i of [0, 127, 128, 129]) expect(await store.balanceAt(`a${i}`, '2024-03-02T00:00:00.000Z')).toBeNull();
      expect(await store.balanceAt('a1000', '2024-03-02T00:00:00.000Z')).toBe('1000');

      const rows = Array.from({ length: 300 }, (_, i) => history(i));
      const transactions = Array.from({ length: 200 }, (_, i) => ({
        collection: 'transactions' as const,
        doc: { ...deposit, _id: `t${i + 10}`, id: `t${i + 10}`, position: p(i + 10), createdPosition: p(i + 10), toAccountId: `a${i % 3}`, accountIds: [`a${i % 3}`] },
      }));
      await store.applyBatch([...rows, ...transactions], {});
      // Replayed: nothing doubles.
      await store.applyBatch([...rows, ...transactions], {});
      for (const i of [0, 127, 128, 255, 256, 299]) expect(await store.balanceAt(`a${i}`, '2024-03-02T00:00:00.000Z')).toBe(String(i));
      const counts = await Promise.all([0, 1, 2].map(async (a) => (await store.findTransactions({ accountId: `a${a}` }, null, 500)).totalCount));
      expect(counts).toEqual([67, 67, 66]);
    } finally {
      await store.close();
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
