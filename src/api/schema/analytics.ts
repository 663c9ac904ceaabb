import { GraphQLError } from 'graphql';
import type { AccountRecord } from '../../domain/events';
import { type CurrencyTotalsDoc, VOLUME_BUCKETS_MAX, VOLUME_INTERVALS, type VolumeInterval, bucketStart } from '../../projections/read-model-store';
import type { AccountRefs } from './accounts';
import { ANALYSTS, type ApiContext, type Builder } from './builder';
import { checkFirst, waitForAtLeast } from './reads';
import { type TransactionRefs, findTransactions } from './transactions';

/** mostActiveAccounts(limit) at most. */
export const MOST_ACTIVE_ACCOUNTS_MAX = 100;

const CURRENCY_PATTERN = /^[A-Z]{3}$/;
const INTERVAL_MS: Record<VolumeInterval, number> = { HOUR: 3_600_000, DAY: 86_400_000 };

/** The parent of every Analytics field: one currency, its totals document read once per request. */
interface AnalyticsShape {
  currency: string;
  totals: () => Promise<CurrencyTotalsDoc | null>;
}

/**
 * Query.analytics. Every field reads a maintained aggregate or one bounded index range (costs in
 * src/projections/read-model-store.ts): nothing here counts or sums history.
 */
export function registerAnalytics(builder: Builder, { Account }: AccountRefs, { TransactionConnection }: TransactionRefs): void {
  const VolumeIntervalEnum = builder.enumType('VolumeInterval', { values: VOLUME_INTERVALS });
  const VolumeBucket = builder.objectRef<{ start: string; count: number; amount: string }>('VolumeBucket').implement({
    description: 'Settled transactions created within one UTC hour or day: how many, and their amounts summed.',
    fields: (t) => ({
      start: t.field({ type: 'DateTime', resolve: (b) => b.start }),
      count: t.exposeInt('count'),
      amount: t.field({ type: 'Amount', resolve: (b) => b.amount }),
    }),
  });
  const AccountActivity = builder.objectRef<AccountRecord>('AccountActivity').implement({
    fields: (t) => ({
      account: t.field({ type: Account, resolve: (a) => a }),
      transactionCount: t.exposeInt('transactionCount'),
    }),
  });

  const Analytics = builder.objectRef<AnalyticsShape>('Analytics').implement({
    description: 'Aggregates of one currency, from the read models (see atLeast).',
    fields: (t) => ({
      currency: t.exposeString('currency'),
      totalBalance: t.field({
        type: 'Amount',
        description: 'Sum of the settled balances of every account in this currency.',
        resolve: async (a) => (await a.totals())?.totalBalance ?? '0',
      }),
      accountCount: t.int({ description: 'Accounts opened in this currency.', resolve: async (a) => (await a.totals())?.accountCount ?? 0 }),
      transactionCount: t.int({
        description: 'Transactions recorded in this currency, whatever their status.',
        resolve: async (a) => (await a.totals())?.transactionCount ?? 0,
      }),
      volume: t.field({
        type: [VolumeBucket],
        description: `Settled volume by UTC hour or day of createdAt, ascending: every bucket holding an instant from \`from\` to \`to\` (inclusive) that has a settled transaction; empty buckets are left out. At most ${VOLUME_BUCKETS_MAX} buckets: narrow the range beyond that.`,
        args: {
          from: t.arg({ type: 'DateTime', required: false }),
          to: t.arg({ type: 'DateTime', required: false }),
          interval: t.arg({ type: VolumeIntervalEnum, defaultValue: 'DAY' }),
        },
        resolve: async (a, args, ctx) => {
          const interval = args.interval ?? 'DAY';
          const from = args.from ?? null;
          const to = args.to ?? null;
          if (from !== null && to !== null && from > to) {
            throw new GraphQLError(`volume: from (${from}) is after to (${to})`, { extensions: { code: 'BAD_USER_INPUT' } });
          }
          const fromStart = from === null ? null : bucketStart(from, interval);
          const toStart = to === null ? null : new Date(Date.parse(bucketStart(to, interval)) + INTERVAL_MS[interval]).toISOString();
          const page = await ctx.ledger.readModels.volumeBuckets(a.currency, interval, fromStart, toStart, VOLUME_BUCKETS_MAX);
          if (page.hasMore) {
            throw new GraphQLError(`volume: more than ${VOLUME_BUCKETS_MAX} ${interval} buckets in the range; narrow from/to or use DAY`, {
              extensions: { code: 'BAD_USER_INPUT' },
            });
          }
          return page.docs;
        },
      }),
      mostActiveAccounts: t.field({
        type: [AccountActivity],
        description: `Accounts of this currency with the most transactions (ties by id); limit at most ${MOST_ACTIVE_ACCOUNTS_MAX}.`,
        args: { limit: t.arg.int({ defaultValue: 10 }) },
        resolve: (a, args, ctx) => ctx.ledger.readModels.mostActiveAccounts(a.currency, checkFirst(args.limit ?? 10, 'limit', MOST_ACTIVE_ACCOUNTS_MAX)),
      }),
      largeTransactions: t.field({
        type: TransactionConnection,
        description: 'Large transactions of this currency (amount at least the compliance threshold), newest first.',
        args: { first: t.arg.int({ defaultValue: 20 }), after: t.arg.string({ required: false }) },
        resolve: (a, args, ctx) => findTransactions(ctx, { currency: a.currency, large: true }, args.first, args.after),
      }),
    }),
  });

  builder.queryFields((t) => ({
    analytics: t.field({
      type: Analytics,
      authScopes: ANALYSTS,
      description: 'Totals, volume and activity of one currency. Roles: analyst, compliance, admin.',
      args: { currency: t.arg.string({ defaultValue: 'USD' }), atLeast: t.arg({ type: 'Position', required: false }) },
      resolve: async (_root, args, ctx) => {
        const currency = args.currency ?? 'USD';
        if (!CURRENCY_PATTERN.test(currency)) {
          throw new GraphQLError(`currency must be 3 upper-case letters, got ${JSON.stringify(currency.slice(0, 20))}`, { extensions: { code: 'BAD_USER_INPUT' } });
        }
        await waitForAtLeast(ctx, args.atLeast);
        return analyticsOf(ctx, currency);
      },
    }),
  }));
}

function analyticsOf(ctx: ApiContext, currency: string): AnalyticsShape {
  let totals: Promise<CurrencyTotalsDoc | null> | null = null;
  return { currency, totals: () => (totals ??= ctx.ledger.readModels.currencyTotals(currency)) };
}
