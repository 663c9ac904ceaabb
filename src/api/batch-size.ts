import { type DocumentNode, type FieldNode, Kind, type OperationDefinitionNode, type SelectionSetNode, type ValueNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Rejection } from '../domain/errors';
import { NOT_TAKEN, coerceBatchOperations } from './batch-coercion';

/**
 * The decider's refusal of a batch of this many operations with this key on its size alone, or null
 * (LedgerNode.batchSizeRefusal).
 */
export type BatchSizeRefusal = (operationCount: number, idempotencyKey: string | undefined) => Rejection | null;

/** Set on the context by useBatchSizeBeforeCoercion: the executeBatch fields it answered or coerced, and how. */
export interface RefusedBeforeCoercion {
  refusedBatches?: Map<FieldNode, Rejection>;
  /** The operations of these fields, coerced by coerceBatchOperations (the field's own argument holds none). */
  coercedBatches?: Map<FieldNode, unknown[]>;
}

/**
 * Takes executeBatch's operations, sent as a variable, before GraphQL coerces them:
 * - refuses a batch whose operations are too many: coercing 100,000 operations held the event loop
 *   for about 1.8 s only for the decider to refuse them on their count (issue 8). The raw variable's
 *   array length is the count the decider would see (coercion turns a list into a list of the same
 *   length); the field's resolver answers the refusal, so the client gets the same payload in the
 *   shape its selection asks for;
 * - otherwise coerces them itself (coerceBatchOperations: the same result as graphql-js, ten times
 *   cheaper), or leaves them to graphql-js when they are not valid, so that every error is its own.
 * Either way the variable is handed on with no operations. Literal lists are left to coercion: the
 * token limit already keeps them short.
 */
export function useBatchSizeBeforeCoercion(refusal: BatchSizeRefusal | null): Plugin<RefusedBeforeCoercion> {
  return {
    onExecute({ args, executeFn, setExecuteFn, extendContext }) {
      const variables = args.variableValues as Record<string, unknown> | null | undefined;
      if (!variables) return;
      const operation = selectedOperation(args.document, args.operationName);
      if (!operation || operation.operation !== 'mutation') return;
      const uses = batchVariableUses(operation, args.document, variables);
      if (uses.length === 0) return;
      const outcomes = uses.map((use): { rejection: Rejection } | { operations: unknown[] } | null => {
        if (use.operations === null) return null;
        const rejection = refusal?.(use.operations.length, use.idempotencyKey) ?? null;
        if (rejection) return { rejection };
        // graphql-js's error for another field of the input would quote the emptied input: left to it whole.
        if (!use.othersValid) return null;
        const operations = coerceBatchOperations(args.schema, use.operations);
        return operations === NOT_TAKEN ? null : { operations };
      });
      // A variable may feed more than one field; it is emptied only when every field it feeds is answered or coerced here.
      const takenByVariable = new Map<string, boolean>();
      uses.forEach((use, i) => takenByVariable.set(use.variable, (takenByVariable.get(use.variable) ?? true) && outcomes[i] !== null));
      const refusedBatches = new Map<FieldNode, Rejection>();
      const coercedBatches = new Map<FieldNode, unknown[]>();
      const replaced: Record<string, unknown> = { ...variables };
      uses.forEach((use, i) => {
        const outcome = outcomes[i];
        if (!outcome || !takenByVariable.get(use.variable)) return;
        if ('rejection' in outcome) refusedBatches.set(use.field, outcome.rejection);
        else coercedBatches.set(use.field, outcome.operations);
        replaced[use.variable] = use.emptied;
      });
      if (refusedBatches.size === 0 && coercedBatches.size === 0) return;
      extendContext({ refusedBatches, coercedBatches });
      setExecuteFn((executeArgs) => executeFn({ ...executeArgs, variableValues: replaced }));
    },
  };
}

interface BatchVariableUse {
  field: FieldNode;
  /** The variable that carries the operations (the whole input, or its operations list). */
  variable: string;
  /** The raw operations; null when they are not a list (coercion has its say). */
  operations: unknown[] | null;
  idempotencyKey: string | undefined;
  /** The variable's value with no operations. */
  emptied: unknown;
  /** Whatever the variable holds besides the operations is valid (a whole input: only `operations` and a String or null `idempotencyKey`). */
  othersValid: boolean;
}

function selectedOperation(document: DocumentNode, operationName: string | null | undefined): OperationDefinitionNode | undefined {
  const operations = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
  if (operationName) return operations.find((o) => o.name?.value === operationName);
  return operations.length === 1 ? operations[0] : undefined;
}

/** The executeBatch root fields whose operations come from a variable. */
function batchVariableUses(operation: OperationDefinitionNode, document: DocumentNode, variables: Record<string, unknown>): BatchVariableUse[] {
  const uses: BatchVariableUse[] = [];
  for (const field of rootFields(operation.selectionSet, document, new Set())) {
    if (field.name.value !== 'executeBatch') continue;
    const input = field.arguments?.find((a) => a.name.value === 'input')?.value;
    if (input?.kind === Kind.VARIABLE) {
      const raw = variables[input.name.value];
      if (!isPlainObject(raw)) continue;
      const key = rawKey(raw.idempotencyKey);
      if (key === INVALID) continue;
      uses.push({ field, variable: input.name.value, operations: Array.isArray(raw.operations) ? raw.operations : null, idempotencyKey: key, emptied: { ...raw, operations: [] }, othersValid: Object.keys(raw).every((name) => name === 'operations' || name === 'idempotencyKey') });
    } else if (input?.kind === Kind.OBJECT) {
      const operations = input.fields.find((f) => f.name.value === 'operations')?.value;
      if (operations?.kind !== Kind.VARIABLE) continue;
      const raw = variables[operations.name.value];
      const key = literalKey(input.fields.find((f) => f.name.value === 'idempotencyKey')?.value, variables);
      if (key === INVALID) continue;
      uses.push({ field, variable: operations.name.value, operations: Array.isArray(raw) ? raw : null, idempotencyKey: key, emptied: [], othersValid: true });
    }
  }
  return uses;
}

/** Root fields, through inline fragments and fragment spreads. */
function rootFields(selectionSet: SelectionSetNode, document: DocumentNode, seen: Set<string>): FieldNode[] {
  const fields: FieldNode[] = [];
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) fields.push(selection);
    else if (selection.kind === Kind.INLINE_FRAGMENT) fields.push(...rootFields(selection.selectionSet, document, seen));
    else if (!seen.has(selection.name.value)) {
      seen.add(selection.name.value);
      const fragment = document.definitions.find((d) => d.kind === Kind.FRAGMENT_DEFINITION && d.name.value === selection.name.value);
      if (fragment?.kind === Kind.FRAGMENT_DEFINITION) fields.push(...rootFields(fragment.selectionSet, document, seen));
    }
  }
  return fields;
}

const INVALID = Symbol('not a String');

/** A raw idempotencyKey as the resolver will see it; a value String coercion would refuse is left to coercion. */
function rawKey(value: unknown): string | undefined | typeof INVALID {
  if (value == null) return undefined;
  return typeof value === 'string' ? value : INVALID;
}

function literalKey(value: ValueNode | undefined, variables: Record<string, unknown>): string | undefined | typeof INVALID {
  if (value === undefined || value.kind === Kind.NULL) return undefined;
  if (value.kind === Kind.STRING) return value.value;
  if (value.kind === Kind.VARIABLE) return rawKey(variables[value.name.value]);
  return INVALID;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
