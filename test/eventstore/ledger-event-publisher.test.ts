import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LedgerCommand } from '../../src/domain/commands';
import { type EntryResult, LedgerMachine } from '../../src/domain/ledger';
import { DEFAULT_RULES } from '../../src/domain/rules';
import type { EventStore } from '../../src/eventstore/event-store';
import { LEDGER_STREAM, LedgerEventPublisher, eventIdOf } from '../../src/eventstore/ledger-event-publisher';
import { SqliteEventStore } from '../../src/eventstore/sqlite-event-store';
import { formatPosition } from '../../src/domain/position';

/** Applies commands to a fresh machine and returns each entry's index, timestamp and result. */
function entriesOf(commands: LedgerCommand[]): Array<{ index: number; timestampMs: number; result: EntryResult }> {
  const machine = new LedgerMachine(DEFAULT_RULES);
  return commands.map((command, i) => {
    const envelope = { index: i + 1, timestampMs: 1_700_000_000_000 + i * 1000 };
    return { ...envelope, result: machine.apply(envelope, command) };
  });
}

const open = (id: string, initialBalance = '0'): LedgerCommand => ({ type: 'OpenAccount', input: { id, currency: 'USD', initialBalance, overdraftLimit: '0' } });
const deposit = (accountId: string, amount: string): LedgerCommand => ({ type: 'Deposit', input: { accountId, amount } });

describe('LedgerEventPublisher', () => {
  let dir: string;
  let store: SqliteEventStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'publisher-'));
    store = SqliteEventStore.open(join(dir, 'events.sqlite'));
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const commands = [open('a', '100'), open('b'), deposit('a', '5'), deposit('zz', '1') /* rejected: no events */, deposit('b', '7')];

  it('appends every event in log order with ids derived from positions, and reports durable indexes', async () => {
    const durable: number[] = [];
    const publisher = new LedgerEventPublisher(store, { onDurable: (i) => durable.push(i) });
    await publisher.start();
    const entries = entriesOf(commands);
    for (const e of entries) publisher.enqueue(e.index, e.timestampMs, e.result.events);
    await publisher.flush();

    const stored = await store.readStream(LEDGER_STREAM);
    const expected = entries.flatMap((e) => e.result.events);
    expect(stored.map((e) => e.metadata.position)).toEqual(expected.map((e) => e.position));
    expect(stored.map((e) => e.id)).toEqual(expected.map((e) => eventIdOf(e.position)));
    expect(stored.map((e) => e.type)).toEqual(expected.map((e) => e.event.type));
    expect(stored.map((e) => e.revision)).toEqual(expected.map((_, i) => BigInt(i)));
    expect(durable.at(-1)).toBe(5);
    expect(publisher.backlogEvents).toBe(0);
  });

  it('after a crash, re-publishing the replayed log neither loses nor doubles an event', async () => {
    const entries = entriesOf(commands);
    const first = new LedgerEventPublisher(store);
    await first.start();
    // The previous run got the first three entries into the store, then died.
    for (const e of entries.slice(0, 3)) first.enqueue(e.index, e.timestampMs, e.result.events);
    await first.flush();

    const restarted = new LedgerEventPublisher(store);
    await restarted.start();
    // Entry 3's events may have been split across appends: from the store alone only 1 and 2 are known complete.
    expect(restarted.publishedIndex).toBe(2);
    for (const e of entries) restarted.enqueue(e.index, e.timestampMs, e.result.events);
    await restarted.flush();

    const stored = await store.readStream(LEDGER_STREAM);
    const positions = stored.map((e) => e.metadata.position);
    expect(new Set(positions).size).toBe(positions.length);
    expect(positions).toEqual(entries.flatMap((e) => e.result.events.map((p) => p.position)));
  });

  it('when another writer got there first, it reads where the stream stands and skips what is there', async () => {
    const entries = entriesOf(commands);
    const publisher = new LedgerEventPublisher(store);
    await publisher.start();
    // Another replica appends entries 1-2 behind this publisher's back.
    const other = new LedgerEventPublisher(store);
    await other.start();
    for (const e of entries.slice(0, 2)) other.enqueue(e.index, e.timestampMs, e.result.events);
    await other.flush();

    for (const e of entries) publisher.enqueue(e.index, e.timestampMs, e.result.events);
    await publisher.flush();
    const positions = (await store.readStream(LEDGER_STREAM)).map((e) => e.metadata.position);
    expect(positions).toEqual(entries.flatMap((e) => e.result.events.map((p) => p.position)));
  });

  it('keeps retrying while the store fails, and loses nothing', async () => {
    let failures = 2;
    const flaky: EventStore = Object.create(store);
    flaky.append = async (...args) => {
      if (failures > 0) {
        failures -= 1;
        throw new Error('store unreachable');
      }
      return store.append(...args);
    };
    const errors: string[] = [];
    const publisher = new LedgerEventPublisher(flaky, { retryDelayMs: 5, onError: (e) => errors.push(e.message) });
    await publisher.start();
    const entries = entriesOf(commands);
    for (const e of entries) publisher.enqueue(e.index, e.timestampMs, e.result.events);
    await publisher.flush();
    expect(errors).toEqual(['store unreachable', 'store unreachable']);
    expect((await store.readStream(LEDGER_STREAM)).length).toBe(entries.flatMap((e) => e.result.events).length);
  });

  it('three replicas publishing the same applied entries into one shared store, interleaved, store every event exactly once in log order', async () => {
    // A cluster on one EventStoreDB: every replica publishes what it applies, at its own pace.
    const many = [open('a', '1000'), open('b'), ...Array.from({ length: 40 }, (_, i) => deposit(i % 2 ? 'a' : 'b', String(i + 1)))];
    const entries = entriesOf(many);
    const publishers = [0, 1, 2].map(() => new LedgerEventPublisher(store, { retryDelayMs: 1 }));
    for (const p of publishers) await p.start();
    const next = [0, 0, 0];
    // Round-robin bursts of different sizes, so each replica runs ahead of and behind the others.
    while (next.some((n) => n < entries.length)) {
      for (const [r, p] of publishers.entries()) {
        const burst = r + 1 + (next[r]! % 3);
        for (const e of entries.slice(next[r], next[r]! + burst)) p.enqueue(e.index, e.timestampMs, e.result.events);
        next[r] = Math.min(entries.length, next[r]! + burst);
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    await Promise.all(publishers.map((p) => p.flush()));
    const stored = await store.readStream(LEDGER_STREAM);
    const expected = entries.flatMap((e) => e.result.events);
    expect(stored.map((e) => e.metadata.position)).toEqual(expected.map((e) => e.position));
    expect(new Set(stored.map((e) => e.id)).size).toBe(stored.length);
  });

  it('derives ids that spell the position: distinct, version-8 UUIDs, in position order as text', () => {
    const positions = [
      formatPosition(0, 0),
      formatPosition(0, 1),
      formatPosition(0, 999_999),
      formatPosition(1, 0),
      formatPosition(15, 17),
      formatPosition(16, 0),
      formatPosition(255, 65_535),
      formatPosition(256, 65_536),
      formatPosition(2 ** 32, 3),
      formatPosition(Number.MAX_SAFE_INTEGER, 999_999),
    ];
    const ids = positions.map(eventIdOf);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    expect(eventIdOf(formatPosition(0x123456789abcd, 0xedcba))).toBe('01234567-89ab-8cde-8dcb-a1ed9e700000');
    expect(() => eventIdOf('not-a-position')).toThrow(/invalid position/);
    // Beyond 2^53 a JS number is no longer exact: refused rather than shared by two positions.
    expect(() => eventIdOf('9007199254740992-000000')).toThrow(/beyond 9007199254740991/);
  });

  it('continues a store whose earlier events carry UUIDv5 ids (the scheme before 2026-12-07)', async () => {
    const entries = entriesOf(commands);
    const [first, ...rest] = entries;
    // What an earlier version stored for the first entry: the same events under hashed ids.
    const v5Ids = ['0f8fad5b-d9cb-569f-a165-70867728950e', '7c9e6679-7425-50de-944b-e07fc1f90ae7'];
    const earlier = first!.result.events.map((e, i) => ({
      id: v5Ids[i]!,
      type: e.event.type,
      data: e.event.data as unknown as Record<string, unknown>,
      metadata: { position: e.position, timestampMs: first!.timestampMs },
    }));
    await store.append(LEDGER_STREAM, earlier, 'no_stream');

    const publisher = new LedgerEventPublisher(store);
    await publisher.start();
    // A node replays its whole log after a restart: the entry already stored is skipped by position.
    for (const e of entries) publisher.enqueue(e.index, e.timestampMs, e.result.events);
    await publisher.flush();
    const stored = await store.readStream(LEDGER_STREAM);
    const expected = entries.flatMap((e) => e.result.events);
    expect(stored.map((e) => e.metadata.position)).toEqual(expected.map((e) => e.position));
    expect(stored.map((e) => e.id)).toEqual([...v5Ids.slice(0, earlier.length), ...rest.flatMap((e) => e.result.events.map((x) => eventIdOf(x.position)))]);
  });

  it('spaces appends appendIntervalMs apart under load, so that one append takes several entries (group commit); an entry after a quiet spell goes at once', async () => {
    const appends: Array<{ atMs: number; events: number }> = [];
    const counting: EventStore = Object.create(store, {
      append: {
        value: async (...args: Parameters<EventStore['append']>) => {
          appends.push({ atMs: performance.now(), events: args[1].length });
          return store.append(...args);
        },
      },
    });
    const entries = entriesOf([open('a', '100'), open('b'), deposit('a', '1'), deposit('a', '2'), deposit('a', '3'), deposit('b', '4')]);
    const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

    // Long enough that four turns of the event loop fit in it even on a loaded machine.
    const spaced = new LedgerEventPublisher(counting, { appendIntervalMs: 1500 });
    await spaced.start();
    // One entry per turn of the event loop, as single transfers come. The first is appended in the
    // turn after its own (nothing was appended lately); the four after it wait out the interval.
    for (const [i, e] of entries.slice(0, 5).entries()) {
      spaced.enqueue(e.index, e.timestampMs, e.result.events);
      await nextTurn();
      expect(appends).toHaveLength(1);
      if (i === 0) expect(appends[0]!.events).toBe(2);
    }
    await spaced.flush();
    expect(appends.map((a) => a.events)).toEqual([2, 4]);
    expect(appends[1]!.atMs - appends[0]!.atMs).toBeGreaterThanOrEqual(1495);
    // After a quiet spell longer than the interval, the next entry is not held.
    await new Promise((resolve) => setTimeout(resolve, 1520));
    spaced.enqueue(entries[5]!.index, entries[5]!.timestampMs, entries[5]!.result.events);
    await nextTurn();
    expect(appends.map((a) => a.events)).toEqual([2, 4, 1]);
    expect((await store.readStream(LEDGER_STREAM)).map((e) => e.metadata.position)).toEqual(entries.flatMap((e) => e.result.events.map((x) => x.position)));
    await spaced.stop();
  });

  it('with appendIntervalMs 0, appends once per turn of the event loop', async () => {
    const appends: number[] = [];
    const counting: EventStore = Object.create(store, {
      append: { value: async (...args: Parameters<EventStore['append']>) => (appends.push(args[1].length), store.append(...args)) },
    });
    const publisher = new LedgerEventPublisher(counting, { appendIntervalMs: 0 });
    await publisher.start();
    for (const e of entriesOf([open('a', '100'), deposit('a', '1'), deposit('a', '2')])) {
      publisher.enqueue(e.index, e.timestampMs, e.result.events);
      await publisher.flush();
    }
    expect(appends).toEqual([2, 1, 1]);
  });

  it('refuses entries out of log order', async () => {
    const publisher = new LedgerEventPublisher(store);
    await publisher.start();
    publisher.enqueue(2, 0, []);
    expect(() => publisher.enqueue(2, 0, [])).toThrow(/published after/);
  });
});
