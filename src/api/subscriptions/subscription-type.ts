import type { ObjectRef, SchemaTypes } from '@pothos/core';
import { GraphQLError } from 'graphql';
import type { AccountRecord, TransactionWithPosition } from '../../domain/events';
import type { FeedTopic } from '../../feeds/feed-hub';
import type { Principal } from '../auth';

/**
 * `type Subscription` of API.md. The fields' `subscribe` opens a feed through the connection's
 * FeedOpener (only graphql-ws connections have one, see feed-server.ts); the feed yields results
 * already executed once per event and cohort, so `resolve` just passes the event's payload through.
 */

/** What the graphql-ws server puts in each subscription's context. */
export interface FeedOpener {
  open(topic: FeedTopic, after: string | null): AsyncIterable<unknown>;
  /** The default `largeTransaction` threshold (LEDGER_LARGE_TX_THRESHOLD). */
  largeThresholdMinor: bigint;
}

export interface FeedContext {
  principal: Principal;
  feeds?: FeedOpener;
}

/** Roles that may subscribe (API.md: compliance, and admin, which may do everything). */
export const SUBSCRIBER_ROLES = ['compliance', 'admin'] as const;

export function maySubscribe(principal: Principal): boolean {
  return principal.roles.some((role) => (SUBSCRIBER_ROLES as readonly string[]).includes(role));
}

export function forbiddenToSubscribe(principal: Principal): GraphQLError {
  return new GraphQLError(
    `${principal.sub} may not subscribe with roles [${principal.roles.join(', ')}]: subscriptions need the compliance or admin role`,
    { extensions: { code: 'FORBIDDEN' } },
  );
}

function opener(ctx: FeedContext): FeedOpener {
  if (!maySubscribe(ctx.principal)) throw forbiddenToSubscribe(ctx.principal);
  if (!ctx.feeds) {
    throw new GraphQLError('subscriptions are served over the graphql-ws protocol (WebSocket) at /graphql, not over HTTP', {
      extensions: { code: 'BAD_REQUEST' },
    });
  }
  return ctx.feeds;
}

/**
 * Adds `type Subscription` to the schema builder (one call from buildSchema). The builder's own
 * type parameters live in schema.ts; this file sees it loosely typed and checks its inputs itself.
 */
export function registerSubscriptions<Types extends SchemaTypes>(
  anyBuilder: PothosSchemaTypes.SchemaBuilder<Types>,
  refs: { Account: ObjectRef<Types, AccountRecord>; Transaction: ObjectRef<Types, TransactionWithPosition> },
): void {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const builder = anyBuilder as unknown as PothosSchemaTypes.SchemaBuilder<any>;
  // The iterables yield finished results (see feed-server.ts), not payloads for graphql-js to map.
  const feed = (iterable: AsyncIterable<unknown>) => iterable as AsyncIterable<never>;
  builder.subscriptionType({
    fields: (t) => ({
      accountUpdated: t.field({
        type: refs.Account as never,
        description: 'The account after every change to it (opening, every transaction touching it, hold settle, cancel and expiry). Live only.',
        args: { accountId: t.arg.id({ required: true }) },
        subscribe: (_root: unknown, args: Record<string, unknown>, ctx: FeedContext) => feed(opener(ctx).open({ kind: 'accountUpdated', accountId: String(args.accountId) }, null)),
        resolve: (payload: unknown) => payload as AccountRecord,
      }),
      transactionPosted: t.field({
        type: refs.Transaction as never,
        description:
          'Every change to a transaction (recorded, settled, cancelled, expired), from or to `accountId` when given, in position order. With `after`: first every matching transaction changed after that position (each once, in its latest state), then live ones; no gap, no duplicate.',
        args: { accountId: t.arg.id({ required: false }), after: t.arg({ type: 'Position', required: false }) },
        subscribe: (_root: unknown, args: Record<string, unknown>, ctx: FeedContext) =>
          feed(opener(ctx).open({ kind: 'transactionPosted', accountId: args.accountId == null ? null : String(args.accountId) }, (args.after as string | null | undefined) ?? null)),
        resolve: (payload: unknown) => payload as TransactionWithPosition,
      }),
      largeTransaction: t.field({
        type: refs.Transaction as never,
        description:
          'Like transactionPosted, for transactions of at least `minAmount` minor units (default: the compliance threshold, LEDGER_LARGE_TX_THRESHOLD).',
        args: { minAmount: t.arg({ type: 'Amount', required: false }), after: t.arg({ type: 'Position', required: false }) },
        subscribe: (_root: unknown, args: Record<string, unknown>, ctx: FeedContext) => {
          const feeds = opener(ctx);
          const minAmountMinor = args.minAmount == null ? feeds.largeThresholdMinor : BigInt(args.minAmount as string);
          if (minAmountMinor < 0n) throw new GraphQLError(`minAmount must be at least 0, got ${minAmountMinor}`, { extensions: { code: 'BAD_USER_INPUT' } });
          return feed(feeds.open({ kind: 'largeTransaction', minAmountMinor }, (args.after as string | null | undefined) ?? null));
        },
        resolve: (payload: unknown) => payload as TransactionWithPosition,
      }),
    }),
  });
}
