/**
 * The contract every read-model adapter passes (see src/projections/read-model-store.ts). Each test
 * opens a fresh, empty store. Expected results are written out by hand from the fixture tables below,
 * so a wrong filter, order or bound shows up as a different list of ids.
 */
import { formatPosition } from '../../src/domain/position';
import {
  PAGE_SIZE_MAX,
  VOLUME_BUCKETS_MAX,
  volumeBucketId,
  type AccountDoc,
  type CounterStep,
  type VolumeInterval,
  type BalanceHistoryDoc,
  type Checkpoint,
  type ReadModelStore,
  type ReadModelWrite,
  type TransactionDoc,
  type TransactionQuery,
} from '../../src/projections/read-model-store';

export type OpenReadModelStore = () => Promise<{ store: ReadModelStore; cleanup: () => Promise<void> }>;

const p = (index: number, eventIndex = 0): string => formatPosition(index, eventIndex);
/** 2024-03-01 at 10:mm:ss UTC, in the ledger's own form (Date#toISOString). */
const at = (minute: number, second = 0): string =>
  `2024-03-01T10:${String(minute).padStart(2, '0')}:${String(second).padStart(2, '0')}.000Z`;

const INT64_MAX_DIGITS = '9223372036854775807';

function account(id: string, position: string, fields: Partial<AccountDoc> = {}): AccountDoc {
  return {
    _id: id,
    id,
    position,
    currency: 'USD',
    balance: '0',
    availableBalance: '0',
    overdraftLimit: '0',
    createdAt: at(0),
    lastTransactionAt: null,
    transactionCount: 0,
    metadata: null,
    ...fields,
  };
}

function transaction(
  id: string,
  createdPosition: string,
  fields: Pick<TransactionDoc, 'kind' | 'status' | 'amount' | 'createdAt' | 'large'> & Partial<TransactionDoc>,
): TransactionDoc {
  const fromAccountId = fields.fromAccountId ?? null;
  const toAccountId = fields.toAccountId ?? null;
  return {
    _id: id,
    id,
    position: createdPosition,
    createdPosition,
    currency: 'USD',
    fromAccountId,
    toAccountId,
    description: null,
    metadata: null,
    updatedAt: fields.createdAt,
    expiresAt: null,
    accountIds: [fromAccountId, toAccountId].filter((a): a is string => a !== null),
    ...fields,
  };
}

function history(accountId: string, instant: string, position: string, balance: string): BalanceHistoryDoc {
  return { _id: `${accountId}:${position}`, accountId, at: instant, balance, position };
}

const accountWrite = (doc: AccountDoc): ReadModelWrite => ({ collection: 'accounts', doc });
const transactionWrite = (doc: TransactionDoc): ReadModelWrite => ({ collection: 'transactions', doc });
const historyWrite = (doc: BalanceHistoryDoc): ReadModelWrite => ({ collection: 'balanceHistory', doc });

/**
 * The query fixture. createdPosition order is t01 … t08 (t04 and t05 share a log index: one batch);
 * t06's createdAt is deliberately earlier than its position, so ordering by time would show.
 *
 * | id  | kind       | status    | amount    | from  | to    | createdAt | large |
 * | t01 | DEPOSIT    | SETTLED   | 500       |       | alice | 10:01     |       |
 * | t02 | DEPOSIT    | SETTLED   | 2000000   |       | bob   | 10:02     | yes   |
 * | t03 | WITHDRAWAL | PENDING   | 300       | alice |       | 10:03     |       |
 * | t04 | TRANSFER   | SETTLED   | 1000000   | alice | bob   | 10:04     | yes   |
 * | t05 | TRANSFER   | PENDING   | 999999    | bob   | carol | 10:04     |       |
 * | t06 | WITHDRAWAL | CANCELLED | 700       | bob   |       | 10:02:30  |       |
 * | t07 | DEPOSIT    | EXPIRED   | 1500000   |       | carol | 10:07     | yes   |
 * | t08 | TRANSFER   | SETTLED   | 250       | carol | alice | 10:08     |       |
 */
const FIXTURE: TransactionDoc[] = [
  transaction('t01', p(1), { kind: 'DEPOSIT', status: 'SETTLED', amount: '500', toAccountId: 'alice', createdAt: at(1), large: false }),
  transaction('t02', p(2), { kind: 'DEPOSIT', status: 'SETTLED', amount: '2000000', toAccountId: 'bob', createdAt: at(2), large: true }),
  transaction('t03', p(3), { kind: 'WITHDRAWAL', status: 'PENDING', amount: '300', fromAccountId: 'alice', createdAt: at(3), large: false }),
  transaction('t04', p(4, 0), {
    kind: 'TRANSFER', status: 'SETTLED', amount: '1000000', fromAccountId: 'alice', toAccountId: 'bob', createdAt: at(4), large: true,
  }),
  transaction('t05', p(4, 1), {
    kind: 'TRANSFER', status: 'PENDING', amount: '999999', fromAccountId: 'bob', toAccountId: 'carol', createdAt: at(4), large: false,
  }),
  transaction('t06', p(6), { kind: 'WITHDRAWAL', status: 'CANCELLED', amount: '700', fromAccountId: 'bob', createdAt: at(2, 30), large: false }),
  transaction('t07', p(7), { kind: 'DEPOSIT', status: 'EXPIRED', amount: '1500000', toAccountId: 'carol', createdAt: at(7), large: true }),
  transaction('t08', p(8), {
    kind: 'TRANSFER', status: 'SETTLED', amount: '250', fromAccountId: 'carol', toAccountId: 'alice', createdAt: at(8), large: false,
  }),
];
const ALL_NEWEST_FIRST = ['t08', 't07', 't06', 't05', 't04', 't03', 't02', 't01'];

function fixtureDoc(id: string): TransactionDoc {
  const doc = FIXTURE.find((t) => t._id === id);
  if (!doc) throw new Error(`no fixture transaction ${id}`);
  return doc;
}

/** Inserted out of order and over two batches: the store, not insertion order, must sort. */
async function loadFixture(store: ReadModelStore): Promise<void> {
  const shuffled = ['t05', 't01', 't08', 't03', 't07', 't02', 't06', 't04'].map(fixtureDoc);
  await store.applyBatch(shuffled.slice(0, 4).map(transactionWrite), {});
  await store.applyBatch(shuffled.slice(4).map(transactionWrite), {});
}

async function findIds(store: ReadModelStore, query: TransactionQuery, before: string | null = null, limit = PAGE_SIZE_MAX) {
  const page = await store.findTransactions(query, before, limit);
  return page.docs.map((doc) => doc._id);
}

export function readModelStoreContract(name: string, open: OpenReadModelStore): void {
  describe(`read-model store contract: ${name}`, () => {
    let store: ReadModelStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await open());
    });
    afterEach(async () => {
      await cleanup();
    });

    describe('documents round-trip exactly', () => {
      it('accounts, with 19-digit amounts and nested metadata', async () => {
        const rich = account('acc_1-A', p(12, 3), {
          currency: 'EUR',
          balance: INT64_MAX_DIGITS,
          availableBalance: '-9223372036854775808',
          overdraftLimit: '1234567890123456789',
          createdAt: '2024-02-29T23:59:59.999Z',
          lastTransactionAt: '2024-03-01T00:00:00.001Z',
          transactionCount: 2147483647,
          metadata: { customerId: 'C-42', tags: ['vip', 'eu'], nested: { level: 2, flag: true, none: null }, ratio: 0.25 },
        });
        const plain = account('plain', p(1));
        await store.applyBatch([accountWrite(rich), accountWrite(plain)], {});

        expect(await store.getAccounts(['acc_1-A', 'plain'])).toEqual([rich, plain]);
      });

      it('transactions, with 19-digit amounts, metadata and every field', async () => {
        const doc = transaction('tx-1', p(20), {
          kind: 'TRANSFER',
          status: 'PENDING',
          amount: INT64_MAX_DIGITS,
          currency: 'GBP',
          fromAccountId: 'a',
          toAccountId: 'b',
          description: 'invoice 2024-17 — ünïcødé',
          metadata: { invoice: 'INV-17', lines: [{ sku: 'X', qty: 3 }], paid: false },
          createdAt: at(5),
          updatedAt: at(6),
          expiresAt: at(35),
          large: true,
        });
        const bare = transaction('tx-2', p(21), { kind: 'DEPOSIT', status: 'SETTLED', amount: '1', toAccountId: 'b', createdAt: at(7), large: false });
        await store.applyBatch([transactionWrite(doc), transactionWrite(bare)], {});

        expect(await store.getTransactions(['tx-1', 'tx-2'])).toEqual([doc, bare]);
        expect((await store.findTransactions({}, null, 10)).docs).toEqual([bare, doc]);
      });

      it('refuses a transaction with more than two accounts, writing nothing of its batch', async () => {
        const fine = transaction('tx-ok', p(30), { kind: 'DEPOSIT', status: 'SETTLED', amount: '5', toAccountId: 'b', createdAt: at(8), large: false });
        const three = { ...transaction('tx-3', p(31), { kind: 'TRANSFER', status: 'SETTLED', amount: '5', fromAccountId: 'a', toAccountId: 'b', createdAt: at(8), large: false }), accountIds: ['a', 'b', 'c'] };
        await expect(store.applyBatch([transactionWrite(fine), transactionWrite(three)], { transactions: { position: p(31), storePosition: '31', updatedAtMs: 1 } })).rejects.toThrow(
          /transaction tx-3 has accountIds \["a","b","c"\], expected at most two/,
        );
        expect(await store.getTransactions(['tx-ok', 'tx-3'])).toEqual([null, null]);
        expect(await store.loadCheckpoint('transactions')).toBeNull();
      });

      it('balance history, read back through balanceAt with its exact digits', async () => {
        await store.applyBatch([historyWrite(history('a', at(1), p(1), INT64_MAX_DIGITS))], {});
        expect(await store.balanceAt('a', at(1))).toBe(INT64_MAX_DIGITS);
      });
    });

    describe('transactionsChangedBetween (catch-up of the live feeds)', () => {
      const changedIds = async (query: { accountId?: string; minAmount?: bigint }, after: string, upTo: string, limit = PAGE_SIZE_MAX) =>
        (await store.transactionsChangedBetween(query, after, upTo, limit)).map((doc) => doc._id);

      it('returns the transactions whose last change is in (after, upTo], in position order, filtered', async () => {
        await loadFixture(store);
        // t03 settles at position 9: it moves to the end of the position order.
        await store.applyBatch([transactionWrite({ ...fixtureDoc('t03'), status: 'SETTLED', position: p(9) })], {});

        expect(await changedIds({}, p(0), p(99))).toEqual(['t01', 't02', 't04', 't05', 't06', 't07', 't08', 't03']);
        expect(await changedIds({}, p(2), p(7))).toEqual(['t04', 't05', 't06', 't07']);
        expect(await changedIds({}, p(4, 0), p(4, 1))).toEqual(['t05']);
        expect(await changedIds({ accountId: 'alice' }, p(0), p(99))).toEqual(['t01', 't04', 't08', 't03']);
        expect(await changedIds({ minAmount: 1_000_000n }, p(0), p(99))).toEqual(['t02', 't04', 't07']);
        expect(await changedIds({ accountId: 'bob', minAmount: 1_000_000n }, p(3), p(99))).toEqual(['t04']);
        expect(await changedIds({}, p(0), p(99), 2)).toEqual(['t01', 't02']);
        expect(await changedIds({ minAmount: 2n ** 70n }, p(0), p(99))).toEqual([]);
      });
    });

    describe('position guard', () => {
      it('skips an account write with an older or equal position and applies a newer one', async () => {
        const v5 = account('a', p(5), { balance: '500' });
        await store.applyBatch([accountWrite(v5)], {});

        await store.applyBatch([accountWrite(account('a', p(3), { balance: '300' }))], {});
        expect(await store.getAccounts(['a'])).toEqual([v5]);
        await store.applyBatch([accountWrite(account('a', p(5), { balance: '555' }))], {});
        expect(await store.getAccounts(['a'])).toEqual([v5]);
        // Same log index, earlier event: still older.
        await store.applyBatch([accountWrite(account('a', p(4, 999999), { balance: '499' }))], {});
        expect(await store.getAccounts(['a'])).toEqual([v5]);

        const v7 = account('a', p(7), { balance: '700', transactionCount: 3 });
        await store.applyBatch([accountWrite(v7)], {});
        expect(await store.getAccounts(['a'])).toEqual([v7]);
      });

      it('applies the guard between writes of one batch too', async () => {
        const newer = account('a', p(9), { balance: '900' });
        await store.applyBatch([accountWrite(newer), accountWrite(account('a', p(8), { balance: '800' }))], {});
        expect(await store.getAccounts(['a'])).toEqual([newer]);
      });

      it('guards transactions, including the columns queries filter on and the per-account index', async () => {
        await loadFixture(store);
        const t03 = fixtureDoc('t03');
        const settled: TransactionDoc = { ...t03, status: 'SETTLED', position: p(9), updatedAt: at(9) };
        await store.applyBatch([transactionWrite(settled)], {});

        expect(await store.getTransactions(['t03'])).toEqual([settled]);
        expect(await findIds(store, { statuses: ['PENDING'] })).toEqual(['t05']);
        expect(await findIds(store, { statuses: ['SETTLED'], accountId: 'alice' })).toEqual(['t08', 't04', 't03', 't01']);
        // A later change keeps the transaction at its createdPosition in the feed.
        expect(await findIds(store, {})).toEqual(ALL_NEWEST_FIRST);

        // Replaying the original event (older) and the same one again (equal) changes nothing.
        await store.applyBatch([transactionWrite(t03), transactionWrite({ ...settled, status: 'CANCELLED' })], {});
        expect(await store.getTransactions(['t03'])).toEqual([settled]);
        expect(await findIds(store, { statuses: ['PENDING'] })).toEqual(['t05']);
        expect(await findIds(store, { statuses: ['CANCELLED'] })).toEqual(['t06']);
        expect(await findIds(store, { accountId: 'alice' })).toEqual(['t08', 't04', 't03', 't01']);
      });

      it('guards balance history documents', async () => {
        await store.applyBatch([historyWrite(history('a', at(1), p(1), '100'))], {});
        await store.applyBatch([historyWrite(history('a', at(1), p(1), '999'))], {});
        expect(await store.balanceAt('a', at(1))).toBe('100');
      });

      it('replaying a whole batch twice, or after a newer one, changes nothing', async () => {
        const batch: ReadModelWrite[] = [
          accountWrite(account('alice', p(1), { balance: '0', metadata: { kyc: 'done' } })),
          accountWrite(account('bob', p(2))),
          transactionWrite(fixtureDoc('t01')),
          accountWrite(account('alice', p(1, 1), { balance: '500', transactionCount: 1, lastTransactionAt: at(1) })),
          historyWrite(history('alice', at(1), p(1, 1), '500')),
          transactionWrite(fixtureDoc('t03')),
          transactionWrite({ ...fixtureDoc('t03'), status: 'SETTLED', position: p(5) }),
          accountWrite(account('alice', p(5), { balance: '200', transactionCount: 2, lastTransactionAt: at(5) })),
          historyWrite(history('alice', at(5), p(5), '200')),
        ];
        const checkpoint: Checkpoint = { position: p(5), storePosition: 'C:5/P:5', updatedAtMs: 1_709_287_500_000 };
        const snapshot = async () => ({
          accounts: await store.listAccounts(null, PAGE_SIZE_MAX),
          transactions: await store.findTransactions({}, null, PAGE_SIZE_MAX),
          pending: await store.findTransactions({ statuses: ['PENDING'] }, null, PAGE_SIZE_MAX),
          balances: await Promise.all([at(0), at(1), at(3), at(5), at(9)].map((instant) => store.balanceAt('alice', instant))),
        });

        await store.applyBatch(batch, { main: checkpoint });
        const once = await snapshot();
        expect(once.accounts.docs.map((a) => [a._id, a.balance])).toEqual([['alice', '200'], ['bob', '0']]);
        expect(once.transactions.docs.map((t) => [t._id, t.status])).toEqual([['t03', 'SETTLED'], ['t01', 'SETTLED']]);
        expect(once.balances).toEqual([null, '500', '500', '200', '200']);

        await store.applyBatch(batch, { main: checkpoint });
        expect(await snapshot()).toEqual(once);
        expect(await store.loadCheckpoint('main')).toEqual(checkpoint);

        const later: ReadModelWrite[] = [
          transactionWrite({ ...fixtureDoc('t03'), status: 'CANCELLED', position: p(6) }),
          accountWrite(account('alice', p(6), { balance: '250', transactionCount: 2, lastTransactionAt: at(6) })),
        ];
        await store.applyBatch(later, {});
        const afterLater = await snapshot();
        await store.applyBatch(batch, {});
        expect(await snapshot()).toEqual(afterLater);
      });
    });

    describe('checkpoints', () => {
      it('are null when absent, stored per projection and replaced', async () => {
        expect(await store.loadCheckpoint('transactions')).toBeNull();

        const accounts: Checkpoint = { position: p(3), storePosition: '3', updatedAtMs: 1_700_000_000_001 };
        const transactions: Checkpoint = { position: p(4, 2), storePosition: 'C:1234/P:1234', updatedAtMs: 1_700_000_000_002 };
        await store.applyBatch([], { accounts, transactions });
        expect(await store.loadCheckpoint('accounts')).toEqual(accounts);
        expect(await store.loadCheckpoint('transactions')).toEqual(transactions);
        expect(await store.loadCheckpoint('other')).toBeNull();

        const next: Checkpoint = { position: p(9), storePosition: '9', updatedAtMs: 1_700_000_000_003 };
        await store.applyBatch([accountWrite(account('a', p(9)))], { accounts: next });
        expect(await store.loadCheckpoint('accounts')).toEqual(next);
        expect(await store.loadCheckpoint('transactions')).toEqual(transactions);
      });
    });

    describe('lookups by id', () => {
      it('getAccounts answers in input order, null where missing, repeated ids included', async () => {
        const a = account('a', p(1));
        const b = account('b', p(2), { balance: '7' });
        await store.applyBatch([accountWrite(b), accountWrite(a)], {});

        expect(await store.getAccounts(['b', 'missing', 'a', 'b'])).toEqual([b, null, a, b]);
        expect(await store.getAccounts([])).toEqual([]);
        expect(await store.getAccounts(['nope'])).toEqual([null]);
      });

      it('getTransactions answers in input order, null where missing', async () => {
        await loadFixture(store);
        expect(await store.getTransactions(['t07', 'x', 't01', 't07'])).toEqual([fixtureDoc('t07'), null, fixtureDoc('t01'), fixtureDoc('t07')]);
        expect(await store.getTransactions([])).toEqual([]);
      });

      it('keeps the collections apart', async () => {
        await store.applyBatch([accountWrite(account('same', p(1))), transactionWrite({ ...fixtureDoc('t01'), _id: 'other', id: 'other' })], {});
        expect(await store.getTransactions(['same'])).toEqual([null]);
        expect(await store.getAccounts(['other'])).toEqual([null]);
      });
    });

    describe('listAccounts', () => {
      const ids = ['acc-04', 'acc-02', 'acc-05', 'acc-01', 'acc-03'];

      beforeEach(async () => {
        await store.applyBatch(ids.map((id, i) => accountWrite(account(id, p(i + 1), { balance: String(i) }))), {});
      });

      it('pages by id ascending, strictly after the given id, with totalCount and hasMore', async () => {
        const first = await store.listAccounts(null, 2);
        expect(first.docs.map((a) => a._id)).toEqual(['acc-01', 'acc-02']);
        expect(first).toMatchObject({ totalCount: 5, hasMore: true });

        const second = await store.listAccounts('acc-02', 2);
        expect(second.docs.map((a) => a._id)).toEqual(['acc-03', 'acc-04']);
        expect(second).toMatchObject({ totalCount: 5, hasMore: true });

        const third = await store.listAccounts('acc-04', 2);
        expect(third.docs.map((a) => a._id)).toEqual(['acc-05']);
        expect(third).toMatchObject({ totalCount: 5, hasMore: false });

        expect(third.docs[0]).toEqual(account('acc-05', p(3), { balance: '2' }));
      });

      it('handles exact fits, ids between stored ones, the end and limit 0', async () => {
        expect(await store.listAccounts(null, 5)).toMatchObject({ totalCount: 5, hasMore: false });
        expect((await store.listAccounts('acc-025', 10)).docs.map((a) => a._id)).toEqual(['acc-03', 'acc-04', 'acc-05']);
        expect(await store.listAccounts('acc-05', 10)).toEqual({ docs: [], totalCount: 5, hasMore: false });
        expect(await store.listAccounts(null, 0)).toEqual({ docs: [], totalCount: 5, hasMore: true });
      });

      it('rejects limits outside 0..PAGE_SIZE_MAX', async () => {
        await expect(store.listAccounts(null, PAGE_SIZE_MAX + 1)).rejects.toThrow(/limit/);
        await expect(store.listAccounts(null, -1)).rejects.toThrow(/limit/);
        await expect(store.listAccounts(null, 1.5)).rejects.toThrow(/limit/);
        expect((await store.listAccounts(null, PAGE_SIZE_MAX)).docs).toHaveLength(5);
      });
    });

    describe('findTransactions', () => {
      beforeEach(async () => {
        await loadFixture(store);
      });

      it('returns everything newest first by createdPosition (not by createdAt or insertion order)', async () => {
        const page = await store.findTransactions({}, null, 20);
        expect(page.docs.map((t) => t._id)).toEqual(ALL_NEWEST_FIRST);
        expect(page.docs[2]).toEqual(fixtureDoc('t06'));
        expect(page).toMatchObject({ totalCount: 8, hasMore: false });
        expect(await findIds(store, { accountId: null, kinds: null, statuses: null, minAmount: null, from: null, to: null, large: null })).toEqual(
          ALL_NEWEST_FIRST,
        );
      });

      it.each<[string, TransactionQuery, string[]]>([
        ['accountId as receiver or sender', { accountId: 'alice' }, ['t08', 't04', 't03', 't01']],
        ['accountId (bob)', { accountId: 'bob' }, ['t06', 't05', 't04', 't02']],
        ['accountId (carol)', { accountId: 'carol' }, ['t08', 't07', 't05']],
        ['accountId without transactions', { accountId: 'nobody' }, []],
        ['one kind', { kinds: ['DEPOSIT'] }, ['t07', 't02', 't01']],
        ['several kinds', { kinds: ['WITHDRAWAL', 'TRANSFER'] }, ['t08', 't06', 't05', 't04', 't03']],
        ['an empty kinds list matches nothing', { kinds: [] }, []],
        ['one status', { statuses: ['PENDING'] }, ['t05', 't03']],
        ['several statuses', { statuses: ['SETTLED', 'EXPIRED'] }, ['t08', 't07', 't04', 't02', 't01']],
        ['minAmount, inclusive', { minAmount: 1_000_000n }, ['t07', 't04', 't02']],
        ['minAmount one below', { minAmount: 999_999n }, ['t07', 't05', 't04', 't02']],
        ['minAmount 0', { minAmount: 0n }, ALL_NEWEST_FIRST],
        ['from, inclusive', { from: at(4) }, ['t08', 't07', 't05', 't04']],
        ['to, inclusive', { to: at(2, 30) }, ['t06', 't02', 't01']],
        ['from and to', { from: at(2), to: at(4) }, ['t06', 't05', 't04', 't03', 't02']],
        ['from without milliseconds', { from: '2024-03-01T10:04:00Z' }, ['t08', 't07', 't05', 't04']],
        ['to without milliseconds', { to: '2024-03-01T10:04:00Z' }, ['t06', 't05', 't04', 't03', 't02', 't01']],
        ['to with a UTC offset', { to: '2024-03-01T12:02:00+02:00' }, ['t02', 't01']],
        ['large', { large: true }, ['t07', 't04', 't02']],
        ['not large', { large: false }, ['t08', 't06', 't05', 't03', 't01']],
        [
          'all filters at once',
          {
            accountId: 'bob',
            kinds: ['TRANSFER', 'WITHDRAWAL'],
            statuses: ['PENDING', 'CANCELLED', 'SETTLED'],
            minAmount: 700n,
            from: at(2, 30),
            to: at(4),
            large: false,
          },
          ['t06', 't05'],
        ],
        [
          'all filters at once, large flipped',
          {
            accountId: 'bob',
            kinds: ['TRANSFER', 'WITHDRAWAL'],
            statuses: ['PENDING', 'CANCELLED', 'SETTLED'],
            minAmount: 700n,
            from: at(2, 30),
            to: at(4),
            large: true,
          },
          ['t04'],
        ],
        ['accountId and status', { accountId: 'alice', statuses: ['SETTLED'] }, ['t08', 't04', 't01']],
        ['kind and large', { kinds: ['DEPOSIT'], large: true }, ['t07', 't02']],
        ['minAmount and to', { minAmount: 1_000_000n, to: at(4) }, ['t04', 't02']],
        ['accountId and kind', { accountId: 'carol', kinds: ['DEPOSIT'] }, ['t07']],
        ['filters that exclude each other', { kinds: ['DEPOSIT'], statuses: ['PENDING'] }, []],
      ])('filters by %s', async (_label, query, expected) => {
        const page = await store.findTransactions(query, null, PAGE_SIZE_MAX);
        expect(page.docs.map((t) => t._id)).toEqual(expected);
        expect(page.totalCount).toBe(expected.length);
        expect(page.hasMore).toBe(false);
      });

      it('pages with a createdPosition cursor: no gap, no duplicate, totalCount on every page', async () => {
        const pages: string[][] = [];
        let cursor: string | null = null;
        for (let i = 0; i < 10; i += 1) {
          const page = await store.findTransactions({}, cursor, 3);
          expect(page.totalCount).toBe(8);
          pages.push(page.docs.map((t) => t._id));
          const last = page.docs[page.docs.length - 1];
          if (!page.hasMore || !last) break;
          cursor = last.createdPosition;
        }
        expect(pages).toEqual([
          ['t08', 't07', 't06'],
          ['t05', 't04', 't03'],
          ['t02', 't01'],
        ]);
      });

      it('pages a filtered feed and ends exactly at the last match', async () => {
        const first = await store.findTransactions({ accountId: 'bob' }, null, 2);
        expect(first.docs.map((t) => t._id)).toEqual(['t06', 't05']);
        expect(first).toMatchObject({ totalCount: 4, hasMore: true });
        const second = await store.findTransactions({ accountId: 'bob' }, p(4, 1), 2);
        expect(second.docs.map((t) => t._id)).toEqual(['t04', 't02']);
        expect(second).toMatchObject({ totalCount: 4, hasMore: false });
        expect(await store.findTransactions({ accountId: 'bob' }, p(2), 2)).toEqual({ docs: [], totalCount: 4, hasMore: false });
      });

      it('reads strictly before a cursor that is not a transaction of its own', async () => {
        expect(await findIds(store, {}, p(5))).toEqual(['t05', 't04', 't03', 't02', 't01']);
        expect(await findIds(store, {}, p(4, 1))).toEqual(['t04', 't03', 't02', 't01']);
        expect(await findIds(store, { large: true }, p(4, 1))).toEqual(['t04', 't02']);
      });

      it('keeps paging stable while newer transactions arrive', async () => {
        const first = await store.findTransactions({}, null, 4);
        expect(first.docs.map((t) => t._id)).toEqual(['t08', 't07', 't06', 't05']);
        const newer = transaction('t09', p(9), { kind: 'DEPOSIT', status: 'SETTLED', amount: '1', toAccountId: 'alice', createdAt: at(9), large: false });
        await store.applyBatch([transactionWrite(newer)], {});

        const lastOfFirst = first.docs[3];
        if (!lastOfFirst) throw new Error('first page too short');
        const second = await store.findTransactions({}, lastOfFirst.createdPosition, 4);
        expect(second.docs.map((t) => t._id)).toEqual(['t04', 't03', 't02', 't01']);
        expect(second).toMatchObject({ totalCount: 9, hasMore: false });
      });

      it('answers hasMore with limit 0', async () => {
        expect(await store.findTransactions({ large: true }, null, 0)).toEqual({ docs: [], totalCount: 3, hasMore: true });
        expect(await store.findTransactions({ accountId: 'nobody' }, null, 0)).toEqual({ docs: [], totalCount: 0, hasMore: false });
      });

      it('rejects limits outside 0..PAGE_SIZE_MAX', async () => {
        await expect(store.findTransactions({}, null, PAGE_SIZE_MAX + 1)).rejects.toThrow(/limit/);
        await expect(store.findTransactions({}, null, -1)).rejects.toThrow(/limit/);
        await expect(store.findTransactions({}, null, Number.NaN)).rejects.toThrow(/limit/);
        expect((await store.findTransactions({}, null, PAGE_SIZE_MAX)).docs).toHaveLength(8);
      });
    });

    describe('exact amounts in filters', () => {
      it('compares minAmount exactly above 2^53 and up to the int64 maximum', async () => {
        const make = (id: string, index: number, amount: string) =>
          transaction(id, p(index), { kind: 'DEPOSIT', status: 'SETTLED', amount, toAccountId: 'rich', createdAt: at(index), large: true });
        // As doubles, 2^53 and 2^53 + 1 are the same number: a float anywhere would merge them.
        const twoPow53 = make('two-pow-53', 1, '9007199254740992');
        const twoPow53Plus1 = make('two-pow-53-plus-1', 2, '9007199254740993');
        const max = make('int64-max', 3, INT64_MAX_DIGITS);
        await store.applyBatch([twoPow53, twoPow53Plus1, max].map(transactionWrite), {});

        expect(await findIds(store, { minAmount: 9007199254740993n })).toEqual(['int64-max', 'two-pow-53-plus-1']);
        expect(await findIds(store, { minAmount: 9007199254740992n })).toEqual(['int64-max', 'two-pow-53-plus-1', 'two-pow-53']);
        expect(await findIds(store, { minAmount: 9223372036854775807n })).toEqual(['int64-max']);
        expect(await findIds(store, { minAmount: 9223372036854775808n })).toEqual([]);
        expect(await findIds(store, { minAmount: 10n ** 30n })).toEqual([]);
        expect((await store.getTransactions(['two-pow-53-plus-1', 'int64-max'])).map((t) => t?.amount)).toEqual([
          '9007199254740993',
          INT64_MAX_DIGITS,
        ]);
      });
    });

    describe('balanceAt', () => {
      beforeEach(async () => {
        // Inserted newest first, and the two changes at 10:02 in reverse position order.
        await store.applyBatch(
          [
            historyWrite(history('alice', at(5), p(5), INT64_MAX_DIGITS)),
            historyWrite(history('alice', at(2), p(3, 1), '200')),
            historyWrite(history('alice', at(2), p(3, 0), '250')),
            historyWrite(history('alice', at(1), p(1), '100')),
            historyWrite(history('bob', at(0), p(0, 5), '9')),
            historyWrite(history('bob', at(3), p(4), '1')),
          ],
          {},
        );
      });

      it.each<[string, string, string | null]>([
        ['before the account existed', at(0, 59), null],
        ['at the instant it was opened', at(1), '100'],
        ['between changes', at(1, 59), '100'],
        ['at an instant with two changes: the later position wins', at(2), '200'],
        ['after those', at(4, 59), '200'],
        ['at the last change', at(5), INT64_MAX_DIGITS],
        ['long after', '2030-01-01T00:00:00.000Z', INT64_MAX_DIGITS],
        ['given without milliseconds', '2024-03-01T10:01:00Z', '100'],
        ['given with an offset', '2024-03-01T11:02:00+01:00', '200'],
      ])('alice %s', async (_label, instant, expected) => {
        expect(await store.balanceAt('alice', instant)).toBe(expected);
      });

      it('reads only the given account', async () => {
        expect(await store.balanceAt('bob', at(2))).toBe('9');
        expect(await store.balanceAt('bob', at(5))).toBe('1');
        expect(await store.balanceAt('carol', at(5))).toBeNull();
      });

      it('rejects an instant that is not a date-time', async () => {
        await expect(store.balanceAt('alice', 'yesterday')).rejects.toThrow(/date-time/);
      });
    });

    describe('analytics: counters (currencyTotals, volumeBuckets)', () => {
      const totals = (position: string, accounts: number, transactions: number, balance: bigint): CounterStep<'currencyTotals'> => ({
        position,
        add: { accountCount: BigInt(accounts), transactionCount: BigInt(transactions), totalBalance: balance },
      });
      const usd = (...steps: Array<CounterStep<'currencyTotals'>>): ReadModelWrite => ({
        collection: 'currencyTotals',
        increment: { _id: 'USD', keys: { currency: 'USD' }, steps },
      });
      const volume = (interval: VolumeInterval, start: string, ...steps: Array<[string, number, bigint]>): ReadModelWrite => ({
        collection: 'volumeBuckets',
        increment: {
          _id: volumeBucketId('USD', interval, start),
          keys: { currency: 'USD', interval, start },
          steps: steps.map(([position, count, amount]) => ({ position, add: { count: BigInt(count), amount } })),
        },
      });

      it('adds every step to a new document and reads it back exactly, 19 digits included', async () => {
        expect(await store.currencyTotals('USD')).toBeNull();
        await store.applyBatch([usd(totals(p(1), 1, 0, 0n), totals(p(2), 0, 1, 9_000_000_000_000_000_000n), totals(p(3, 1), 1, 1, -1n))], {});
        expect(await store.currencyTotals('USD')).toEqual({
          _id: 'USD', currency: 'USD', accountCount: 2, transactionCount: 2, totalBalance: '8999999999999999999', position: p(3, 1),
        });
        expect(await store.currencyTotals('EUR')).toBeNull();
      });

      it('keeps sums exact beyond 64 bits (a sum over accounts may exceed what one balance can hold)', async () => {
        const max = 9_223_372_036_854_775_807n;
        await store.applyBatch([usd(totals(p(1), 1, 1, max), totals(p(2), 1, 1, max))], {});
        await store.applyBatch([usd(totals(p(3), 1, 1, max))], {});
        expect((await store.currencyTotals('USD'))?.totalBalance).toBe(String(3n * max));
        await store.applyBatch([volume('DAY', '2024-03-01T00:00:00.000Z', [p(4), 1, max], [p(5), 1, max])], {});
        expect((await store.volumeBuckets('USD', 'DAY', null, null, 10)).docs[0]?.amount).toBe(String(2n * max));
        await store.applyBatch([usd(totals(p(6), 0, 0, -3n * max))], {});
        expect((await store.currencyTotals('USD'))?.totalBalance).toBe('0');
      });

      it('replaying a batch, or any part of it, changes nothing', async () => {
        const batch = [usd(totals(p(1), 1, 0, 100n), totals(p(2), 0, 1, 50n), totals(p(3), 0, 1, -20n))];
        await store.applyBatch(batch, {});
        await store.applyBatch(batch, {});
        await store.applyBatch([usd(totals(p(2), 0, 1, 50n))], {});
        expect(await store.currencyTotals('USD')).toMatchObject({ accountCount: 1, transactionCount: 2, totalBalance: '130', position: p(3) });
      });

      it('after a crash, a replay cut at other boundaries adds exactly the steps the document lacks', async () => {
        // The lost run wrote events 1..3 to the document; the replay's batch covers 2..5.
        await store.applyBatch([usd(totals(p(1), 1, 0, 100n), totals(p(2), 0, 1, 10n), totals(p(3), 0, 1, 20n))], {});
        await store.applyBatch([usd(totals(p(2), 0, 1, 10n), totals(p(3), 0, 1, 20n), totals(p(4), 0, 1, 40n), totals(p(5), 1, 0, 0n))], {});
        expect(await store.currencyTotals('USD')).toMatchObject({ accountCount: 2, transactionCount: 3, totalBalance: '170', position: p(5) });
      });

      it('keeps volume buckets per currency, interval and start; reads a range ascending with hasMore', async () => {
        const h = (hour: number) => `2024-03-01T${String(hour).padStart(2, '0')}:00:00.000Z`;
        await store.applyBatch(
          [
            volume('HOUR', h(12), [p(5), 1, 700n]),
            volume('HOUR', h(10), [p(1), 1, 500n], [p(2), 1, 250n]),
            volume('HOUR', h(11), [p(3), 2, 9_223_372_036_854_775_000n]),
            volume('DAY', '2024-03-01T00:00:00.000Z', [p(1), 1, 500n], [p(2), 1, 250n], [p(3), 2, 2n], [p(5), 1, 700n]),
            {
              collection: 'volumeBuckets',
              increment: { _id: volumeBucketId('EUR', 'HOUR', h(10)), keys: { currency: 'EUR', interval: 'HOUR', start: h(10) }, steps: [{ position: p(4), add: { count: 1n, amount: 9n } }] },
            },
          ],
          {},
        );
        const hours = await store.volumeBuckets('USD', 'HOUR', null, null, VOLUME_BUCKETS_MAX);
        expect(hours.hasMore).toBe(false);
        expect(hours.docs).toEqual([
          { _id: volumeBucketId('USD', 'HOUR', h(10)), currency: 'USD', interval: 'HOUR', start: h(10), count: 2, amount: '750', position: p(2) },
          { _id: volumeBucketId('USD', 'HOUR', h(11)), currency: 'USD', interval: 'HOUR', start: h(11), count: 2, amount: '9223372036854775000', position: p(3) },
          { _id: volumeBucketId('USD', 'HOUR', h(12)), currency: 'USD', interval: 'HOUR', start: h(12), count: 1, amount: '700', position: p(5) },
        ]);
        // fromStart inclusive, toStart exclusive.
        expect((await store.volumeBuckets('USD', 'HOUR', h(11), h(12), 10)).docs.map((b) => b.start)).toEqual([h(11)]);
        expect((await store.volumeBuckets('USD', 'HOUR', h(11), null, 10)).docs.map((b) => b.start)).toEqual([h(11), h(12)]);
        expect((await store.volumeBuckets('USD', 'HOUR', null, h(11), 10)).docs.map((b) => b.start)).toEqual([h(10)]);
        const firstTwo = await store.volumeBuckets('USD', 'HOUR', null, null, 2);
        expect([firstTwo.docs.map((b) => b.start), firstTwo.hasMore]).toEqual([[h(10), h(11)], true]);
        const day = await store.volumeBuckets('USD', 'DAY', null, null, 10);
        expect(day.docs.map((b) => [b.start, b.count, b.amount])).toEqual([['2024-03-01T00:00:00.000Z', 5, '1452']]);
        expect((await store.volumeBuckets('EUR', 'HOUR', null, null, 10)).docs.map((b) => [b.start, b.amount])).toEqual([[h(10), '9']]);
        expect((await store.volumeBuckets('GBP', 'DAY', null, null, 10)).docs).toEqual([]);
        await expect(store.volumeBuckets('USD', 'HOUR', null, null, VOLUME_BUCKETS_MAX + 1)).rejects.toThrow(RangeError);
      });

      it('guards volume buckets like every counter', async () => {
        const start = '2024-03-01T10:00:00.000Z';
        await store.applyBatch([volume('HOUR', start, [p(1), 1, 5n], [p(2), 1, 6n])], {});
        await store.applyBatch([volume('HOUR', start, [p(2), 1, 6n], [p(3), 1, 7n])], {});
        await store.applyBatch([volume('HOUR', start, [p(1), 1, 5n])], {});
        expect((await store.volumeBuckets('USD', 'HOUR', null, null, 10)).docs).toEqual([
          { _id: volumeBucketId('USD', 'HOUR', start), currency: 'USD', interval: 'HOUR', start, count: 3, amount: '18', position: p(3) },
        ]);
      });
    });

    describe('analytics: mostActiveAccounts and largeTransactions', () => {
      it('orders one currency by transactionCount descending, then id, bounded by limit', async () => {
        await store.applyBatch(
          [
            accountWrite(account('zed', p(1), { transactionCount: 7 })),
            accountWrite(account('amy', p(2), { transactionCount: 3 })),
            accountWrite(account('bob', p(3), { transactionCount: 7 })),
            accountWrite(account('cat', p(4), { transactionCount: 0 })),
            accountWrite(account('eur', p(5), { currency: 'EUR', transactionCount: 99 })),
          ],
          {},
        );
        // A newer document moves the account in the order.
        await store.applyBatch([accountWrite(account('cat', p(6), { transactionCount: 8 }))], {});
        expect((await store.mostActiveAccounts('USD', 10)).map((a) => [a.id, a.transactionCount])).toEqual([
          ['cat', 8], ['bob', 7], ['zed', 7], ['amy', 3],
        ]);
        expect((await store.mostActiveAccounts('USD', 2)).map((a) => a.id)).toEqual(['cat', 'bob']);
        expect(await store.mostActiveAccounts('USD', 0)).toEqual([]);
        expect((await store.mostActiveAccounts('EUR', 10)).map((a) => a.id)).toEqual(['eur']);
        expect(await store.mostActiveAccounts('GBP', 10)).toEqual([]);
        await expect(store.mostActiveAccounts('USD', PAGE_SIZE_MAX + 1)).rejects.toThrow(RangeError);
      });

      it('filters transactions by currency, with large and paging', async () => {
        await loadFixture(store);
        const eur = transaction('e1', p(9), { kind: 'DEPOSIT', status: 'SETTLED', amount: '5000000', currency: 'EUR', toAccountId: 'dora', createdAt: at(9), large: true });
        await store.applyBatch([transactionWrite(eur)], {});
        expect(await findIds(store, { currency: 'USD', large: true })).toEqual(['t07', 't04', 't02']);
        expect(await findIds(store, { currency: 'EUR', large: true })).toEqual(['e1']);
        expect(await findIds(store, { currency: 'EUR' })).toEqual(['e1']);
        expect(await findIds(store, { currency: 'GBP' })).toEqual([]);
        const page = await store.findTransactions({ currency: 'USD', large: true }, p(7), 1);
        expect([page.docs.map((d) => d._id), page.totalCount, page.hasMore]).toEqual([['t04'], 3, true]);
      });
    });

    describe('reset (rebuild)', () => {
      it('deletes the given collections and checkpoints, and nothing else', async () => {
        const checkpoint = (position: string): Checkpoint => ({ position, storePosition: 's', updatedAtMs: 1 });
        await loadFixture(store);
        await store.applyBatch(
          [
            accountWrite(account('alice', p(1))),
            historyWrite(history('alice', at(1), p(1), '5')),
            { collection: 'currencyTotals', increment: { _id: 'USD', keys: { currency: 'USD' }, steps: [{ position: p(1), add: { accountCount: 1n, transactionCount: 0n, totalBalance: 0n } }] } },
          ],
          { accounts: checkpoint(p(8)), analytics: checkpoint(p(8)), transactions: checkpoint(p(8)) },
        );
        await store.reset(['currencyTotals', 'volumeBuckets', 'transactions'], ['analytics', 'transactions']);
        expect(await store.currencyTotals('USD')).toBeNull();
        expect(await findIds(store, {})).toEqual([]);
        expect(await findIds(store, { accountId: 'alice' })).toEqual([]);
        expect(await store.loadCheckpoint('analytics')).toBeNull();
        expect(await store.loadCheckpoint('transactions')).toBeNull();
        expect(await store.loadCheckpoint('accounts')).toEqual(checkpoint(p(8)));
        expect((await store.getAccounts(['alice']))[0]?.id).toBe('alice');
        expect(await store.balanceAt('alice', at(2))).toBe('5');
        // A reset store takes the same documents again.
        await store.applyBatch([transactionWrite(fixtureDoc('t01'))], {});
        expect(await findIds(store, { accountId: 'alice' })).toEqual(['t01']);
      });

      it('bulk load (a rebuild) stores and answers exactly what the normal mode does, during it and after it', async () => {
        await loadFixture(store);
        const before = { all: await findIds(store, {}), alice: await findIds(store, { accountId: 'alice' }), large: await findIds(store, { large: true }) };
        expect(before.all.length).toBeGreaterThan(0);
        await store.reset(['transactions'], []);
        await store.beginBulkLoad(['transactions']);
        await loadFixture(store);
        // Replayed inside it: the guards still hold.
        await loadFixture(store);
        expect(await findIds(store, {})).toEqual(before.all);
        await store.endBulkLoad(['transactions']);
        expect({ all: await findIds(store, {}), alice: await findIds(store, { accountId: 'alice' }), large: await findIds(store, { large: true }) }).toEqual(before);
        await expect(store.beginBulkLoad(['nope' as never])).rejects.toThrow(/unknown read-model collection "nope"/);
      });
    });
  });
}
