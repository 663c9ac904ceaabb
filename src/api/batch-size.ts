import { type DocumentNode, type FieldNode, Kind, type OperationDefinitionNode, type SelectionSetNode, type ValueNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Rejection } from '../domain/errors';

/**
 * The decider's refusal of a batch of this many operations with this key on its size alone, or null
 * (LedgerNode.batchSizeRefusal).
 */
export type BatchSizeRefusal = (operationCount: number, idempotencyKey: string | undefined) => Rejection | null;

/** Set on the context by useBatchSizeBeforeCoercion: the executeBatch fields it answered, and how. */
export interface RefusedBeforeCoercion {
  refusedBatches?: Map<FieldNode, Rejection>;
}

/**
 * Refuses an executeBatch whose operations, sent as a variable, are too many before GraphQL
 * coerces them: coercing 100,000 operations held the event loop for about 1.8 s only for the
 * decider to refuse them on their count (issue 8). The raw variable's array length is the count the
 * decider would see (coercion turns a list into a list of the same length). The variable is handed
 * on as an empty list and the field's resolver answers the refusal, so the client gets the same
 * payload in the shape its selection asks for. Literal lists are left to coercion: the token
 * limit already keeps them short.
 */
export function useBatchSizeBeforeCoercion(refusal: BatchSizeRefusal): Plugin<RefusedBeforeCoercion> {
  return {
    onExecute({ args, executeFn, setExecuteFn, extendContext }) {
      const variables = args.variableValues as Record<string, unknown> | null | undefined;
      if (!variables) return;
      const operation = selectedOperation(args.document, args.operationName);
      if (!operation || operation.operation !== 'mutation') return;
      const uses = batchVariableUses(operation, args.document, variables);
      if (uses.length === 0) return;
      // A variable may feed more than one field; it is emptied only when every field it feeds is refused.
      const refusedByVariable = new Map<string, boolean>();
      const refusals = uses.map((use) => {
        const rejection = use.operationCount === null ? null : refusal(use.operationCount, use.idempotencyKey);
        refusedByVariable.set(use.variable, (refusedByVariable.get(use.variable) ?? true) && rejection !== null);
        return rejection;
      });
      const refusedBatches = new Map<FieldNode, Rejection>();
      const replaced: Record<string, unknown> = { ...variables };
      uses.forEach((use, i) => {
        if (!refusedByVariable.get(use.variable)) return;
        refusedBatches.set(use.field, refusals[i]!);
        replaced[use.variable] = use.emptied;
      });
      if (refusedBatches.size === 0) return;
      extendContext({ refusedBatches });
      setExecuteFn((executeArgs) => executeFn({ ...executeArgs, variableValues: replaced }));
    },
  };
}

interface BatchVariableUse {
  field: FieldNode;
  /** The variable that carries the operations (the whole input, or its operations list). */
  variable: string;
  /** The raw operations' count; null when they are not a list (coercion has its say). */
  operationCount: number | null;
  idempotencyKey: string | undefined;
  /** The variable's value with no operations. */
  emptied: unknown;
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
      uses.push({ field, variable: input.name.value, operationCount: Array.isArray(raw.operations) ? raw.operations.length : null, idempotencyKey: key, emptied: { ...raw, operations: [] } });
    } else if (input?.kind === Kind.OBJECT) {
      const operations = input.fields.find((f) => f.name.value === 'operations')?.value;
      if (operations?.kind !== Kind.VARIABLE) continue;
      const raw = variables[operations.name.value];
      const key = literalKey(input.fields.find((f) => f.name.value === 'idempotencyKey')?.value, variables);
      if (key === INVALID) continue;
      uses.push({ field, variable: operations.name.value, operationCount: Array.isArray(raw) ? raw.length : null, idempotencyKey: key, emptied: [] });
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
