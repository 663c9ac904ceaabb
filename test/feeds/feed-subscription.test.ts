/**
 * The hand-over from catch-up to live, in memory and deterministic: a hub fed with applied events,
 * read models that trail them by a random amount (and may run ahead of the hand-over position while
 * the catch-up reads), a subscriber that registers at a random moment with a random `after`.
 * Invariants: positions delivered strictly increase; every transaction changed after `after` is
 * delivered in its final state; with one change per transaction, exactly the changes after `after`.
 */
import type { TransactionWithPosition } from '../../src/domain/events';
import type { PositionedEvent } from '../../src/domain/ledger';
import { formatPosition } from '../../src/domain/position';
import { FeedHub } from '../../src/feeds/feed-hub';
import { ConnectionBudget, FeedSubscription } from '../../src/feeds/feed-subscription';
import type { TransactionDoc } from '../../src/projections/read-model-store';
import { seededRandom } from '../support/seeded-random';

function txEvent(index: number, id: string, status: 'PENDING' | 'SETTLED', accountId = 'acc'): PositionedEvent {
  const transaction = {
    id,
    kind: 'DEPOSIT' as const,
    status,
    amount: '10',
    currency: 'USD',
    fromAccountId: null,
    toAccountId: accountId,
    description: null,
    metadata: null,
    createdAt: '2024-01-01T00:00:00.000Z',
    updatedAt: '2024-01-01T00:00:00.000Z',
    createdPosition: formatPosition(index, 0),
    expiresAt: null,
    large: false,
  };
  return { position: formatPosition(index, 0), event: { type: status === 'PENDING' ? 'TransactionRecorded' : 'TransactionSettled', data: { transaction, accounts: [] } } };
}

/** Read models over a prefix of the applied events: the latest state of each transaction. */
class TrailingReadModels {
  projected = 0;
  private readonly waiters: Array<{ position: string; resolve: (ok: boolean) => void }> = [];
  constructor(private readonly applied: PositionedEvent[]) {}

  advance(count: number): void {
    this.projected = Math.min(this.applied.length, this.projected + count);
    const reached = this.projected === 0 ? null : this.applied[this.projected - 1]!.position;
    for (const w of this.waiters.splice(0)) {
      if (reached !== null && reached >= w.position) w.resolve(true);
      else this.waiters.push(w);
    }
  }

  waitForPosition = (position: string): Promise<boolean> => {
    const reached = this.projected === 0 ? null : this.applied[this.projected - 1]!.position;
    if (reached !== null && reached >= position) return Promise.resolve(true);
    return new Promise((resolve) => this.waiters.push({ position, resolve }));
  };

  transactionsChangedBetween = async (_q: unknown, after: string, upTo: string, limit: number): Promise<TransactionDoc[]> => {
    const latest = new Map<string, TransactionDoc>();
    for (const { position, event } of this.applied.slice(0, this.projected)) {
      if (event.type === 'TransactionRecorded' || event.type === 'TransactionSettled') {
        const t = event.data.transaction;
        latest.set(t.id, { ...t, _id: t.id, position, accountIds: [t.toAccountId!] });
      }
    }
    return [...latest.values()]
      .filter((d) => d.position > after && d.position <= upTo)
      .sort((x, y) => (x.position < y.position ? -1 : 1))
      .slice(0, limit);
  };
}

async function simulate(seed: number, settleSome: boolean) {
  const random = seededRandom(seed);
  const hub = new FeedHub();
  const applied: PositionedEvent[] = [];
  const readModels = new TrailingReadModels(applied);
  const pendingIds: string[] = [];
  let index = 0;
  const apply = () => {
    index += 1;
    const event = settleSome && pendingIds.length > 0 && random() < 0.3 ? txEvent(index, pendingIds.shift()!, 'SETTLED') : txEvent(index, `t${index}`, 'PENDING');
    if (event.event.type === 'TransactionRecorded' && random() < 0.5) pendingIds.push((event.event.data as { transaction: { id: string } }).transaction.id);
    applied.push(event);
    hub.ingest([event]);
  };
  const eventsTotal = 40 + Math.floor(random() * 60);
  const before = Math.floor(random() * eventsTotal);
  for (let i = 0; i < before; i += 1) apply();
  readModels.advance(Math.floor(random() * (before + 1)));
  const after = before === 0 ? formatPosition(0, 0) : applied[Math.floor(random() * before)]!.position;

  const budget = new ConnectionBudget(10_000, 10_000_000, () => 0, () => {
    throw new Error('no overflow expected');
  });
  const subscription = new FeedSubscription({ kind: 'transactionPosted', accountId: 'acc' }, after, {
    hub,
    budget,
    transactionsChangedBetween: readModels.transactionsChangedBetween,
    waitForPosition: readModels.waitForPosition,
    catchUpWaitMs: 1_000,
    onCatchUpTimeout: () => {
      throw new Error('no timeout expected');
    },
    render: async (event) => event.payload,
  });
  const delivered: TransactionWithPosition[] = [];
  const reader = (async () => {
    for await (const item of subscription) delivered.push(item as TransactionWithPosition);
  })();

  // Writes, projection progress and the consumer interleave at random.
  while (applied.length < eventsTotal || readModels.projected < applied.length) {
    const r = random();
    if (r < 0.5 && applied.length < eventsTotal) apply();
    else readModels.advance(1 + Math.floor(random() * 5));
    for (let i = Math.floor(random() * 4); i > 0; i -= 1) await Promise.resolve();
  }
  for (let i = 0; i < 200; i += 1) await new Promise((resolve) => setImmediate(resolve));
  await subscription.return();
  await reader;
  return { applied, after, delivered };
}

describe('catch-up to live hand-over', () => {
  it.each(Array.from({ length: 60 }, (_, i) => 100 + i))('one change per transaction: exactly the changes after `after`, in order (seed %i)', async (seed) => {
    const { applied, after, delivered } = await simulate(seed, false);
    expect(delivered.map((t) => t.position)).toEqual(applied.map((e) => e.position).filter((p) => p > after));
  });

  it.each(Array.from({ length: 60 }, (_, i) => 500 + i))('holds settled later: increasing positions, every changed transaction in its final state (seed %i)', async (seed) => {
    const { applied, after, delivered } = await simulate(seed, true);
    const positions = delivered.map((t) => t.position);
    expect([...new Set(positions)].sort()).toEqual(positions);
    const finalPosition = new Map<string, string>();
    for (const { position, event } of applied) finalPosition.set((event.data as { transaction: { id: string } }).transaction.id, position);
    const lastDelivered = new Map<string, string>();
    for (const t of delivered) lastDelivered.set(t.id, t.position);
    for (const [id, position] of finalPosition) {
      if (position > after) expect([id, lastDelivered.get(id)]).toEqual([id, position]);
    }
    expect(delivered.every((t) => t.position > after)).toBe(true);
  });
});

/** A subscription's dependencies with no catch-up to do: read models current, nothing to page. */
function liveOnlyDeps(hub: FeedHub, budget: ConnectionBudget) {
  return {
    hub,
    budget,
    transactionsChangedBetween: async () => [],
    waitForPosition: async () => true,
    catchUpWaitMs: 1_000,
    onCatchUpTimeout: () => undefined,
    render: async (event: { payload: unknown }) => event.payload,
  };
}

describe('connection budget', () => {
  it('overflows at the event maximum: every subscription of the connection stops and its queue is dropped', async () => {
    const hub = new FeedHub();
    const reasons: string[] = [];
    const budget = new ConnectionBudget(5, 1_000_000, () => 0, (why) => reasons.push(why));
    const deps = liveOnlyDeps(hub, budget);
    const one = new FeedSubscription({ kind: 'transactionPosted', accountId: null }, null, deps);
    const two = new FeedSubscription({ kind: 'transactionPosted', accountId: 'acc' }, null, deps);
    // Each event goes to both subscriptions: two queued per event.
    for (let i = 1; i <= 2; i += 1) hub.ingest([txEvent(i, `t${i}`, 'PENDING')]);
    expect(budget.queuedEvents).toBe(4);
    expect(reasons).toEqual([]);
    hub.ingest([txEvent(3, 't3', 'PENDING')]); // the sixth does not fit
    expect(reasons).toEqual(['more than 5 events waiting']);
    expect(one.queuedEvents + two.queuedEvents).toBe(0);
    expect(budget.queuedEvents).toBe(0);
    expect(hub.subscribers).toBe(0);
    hub.ingest([txEvent(4, 't4', 'PENDING')]);
    expect(reasons).toHaveLength(1);
  });

  it('counts the socket buffer against the byte maximum', () => {
    const hub = new FeedHub();
    let socketBytes = 0;
    const reasons: string[] = [];
    const budget = new ConnectionBudget(1_000, 2_000, () => socketBytes, (why) => reasons.push(why));
    new FeedSubscription({ kind: 'transactionPosted', accountId: null }, null, liveOnlyDeps(hub, budget));
    hub.ingest([txEvent(1, 't1', 'PENDING')]);
    expect(reasons).toEqual([]);
    socketBytes = 1_900;
    hub.ingest([txEvent(2, 't2', 'PENDING')]);
    expect(reasons).toEqual(['more than 2000 bytes waiting']);
  });
});

describe('hub failures', () => {
  it('a fan-out failure never reaches the command path and is reported, so that feeds can start over', () => {
    const hub = new FeedHub();
    const failures: string[] = [];
    hub.onFailure((error) => failures.push(error.message));
    hub.register({ kind: 'transactionPosted', accountId: null }, {
      push: () => {
        throw new Error('boom');
      },
    });
    expect(() => hub.ingest([txEvent(1, 't1', 'PENDING')])).not.toThrow();
    expect(failures).toEqual(['boom']);
    expect(hub.head).toBe(formatPosition(1, 0));
  });
});
