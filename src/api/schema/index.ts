import type { GraphQLSchema } from 'graphql';
import { registerAccounts } from './accounts';
import { registerAnalytics } from './analytics';
import { createBuilder } from './builder';
import { registerMutations } from './mutations';
import { registerPageInfo } from './reads';
import { registerErrors, registerScalars } from './scalars-and-errors';
import { registerStatus } from './status';
import { registerTransactions } from './transactions';

export type { ApiContext, LedgerApi } from './builder';
export { AT_LEAST_WAIT_MS } from './reads';

/**
 * The served schema, one feature per file. A feature adds its root fields with
 * builder.queryFields / mutationFields (and, for live feeds, builder.subscriptionType +
 * subscriptionFields in its own file): one register call here.
 */
export function buildSchema(): GraphQLSchema {
  const builder = createBuilder();
  builder.queryType({});
  builder.mutationType({});

  registerScalars(builder);
  const errorTypes = registerErrors(builder);
  const PageInfo = registerPageInfo(builder);
  const transactions = registerTransactions(builder, PageInfo);
  const accounts = registerAccounts(builder, PageInfo, transactions);
  registerAnalytics(builder, accounts, transactions);
  registerStatus(builder);
  registerMutations(builder, errorTypes, accounts, transactions);

  return builder.toSchema({ sortSchema: false });
}
