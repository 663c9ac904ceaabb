/**
 * The EventStoreDB adapter's pure mapping, without a server. The adapter's behaviour against a real
 * server is the contract suite's job (event-store.test.ts with EVENTSTORE_URL set).
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import {
  ANY,
  MaxAppendSizeExceededError,
  NO_STREAM,
  STREAM_EXISTS,
  StreamNotFoundError,
  WrongExpectedVersionError,
  type Position,
} from '@eventstore/db-client';
import { formatPosition } from '../../src/domain/position';
import { WrongExpectedRevisionError, type NewEvent } from '../../src/eventstore/event-store';
import { eventIdOf } from '../../src/eventstore/ledger-event-publisher';
import {
  compareDbPositions,
  decodeStorePosition,
  encodeStorePosition,
  firstRevisionOf,
  fromResolvedEvent,
  isSameAppend,
  isSystemEvent,
  mapAppendError,
  toDbEvent,
  toDbExpectedRevision,
  toRecordedEvent,
  toWrongExpectedRevisionError,
  type DbRecordedEvent,
} from '../../src/eventstore/eventstoredb-event-store';

const UINT64_MAX = 2n ** 64n - 1n;
const uint64 = fc.bigInt({ min: 0n, max: UINT64_MAX });
const positionArbitrary = fc.record({ commit: uint64, prepare: uint64 });

function recorded(overrides: Partial<DbRecordedEvent> = {}): DbRecordedEvent {
  return {
    streamId: 'account-1',
    id: randomUUID(),
    isJson: true,
    revision: 3n,
    type: 'MoneyDeposited',
    created: new Date(Date.UTC(2025, 0, 2, 3, 4, 5, 678)),
    data: { accountId: 'account-1', amountMinorUnits: 1050 },
    metadata: { position: '0000000000000042-000001', causationId: 'command-7' },
    position: { commit: 1234n, prepare: 1200n },
    ...overrides,
  };
}

describe('store positions', () => {
  it('round-trips every 64-bit commit/prepare pair exactly', () => {
    fc.assert(
      fc.property(positionArbitrary, (position) => {
        expect(decodeStorePosition(encodeStorePosition(position))).toEqual(position);
      }),
    );
  });

  it('orders encoded positions as EventStoreDB orders $all: by commit, then by prepare', () => {
    fc.assert(
      fc.property(positionArbitrary, positionArbitrary, (a, b) => {
        const encodedA = encodeStorePosition(a);
        const encodedB = encodeStorePosition(b);
        const stringOrder = encodedA < encodedB ? -1 : encodedA > encodedB ? 1 : 0;
        expect(stringOrder).toBe(compareDbPositions(a, b));
      }),
    );
    expect(compareDbPositions({ commit: 10n, prepare: 99n }, { commit: 11n, prepare: 0n })).toBe(-1);
    expect(compareDbPositions({ commit: 10n, prepare: 5n }, { commit: 10n, prepare: 4n })).toBe(1);
    expect(compareDbPositions({ commit: 10n, prepare: 5n }, { commit: 10n, prepare: 5n })).toBe(0);
  });

  it('encodes a known position in a fixed-width form', () => {
    expect(encodeStorePosition({ commit: 1234n, prepare: 1200n })).toBe('00000000000000001234-00000000000000001200');
    expect(encodeStorePosition({ commit: UINT64_MAX, prepare: 0n })).toBe('18446744073709551615-00000000000000000000');
  });

  it('refuses malformed or out-of-range positions', () => {
    for (const bad of ['', '1234', '1234-1200', 'not-a-position', '00000000000000001234/00000000000000001200', '18446744073709551616-00000000000000000000']) {
      expect(() => decodeStorePosition(bad)).toThrow(/store position/);
    }
    expect(() => encodeStorePosition({ commit: -1n, prepare: 0n })).toThrow(RangeError);
    expect(() => encodeStorePosition({ commit: 0n, prepare: UINT64_MAX + 1n })).toThrow(RangeError);
  });
});

describe('expected revision', () => {
  it('maps each of the port’s expectations to the client’s', () => {
    expect(toDbExpectedRevision('no_stream')).toBe(NO_STREAM);
    expect(toDbExpectedRevision('stream_exists')).toBe(STREAM_EXISTS);
    expect(toDbExpectedRevision('any')).toBe(ANY);
    expect(toDbExpectedRevision(0n)).toBe(0n);
    expect(toDbExpectedRevision(41n)).toBe(41n);
  });

  it('knows where a stale append’s events would have started', () => {
    expect(firstRevisionOf('no_stream')).toBe(0n);
    expect(firstRevisionOf(0n)).toBe(1n);
    expect(firstRevisionOf(41n)).toBe(42n);
    expect(firstRevisionOf('any')).toBeNull();
    expect(firstRevisionOf('stream_exists')).toBeNull();
  });

  it('recognizes a re-append only by the same ids in the same order', () => {
    const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
    expect(isSameAppend([{ id: a }, { id: b }], [{ id: a }, { id: b }])).toBe(true);
    expect(isSameAppend([{ id: a }, { id: b }], [{ id: b }, { id: a }])).toBe(false);
    expect(isSameAppend([{ id: a }], [{ id: a }, { id: b }])).toBe(false);
    expect(isSameAppend([{ id: a }, { id: c }], [{ id: a }, { id: b }])).toBe(false);
    expect(isSameAppend([], [{ id: a }])).toBe(false);
  });
});

describe('errors', () => {
  it('maps WrongExpectedVersionError to WrongExpectedRevisionError with the actual revision', () => {
    const clientError = new WrongExpectedVersionError(undefined, { streamName: 'account-1', expected: 4n, current: 7n });
    const mapped = toWrongExpectedRevisionError(clientError, 'account-1', 4n);
    expect(mapped).toBeInstanceOf(WrongExpectedRevisionError);
    expect({ streamId: mapped.streamId, expected: mapped.expected, actual: mapped.actual }).toEqual({
      streamId: 'account-1',
      expected: 4n,
      actual: 7n,
    });
    expect(mapped.message).toBe('stream "account-1": expected revision 4, actual 7');
  });

  it('reports a missing stream as no_stream, however the server encodes it', () => {
    const missing = new WrongExpectedVersionError(undefined, { streamName: 'account-2', expected: 'stream_exists', current: 'no_stream' });
    expect(toWrongExpectedRevisionError(missing, 'account-2', 'stream_exists').actual).toBe('no_stream');
    const minusOne = new WrongExpectedVersionError(undefined, { streamName: 'account-2', expected: 0n, current: -1n });
    expect(toWrongExpectedRevisionError(minusOne, 'account-2', 0n).actual).toBe('no_stream');
  });

  it('keeps our expected revision and falls back to our stream id when the server gives none', () => {
    const clientError = new WrongExpectedVersionError(undefined, { streamName: '', expected: 'no_stream', current: 0n });
    const mapped = toWrongExpectedRevisionError(clientError, 'account-3', 'no_stream');
    expect([mapped.streamId, mapped.expected, mapped.actual]).toEqual(['account-3', 'no_stream', 0n]);
  });

  it('explains an append over the server’s size limit, and passes other errors through', () => {
    const tooBig = mapAppendError(new MaxAppendSizeExceededError(undefined, 1_048_576), 'account-4', 'any', 9000);
    expect(tooBig).toBeInstanceOf(RangeError);
    expect((tooBig as Error).message).toMatch(/9000 events to stream "account-4".*1048576 bytes/);
    expect(mapAppendError(new WrongExpectedVersionError(undefined, { streamName: 'account-4', expected: 1n, current: 2n }), 'account-4', 1n, 1)).toBeInstanceOf(
      WrongExpectedRevisionError,
    );
    const other = new StreamNotFoundError(undefined, 'account-4');
    expect(mapAppendError(other, 'account-4', 'any', 1)).toBe(other);
  });
});

describe('events', () => {
  it('serializes a new event as a JSON event with our id, type, data and metadata', () => {
    const event: NewEvent = {
      id: randomUUID(),
      type: 'AccountOpened',
      data: { accountId: 'account-1', currency: 'EUR', limits: { overdraftMinorUnits: 0 } },
      metadata: { position: '0000000000000001-000000', causationId: 'command-1' },
    };
    expect(toDbEvent(event)).toEqual({
      id: event.id,
      contentType: 'application/json',
      type: 'AccountOpened',
      data: event.data,
      metadata: event.metadata,
    });
  });

  it('maps a recorded event with its revision, store position and creation time', () => {
    const event = recorded();
    expect(toRecordedEvent(event)).toEqual({
      id: event.id,
      streamId: 'account-1',
      revision: 3n,
      type: 'MoneyDeposited',
      data: { accountId: 'account-1', amountMinorUnits: 1050 },
      metadata: { position: '0000000000000042-000001', causationId: 'command-7' },
      storePosition: '00000000000000001234-00000000000000001200',
      createdAtMs: Date.UTC(2025, 0, 2, 3, 4, 5, 678),
    });
  });

  it('refuses what the port cannot represent', () => {
    expect(() => toRecordedEvent(recorded({ isJson: false, data: new Uint8Array([1]) }))).toThrow(/not a JSON object/);
    expect(() => toRecordedEvent(recorded({ data: ['an', 'array'] }))).toThrow(/not a JSON object/);
    expect(() => toRecordedEvent(recorded({ metadata: undefined }))).toThrow(/"position"/);
    expect(() => toRecordedEvent(recorded({ metadata: { position: 42 } }))).toThrow(/"position"/);
    expect(() => toRecordedEvent(recorded({ position: undefined }))).toThrow(/22\.6/);
    expect(() => toRecordedEvent(recorded({ position: { commit: UINT64_MAX, prepare: UINT64_MAX } }))).toThrow(/22\.6/);
  });
});

describe('system events', () => {
  it('are the $-prefixed streams and event types', () => {
    expect(isSystemEvent('$stats-127.0.0.1:2113', 'StatsCollected')).toBe(true);
    expect(isSystemEvent('$ce-account', '$>')).toBe(true);
    expect(isSystemEvent('$$account-1', '$metadata')).toBe(true);
    expect(isSystemEvent('account-1', '$metadata')).toBe(true);
    expect(isSystemEvent('account-1', 'MoneyDeposited')).toBe(false);
    expect(isSystemEvent('account-$1', 'Money$Deposited')).toBe(false);
  });

  it('are left out of the resolved events mapped for readAll and subscribeAll', () => {
    expect(fromResolvedEvent({ event: recorded({ streamId: '$settings', type: 'update' }) })).toBeNull();
    expect(fromResolvedEvent({ event: recorded({ type: '$>' }) })).toBeNull();
    expect(fromResolvedEvent({})).toBeNull();
    const event = recorded();
    expect(fromResolvedEvent({ event })?.id).toBe(event.id);
  });
});

describe('ledger event ids through the EventStoreDB client', () => {
  // Ledger ids are version-8 UUIDs (eventIdOf). The client's own uuid 8 validator accepts versions 1-5
  // only, and runs when a UUID arrives in its structured form: the client must carry ours as strings
  // both ways (appends set the string; reads, subscriptions and the adapter ask for the string option).
  it('sends and reads back a ledger event id as the same string', () => {
    const { createUUID, parseUUID } = require('@eventstore/db-client/dist/utils') as {
      createUUID: (id: string) => { getString(): string; hasStructured(): boolean };
      parseUUID: (uuid: unknown) => string | undefined;
    };
    for (const position of [formatPosition(1, 0), formatPosition(123_456_789, 999_999)]) {
      const id = eventIdOf(position);
      const sent = createUUID(id);
      expect(sent.hasStructured()).toBe(false);
      expect(parseUUID(sent)).toBe(id);
      const event: NewEvent = { id, type: 'TransactionRecorded', data: {}, metadata: { position, timestampMs: 0 } };
      expect(toDbEvent(event).id).toBe(id);
    }
  });
});
