import { GraphQLError, Kind, type ValueNode, valueFromASTUntyped } from 'graphql';
import type { JsonObject } from '../domain/commands';
import { parseAmount } from '../domain/money';
import { isPosition } from '../domain/position';

/**
 * Scalar parsing for the API edge. Each parser returns the internal form or throws a GraphQLError
 * with a message that says what was wrong; graphql-js turns those into validation errors.
 */

export const METADATA_BYTES_MAX = 4096;

export function parseAmountInput(value: unknown): string {
  const parsed = parseAmount(value);
  if (!parsed.ok) throw new GraphQLError(`Amount ${parsed.reason}`);
  return parsed.value.toString();
}

export function parseAmountLiteral(ast: ValueNode): string {
  if (ast.kind === Kind.STRING) return parseAmountInput(ast.value);
  if (ast.kind === Kind.INT) {
    const asNumber = Number(ast.value);
    if (!Number.isSafeInteger(asNumber)) {
      throw new GraphQLError(`Amount as a JSON integer must be within the safe-integer range; write larger amounts as a string, got ${ast.value}`);
    }
    return parseAmountInput(asNumber);
  }
  if (ast.kind === Kind.FLOAT) {
    throw new GraphQLError(`Amount must be an integer number of minor units (no fraction or exponent), got ${ast.value}`);
  }
  throw new GraphQLError(`Amount must be a string of digits or an integer, got ${ast.kind}`);
}

export function serializeAmount(value: unknown): string {
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'string' && /^-?[0-9]+$/.test(value)) return value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  throw new GraphQLError(`cannot serialize ${String(value)} as an Amount`);
}

const ISO_DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

export function parseDateTimeInput(value: unknown): string {
  if (typeof value !== 'string' || !ISO_DATETIME.test(value)) {
    throw new GraphQLError(`DateTime must be an ISO 8601 date and time with a zone, e.g. 2026-01-31T12:00:00Z, got ${JSON.stringify(value)}`);
  }
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new GraphQLError(`DateTime ${JSON.stringify(value)} is not a valid instant`);
  return new Date(ms).toISOString();
}

export function parsePositionInput(value: unknown): string {
  if (typeof value !== 'string' || !isPosition(value)) {
    throw new GraphQLError(`Position must be a position returned by the ledger, got ${JSON.stringify(value)}`);
  }
  return value;
}

export function parseJsonObjectInput(value: unknown): JsonObject {
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
