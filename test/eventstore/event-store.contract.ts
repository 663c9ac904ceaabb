/**
 * The event-store port's contract: every adapter passes this suite. Stream ids are unique per test
 * and assertions only look at the test's own streams, so it also runs on a shared, non-empty
 * EventStoreDB. Store positions are opaque: their order is only observed through readAll/subscribeAll.
 */
import { randomUUID } from 'node:crypto';
import {
  APPEND_EVENTS_MAX,
  READ_COUNT_MAX,
  SUBSCRIPTION_BATCH_MAX,
  WrongExpectedRevisionError,
  type EventStore,
  type ExpectedRevision,
  type NewEvent,
  type RecordedEvent,
  type Subscription,
} from '../../src/eventstore/event-store';

export interface OpenedStore {
  store: EventStore;
  cleanup: () => Promise<void>;
}

let eventCounter = 0;

function newStreamId(): string {
  return `contract-${randomUUID()}`;
}

function newEvents(count: number, type = 'ContractTested'): NewEvent[] {
  return Array.from({ length: count }, () => {
    eventCounter += 1;
    return {
      id: randomUUID(),
      type,
      data: { n: eventCounter, label: `événement ${eventCounter}`, nested: { amountMinorUnits: 1050, tags: ['a', 'b'] }, none: null },
      metadata: { position: `${String(eventCounter).padStart(16, '0')}-000000`, causationId: `command-${eventCounter}` },
    };
  });
}

function ids(events: ReadonlyArray<{ id: string }>): string[] {
  return events.map((event) => event.id);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection, the promise resolved');
    },
    (error: unknown) => error,
  );
}

async function expectWrongRevision(
  promise: Promise<unknown>,
  expected: { streamId: string; expected: ExpectedRevision; actual: bigint | 'no_stream' },
): Promise<void> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(WrongExpectedRevisionError);
  const wrong = error as WrongExpectedRevisionError;
  expect({ streamId: wrong.streamId, expected: wrong.expected, actual: wrong.actual }).toEqual(expected);
}

/** A store position after everything appended so far by this test: append a marker event. */
async function markEnd(store: EventStore): Promise<string> {
  const result = await store.append(newStreamId(), newEvents(1, 'ContractMarker'), 'no_stream');
  return result.storePosition;
}

/** The events of `streams` among all events after `after` (one page is plenty for a test). */
async function readOwnAfter(store: EventStore, after: string | null, streams: ReadonlySet<string>): Promise<RecordedEvent[]> {
  const events = await store.readAll({ after, maxCount: READ_COUNT_MAX });
  return events.filter((event) => streams.has(event.streamId));
}

interface Collector {
  subscription: Subscription;
  /** Events of the watched streams, in delivery order. */
  received: RecordedEvent[];
  /** Every batch as delivered (may include other writers' events on a shared store). */
  batches: RecordedEvent[][];
  /** Set when the handler was called while a previous call was still running. */
  overlapped: boolean;
}

function collect(
  store: EventStore,
  options: { after?: string | null; batchSizeMax?: number },
  streams: ReadonlySet<string>,
  handlerDelayMs = 0,
): Collector {
  const collector: Omit<Collector, 'subscription'> = { received: [], batches: [], overlapped: false };
  let running = false;
  const subscription = store.subscribeAll(options, async (batch) => {
    if (running) collector.overlapped = true;
    running = true;
    collector.batches.push(batch);
    collector.received.push(...batch.filter((event) => streams.has(event.streamId)));
    if (handlerDelayMs > 0) await sleep(handlerDelayMs);
    running = false;
  });
  return Object.assign(collector, { subscription });
}

export function eventStoreContract(name: string, open: () => Promise<OpenedStore>): void {
  describe(`${name}: event store contract`, () => {
    let store: EventStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await open());
    });

    afterEach(async () => {
      await cleanup();
    });

    describe('append and readStream', () => {
      it('round-trips ids, types, data, metadata and revisions', async () => {
        const streamId = newStreamId();
        const first = newEvents(2, 'AccountOpened');
        const second = newEvents(1, 'MoneyDeposited');

        const firstResult = await store.append(streamId, first, 'no_stream');
        const secondResult = await store.append(streamId, second, firstResult.nextExpectedRevision);

        expect(firstResult.nextExpectedRevision).toBe(1n);
        expect(secondResult.nextExpectedRevision).toBe(2n);
        const read = await store.readStream(streamId);
        const written = [...first, ...second];
        expect(read.map((event) => ({ id: event.id, type: event.type, data: event.data, metadata: event.metadata }))).toEqual(
          written.map((event) => ({ id: event.id, type: event.type, data: event.data, metadata: event.metadata })),
        );
        expect(read.map((event) => event.revision)).toEqual([0n, 1n, 2n]);
        expect(read.every((event) => event.streamId === streamId)).toBe(true);
        expect(read.every((event) => Number.isFinite(event.createdAtMs) && event.createdAtMs > Date.UTC(2020, 0, 1))).toBe(true);
        // The append result points at the last appended event.
        expect(read[1]?.storePosition).toBe(firstResult.storePosition);
        expect(read[2]?.storePosition).toBe(secondResult.storePosition);
        expect(new Set(read.map((event) => event.storePosition)).size).toBe(3);
      });

      it('gives an event the same store position in readStream and readAll', async () => {
        const marker = await markEnd(store);
        const streamId = newStreamId();
        await store.append(streamId, newEvents(3), 'no_stream');

        const fromStream = await store.readStream(streamId);
        const fromAll = await readOwnAfter(store, marker, new Set([streamId]));

        expect(fromAll).toEqual(fromStream);
      });
    });

    describe('expected revision', () => {
      it('no_stream: appends to a new stream, refuses an existing one', async () => {
        const streamId = newStreamId();
        expect((await store.append(streamId, newEvents(1), 'no_stream')).nextExpectedRevision).toBe(0n);

        await expectWrongRevision(store.append(streamId, newEvents(1), 'no_stream'), {
          streamId,
          expected: 'no_stream',
          actual: 0n,
        });
        expect(await store.readStream(streamId)).toHaveLength(1);
      });

      it('stream_exists: refuses a missing stream, appends to an existing one', async () => {
        const streamId = newStreamId();
        await expectWrongRevision(store.append(streamId, newEvents(1), 'stream_exists'), {
          streamId,
          expected: 'stream_exists',
          actual: 'no_stream',
        });
        expect(await store.readStream(streamId)).toEqual([]);

        await store.append(streamId, newEvents(2), 'no_stream');
        expect((await store.append(streamId, newEvents(1), 'stream_exists')).nextExpectedRevision).toBe(2n);
      });

      it('any: appends whatever the stream holds', async () => {
        const streamId = newStreamId();
        expect((await store.append(streamId, newEvents(2), 'any')).nextExpectedRevision).toBe(1n);
        expect((await store.append(streamId, newEvents(1), 'any')).nextExpectedRevision).toBe(2n);
        expect(await store.readStream(streamId)).toHaveLength(3);
      });

      it('a revision: appends only when it is the revision of the last event', async () => {
        const streamId = newStreamId();
        await store.append(streamId, newEvents(2), 'no_stream');

        expect((await store.append(streamId, newEvents(1), 1n)).nextExpectedRevision).toBe(2n);
        await expectWrongRevision(store.append(streamId, newEvents(1), 5n), { streamId, expected: 5n, actual: 2n });
        await expectWrongRevision(store.append(streamId, newEvents(1), 0n), { streamId, expected: 0n, actual: 2n });
        const missing = newStreamId();
        await expectWrongRevision(store.append(missing, newEvents(1), 0n), { streamId: missing, expected: 0n, actual: 'no_stream' });
        expect(await store.readStream(streamId)).toHaveLength(3);
        expect(await store.readStream(missing)).toEqual([]);
      });
    });

    describe('idempotent re-append', () => {
      it('re-appending the same ids after the same expected revision succeeds without writing', async () => {
        const marker = await markEnd(store);
        const streamId = newStreamId();
        const first = newEvents(2);
        const second = newEvents(3);
        const firstResult = await store.append(streamId, first, 'no_stream');
        const secondResult = await store.append(streamId, second, firstResult.nextExpectedRevision);

        // As the ledger does after a crash: both appends again, from where they started.
        expect(await store.append(streamId, first, 'no_stream')).toEqual(firstResult);
        expect(await store.append(streamId, second, firstResult.nextExpectedRevision)).toEqual(secondResult);

        expect(ids(await store.readStream(streamId))).toEqual(ids([...first, ...second]));
        expect(ids(await readOwnAfter(store, marker, new Set([streamId])))).toEqual(ids([...first, ...second]));
        // The stream goes on from the real end.
        expect((await store.append(streamId, newEvents(1), secondResult.nextExpectedRevision)).nextExpectedRevision).toBe(5n);
      });

      it('refuses a stale append whose ids differ from what is stored after the expected revision', async () => {
        const streamId = newStreamId();
        const stored = newEvents(2);
        await store.append(streamId, stored, 'no_stream');
        const [a, b] = stored as [NewEvent, NewEvent];
        const [x, y] = newEvents(2) as [NewEvent, NewEvent];

        for (const attempt of [[x, y], [a, x], [b, a], [a, b, y], [x]]) {
          await expectWrongRevision(store.append(streamId, attempt, 'no_stream'), {
            streamId,
            expected: 'no_stream',
            actual: 1n,
          });
        }
        await expectWrongRevision(store.append(streamId, [a], 0n), { streamId, expected: 0n, actual: 1n });
        expect(ids(await store.readStream(streamId))).toEqual(ids(stored));
      });
    });

    describe('readStream', () => {
      let streamId: string;
      let written: NewEvent[];

      beforeEach(async () => {
        streamId = newStreamId();
        written = newEvents(5);
        await store.append(streamId, written.slice(0, 3), 'no_stream');
        await store.append(streamId, written.slice(3), 2n);
      });

      const revisions = (events: RecordedEvent[]): bigint[] => events.map((event) => event.revision);

      it('reads forwards from the start by default', async () => {
        const read = await store.readStream(streamId);
        expect(revisions(read)).toEqual([0n, 1n, 2n, 3n, 4n]);
        expect(ids(read)).toEqual(ids(written));
      });

      it('reads forwards from a revision, at most maxCount', async () => {
        expect(revisions(await store.readStream(streamId, { fromRevision: 2n }))).toEqual([2n, 3n, 4n]);
        expect(revisions(await store.readStream(streamId, { maxCount: 2 }))).toEqual([0n, 1n]);
        expect(revisions(await store.readStream(streamId, { fromRevision: 1n, maxCount: 2 }))).toEqual([1n, 2n]);
        expect(await store.readStream(streamId, { fromRevision: 5n })).toEqual([]);
      });

      it('reads backwards from the end or from a revision', async () => {
        expect(revisions(await store.readStream(streamId, { direction: 'backwards' }))).toEqual([4n, 3n, 2n, 1n, 0n]);
        expect(revisions(await store.readStream(streamId, { direction: 'backwards', maxCount: 1 }))).toEqual([4n]);
        expect(revisions(await store.readStream(streamId, { direction: 'backwards', fromRevision: 2n, maxCount: 2 }))).toEqual([
          2n,
          1n,
        ]);
        expect(ids(await store.readStream(streamId, { direction: 'backwards' }))).toEqual(ids(written).reverse());
      });

      it('returns an empty array for a missing stream', async () => {
        const missing = newStreamId();
        expect(await store.readStream(missing)).toEqual([]);
        expect(await store.readStream(missing, { direction: 'backwards' })).toEqual([]);
        expect(await store.readStream(missing, { fromRevision: 3n, maxCount: 1 })).toEqual([]);
      });
    });

    describe('readAll', () => {
      it('returns the events after a position, in store order, at most maxCount', async () => {
        const marker = await markEnd(store);
        const first = newStreamId();
        const second = newStreamId();
        const firstEvents = newEvents(4);
        const secondEvents = newEvents(2);
        await store.append(first, firstEvents, 'no_stream');
        await store.append(second, secondEvents, 'no_stream');

        const own = await readOwnAfter(store, marker, new Set([first, second]));
        expect(ids(own)).toEqual(ids([...firstEvents, ...secondEvents]));

        // One append is contiguous in the store, so the two events after the first are its next two.
        const afterFirst = await store.readAll({ after: own[0]?.storePosition, maxCount: 2 });
        expect(ids(afterFirst)).toEqual(ids(firstEvents.slice(1, 3)));
        expect(await store.readAll({ after: own[0]?.storePosition, maxCount: 1 })).toEqual(afterFirst.slice(0, 1));
      });

      it('orders positions strictly: after each event comes the next one, never itself or an earlier one', async () => {
        const marker = await markEnd(store);
        const streams = [newStreamId(), newStreamId()] as const;
        const revisions: ExpectedRevision[] = ['no_stream', 'no_stream'];
        for (let index = 0; index < 6; index += 1) {
          const target = index % 2;
          const result = await store.append(streams[target] as string, newEvents(1 + (index % 3)), revisions[target] as ExpectedRevision);
          revisions[target] = result.nextExpectedRevision;
        }
        const own = await readOwnAfter(store, marker, new Set(streams));
        expect(own).toHaveLength(12);
        expect(new Set(own.map((event) => event.storePosition)).size).toBe(own.length);

        for (let index = 0; index < own.length; index += 1) {
          const next = await readOwnAfter(store, own[index]?.storePosition ?? null, new Set(streams));
          expect(ids(next)).toEqual(ids(own.slice(index + 1)));
        }
      });

      it('reads from the beginning when after is null or absent', async () => {
        await store.append(newStreamId(), newEvents(3), 'no_stream');
        const head = await store.readAll({ maxCount: 3 });
        expect(head).toHaveLength(3);
        expect(await store.readAll({ after: null, maxCount: 3 })).toEqual(head);
        expect(await store.readAll({ after: head[0]?.storePosition, maxCount: 2 })).toEqual(head.slice(1));
      });

      it('returns nothing after the last event', async () => {
        const streamId = newStreamId();
        const result = await store.append(streamId, newEvents(2), 'no_stream');
        expect(await readOwnAfter(store, result.storePosition, new Set([streamId]))).toEqual([]);
      });
    });

    describe('subscribeAll', () => {
      it('delivers the existing events then live ones, in order, with no gap or duplicate', async () => {
        const marker = await markEnd(store);
        const streams = [newStreamId(), newStreamId()] as const;
        const expected: string[] = [];
        const existing = newEvents(7);
        const revisions: ExpectedRevision[] = [6n, 'no_stream'];
        await store.append(streams[0], existing, 'no_stream');
        expected.push(...ids(existing));

        const collector = collect(store, { after: marker, batchSizeMax: 4 }, new Set(streams), 1);
        // Appends race with delivery: some land while the handler runs, some while it waits.
        for (let index = 0; index < 20; index += 1) {
          const target = index % 2;
          const events = newEvents(1 + (index % 3));
          const result = await store.append(streams[target] as string, events, revisions[target] as ExpectedRevision);
          revisions[target] = result.nextExpectedRevision;
          expected.push(...ids(events));
          if (index % 4 === 0) await sleep(3);
        }
        await waitFor(() => collector.received.length >= expected.length, `${expected.length} events`);
        await sleep(50); // a duplicate would arrive late

        expect(ids(collector.received)).toEqual(expected);
        expect(collector.overlapped).toBe(false);
        expect(collector.batches.every((batch) => batch.length >= 1 && batch.length <= 4)).toBe(true);
        await collector.subscription.close();
        await expect(collector.subscription.done).resolves.toBeUndefined();
      });

      it('resumes strictly after a given position', async () => {
        const streamId = newStreamId();
        const written = newEvents(6);
        await store.append(streamId, written, 'no_stream');
        const stored = await store.readStream(streamId);

        const collector = collect(store, { after: stored[2]?.storePosition }, new Set([streamId]));
        await waitFor(() => collector.received.length >= 3, '3 events');
        await sleep(50);

        expect(ids(collector.received)).toEqual(ids(written.slice(3)));
        expect(collector.received).toEqual(stored.slice(3));
        await collector.subscription.close();
      });

      it('delivers from the beginning when after is absent', async () => {
        const streamId = newStreamId();
        const written = newEvents(2);
        await store.append(streamId, written, 'no_stream');
        const collector = collect(store, {}, new Set([streamId]));
        await waitFor(() => collector.received.length >= 2, '2 events');
        expect(ids(collector.received)).toEqual(ids(written));
        await collector.subscription.close();
      });

      it('never delivers more than batchSizeMax events at once', async () => {
        const marker = await markEnd(store);
        const streamId = newStreamId();
        const written = newEvents(10);
        await store.append(streamId, written, 'no_stream');

        // A slow handler lets events pile up, so full batches are certain.
        const collector = collect(store, { after: marker, batchSizeMax: 3 }, new Set([streamId]), 30);
        await waitFor(() => collector.received.length >= 10, '10 events');

        const sizes = collector.batches.map((batch) => batch.length);
        expect(Math.max(...sizes)).toBe(3);
        expect(Math.min(...sizes)).toBeGreaterThanOrEqual(1);
        expect(ids(collector.received)).toEqual(ids(written));
        await collector.subscription.close();
      });

      it('close() stops delivery', async () => {
        const marker = await markEnd(store);
        const streamId = newStreamId();
        const collector = collect(store, { after: marker }, new Set([streamId]));
        const first = await store.append(streamId, newEvents(2), 'no_stream');
        await waitFor(() => collector.received.length >= 2, '2 events');

        await collector.subscription.close();
        await store.append(streamId, newEvents(2), first.nextExpectedRevision);
        await sleep(400); // longer than any poll interval

        expect(collector.received).toHaveLength(2);
        await expect(collector.subscription.done).resolves.toBeUndefined();
      });

      it('close() resolves only once the running handler call has returned', async () => {
        const marker = await markEnd(store);
        const streamId = newStreamId();
        let release: () => void = () => undefined;
        const gate = new Promise<void>((resolve) => (release = resolve));
        const order: string[] = [];
        let calls = 0;
        const subscription = store.subscribeAll({ after: marker }, async (batch) => {
          if (!batch.some((event) => event.streamId === streamId)) return;
          calls += 1;
          order.push('handler started');
          await gate;
          order.push('handler returned');
        });
        await store.append(streamId, newEvents(1), 'no_stream');
        await waitFor(() => calls === 1, 'the handler call');

        const closed = subscription.close().then(() => order.push('close resolved'));
        await sleep(30);
        expect(order).toEqual(['handler started']);
        release();
        await closed;
        await store.append(streamId, newEvents(1), 0n);
        await sleep(50);

        expect(order).toEqual(['handler started', 'handler returned', 'close resolved']);
        expect(calls).toBe(1);
      });

      it('rejects done when the handler throws, and delivers nothing more', async () => {
        const marker = await markEnd(store);
        const streamId = newStreamId();
        let calls = 0;
        const subscription = store.subscribeAll({ after: marker }, async (batch) => {
          if (!batch.some((event) => event.streamId === streamId)) return;
          calls += 1;
          throw new Error('handler failed on purpose');
        });
        const done = rejection(subscription.done);
        await store.append(streamId, newEvents(1), 'no_stream');

        const error = await done;
        expect(error).toBeInstanceOf(Error);
        expect((error as Error).message).toBe('handler failed on purpose');
        await store.append(streamId, newEvents(1), 0n);
        await sleep(50);
        expect(calls).toBe(1);
        await subscription.close(); // closing a failed subscription is not an error
      });

      it('store.close() ends its subscriptions', async () => {
        const marker = await markEnd(store);
        const collector = collect(store, { after: marker }, new Set());
        await store.close();
        await expect(collector.subscription.done).resolves.toBeUndefined();
        expect(String(await rejection(store.append(newStreamId(), newEvents(1), 'no_stream')))).toMatch(/closed/);
      });
    });

    describe('limits and malformed input', () => {
      it(`refuses an append of no events or of more than APPEND_EVENTS_MAX (${APPEND_EVENTS_MAX})`, async () => {
        const streamId = newStreamId();
        expect(String(await rejection(store.append(streamId, [], 'any')))).toMatch(/APPEND_EVENTS_MAX/);
        const tooMany = newEvents(APPEND_EVENTS_MAX + 1);
        expect(String(await rejection(store.append(streamId, tooMany, 'any')))).toMatch(/APPEND_EVENTS_MAX/);
        expect(await store.readStream(streamId)).toEqual([]);
      });

      it(`refuses a maxCount outside 1..READ_COUNT_MAX (${READ_COUNT_MAX}) and a batchSizeMax outside 1..SUBSCRIPTION_BATCH_MAX (${SUBSCRIPTION_BATCH_MAX})`, async () => {
        const streamId = newStreamId();
        for (const maxCount of [0, -1, 1.5, READ_COUNT_MAX + 1]) {
          expect(String(await rejection(store.readStream(streamId, { maxCount })))).toMatch(/READ_COUNT_MAX/);
          expect(String(await rejection(store.readAll({ maxCount })))).toMatch(/READ_COUNT_MAX/);
        }
        for (const batchSizeMax of [0, -1, 1.5, SUBSCRIPTION_BATCH_MAX + 1]) {
          expect(() => store.subscribeAll({ batchSizeMax }, async () => undefined)).toThrow(/SUBSCRIPTION_BATCH_MAX/);
        }
        expect(await store.readStream(streamId, { maxCount: READ_COUNT_MAX })).toEqual([]);
      });

      it('refuses a malformed store position', async () => {
        expect(String(await rejection(store.readAll({ after: 'not-a-position' })))).toMatch(/store position/);
        expect(() => store.subscribeAll({ after: 'not-a-position' }, async () => undefined)).toThrow(/store position/);
      });

      it('refuses malformed events and writes none of the append', async () => {
        const streamId = newStreamId();
        const [valid, other] = newEvents(2) as [NewEvent, NewEvent];
        const attempts: Array<[NewEvent[], RegExp]> = [
          [[valid, { ...other, id: 'not-a-uuid' }], /UUID/],
          [[valid, { ...other, id: other.id.toUpperCase() }], /lowercase UUID/],
          [[valid, { ...other, id: valid.id }], /twice/],
          [[valid, { ...other, type: '' }], /type/],
          [[valid, { ...other, type: '$system' }], /reserved/],
          [[valid, { ...other, data: [] as unknown as Record<string, unknown> }], /data/],
          [[valid, { ...other, metadata: {} as NewEvent['metadata'] }], /position/],
        ];
        for (const [events, message] of attempts) {
          expect(String(await rejection(store.append(streamId, events, 'any')))).toMatch(message);
        }
        expect(String(await rejection(store.append('$system-stream', [valid], 'any')))).toMatch(/reserved/);
        expect(String(await rejection(store.append(streamId, [valid], -1n)))).toMatch(/expected revision/);
        expect(String(await rejection(store.readStream(streamId, { fromRevision: -1n })))).toMatch(/fromRevision/);
        expect(await store.readStream(streamId)).toEqual([]);
      });
    });
  });
}
