import SchemaBuilder from '@pothos/core';
import { GraphQLError, type GraphQLSchema } from 'graphql';

/**
 * The ceilings' schema: the ledger's `transfer` mutation shape (TransferInput with an Amount scalar,
 * a TransferResult union of TransferSuccess and a LedgerError type) with a resolver that does no
 * I/O and decides nothing but "same account". The benchmark's transfer document is valid against
 * it unchanged, so a ceiling does the same parsing, validation and execution work per request as the
 * ledger minus the ledger itself.
 */
interface TransferSuccessShape {
  __typename: 'TransferSuccess';
  position: string;
  transaction: { id: string };
}
interface ErrorShape {
  __typename: 'ValidationError' | 'SameAccountError';
  code: string;
  message: string;
}

export function buildCeilingSchema(): GraphQLSchema {
  const builder = new SchemaBuilder<{
    Scalars: { Amount: { Input: bigint; Output: bigint } };
    DefaultFieldNullability: false;
  }>({
    defaultFieldNullability: false,
    // Required by the types only: src/ loads the scope-auth plugin, whose option types are global.
    // The ceilings do not install that plugin, so this is never read.
    scopeAuth: { authScopes: () => ({}) },
  });

  builder.scalarType('Amount', {
    serialize: (value) => String(value),
    parseValue: (value) => {
      if (typeof value === 'string' && /^-?[0-9]{1,19}$/.test(value)) return BigInt(value);
      if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value);
      throw new GraphQLError('Amount must be a whole number of minor units');
    },
  });

  const LedgerError = builder.interfaceRef<ErrorShape>('LedgerError').implement({
    fields: (t) => ({ code: t.exposeString('code'), message: t.exposeString('message') }),
  });
  const errorType = (name: ErrorShape['__typename']) =>
    builder.objectRef<ErrorShape>(name).implement({ interfaces: [LedgerError], isTypeOf: (value) => (value as ErrorShape).__typename === name });
  const ValidationError = errorType('ValidationError');
  const SameAccountError = errorType('SameAccountError');

  const Transaction = builder.objectRef<{ id: string }>('Transaction').implement({
    fields: (t) => ({ id: t.exposeID('id') }),
  });
  const TransferSuccess = builder.objectRef<TransferSuccessShape>('TransferSuccess').implement({
    isTypeOf: (value) => (value as TransferSuccessShape).__typename === 'TransferSuccess',
    fields: (t) => ({
      position: t.exposeString('position'),
      transaction: t.field({ type: Transaction, resolve: (s) => s.transaction }),
    }),
  });
  const TransferResult = builder.unionType('TransferResult', {
    types: [TransferSuccess, ValidationError, SameAccountError],
    resolveType: (value) => value.__typename,
  });
  const TransferInput = builder.inputType('TransferInput', {
    fields: (t) => ({
      fromAccountId: t.id({ required: true }),
      toAccountId: t.id({ required: true }),
      amount: t.field({ type: 'Amount', required: true }),
      description: t.string({ required: false }),
      idempotencyKey: t.string({ required: false }),
    }),
  });

  builder.queryType({ fields: (t) => ({ ok: t.boolean({ resolve: () => true }) }) });
  let transfers = 0;
  builder.mutationType({
    fields: (t) => ({
      transfer: t.field({
        type: TransferResult,
        args: { input: t.arg({ type: TransferInput, required: true }) },
        resolve: (_root, { input }): TransferSuccessShape | ErrorShape => {
          if (String(input.fromAccountId) === String(input.toAccountId)) {
            return { __typename: 'SameAccountError', code: 'SAME_ACCOUNT', message: 'a transfer needs two different accounts' };
          }
          transfers += 1;
          return { __typename: 'TransferSuccess', position: `${String(transfers).padStart(16, '0')}-000000`, transaction: { id: `tx-${transfers}` } };
        },
      }),
    }),
  });
  return builder.toSchema();
}

/** Serves `server` on PORT (127.0.0.1) and stops it on SIGTERM/SIGINT. */
export function listenFromEnvironment(server: import('node:http').Server, name: string): void {
  const port = Number(process.env.PORT ?? '0');
  server.listen(port, process.env.HOST ?? '127.0.0.1', () => {
    const address = server.address();
    console.log(`${name} listening on port ${typeof address === 'object' && address ? address.port : port}`);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
