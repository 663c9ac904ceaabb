import type { EventStoreDBClient } from '@eventstore/db-client';
import type { PositionedEvent } from '../../src/domain/ledger';
import { formatPosition } from '../../src/domain/position';
import { APPEND_BYTES_MAX_DEFAULT, AppendRefusedError } from '../../src/eventstore/event-store';
import { EventStoreDbEventStore } from '../../src/eventstore/eventstoredb-event-store';
import { LEDGER_STREAM, LedgerEventPublisher, chunkByBytes, toNewEvent } from '../../src/eventstore/ledger-event-publisher';
import { FakeEventStoreDbClient } from './fake-eventstoredb-client';

/**
 * EventStoreDB refuses appends over its MaxAppendSize (1 MiB by default). The publisher bounds each
 * append by bytes, splits one entry's events across appends, resumes mid-entry after a restart, and
 * treats a permanent refusal as permanent. Tested through the real adapter on a fake client that
 * enforces the limit like the server.
 */

const MIB = 1024 * 1024;

/** An entry's worth of events, each with ~4 KiB of data (like a batch operation carrying 4 KiB metadata). */
function bigEntry(index: number, count: number): PositionedEvent[] {
  return Array.from({ length: count }, (_, i) => ({
    position: formatPosition(index, i),
    event: { type: 'TransactionRecorded', data: { n: i, metadata: { note: 'm'.repeat(4096) } } } as unknown as PositionedEvent['event'],
  }));
}

function storeOn(client: FakeEventStoreDbClient): EventStoreDbEventStore {
  return new EventStoreDbEventStore(client as unknown as EventStoreDBClient);
}

describe('publisher appends within the event store limits', () => {
  it(`splits a ~4.5 MiB entry into appends under the default ${APPEND_BYTES_MAX_DEFAULT} bytes, and every event lands once, in order`, async () => {
    const client = new FakeEventStoreDbClient(MIB);
    const store = storeOn(client);
    const durable: number[] = [];
    const errors: Error[] = [];
    const publisher = new LedgerEventPublisher(store, { onDurable: (i) => durable.push(i), onError: (e) => errors.push(e), retryDelayMs: 1 });
    await publisher.start();
    const first = bigEntry(1, 1100);
    const second = bigEntry(2, 3);
    publisher.enqueue(1, 1_000, first);
    publisher.enqueue(2, 2_000, second);
    await publisher.flush();
    expect(errors).toEqual([]);
    expect(client.refusedForSize).toBe(0);
    expect(client.appendSizes.length).toBeGreaterThanOrEqual(5);
    expect(Math.max(...client.appendSizes)).toBeLessThanOrEqual(APPEND_BYTES_MAX_DEFAULT);
    const stored = await store.readStream(LEDGER_STREAM, { maxCount: 4096 });
    expect(stored.map((e) => e.metadata.position)).toEqual([...first, ...second].map((e) => e.position));
    expect(durable.at(-1)).toBe(2);
    await store.close();
  });

  it('a restart in the middle of a split entry resumes after the last stored event: nothing lost, nothing doubled', async () => {
    const client = new FakeEventStoreDbClient(MIB);
    const store = storeOn(client);
    const entry = bigEntry(1, 600);
    // The first run dies after two of the entry's appends landed: its connection fails from then on.
    const real = client.appendToStream.bind(client);
    let appends = 0;
    const dyingClient = Object.create(client) as FakeEventStoreDbClient;
    dyingClient.appendToStream = async (...args) => {
      appends += 1;
      // Once the test is over the dead run is told to stop for good (so its retry loop ends).
      if (appends > 2) throw appends > 1000 ? new AppendRefusedError('test over') : new Error('connection lost');
      return real(...args);
    };
    const firstRun = new LedgerEventPublisher(storeOn(dyingClient), { retryDelayMs: 1, onError: () => undefined });
    await firstRun.start();
    firstRun.enqueue(1, 1_000, entry);
    while (appends < 3) await new Promise((resolve) => setTimeout(resolve, 1));
    const partial = await store.readStream(LEDGER_STREAM, { maxCount: 4096 });
    expect(partial.length).toBeGreaterThan(0);
    expect(partial.length).toBeLessThan(600);

    const durable: number[] = [];
    const secondRun = new LedgerEventPublisher(store, { onDurable: (i) => durable.push(i) });
    await secondRun.start();
    // Not durable yet: the entry is only partly in the store.
    expect(secondRun.publishedIndex).toBe(0);
    secondRun.enqueue(1, 1_000, entry);
    await secondRun.flush();
    const stored = await store.readStream(LEDGER_STREAM, { maxCount: 4096 });
    expect(stored.map((e) => e.metadata.position)).toEqual(entry.map((e) => e.position));
    expect(durable).toEqual([1]);
    appends = 10_000;
    await firstRun.flush();
    await store.close();
  });

  it('a permanent refusal (an append over the server limit) stops the publisher with a clear error: no retry loop', async () => {
    const client = new FakeEventStoreDbClient(MIB);
    const store = storeOn(client);
    const errors: Error[] = [];
    const halted: Error[] = [];
    // Configured above the server's limit: the server refuses.
    const publisher = new LedgerEventPublisher(store, { appendBytesMax: 4 * MIB, retryDelayMs: 1, onError: (e) => errors.push(e), onHalted: (e) => halted.push(e) });
    await publisher.start();
    publisher.enqueue(1, 1_000, bigEntry(1, 500));
    await publisher.flush();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(halted).toHaveLength(1);
    expect(halted[0]).toBeInstanceOf(AppendRefusedError);
    expect(halted[0]!.message).toMatch(/exceeds EventStoreDB's maximum append size \(1048576 bytes/);
    expect(publisher.halted).toBe(halted[0]);
    expect(client.refusedForSize).toBe(1);
    expect(errors).toEqual([]);
    // Still stopped: a new entry does not restart the loop.
    publisher.enqueue(2, 2_000, bigEntry(2, 1));
    await publisher.flush();
    expect(client.refusedForSize).toBe(1);
    expect(publisher.backlogEvents).toBe(501);
    await store.close();
  });

  it('one event larger than an append may carry is refused for good before it reaches the store', async () => {
    const client = new FakeEventStoreDbClient(MIB);
    const store = storeOn(client);
    const halted: Error[] = [];
    const publisher = new LedgerEventPublisher(store, { appendBytesMax: 2048, onHalted: (e) => halted.push(e) });
    await publisher.start();
    publisher.enqueue(1, 1_000, bigEntry(1, 1));
    await publisher.flush();
    expect(halted[0]?.message).toMatch(/event at position 0000000000000001-000000 is \d+ bytes, more than one append may carry \(2048\)/);
    expect(client.appendSizes).toEqual([]);
    await store.close();
  });
});

const EVENTSTORE_URL = process.env.EVENTSTORE_URL;
if (!EVENTSTORE_URL) {
  // eslint-disable-next-line no-console
  console.log('append limits against a real EventStoreDB: SKIPPED (set EVENTSTORE_URL, e.g. esdb://localhost:2113?tls=false)');
}
(EVENTSTORE_URL ? describe : describe.skip)('append limits against the EventStoreDB server (EVENTSTORE_URL)', () => {
  it('a ~4.5 MiB entry split by chunkByBytes lands; the same events in one append are refused for good', async () => {
    const store = EventStoreDbEventStore.connect(EVENTSTORE_URL!);
    try {
      const stream = `limits-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e9).toString(36)}`;
      const events = bigEntry(1, 1100).map((p) => toNewEvent(p, 1_000));
      await expect(store.append(stream, events, 'no_stream')).rejects.toBeInstanceOf(AppendRefusedError);
      let expected: bigint | 'no_stream' = 'no_stream';
      for (const chunk of chunkByBytes(events, APPEND_BYTES_MAX_DEFAULT)) expected = (await store.append(stream, chunk, expected)).nextExpectedRevision;
      expect(expected).toBe(1099n);
    } finally {
      await store.close();
    }
  });
});
