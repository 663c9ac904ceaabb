import { APPEND_EVENTS_MAX, type ExpectedRevision, type NewEvent, READ_COUNT_MAX, SUBSCRIPTION_BATCH_MAX } from './event-store';

/**
 * The port's input rules, applied by every adapter so that all of them accept and refuse the same
 * appends and reads (the contract suite holds them to it).
 */

// Lowercase because EventStoreDB returns ids lowercase: an id must read back exactly as written.
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function checkAppend(streamId: string, events: NewEvent[], expected: ExpectedRevision): void {
  checkStreamId(streamId);
  if (typeof expected === 'bigint') {
    checkRevision(expected, 'expected revision');
  } else if (expected !== 'any' && expected !== 'no_stream' && expected !== 'stream_exists') {
    throw new TypeError(`invalid expected revision ${String(expected)}: expected "no_stream", "stream_exists", "any" or a bigint`);
  }
  if (!Array.isArray(events) || events.length < 1 || events.length > APPEND_EVENTS_MAX) {
    const count = Array.isArray(events) ? String(events.length) : 'no array of';
    throw new RangeError(`an append carries 1 to ${APPEND_EVENTS_MAX} events (APPEND_EVENTS_MAX), not ${count}`);
  }
  const ids = new Set<string>();
  for (const event of events) {
    if (typeof event.id !== 'string' || !UUID_PATTERN.test(event.id)) {
      throw new TypeError(`event id "${String(event.id)}" is not a lowercase UUID`);
    }
    if (ids.has(event.id)) throw new TypeError(`event id ${event.id} appears twice in one append`);
    ids.add(event.id);
    if (typeof event.type !== 'string' || event.type.length === 0) {
      throw new TypeError(`event ${event.id}: type must be a non-empty string`);
    }
    if (event.type.startsWith('$')) {
      throw new TypeError(`event ${event.id}: type "${event.type}" starts with "$", which is reserved for system events`);
    }
    // With its JSON text at hand (NewEvent.json, which must be JSON.stringify(data)) the text is
    // checked instead: the data of a serialized event may be parsed lazily, and only if read.
    if (event.json ? typeof event.json.data !== 'string' || !event.json.data.startsWith('{') : !isJsonObject(event.data)) {
      throw new TypeError(`event ${event.id}: data must be a JSON object`);
    }
    if (!isJsonObject(event.metadata) || typeof event.metadata.position !== 'string') {
      throw new TypeError(`event ${event.id}: metadata must be a JSON object with a string "position"`);
    }
  }
}

export function checkStreamId(streamId: string): void {
  if (typeof streamId !== 'string' || streamId.length === 0) throw new TypeError('a stream id must be a non-empty string');
  if (streamId.startsWith('$')) {
    throw new TypeError(`stream id "${streamId}" starts with "$", which is reserved for system streams`);
  }
}

export function checkRevision(revision: bigint, what: string): void {
  if (typeof revision !== 'bigint' || revision < 0n) throw new RangeError(`${what} must be a bigint >= 0, not ${String(revision)}`);
}

export function checkReadCount(maxCount: number | undefined): number {
  if (maxCount === undefined) return READ_COUNT_MAX;
  if (!Number.isInteger(maxCount) || maxCount < 1 || maxCount > READ_COUNT_MAX) {
    throw new RangeError(`maxCount must be an integer from 1 to ${READ_COUNT_MAX} (READ_COUNT_MAX), not ${String(maxCount)}`);
  }
  return maxCount;
}

export function checkBatchSizeMax(batchSizeMax: number | undefined, defaultSize: number): number {
  if (batchSizeMax === undefined) return defaultSize;
  if (!Number.isInteger(batchSizeMax) || batchSizeMax < 1 || batchSizeMax > SUBSCRIPTION_BATCH_MAX) {
    throw new RangeError(`batchSizeMax must be an integer from 1 to ${SUBSCRIPTION_BATCH_MAX} (SUBSCRIPTION_BATCH_MAX), not ${String(batchSizeMax)}`);
  }
  return batchSizeMax;
}

export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

