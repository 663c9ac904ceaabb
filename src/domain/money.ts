/**
 * Money is an exact integer number of minor units. On the wire and in commands/events it is a
 * string of decimal digits with an optional leading '-'; inside the decider it is a bigint.
 */
export const AMOUNT_DIGITS_MAX = 19;

/** Balances and limits must stay representable as a signed 64-bit integer (MongoDB Long, SQL BIGINT). */
export const INT64_MAX = 9223372036854775807n;
export const INT64_MIN = -9223372036854775808n;

const AMOUNT_PATTERN = /^-?[0-9]+$/;

export type AmountParse = { ok: true; value: bigint } | { ok: false; reason: string };

/** Parses the wire form of an amount: digits with optional '-', or a safe JSON integer. */
export function parseAmount(input: unknown): AmountParse {
  if (typeof input === 'number') {
    if (!Number.isSafeInteger(input)) {
      return { ok: false, reason: `must be an integer number of minor units within the safe-integer range, got ${input}` };
    }
    return { ok: true, value: BigInt(input) };
  }
  if (typeof input === 'bigint') return { ok: true, value: input };
  if (typeof input !== 'string') return { ok: false, reason: `must be a string of digits or an integer, got ${typeof input}` };
  if (input.length === 0) return { ok: false, reason: 'must not be empty' };
  if (!AMOUNT_PATTERN.test(input)) {
    return { ok: false, reason: `must be an integer number of minor units written as digits with an optional leading '-', got "${truncate(input)}"` };
  }
  const digits = input.startsWith('-') ? input.length - 1 : input.length;
  if (digits > AMOUNT_DIGITS_MAX) return { ok: false, reason: `must have at most ${AMOUNT_DIGITS_MAX} digits, got ${digits}` };
  return { ok: true, value: BigInt(input) };
}

export function formatAmount(value: bigint): string {
  return value.toString(10);
}

export function isInt64(value: bigint): boolean {
  return value >= INT64_MIN && value <= INT64_MAX;
}

function truncate(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}
