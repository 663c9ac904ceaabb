import type { AccountRecord } from '../../domain/events';
import { type Builder, READERS } from './builder';
import { type ConnectionShape, type PageInfoRef, checkFirst, connection, decodeCursor, encodeCursor, waitForAtLeast } from './reads';
import { type TransactionRefs, findTransactions, toQuery } from './transactions';

export type AccountRefs = ReturnType<typeof registerAccounts>;

/** Account and its connection; Query.account and Query.accounts. */
export function registerAccounts(builder: Builder, PageInfo: PageInfoRef, { TransactionConnection, TransactionFilter }: TransactionRefs) {
  const Account = builder.objectRef<AccountRecord>('Account').implement({
    fields: (t) => ({
      id: t.exposeID('id'),
      currency: t.exposeString('currency'),
      balance: t.field({ type: 'Amount', description: 'Settled balance.', resolve: (a) => a.balance }),
      availableBalance: t.field({ type: 'Amount', description: 'Settled balance minus pending debits.', resolve: (a) => a.availableBalance }),
      overdraftLimit: t.field({ type: 'Amount', resolve: (a) => a.overdraftLimit }),
      createdAt: t.field({ type: 'DateTime', resolve: (a) => a.createdAt }),
      lastTransactionAt: t.field({ type: 'DateTime', nullable: true, resolve: (a) => a.lastTransactionAt }),
      transactionCount: t.exposeInt('transactionCount'),
      metadata: t.field({ type: 'JSON', nullable: true, resolve: (a) => a.metadata }),
      transactions: t.field({
        type: TransactionConnection,
        description: 'Transactions from or to this account, newest first.',
        args: {
          first: t.arg.int({ defaultValue: 20 }),
          after: t.arg.string({ required: false }),
          filter: t.arg({ type: TransactionFilter, required: false }),
        },
        resolve: (account, args, ctx) => findTransactions(ctx, { ...toQuery(args.filter), accountId: account.id }, args.first, args.after),
      }),
      balanceAt: t.field({
        type: 'Amount',
        description: 'Settled balance as it was at that instant ("0" before the account existed).',
        args: { at: t.arg({ type: 'DateTime', required: true }) },
        resolve: async (account, args, ctx) => (await ctx.ledger.readModels.balanceAt(account.id, args.at)) ?? '0',
      }),
    }),
  });

  const AccountEdge = builder.objectRef<{ cursor: string; node: AccountRecord }>('AccountEdge').implement({
    fields: (t) => ({ cursor: t.exposeString('cursor'), node: t.field({ type: Account, resolve: (e) => e.node }) }),
  });
  const AccountConnection = builder.objectRef<ConnectionShape<AccountRecord>>('AccountConnection').implement({
    fields: (t) => ({
      edges: t.field({ type: [AccountEdge], resolve: (c) => c.edges }),
      pageInfo: t.field({ type: PageInfo, resolve: (c) => c.pageInfo }),
      totalCount: t.exposeInt('totalCount'),
    }),
  });

  builder.queryFields((t) => ({
    account: t.field({
      type: Account,
      nullable: true,
      authScopes: READERS,
      args: { id: t.arg.id({ required: true }), atLeast: t.arg({ type: 'Position', required: false }) },
      resolve: async (_root, args, ctx) => {
        await waitForAtLeast(ctx, args.atLeast);
        return ctx.loaders.accounts.load(String(args.id));
      },
    }),
    accounts: t.field({
      type: AccountConnection,
      authScopes: READERS,
      description: 'Accounts by id.',
      args: { first: t.arg.int({ defaultValue: 50 }), after: t.arg.string({ required: false }) },
      resolve: async (_root, args, ctx) => {
        const first = checkFirst(args.first);
        const afterId = args.after == null ? null : decodeCursor(args.after, 'a');
        const page = await ctx.ledger.readModels.listAccounts(afterId, first);
        return connection(page.docs, page.totalCount, page.hasMore, (a) => encodeCursor('a', a.id));
      },
    }),
  }));

  return { Account };
}
