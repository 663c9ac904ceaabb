/**
 * Analytics and replay properties over random histories, through the read-model port only, so every
 * adapter runs them (SQLite in analytics.test.ts; the MongoDB adapter on FerretDB the same way):
 * - the analytics reads equal a brute-force computation over the final state the events describe;
 * - replaying the whole history again changes nothing;
 * - a rebuild from zero equals the incrementally built read models, document for document;
 * - what a crash between documents and checkpoint can leave (any subset of a batch's writes stored,
 *   no checkpoint) is repaired exactly by resuming at other batch boundaries.
 */
import fc from 'fast-check';
import type { RecordedEvent } from '../../src/eventstore/event-store';
import { LEDGER_PROJECTORS } from '../../src/projections/projectors';
import { PAGE_SIZE_MAX, READ_MODEL_COLLECTIONS, VOLUME_BUCKETS_MAX, type ReadModelStore, type VolumeInterval } from '../../src/projections/read-model-store';
import { Replayer } from '../../src/projections/replay';
import { projectBatch } from '../../src/projections/project-batch';
import { finalState, historyArbitrary, recordHistory } from '../support/ledger-history';
import type { OpenReadModelStore } from './read-model-store.contract';

export const CURRENCIES = ['USD', 'EUR'];
const INTERVAL_MS: Record<VolumeInterval, number> = { HOUR: 3_600_000, DAY: 86_400_000 };
const PROJECTION_NAMES = LEDGER_PROJECTORS.map((p) => p.name);

/** Batch sizes to cut a history with (cycled). */
const cutsArbitrary = fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 8 });

async function projectFromCheckpoints(store: ReadModelStore, events: readonly RecordedEvent[], cuts: readonly number[]): Promise<void> {
  const replayer = await Replayer.open(store, LEDGER_PROJECTORS);
  const after = replayer.resumeAfter;
  let at = after === null ? 0 : events.findIndex((e) => e.storePosition > after);
  if (at < 0) return;
  for (let i = 0; at < events.length; i += 1) {
    const size = cuts[i % cuts.length]!;
    await replayer.apply(events.slice(at, at + size));
    at += size;
  }
}

/** Everything every read of the port returns for this history's ids: two equal dumps are the same read models. */
export async function dump(store: ReadModelStore, events: readonly RecordedEvent[]) {
  const { accounts, transactions } = finalState(events);
  const ids = [...transactions.keys()].sort();
  const feed: string[] = [];
  for (let before: string | null = null; ; ) {
    const page = await store.findTransactions({}, before, 50);
    feed.push(...page.docs.map((d) => d._id));
    if (!page.hasMore) break;
    before = page.docs.at(-1)!.createdPosition;
  }
  const instants = [...new Set(events.map((e) => new Date(e.metadata.timestampMs as number).toISOString()))];
  return {
    accounts: await store.getAccounts(['a', 'b', 'c', 'd', 'e', 'f']),
    transactions: await store.getTransactions(ids),
    feed,
    balances: await Promise.all([...accounts.keys()].map(async (id) => Promise.all(instants.map((at) => store.balanceAt(id, at))))),
    analytics: await Promise.all(CURRENCIES.map((currency) => analyticsOf(store, currency))),
  };
}

export async function analyticsOf(store: ReadModelStore, currency: string) {
  const totals = await store.currencyTotals(currency);
  const large: string[] = [];
  for (let before: string | null = null; ; ) {
    const page = await store.findTransactions({ currency, large: true }, before, 7);
    large.push(...page.docs.map((d) => d._id));
    if (!page.hasMore) break;
    before = page.docs.at(-1)!.createdPosition;
  }
  const volume = async (interval: VolumeInterval) =>
    (await store.volumeBuckets(currency, interval, null, null, VOLUME_BUCKETS_MAX)).docs.map((b) => ({ start: b.start, count: b.count, amount: b.amount }));
  return {
    totalBalance: totals?.totalBalance ?? '0',
    accountCount: totals?.accountCount ?? 0,
    transactionCount: totals?.transactionCount ?? 0,
    hour: await volume('HOUR'),
    day: await volume('DAY'),
    mostActive: (await store.mostActiveAccounts(currency, PAGE_SIZE_MAX)).map((a) => [a.id, a.transactionCount]),
    large,
  };
}

/** The same figures, computed the slow, obvious way from the final records. */
export function bruteForce(events: readonly RecordedEvent[], currency: string) {
  const { accounts, transactions, recordedCount } = finalState(events);
  const mine = [...accounts.values()].filter((a) => a.currency === currency);
  const txs = [...transactions.values()].filter((t) => t.currency === currency);
  const volume = (interval: VolumeInterval) => {
    const buckets = new Map<number, { count: number; amount: bigint }>();
    for (const t of txs) {
      if (t.status !== 'SETTLED') continue;
      const ms = Date.parse(t.createdAt);
      const start = ms - (((ms % INTERVAL_MS[interval]) + INTERVAL_MS[interval]) % INTERVAL_MS[interval]);
      const bucket = buckets.get(start) ?? { count: 0, amount: 0n };
      bucket.count += 1;
      bucket.amount += BigInt(t.amount);
      buckets.set(start, bucket);
    }
    return [...buckets.entries()].sort((x, y) => x[0] - y[0]).map(([start, b]) => ({ start: new Date(start).toISOString(), count: b.count, amount: String(b.amount) }));
  };
  return {
    totalBalance: String(mine.reduce((sum, a) => sum + BigInt(a.balance), 0n)),
    accountCount: mine.length,
    transactionCount: recordedCount.get(currency) ?? 0,
    hour: volume('HOUR'),
    day: volume('DAY'),
    mostActive: mine.sort((x, y) => y.transactionCount - x.transactionCount || (x.id < y.id ? -1 : 1)).map((a) => [a.id, a.transactionCount]),
    large: txs.filter((t) => t.large).sort((x, y) => (x.createdPosition < y.createdPosition ? 1 : -1)).map((t) => t.id),
  };
}

export function analyticsProperties(name: string, open: OpenReadModelStore, numRuns = 40): void {
  describe(`analytics and replay properties: ${name}`, () => {
    let store: ReadModelStore;
    let cleanup: () => Promise<void>;
    beforeAll(async () => {
      ({ store, cleanup } = await open());
    });
    afterAll(async () => {
      await cleanup();
    });
    const fresh = () => store.reset(READ_MODEL_COLLECTIONS, PROJECTION_NAMES);

    it('analytics equal a brute-force computation over the history, whatever the batch boundaries', async () => {
      await fc.assert(
        fc.asyncProperty(historyArbitrary, cutsArbitrary, async (steps, cuts) => {
          const events = recordHistory(steps);
          await fresh();
          await projectFromCheckpoints(store, events, cuts);
          for (const currency of CURRENCIES) expect(await analyticsOf(store, currency)).toEqual(bruteForce(events, currency));
        }),
        { numRuns },
      );
    });

    it('replaying the whole history a second time changes nothing', async () => {
      await fc.assert(
        fc.asyncProperty(historyArbitrary, cutsArbitrary, cutsArbitrary, async (steps, first, second) => {
          const events = recordHistory(steps);
          await fresh();
          await projectFromCheckpoints(store, events, first);
          const once = await dump(store, events);
          await store.reset([], PROJECTION_NAMES); // checkpoints only: every event comes again
          await projectFromCheckpoints(store, events, second);
          expect(await dump(store, events)).toEqual(once);
        }),
        { numRuns },
      );
    });

    it('a rebuild from zero equals the incrementally built read models, document for document', async () => {
      await fc.assert(
        fc.asyncProperty(historyArbitrary, fc.integer({ min: 1, max: 200 }), async (steps, rebuildBatch) => {
          const events = recordHistory(steps);
          await fresh();
          // Incrementally: as the live runner sees a quiet ledger, one entry's events at a time.
          await projectFromCheckpoints(store, events, [1, 2, 1, 3]);
          const incremental = await dump(store, events);
          await fresh();
          await projectFromCheckpoints(store, events, [rebuildBatch]);
          expect(await dump(store, events)).toEqual(incremental);
        }),
        { numRuns },
      );
    });

    it('a crash that stored part of a batch without its checkpoint double-counts nothing on resume', async () => {
      await fc.assert(
        fc.asyncProperty(historyArbitrary, cutsArbitrary, fc.nat(), fc.nat(), fc.array(fc.boolean(), { minLength: 1 }), cutsArbitrary, async (steps, before, crashAt, crashSize, kept, after) => {
          const events = recordHistory(steps);
          await fresh();
          const start = crashAt % (events.length + 1);
          await projectFromCheckpoints(store, events.slice(0, start), before);
          // The lost batch: some of its writes reached the store, its checkpoints did not.
          const replayer = await Replayer.open(store, LEDGER_PROJECTORS);
          const checkpoints = new Map(LEDGER_PROJECTORS.map((p) => [p.name, replayer.checkpoint(p.name)] as const));
          const lost = projectBatch(events.slice(start, start + 1 + (crashSize % 60)), LEDGER_PROJECTORS, checkpoints, 0);
          await store.applyBatch(lost.writes.filter((_, i) => kept[i % kept.length]), {});
          await projectFromCheckpoints(store, events, after);
          const resumed = await dump(store, events);
          for (const [i, currency] of CURRENCIES.entries()) expect(resumed.analytics[i]).toEqual(bruteForce(events, currency));
          // And every other document is the one a clean projection writes.
          await fresh();
          await projectFromCheckpoints(store, events, [50]);
          expect(resumed).toEqual(await dump(store, events));
        }),
        { numRuns },
      );
    });
  });
}
