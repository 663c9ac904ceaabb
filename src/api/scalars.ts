import { GraphQLError, Kind, type ValueNode, valueFromASTUntyped } from 'graphql';
import type { JsonObject } from '../domain/commands';
import { parseAmount } from '../domain/money';
import { isPosition } from '../domain/position';
import { InexactJsonNumber, exactJsonValue } from './exact-json';

/**
 * Scalar parsing for the API edge. Each parser returns the internal form or throws a GraphQLError
 * with a message that says what was wrong; graphql-js turns those into validation errors.
 */

export const METADATA_BYTES_MAX = 4096;

/**
 * Test-only switches that put a known bug back, so that a test can show the HTTP fuzzer finds it.
 * Nothing outside test/ sets them.
 */
export const plantedBugsForTests = { amountAcceptsFloats: false };

export function parseAmountInput(value: unknown): string {
  // A variable's number not written as a safe integer: judged by its source text, like a literal.
  if (value instanceof InexactJsonNumber) {
    if (plantedBugsForTests.amountAcceptsFloats) return parseAmountInput(Math.trunc(value.value));
    return parseAmountNumberText(value.source, true);
  }
  const parsed = parseAmount(value);
  if (!parsed.ok) throw new GraphQLError(`Amount ${parsed.reason}`);
  return parsed.value.toString();
}

export function parseAmountLiteral(ast: ValueNode): string {
  if (ast.kind === Kind.STRING) return parseAmountInput(ast.value);
  if (ast.kind === Kind.INT || ast.kind === Kind.FLOAT) return parseAmountNumberText(ast.value, ast.kind === Kind.INT);
  throw new GraphQLError(`Amount must be a string of digits or an integer, got ${ast.kind}`);
}

const INTEGER_TEXT = /^-?(0|[1-9][0-9]*)$/;

/** An amount written as a number, inline or in variables, judged by what was written. */
function parseAmountNumberText(text: string, integerToken: boolean): string {
  if (!integerToken || !INTEGER_TEXT.test(text)) {
    throw new GraphQLError(`Amount must be an integer number of minor units (no fraction or exponent), got ${truncate(text)}`);
  }
  const asNumber = Number(text);
  if (!Number.isSafeInteger(asNumber)) {
    throw new GraphQLError(`Amount as a JSON integer must be within the safe-integer range; write larger amounts as a string, got ${truncate(text)}`);
  }
  return parseAmountInput(asNumber);
}

function truncate(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

export function serializeAmount(value: unknown): string {
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'string' && /^-?[0-9]+$/.test(value)) return value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  throw new GraphQLError(`cannot serialize ${String(value)} as an Amount`);
}

const ISO_DATETIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|([+-])(\d{2}):(\d{2}))$/;

/**
 * An ISO 8601 date and time with a zone, strictly: the calendar fields written must be the ones the
 * instant has (Date.parse would turn 2026-02-31 into 2026-03-03), and the zone offset must be a real one.
 */
export function parseDateTimeInput(value: unknown): string {
  const match = typeof value === 'string' ? ISO_DATETIME.exec(value) : null;
  if (!match) {
    throw new GraphQLError(`DateTime must be an ISO 8601 date and time with a zone, e.g. 2026-01-31T12:00:00Z, got ${JSON.stringify(typeof value === 'string' ? truncate(value) : value)}`);
  }
  const [, year, month, day, hour, minute, second = '00', fraction = '', zone, sign, offsetHours, offsetMinutes] = match;
  const written = `${year}-${month}-${day}T${hour}:${minute}:${second}`;
  const local = new Date(0);
  local.setUTCFullYear(Number(year), Number(month) - 1, Number(day));
  local.setUTCHours(Number(hour), Number(minute), Number(second));
  if (local.toISOString().slice(0, 19) !== written) {
    throw new GraphQLError(`DateTime ${JSON.stringify(value)} names no real date and time (${written} would be read as ${local.toISOString().slice(0, 19)})`);
  }
  let offsetMs = 0;
  if (zone !== 'Z') {
    if (Number(offsetHours) > 23 || Number(offsetMinutes) > 59) throw new GraphQLError(`DateTime ${JSON.stringify(value)} has no real zone offset (${zone})`);
    offsetMs = (sign === '-' ? -1 : 1) * (Number(offsetHours) * 60 + Number(offsetMinutes)) * 60_000;
  }
  const ms = local.getTime() + Math.floor(Number(`0${fraction || '.0'}`) * 1000) - offsetMs;
  const instant = new Date(ms);
  if (Number.isNaN(ms) || instant.getUTCFullYear() > 9999 || instant.getUTCFullYear() < 0) {
    throw new GraphQLError(`DateTime ${JSON.stringify(value)} is outside the years 0000 to 9999 in UTC`);
  }
  return instant.toISOString();
}

export function parsePositionInput(value: unknown): string {
  if (typeof value !== 'string' || !isPosition(value)) {
    throw new GraphQLError(`Position must be a position returned by the ledger, got ${JSON.stringify(value)}`);
  }
  return value;
}

export function parseJsonObjectInput(input: unknown): JsonObject {
  const value = exactJsonValue(input);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new GraphQLError('JSON metadata must be a JSON object');
  const bytes = Buffer.byteLength(JSON.stringify(value), 'utf8');
  if (bytes > METADATA_BYTES_MAX) throw new GraphQLError(`JSON metadata must be at most ${METADATA_BYTES_MAX} bytes serialized, got ${bytes}`);
  return value as JsonObject;
}

export function parseJsonObjectLiteral(ast: ValueNode, variables?: Record<string, unknown> | null): JsonObject {
  return parseJsonObjectInput(valueFromASTUntyped(ast, variables ?? undefined));
}

export function literalString(ast: ValueNode, scalar: string): string {
  if (ast.kind !== Kind.STRING) throw new GraphQLError(`${scalar} must be a string`);
  return ast.value;
}
