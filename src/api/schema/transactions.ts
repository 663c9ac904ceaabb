import { isPosition } from '../../domain/position';
import type { TransactionQuery } from '../../projections/read-model-store';
import { type ApiContext, type Builder, READERS, type TransactionShape } from './builder';
import { type ConnectionShape, type PageInfoRef, checkFirst, connection, decodeCursor, encodeCursor, waitForAtLeast } from './reads';

export type TransactionRefs = ReturnType<typeof registerTransactions>;

/** Transaction, its enums, filter and connection; Query.transaction and Query.transactions. */
export function registerTransactions(builder: Builder, PageInfo: PageInfoRef) {
  const TransactionKindEnum = builder.enumType('TransactionKind', { values: ['DEPOSIT', 'WITHDRAWAL', 'TRANSFER'] as const });
  const TransactionStatusEnum = builder.enumType('TransactionStatus', { values: ['PENDING', 'SETTLED', 'CANCELLED', 'EXPIRED'] as const });

  const Transaction = builder.objectRef<TransactionShape>('Transaction').implement({
    fields: (t) => ({
      id: t.exposeID('id'),
      kind: t.field({ type: TransactionKindEnum, resolve: (x) => x.kind }),
      status: t.field({ type: TransactionStatusEnum, resolve: (x) => x.status }),
      amount: t.field({ type: 'Amount', resolve: (x) => x.amount }),
      currency: t.exposeString('currency'),
      fromAccountId: t.exposeID('fromAccountId', { nullable: true }),
      toAccountId: t.exposeID('toAccountId', { nullable: true }),
      description: t.exposeString('description', { nullable: true }),
      metadata: t.field({ type: 'JSON', nullable: true, resolve: (x) => x.metadata }),
      createdAt: t.field({ type: 'DateTime', resolve: (x) => x.createdAt }),
      updatedAt: t.field({ type: 'DateTime', resolve: (x) => x.updatedAt }),
      expiresAt: t.field({ type: 'DateTime', nullable: true, description: 'When a pending hold with a timeout expires.', resolve: (x) => x.expiresAt }),
      large: t.exposeBoolean('large'),
      position: t.field({ type: 'Position', description: 'Position of the last change to this transaction.', resolve: (x) => x.position }),
    }),
  });

  const TransactionEdge = builder.objectRef<{ cursor: string; node: TransactionShape }>('TransactionEdge').implement({
    fields: (t) => ({ cursor: t.exposeString('cursor'), node: t.field({ type: Transaction, resolve: (e) => e.node }) }),
  });
  const TransactionConnection = builder.objectRef<ConnectionShape<TransactionShape>>('TransactionConnection').implement({
    fields: (t) => ({
      edges: t.field({ type: [TransactionEdge], resolve: (c) => c.edges }),
      pageInfo: t.field({ type: PageInfo, resolve: (c) => c.pageInfo }),
      totalCount: t.exposeInt('totalCount'),
    }),
  });

  const TransactionFilter = builder.inputType('TransactionFilter', {
    fields: (t) => ({
      accountId: t.id({ required: false }),
      kinds: t.field({ type: [TransactionKindEnum], required: false }),
      statuses: t.field({ type: [TransactionStatusEnum], required: false }),
      minAmount: t.field({ type: 'Amount', required: false }),
      from: t.field({ type: 'DateTime', required: false }),
      to: t.field({ type: 'DateTime', required: false }),
      large: t.boolean({ required: false }),
    }),
  });

  builder.queryFields((t) => ({
    transaction: t.field({
      type: Transaction,
      nullable: true,
      authScopes: READERS,
      args: { id: t.arg.id({ required: true }), atLeast: t.arg({ type: 'Position', required: false }) },
      resolve: async (_root, args, ctx) => {
        await waitForAtLeast(ctx, args.atLeast);
        return ctx.loaders.transactions.load(String(args.id));
      },
    }),
    transactions: t.field({
      type: TransactionConnection,
      authScopes: READERS,
      description: 'Transactions matching the filter, newest first.',
      args: {
        filter: t.arg({ type: TransactionFilter, required: false }),
        first: t.arg.int({ defaultValue: 20 }),
        after: t.arg.string({ required: false }),
        atLeast: t.arg({ type: 'Position', required: false }),
      },
      resolve: async (_root, args, ctx) => {
        await waitForAtLeast(ctx, args.atLeast);
        return findTransactions(ctx, toQuery(args.filter), args.first, args.after);
      },
    }),
  }));

  return { Transaction, TransactionConnection, TransactionFilter };
}

export function toQuery(filter: Record<string, unknown> | null | undefined): TransactionQuery {
  if (!filter) return {};
  return {
    accountId: (filter.accountId as string | null | undefined) ?? null,
    kinds: (filter.kinds as TransactionQuery['kinds']) ?? null,
    statuses: (filter.statuses as TransactionQuery['statuses']) ?? null,
    minAmount: filter.minAmount == null ? null : BigInt(filter.minAmount as string),
    from: (filter.from as string | null | undefined) ?? null,
    to: (filter.to as string | null | undefined) ?? null,
    large: (filter.large as boolean | null | undefined) ?? null,
  };
}

/** A page of transactions, newest first; the cursor is the position that created the transaction. */
export async function findTransactions(ctx: ApiContext, query: TransactionQuery, first: number | null | undefined, after: string | null | undefined) {
  const limit = checkFirst(first);
  const before = after == null ? null : decodeCursor(after, 't', isPosition);
  const page = await ctx.ledger.readModels.findTransactions(query, before, limit);
  return connection<TransactionShape>(page.docs, page.totalCount, page.hasMore, (doc) => transactionCursor(doc.createdPosition));
}

export function transactionCursor(createdPosition: string): string {
  return encodeCursor('t', createdPosition);
}
