import SchemaBuilder from '@pothos/core';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import type DataLoader from 'dataloader';
import { type FieldNode, GraphQLError } from 'graphql';
import type { ConsensusStatus } from '../../consensus/command-log';
import type { JsonObject, LedgerCommand } from '../../domain/commands';
import type { AccountRecord, TransactionRecord } from '../../domain/events';
import type { Rejection } from '../../domain/errors';
import type { CommandOutcome } from '../../domain/ledger';
import type { ProjectionStatusReport } from '../../projections/projection-runner';
import type { ReadModelStore } from '../../projections/read-model-store';
import type { Principal } from '../auth';

/** What the API needs from a ledger node. */
export interface LedgerApi {
  execute(command: LedgerCommand): Promise<CommandOutcome>;
  readModels: ReadModelStore;
  /** Resolves true once every read model includes `position`. */
  waitForPosition(position: string, timeoutMs: number): Promise<boolean>;
  /** Distinct `atLeast` positions one request may wait for (see ../at-least). */
  atLeastWaitsPerRequestMax?: number;
  consensusStatus(): ConsensusStatus;
  projectionStatus(): ProjectionStatusReport[];
  /** How far the read models trail what this node has applied: events, and the wall-clock age of the oldest of them (0 when caught up). */
  readModelsBehind?(): { events: number; lagMs: number };
  /** SHA-256 of this node's ledger state as of its applied index: equal on replicas at the same index. */
  stateHash?(): string;
}

export type TransactionShape = TransactionRecord & { position: string };

export interface ApiContext {
  principal: Principal;
  ledger: LedgerApi;
  loaders: {
    accounts: DataLoader<string, AccountRecord | null>;
    transactions: DataLoader<string, TransactionShape | null>;
  };
  /** executeBatch fields refused on their size before their operations were coerced (../batch-size.ts). */
  refusedBatches?: Map<FieldNode, Rejection>;
  /** executeBatch fields whose operations were coerced before GraphQL's own coercion (../batch-coercion.ts): these, not the argument's. */
  coercedBatches?: Map<FieldNode, unknown[]>;
}

export interface SchemaTypes {
  Context: ApiContext;
  AuthScopes: { teller: boolean; analyst: boolean; compliance: boolean; admin: boolean };
  Scalars: {
    Amount: { Input: string; Output: string | bigint };
    DateTime: { Input: string; Output: string };
    Position: { Input: string; Output: string };
    JSON: { Input: JsonObject; Output: JsonObject };
  };
  DefaultFieldNullability: false;
}

/** The one builder every feature file registers its types and root fields on. */
export type Builder = PothosSchemaTypes.SchemaBuilder<PothosSchemaTypes.ExtendDefaultTypes<SchemaTypes>>;

/** Who may read: every query field names one of these (admin passes every scope). */
export const READERS = { $any: { teller: true, analyst: true, compliance: true } } as const;
/** Status and analytics: analysts and compliance (and admin). */
export const ANALYSTS = { $any: { analyst: true, compliance: true } } as const;
export const TELLERS = { teller: true } as const;

export function createBuilder(): Builder {
  return new SchemaBuilder<SchemaTypes>({
    plugins: [ScopeAuthPlugin],
    defaultFieldNullability: false,
    scopeAuth: {
      authScopes: (context) => {
        const roles = new Set(context.principal.roles);
        const admin = roles.has('admin');
        return { admin, teller: admin || roles.has('teller'), analyst: admin || roles.has('analyst'), compliance: admin || roles.has('compliance') };
      },
      unauthorizedError: (_parent, context, info) =>
        new GraphQLError(`${context.principal.sub} may not read or change ${info.parentType.name}.${info.fieldName} with roles [${context.principal.roles.join(', ')}]`, {
          extensions: { code: 'FORBIDDEN' },
        }),
    },
  });
}
