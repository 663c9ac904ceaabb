import {
  type GraphQLInputObjectType,
  type GraphQLInputType,
  type GraphQLSchema,
  GraphQLBoolean,
  GraphQLID,
  GraphQLInt,
  GraphQLString,
  isInputObjectType,
  isListType,
  isNonNullType,
  isScalarType,
} from 'graphql';

/** What a compiled coercion returns for a value it does not take: graphql-js then coerces it, and reports what is wrong. */
export const NOT_TAKEN: unique symbol = Symbol('left to graphql-js');

type Coercion = (value: unknown) => unknown;

/**
 * The operations of an executeBatch, coerced without graphql-js: that walk cost about a tenth of the
 * node's thread under batches of 1,000 (issue 8). Returns exactly what graphql-js's coerceInputValue
 * returns for the `operations` field of BatchInput (the same objects, keys in the same order, the same
 * defaults, the scalars' own parseValue), or NOT_TAKEN for any value it would refuse and for the few
 * valid forms taken no faster here (a non-list where a list is expected, an ID sent as a number, enums):
 * those go through graphql-js unchanged, so every error is its error, word for word. Property-tested
 * against graphql-js (test/api/batch-coercion.test.ts).
 */
export function coerceBatchOperations(schema: GraphQLSchema, operations: unknown): unknown[] | typeof NOT_TAKEN {
  let coercion = operationsCoercions.get(schema);
  if (!coercion) {
    const batchInput = schema.getType('BatchInput') as GraphQLInputObjectType | undefined;
    const field = batchInput?.getFields().operations;
    if (!field) throw new Error('invariant: the schema has no BatchInput.operations');
    coercion = compileCoercion(field.type);
    operationsCoercions.set(schema, coercion);
  }
  return coercion(operations) as unknown[] | typeof NOT_TAKEN;
}

const operationsCoercions = new WeakMap<GraphQLSchema, Coercion>();

/** graphql-js's coerceInputValue for `type`, less its error reporting: NOT_TAKEN wherever it would report one. */
export function compileCoercion(type: GraphQLInputType): Coercion {
  if (isNonNullType(type)) {
    const inner = compileCoercion(type.ofType);
    return (value) => (value == null ? NOT_TAKEN : inner(value));
  }
  const nullable = compileNullable(type);
  return (value) => (value == null ? null : nullable(value));
}

function compileNullable(type: GraphQLInputType): Coercion {
  if (isListType(type)) {
    const item = compileCoercion(type.ofType);
    return (value) => {
      // graphql-js takes a single value as a list of one (and any iterable): left to it.
      if (!Array.isArray(value)) return NOT_TAKEN;
      const coerced = new Array<unknown>(value.length);
      for (let i = 0; i < value.length; i += 1) {
        const one = item(value[i]);
        if (one === NOT_TAKEN) return NOT_TAKEN;
        coerced[i] = one;
      }
      return coerced;
    };
  }
  if (isInputObjectType(type)) return compileInputObject(type);
  if (type === GraphQLString) return (value) => (typeof value === 'string' ? value : NOT_TAKEN);
  if (type === GraphQLBoolean) return (value) => (typeof value === 'boolean' ? value : NOT_TAKEN);
  // An ID sent as a JSON integer becomes its decimal string in graphql-js: left to it.
  if (type === GraphQLID) return (value) => (typeof value === 'string' ? value : NOT_TAKEN);
  if (type === GraphQLInt) return (value) => (typeof value === 'number' && Number.isInteger(value) && value <= 2147483647 && value >= -2147483648 ? value : NOT_TAKEN);
  if (isScalarType(type)) {
    // The product's own scalars (Amount, JSON, ...): their own parseValue, as graphql-js calls it.
    return (value) => {
      try {
        const parsed = type.parseValue(value);
        return parsed === undefined ? NOT_TAKEN : parsed;
      } catch {
        return NOT_TAKEN;
      }
    };
  }
  return () => NOT_TAKEN;
}

function compileInputObject(type: GraphQLInputObjectType): Coercion {
  // Compiled on first use: input types may refer to themselves.
  let fields: Array<{ name: string; coerce: Coercion; defaultValue: unknown; required: boolean }> | null = null;
  let names: Set<string> | null = null;
  const oneOf = type.isOneOf;
  return (value) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || Object.getPrototypeOf(value) !== Object.prototype) return NOT_TAKEN;
    if (!fields || !names) {
      fields = Object.values(type.getFields()).map((field) => ({
        name: field.name,
        coerce: compileCoercion(field.type),
        defaultValue: field.defaultValue,
        required: isNonNullType(field.type),
      }));
      names = new Set(fields.map((field) => field.name));
    }
    const input = value as Record<string, unknown>;
    let keys = 0;
    for (const key in input) {
      if (!names.has(key)) return NOT_TAKEN;
      keys += 1;
    }
    if (oneOf && keys !== 1) return NOT_TAKEN;
    // Keys in the type's field order, defaults where a field is absent: what graphql-js builds.
    const coerced: Record<string, unknown> = {};
    for (const field of fields) {
      const fieldValue = input[field.name];
      if (fieldValue === undefined) {
        if (field.defaultValue !== undefined) coerced[field.name] = field.defaultValue;
        else if (field.required) return NOT_TAKEN;
        continue;
      }
      const one = field.coerce(fieldValue);
      if (one === NOT_TAKEN || (oneOf && one === null)) return NOT_TAKEN;
      coerced[field.name] = one;
    }
    return coerced;
  };
}
