import { GraphQLError } from 'graphql';
import { PAGE_SIZE_MAX } from '../../projections/read-model-store';
import type { ApiContext, Builder } from './builder';

/** What every read shares: `atLeast`, page sizes, cursors, Relay connections. */

export { AT_LEAST_WAIT_MS, waitForAtLeast } from '../at-least';

export interface ConnectionShape<T> {
  edges: Array<{ cursor: string; node: T }>;
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
  totalCount: number;
}

export type PageInfoRef = ReturnType<typeof registerPageInfo>;

export function registerPageInfo(builder: Builder) {
  return builder.objectRef<ConnectionShape<unknown>['pageInfo']>('PageInfo').implement({
    fields: (t) => ({
      hasNextPage: t.exposeBoolean('hasNextPage'),
      hasPreviousPage: t.exposeBoolean('hasPreviousPage'),
      startCursor: t.exposeString('startCursor', { nullable: true }),
      endCursor: t.exposeString('endCursor', { nullable: true }),
    }),
  });
}

export function checkFirst(first: number | null | undefined, name = 'first', max = PAGE_SIZE_MAX): number {
  const value = first ?? 20;
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new GraphQLError(`${name} must be between 0 and ${max}, got ${value}`, { extensions: { code: 'BAD_USER_INPUT' } });
  }
  return value;
}

export function encodeCursor(kind: string, value: string): string {
  return Buffer.from(`${kind}:${value}`, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string, kind: string, isValid: (value: string) => boolean = () => true): string {
  const decoded = Buffer.from(cursor, 'base64url').toString('utf8');
  const value = decoded.slice(kind.length + 1);
  // A cursor that decodes but carries no valid value must not reach the store (which throws: an internal error).
  if (!decoded.startsWith(`${kind}:`) || value.length === 0 || !isValid(value)) {
    throw new GraphQLError(`after is not a cursor returned by this connection: "${cursor.slice(0, 80)}"`, { extensions: { code: 'BAD_USER_INPUT' } });
  }
  return value;
}

export function connection<T>(docs: T[], totalCount: number, hasMore: boolean, cursorOf: (doc: T) => string): ConnectionShape<T> {
  const edges = docs.map((node) => ({ cursor: cursorOf(node), node }));
  return {
    edges,
    totalCount,
    pageInfo: { hasNextPage: hasMore, hasPreviousPage: false, startCursor: edges[0]?.cursor ?? null, endCursor: edges.at(-1)?.cursor ?? null },
  };
}
