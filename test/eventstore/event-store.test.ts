/**
 * Runs the event-store contract against every adapter that is reachable: the embedded SQLite store
 * always, EventStoreDB when EVENTSTORE_URL is set (e.g. esdb://localhost:2113?tls=false).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { EventStoreDBClient } from '@eventstore/db-client';
import { FakeEventStoreDbClient } from './fake-eventstoredb-client';
import { APPEND_EVENTS_MAX, READ_COUNT_MAX, WrongExpectedRevisionError, type NewEvent, type RecordedEvent } from '../../src/eventstore/event-store';
import { EventStoreDbEventStore } from '../../src/eventstore/eventstoredb-event-store';
import { type CommittedAppend, SqliteEventStore } from '../../src/eventstore/sqlite-event-store';
import { eventStoreContract } from './event-store.contract';

function makeTempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'ledger-event-store-'));
}

function events(count: number): NewEvent[] {
  return Array.from({ length: count }, (_, index) => ({
    id: randomUUID(),
    type: 'SqliteTested',
    data: { index },
    metadata: { position: `${String(index).padStart(16, '0')}-000000` },
  }));
}

/** The events as the ledger's publisher hands them over: serialized once by the caller, which the store's tail relies on. */
function serialized(list: NewEvent[]): NewEvent[] {
  return list.map((event) => ({ ...event, json: { data: JSON.stringify(event.data), metadata: JSON.stringify(event.metadata) } }));
}

eventStoreContract('SqliteEventStore', async () => {
  const dir = makeTempDir();
  // A nested path: open() must create the missing parent directories.
  const store = SqliteEventStore.open(path.join(dir, 'nested', 'events.sqlite'));
  return {
    store,
    cleanup: async () => {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});

/**
 * The adapter's own logic (paging readAll past system events, inclusive reads turned exclusive,
 * batching a subscription, the re-append check after WrongExpectedVersion, StreamNotFound) run
 * against an in-memory imitation of the client. It imitates what the real server does as documented,
 * so it complements the real-server run below, it does not replace it.
 */
eventStoreContract('EventStoreDbEventStore on an in-memory imitation of the client', async () => {
  const store = new EventStoreDbEventStore(new FakeEventStoreDbClient() as unknown as EventStoreDBClient);
  return { store, cleanup: () => store.close() };
});

describe('EventStoreDbEventStore on an in-memory imitation of the client: readAll', () => {
  it('pages on past the system events until maxCount events are found', async () => {
    const store = new EventStoreDbEventStore(new FakeEventStoreDbClient() as unknown as EventStoreDBClient);
    try {
      const marker = (await store.append('paging-marker', events(1), 'no_stream')).storePosition;
      // Each append is followed by two system events: 300 appends make 900 entries in $all, more
      // than one page of the adapter's reads holds.
      const written = events(300);
      let expected: bigint | 'no_stream' = 'no_stream';
      for (const event of written) expected = (await store.append('paging', [event], expected)).nextExpectedRevision;

      const firstPage = await store.readAll({ after: marker, maxCount: 250 });
      expect(firstPage.map((event) => event.id)).toEqual(written.slice(0, 250).map((event) => event.id));
      const rest = await store.readAll({ after: firstPage[firstPage.length - 1]?.storePosition });
      expect(rest.map((event) => event.id)).toEqual(written.slice(250).map((event) => event.id));
    } finally {
      await store.close();
    }
  });
});

const eventStoreUrl = process.env.EVENTSTORE_URL;
if (eventStoreUrl !== undefined && eventStoreUrl !== '') {
  eventStoreContract('EventStoreDbEventStore', async () => {
    const store = EventStoreDbEventStore.connect(eventStoreUrl);
    return { store, cleanup: () => store.close() };
  });
} else {
  console.warn('EventStoreDB contract suite skipped: EVENTSTORE_URL is not set');
  describe.skip('EventStoreDbEventStore (skipped: EVENTSTORE_URL is not set)', () => {
    eventStoreContract('EventStoreDbEventStore', async () => {
      throw new Error('unreachable: the suite is skipped');
    });
  });
}

describe('SqliteEventStore on disk', () => {
  let dir: string;
  let file: string;

  beforeEach(() => {
    dir = makeTempDir();
    file = path.join(dir, 'events.sqlite');
  });

  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps every appended event across close and reopen, and goes on from there', async () => {
    const first = SqliteEventStore.open(file);
    const written = events(5);
    const firstResult = await first.append('account-1', written.slice(0, 3), 'no_stream');
    const secondResult = await first.append('account-1', written.slice(3), firstResult.nextExpectedRevision);
    const before = await first.readAll();
    await first.close();

    const reopened = SqliteEventStore.open(file);
    try {
      expect(await reopened.readAll()).toEqual(before);
      expect((await reopened.readStream('account-1')).map((event) => event.id)).toEqual(written.map((event) => event.id));
      // The revision check and the idempotent re-append see what the previous process wrote.
      await expect(reopened.append('account-1', events(1), firstResult.nextExpectedRevision)).rejects.toBeInstanceOf(
        WrongExpectedRevisionError,
      );
      expect(await reopened.append('account-1', written.slice(3), firstResult.nextExpectedRevision)).toEqual(secondResult);

      const more = events(1);
      const moreResult = await reopened.append('account-1', more, secondResult.nextExpectedRevision);
      expect(moreResult.nextExpectedRevision).toBe(5n);
      const after = await reopened.readAll({ after: secondResult.storePosition });
      expect(after.map((event) => event.id)).toEqual(more.map((event) => event.id));
      expect(after[0]?.storePosition).toBe(moreResult.storePosition);
    } finally {
      await reopened.close();
    }
  });

  it('delivers to a subscription the events another store instance (process) appends to the same file', async () => {
    const subscriber = SqliteEventStore.open(file);
    const writer = SqliteEventStore.open(file);
    try {
      const received: string[] = [];
      const subscription = subscriber.subscribeAll({}, async (batch) => {
        received.push(...batch.map((event) => event.id));
      });
      const written = events(3);
      await writer.append('account-2', written, 'no_stream');

      // No in-process notification crosses instances: the fallback poll must find them.
      const deadline = Date.now() + 5000;
      while (received.length < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(received).toEqual(written.map((event) => event.id));
      await subscription.close();
    } finally {
      await writer.close();
      await subscriber.close();
    }
  });

  it(`appends APPEND_EVENTS_MAX (${APPEND_EVENTS_MAX}) events at once and reads them back in pages`, async () => {
    const store = SqliteEventStore.open(file);
    try {
      const written = events(APPEND_EVENTS_MAX);
      const result = await store.append('batch', written, 'no_stream');
      expect(result.nextExpectedRevision).toBe(BigInt(APPEND_EVENTS_MAX - 1));

      const firstPage = await store.readAll();
      expect(firstPage).toHaveLength(READ_COUNT_MAX);
      const secondPage = await store.readAll({ after: firstPage[firstPage.length - 1]?.storePosition });
      expect([...firstPage, ...secondPage].map((event) => event.id)).toEqual(written.map((event) => event.id));
      expect(secondPage[secondPage.length - 1]?.storePosition).toBe(result.storePosition);
    } finally {
      await store.close();
    }
  });

  it('serves the events it just appended (serialized by the caller) as a fresh read of the file would, also when another instance appends between', async () => {
    const store = SqliteEventStore.open(file);
    const other = SqliteEventStore.open(file);
    // The tail is kept for the store's own subscriptions (the pipeline in one thread) until they have
    // handled it: give it one that holds its first batch until the end.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const following = store.subscribeAll({}, () => held);
    try {
      const first = await store.append('tail', serialized(events(5)), 'no_stream');
      await other.append('tail-other', events(2), 'no_stream');
      const second = await store.append('tail', serialized(events(4)), first.nextExpectedRevision);
      const fromDisk = SqliteEventStore.open(file);
      try {
        for (const after of [null, ...(await fromDisk.readAll()).map((event) => event.storePosition)]) {
          for (const maxCount of [1, 3, READ_COUNT_MAX]) {
            expect(await store.readAll({ after, maxCount })).toEqual(await fromDisk.readAll({ after, maxCount }));
          }
        }
        expect((await store.readAll()).length).toBe(11);
        expect((await store.readAll()).at(-1)?.storePosition).toBe(second.storePosition);
      } finally {
        await fromDisk.close();
      }
      // A rolled-back append keeps nothing: the tail still ends where the file does.
      await expect(store.append('tail', serialized(events(1)), 0n)).rejects.toThrow(WrongExpectedRevisionError);
      const last = await store.readAll({ after: (await store.readAll()).at(-2)?.storePosition });
      expect(last.map((event) => event.storePosition)).toEqual([second.storePosition]);
    } finally {
      release();
      await following.close();
      await other.close();
      await store.close();
    }
  });

  it('lets go of the events it kept for its subscriptions once every one of them has handled them, and only those', async () => {
    const store = SqliteEventStore.open(file);
    const quickGot: RecordedEvent[] = [];
    const slowGot: RecordedEvent[] = [];
    // The slow follower takes two events per batch and finishes each only when the test lets it.
    const pending: Array<() => void> = [];
    const quick = store.subscribeAll({}, async (batch) => {
      quickGot.push(...batch);
    });
    const slow = store.subscribeAll({ batchSizeMax: 2 }, (batch) => {
      slowGot.push(...batch);
      return new Promise<void>((resolve) => pending.push(resolve));
    });
    const turns = async (count: number) => {
      for (let turn = 0; turn < count; turn += 1) await new Promise((resolve) => setImmediate(resolve));
    };
    const finishSlowBatch = async () => {
      pending.shift()!();
      await turns(5);
    };
    try {
      await turns(3);
      const appended = serialized(events(6));
      await store.append('kept', appended, 'no_stream');
      await turns(5);
      // Both got the very objects appended, from memory.
      expect(quickGot.map((event) => event.data)).toEqual(appended.map((event) => event.data));
      quickGot.forEach((event, i) => expect(event.data).toBe(appended[i]!.data));
      expect(slowGot).toHaveLength(2);
      const reader = SqliteEventStore.open(file);
      const positions = (await reader.readAll()).map((event) => event.storePosition);
      await reader.close();
      // Identity of what a read after the i-th event returns: the appended objects come from memory, others were parsed from the file.
      const fromMemory = async (afterIndex: number | null) =>
        (await store.readAll({ after: afterIndex === null ? null : positions[afterIndex] })).map((event) => event.data === appended[positions.indexOf(event.storePosition)]!.data);
      // The slow one holds its first batch: all six are kept.
      expect(await fromMemory(null)).toEqual([true, true, true, true, true, true]);
      // Each batch it finishes lets go of exactly those two: a read from them on parses the file, one after them is served from memory.
      await finishSlowBatch();
      expect(slowGot).toHaveLength(4);
      expect(await fromMemory(null)).toEqual([false, false, false, false, false, false]);
      expect(await fromMemory(1)).toEqual([true, true, true, true]);
      await finishSlowBatch();
      expect(await fromMemory(2)).toEqual([false, false, false]);
      expect(await fromMemory(3)).toEqual([true, true]);
      expect(await store.readAll({ after: positions[3] })).toEqual((await store.readAll()).slice(4));
      await finishSlowBatch();
      // Both have handled all six: nothing is kept, and a read parses the rows, equal to what was delivered.
      const afterwards = await store.readAll();
      afterwards.forEach((event, i) => expect(event.data).not.toBe(appended[i]!.data));
      expect(afterwards).toEqual(quickGot);
      expect(slowGot).toEqual(quickGot);
      // New appends are kept again and delivered from memory, nothing lost, nothing twice.
      const more = serialized(events(2));
      await store.append('kept', more, 5n);
      await turns(5);
      expect(quickGot.slice(6).map((event) => event.data)).toEqual(more.map((event) => event.data));
      quickGot.slice(6).forEach((event, i) => expect(event.data).toBe(more[i]!.data));
      await finishSlowBatch();
      expect(slowGot.map((event) => event.id)).toEqual([...appended, ...more].map((event) => event.id));
    } finally {
      for (const resolve of pending) resolve();
      await quick.close();
      await slow.close();
      await store.close();
    }
  });

  it('keeps nothing handed over from another connection while no subscription follows it', async () => {
    const writer = SqliteEventStore.open(file);
    const follower = SqliteEventStore.open(file);
    const handed: CommittedAppend[] = [];
    writer.onCommitted((appended) => handed.push(appended));
    try {
      const appended = serialized(events(3));
      await writer.append('unfollowed', appended, 'no_stream');
      follower.acceptCommitted(handed[0]!);
      // Read from the file (parsed afresh), and equal to the writer's view.
      const read = await follower.readAll();
      expect(read.map((event) => event.data)).toEqual(appended.map((event) => event.data));
      expect(read).toEqual(await writer.readAll());
    } finally {
      await follower.close();
      await writer.close();
    }
  });

  it('hands its committed appends to another connection on the file, whose subscriptions then get them as a fresh read would', async () => {
    const writer = SqliteEventStore.open(file);
    const follower = SqliteEventStore.open(file);
    const other = SqliteEventStore.open(file);
    const handed: CommittedAppend[] = [];
    writer.onCommitted((appended) => {
      handed.push(appended);
      follower.acceptCommitted(appended);
    });
    const delivered: RecordedEvent[] = [];
    let wake: (() => void) | null = null;
    const subscription = follower.subscribeAll({}, async (batch) => {
      delivered.push(...batch);
      wake?.();
    });
    const deliveredCount = (count: number) =>
      new Promise<void>((resolve) => {
        wake = () => delivered.length >= count && resolve();
        wake();
      });
    try {
      // The follower's subscription has read the empty file and waits.
      for (let turn = 0; turn < 3; turn += 1) await new Promise((resolve) => setImmediate(resolve));
      const first = await writer.append('follow', serialized(events(5)), 'no_stream');
      // At once, not at the follower's next poll of the file (250 ms): a few turns of the event loop.
      for (let turn = 0; turn < 5 && delivered.length < 5; turn += 1) await new Promise((resolve) => setImmediate(resolve));
      expect(delivered).toHaveLength(5);
      // Another writer's events are not handed over: the follower reads them from the file.
      await other.append('follow-other', events(2), 'no_stream');
      // Events that did not come serialized are not handed over either.
      await writer.append('follow-plain', events(1), 'no_stream');
      await writer.append('follow', serialized(events(4)), first.nextExpectedRevision);
      await deliveredCount(12);
      expect(handed.map((appended) => [appended.streamId, appended.firstRevision, appended.events.length])).toEqual([
        ['follow', 0n, 5],
        ['follow', 5n, 4],
      ]);
      const fromDisk = SqliteEventStore.open(file);
      try {
        const all = await fromDisk.readAll();
        expect(all).toHaveLength(12);
        expect(delivered).toEqual(all);
        expect(handed[1]!.firstSeq).toBe(BigInt(all[8]!.storePosition));
        for (const after of [null, ...all.map((event) => event.storePosition)]) {
          for (const maxCount of [1, 3, READ_COUNT_MAX]) {
            expect(await follower.readAll({ after, maxCount })).toEqual(await fromDisk.readAll({ after, maxCount }));
          }
        }
      } finally {
        await fromDisk.close();
      }
    } finally {
      await subscription.close();
      await other.close();
      await follower.close();
      await writer.close();
    }
  });

  it('refuses a serialized event whose JSON text is not an object, as it refuses such data', async () => {
    const store = SqliteEventStore.open(file);
    try {
      const [event] = events(1) as [NewEvent];
      await expect(store.append('bad-json', [{ ...event, json: { data: '[1]', metadata: JSON.stringify(event.metadata) } }], 'no_stream')).rejects.toThrow(
        `event ${event.id}: data must be a JSON object`,
      );
      expect(await store.readStream('bad-json')).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('refuses an event id already stored elsewhere, naming where', async () => {
    const store = SqliteEventStore.open(file);
    try {
      const [event] = events(1) as [NewEvent];
      await store.append('account-3', [event], 'no_stream');
      await expect(store.append('account-4', [event], 'no_stream')).rejects.toThrow(
        `event id ${event.id} is already stored (stream "account-3", revision 0)`,
      );
      expect(await store.readStream('account-4')).toEqual([]);
    } finally {
      await store.close();
    }
  });
});

