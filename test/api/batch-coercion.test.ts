/**
 * Issue 8: executeBatch's operations are coerced without graphql-js (src/api/batch-coercion.ts).
 * What it takes it must coerce exactly as graphql-js would (the same values, keys in the same order,
 * the same defaults); what graphql-js refuses it must leave to graphql-js, so that every error stays
 * graphql-js's own. Checked against graphql-js itself on random operations, valid and not.
 */
import fc from 'fast-check';
import { type GraphQLInputObjectType, coerceInputValue, parse } from 'graphql';
import { NOT_TAKEN, coerceBatchOperations } from '../../src/api/batch-coercion';
import { useBatchSizeBeforeCoercion } from '../../src/api/batch-size';
import { InexactJsonNumber } from '../../src/api/exact-json';
import { buildSchema } from '../../src/api/schema';

const schema = buildSchema();
const operationsType = (schema.getType('BatchInput') as GraphQLInputObjectType).getFields().operations!.type;
const REFUSED = Symbol('refused by graphql-js');

function byGraphqlJs(operations: unknown): unknown {
  try {
    return coerceInputValue(operations, operationsType);
  } catch {
    return REFUSED;
  }
}

const id = fc.oneof(fc.constantFrom('acct-1', 'acct-2', 'x'), fc.string({ maxLength: 4 }));
const validAmount = fc.oneof(fc.bigInt({ min: 1n, max: 10n ** 15n }).map(String), fc.integer({ min: 1, max: 1_000_000 }));
const validMovement = {
  amount: validAmount,
  description: fc.oneof(fc.string({ maxLength: 8 }), fc.constant(null)),
  // Plain objects, as JSON.parse makes them (fast-check's may lack a prototype).
  metadata: fc.oneof(fc.constant(null), fc.dictionary(fc.string({ maxLength: 3 }), fc.oneof(fc.string({ maxLength: 3 }), fc.integer(), fc.boolean()), { maxKeys: 3 }).map((d) => ({ ...d }))),
  pending: fc.oneof(fc.boolean(), fc.constant(null)),
  holdTimeoutSeconds: fc.oneof(fc.integer({ min: 1, max: 86_400 }), fc.constant(null)),
  idempotencyKey: fc.oneof(fc.string({ maxLength: 6 }), fc.constant(null)),
};
const optional = { requiredKeys: [] as never[] };
const validOperation = fc.oneof(
  fc.record({ ...validMovement, accountId: id }, { requiredKeys: ['accountId', 'amount'] }).map((deposit) => ({ deposit: { ...deposit } })),
  fc.record({ ...validMovement, accountId: id }, { requiredKeys: ['accountId', 'amount'] }).map((withdraw) => ({ withdraw: { ...withdraw } })),
  fc.record({ ...validMovement, fromAccountId: id, toAccountId: id }, { requiredKeys: ['fromAccountId', 'toAccountId', 'amount'] }).map((transfer) => ({ transfer: { ...transfer } })),
  fc
    .record(
      { id, currency: fc.constantFrom('USD', 'EUR'), initialBalance: validAmount, overdraftLimit: validAmount, metadata: validMovement.metadata, idempotencyKey: validMovement.idempotencyKey },
      { requiredKeys: ['id'] },
    )
    .map((openAccount) => ({ openAccount: { ...openAccount } })),
);

/** Anything a client might send in a field's place, most of it wrong somewhere. */
const anyValue = fc.oneof(
  fc.constant(null),
  fc.string({ maxLength: 5 }),
  fc.constantFrom('1.5', '-3', '0', '', '007', '1e3', 'USD'),
  fc.integer(),
  fc.double(),
  fc.constantFrom(2 ** 31, -(2 ** 31) - 1, Number.MAX_SAFE_INTEGER + 2),
  fc.constantFrom(new InexactJsonNumber(1000, '1000.0'), new InexactJsonNumber(1000, '1e3')),
  fc.boolean(),
  fc.constant([]),
  fc.constant({}),
  fc.constant({ nested: 'x'.repeat(5000) }),
);
const fieldNames = fc.constantFrom('accountId', 'fromAccountId', 'toAccountId', 'id', 'amount', 'description', 'metadata', 'pending', 'holdTimeoutSeconds', 'idempotencyKey', 'currency', 'initialBalance', 'overdraftLimit', 'amount ', 'bogus');
const kindNames = fc.constantFrom('deposit', 'withdraw', 'transfer', 'openAccount', 'settle');
/** A valid operation with one field replaced, removed or added, or its kind broken. */
const damagedOperation = fc.oneof(
  fc.tuple(validOperation, fieldNames, anyValue).map(([op, field, value]) => {
    const [kind, fields] = Object.entries(op)[0]!;
    return { [kind]: { ...(fields as object), [field]: value } };
  }),
  fc.tuple(validOperation, fieldNames).map(([op, field]) => {
    const [kind, fields] = Object.entries(op)[0]!;
    const { [field]: _removed, ...rest } = fields as Record<string, unknown>;
    return { [kind]: rest };
  }),
  fc.tuple(validOperation, kindNames, fc.oneof(anyValue, validOperation.map((op) => Object.values(op)[0]))).map(([op, kind, value]) => ({ ...op, [kind]: value })),
  fc.tuple(validOperation, kindNames).map(([op, kind]) => ({ [kind]: Object.values(op)[0] })),
  anyValue,
);

describe('coerceBatchOperations', () => {
  it('coerces valid operations itself, exactly as graphql-js does (values, key order, defaults)', () => {
    fc.assert(
      fc.property(fc.array(validOperation, { minLength: 0, maxLength: 8 }), (operations) => {
        const fast = coerceBatchOperations(schema, operations);
        expect(fast).not.toBe(NOT_TAKEN);
        const expected = byGraphqlJs(operations);
        expect(fast).toStrictEqual(expected);
        expect(JSON.stringify(fast)).toBe(JSON.stringify(expected));
      }),
      { numRuns: 400 },
    );
  });

  it('takes nothing graphql-js refuses, and coerces whatever it takes as graphql-js does', () => {
    let taken = 0;
    let refused = 0;
    fc.assert(
      fc.property(fc.array(fc.oneof(validOperation, damagedOperation), { minLength: 1, maxLength: 4 }), (operations) => {
        const fast = coerceBatchOperations(schema, operations);
        const expected = byGraphqlJs(operations);
        if (expected === REFUSED) refused += 1;
        if (fast === NOT_TAKEN) return;
        taken += 1;
        expect(expected).not.toBe(REFUSED);
        expect(fast).toStrictEqual(expected);
        expect(JSON.stringify(fast)).toBe(JSON.stringify(expected));
      }),
      { numRuns: 3000 },
    );
    // The damage is real and the valid ones are taken: both sides of the property were exercised.
    expect(refused).toBeGreaterThan(500);
    expect(taken).toBeGreaterThan(200);
  });

  it('fills the defaults graphql-js fills, in the order of the type', () => {
    const fast = coerceBatchOperations(schema, [{ openAccount: { id: 'a' } }, { transfer: { amount: '5', toAccountId: 'b', fromAccountId: 'a' } }]);
    expect(fast).toEqual([
      { openAccount: { id: 'a', currency: 'USD', initialBalance: '0', overdraftLimit: '0' } },
      { transfer: { fromAccountId: 'a', toAccountId: 'b', amount: '5', pending: false } },
    ]);
    expect(Object.keys((fast as Array<{ transfer?: object }>)[1]!.transfer!)).toEqual(['fromAccountId', 'toAccountId', 'amount', 'pending']);
  });

  it.each([
    ['a single operation where a list is expected', { deposit: { accountId: 'a', amount: '1' } }],
    ['an id sent as a number', [{ deposit: { accountId: 7, amount: '1' } }]],
    ['an inexact amount', [{ deposit: { accountId: 'a', amount: new InexactJsonNumber(1, '1.0') } }]],
    ['two kinds in one operation', [{ deposit: { accountId: 'a', amount: '1' }, withdraw: { accountId: 'a', amount: '1' } }]],
    ['a null kind', [{ deposit: null }]],
    ['an unknown field', [{ deposit: { accountId: 'a', amount: '1', memo: 'x' } }]],
    ['an object without the usual prototype', [Object.assign(Object.create(null), { deposit: { accountId: 'a', amount: '1' } })]],
  ])('leaves %s to graphql-js', (_what, operations) => {
    expect(coerceBatchOperations(schema, operations)).toBe(NOT_TAKEN);
  });
});

describe('useBatchSizeBeforeCoercion', () => {
  type OnExecute = (payload: any) => void;
  function runPlugin(query: string, variableValues: Record<string, unknown>, refusal: Parameters<typeof useBatchSizeBeforeCoercion>[0] = null) {
    const plugin = useBatchSizeBeforeCoercion(refusal);
    let context: Record<string, any> = {};
    let executeArgs: any = null;
    const args = { schema, document: parse(query), variableValues, operationName: undefined };
    (plugin.onExecute as OnExecute)({
      args,
      executeFn: (a: any) => (executeArgs = a),
      setExecuteFn: (fn: (a: any) => unknown) => fn(args),
      extendContext: (extension: Record<string, unknown>) => (context = { ...context, ...extension }),
    });
    return { context, variables: executeArgs?.variableValues ?? variableValues };
  }
  const ops = [{ transfer: { fromAccountId: 'a', toAccountId: 'b', amount: '5' } }];
  const coerced = [{ transfer: { fromAccountId: 'a', toAccountId: 'b', amount: '5', pending: false } }];

  it('hands graphql-js the input without its operations and the resolver the coerced ones', () => {
    const { context, variables } = runPlugin('mutation ($input: BatchInput!) { executeBatch(input: $input) { __typename } }', { input: { operations: ops, idempotencyKey: 'k' } });
    expect(variables).toEqual({ input: { operations: [], idempotencyKey: 'k' } });
    expect([...context.coercedBatches.values()]).toEqual([coerced]);
  });

  it('does the same when only the operations are a variable', () => {
    const { context, variables } = runPlugin('mutation ($ops: [BatchOperationInput!]!) { executeBatch(input: { operations: $ops }) { __typename } }', { ops });
    expect(variables).toEqual({ ops: [] });
    expect([...context.coercedBatches.values()]).toEqual([coerced]);
  });

  it('leaves invalid operations to graphql-js untouched', () => {
    const invalid = [{ transfer: { fromAccountId: 'a', toAccountId: 'b', amount: '1.5' } }];
    const { context, variables } = runPlugin('mutation ($input: BatchInput!) { executeBatch(input: $input) { __typename } }', { input: { operations: invalid } });
    expect(variables).toEqual({ input: { operations: invalid } });
    expect(context.coercedBatches).toBeUndefined();
  });

  it('leaves an input with another field graphql-js refuses to it whole, so that its error quotes the input as sent', () => {
    const input = { operations: ops, idempotencykey: 'k' };
    const { context, variables } = runPlugin('mutation ($input: BatchInput!) { executeBatch(input: $input) { __typename } }', { input });
    expect(variables).toEqual({ input });
    expect(context.coercedBatches).toBeUndefined();
  });

  it('refuses an oversized batch without coercing it, as before', () => {
    const refusal = { code: 'VALIDATION' as const, message: 'too many' };
    const { context, variables } = runPlugin('mutation ($input: BatchInput!) { executeBatch(input: $input) { __typename } }', { input: { operations: ops } }, (count) =>
      count > 0 ? refusal : null,
    );
    expect(variables).toEqual({ input: { operations: [] } });
    expect([...context.refusedBatches.values()]).toEqual([refusal]);
    expect(context.coercedBatches.size).toBe(0);
  });
});
