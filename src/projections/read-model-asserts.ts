/** Checks both read-model stores make on what they are given: page limits, positions, ids, amounts. */
import { isInt64, parseAmount } from '../domain/money';
import { isPosition } from '../domain/position';
import { PAGE_SIZE_MAX, VOLUME_BUCKETS_MAX, VOLUME_INTERVALS, type VolumeInterval } from './read-model-store';

export function assertLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 0 || limit > PAGE_SIZE_MAX) {
    throw new RangeError(`page limit must be an integer from 0 to ${PAGE_SIZE_MAX}, got ${limit}`);
  }
}

export function assertPosition(value: string, what: string): void {
  if (!isPosition(value)) throw new Error(`invariant: ${what} has invalid position "${value}"`);
}

export function assertDocId(id: string, expected: string, what: string): void {
  if (id !== expected) throw new Error(`invariant: ${what} document _id "${id}" should be "${expected}"`);
}

/** A transaction touches its from and/or to account: at most two, which the stores' per-account history keys on. */
export function assertTransactionAccounts(accountIds: readonly string[], id: string): void {
  if (!Array.isArray(accountIds) || accountIds.length > 2 || accountIds.some((accountId) => typeof accountId !== 'string')) {
    throw new Error(`invariant: transaction ${id} has accountIds ${JSON.stringify(accountIds)}, expected at most two account ids (from and to)`);
  }
}

/** Exact conversion from the digit string: a float would round amounts above 2^53. */
export function int64Amount(value: string, what: string): bigint {
  const parsed = parseAmount(value);
  if (!parsed.ok) throw new Error(`invariant: ${what} ${parsed.reason}`);
  if (!isInt64(parsed.value)) throw new Error(`invariant: ${what} ${value} does not fit in a signed 64-bit integer`);
  return parsed.value;
}

export function assertVolumeQuery(interval: VolumeInterval, limit: number): void {
  if (!Number.isInteger(limit) || limit < 0 || limit > VOLUME_BUCKETS_MAX) {
    throw new RangeError(`volume bucket limit must be an integer from 0 to ${VOLUME_BUCKETS_MAX}, got ${limit}`);
  }
  if (!VOLUME_INTERVALS.includes(interval)) throw new Error(`unknown volume interval "${String(interval)}"`);
}
