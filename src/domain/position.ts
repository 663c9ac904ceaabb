/**
 * One ordering for every change: a position is the log index of the command and the event's place
 * among that command's events. Its string form is fixed-width so that string order is position order
 * (read models sort and compare it natively). Clients treat it as opaque.
 */
const INDEX_WIDTH = 16;
const EVENT_WIDTH = 6;
export const EVENTS_PER_ENTRY_MAX = 10 ** EVENT_WIDTH;
const POSITION_PATTERN = /^[0-9]{16}-[0-9]{6}$/;

export interface PositionParts {
  index: number;
  eventIndex: number;
}

export function formatPosition(index: number, eventIndex: number): string {
  if (!Number.isSafeInteger(index) || index < 0) throw new Error(`invalid log index ${index}`);
  if (!Number.isInteger(eventIndex) || eventIndex < 0 || eventIndex >= EVENTS_PER_ENTRY_MAX) {
    throw new Error(`invalid event index ${eventIndex}`);
  }
  return `${String(index).padStart(INDEX_WIDTH, '0')}-${String(eventIndex).padStart(EVENT_WIDTH, '0')}`;
}

export function isPosition(value: string): boolean {
  return POSITION_PATTERN.test(value);
}

export function parsePosition(value: string): PositionParts {
  if (!isPosition(value)) throw new Error(`invalid position "${value}"`);
  return { index: Number(value.slice(0, INDEX_WIDTH)), eventIndex: Number(value.slice(INDEX_WIDTH + 1)) };
}

/** The position before everything. */
export const POSITION_ZERO = formatPosition(0, 0);

export function comparePositions(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
