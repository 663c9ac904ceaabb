import type { ConsensusStatus } from '../../consensus/command-log';
import type { ProjectionStatusReport } from '../../projections/projection-runner';
import { type Builder, ANALYSTS } from './builder';

/** LedgerStatus and ProjectionStatus; Query.ledger. */
export function registerStatus(builder: Builder): void {
  const ProjectionStatus = builder.objectRef<ProjectionStatusReport>('ProjectionStatus').implement({
    fields: (t) => ({
      name: t.exposeString('name'),
      position: t.field({ type: 'Position', nullable: true, resolve: (p) => p.position }),
      lagMs: t.exposeInt('lagMs', { nullable: true }),
    }),
  });
  const LedgerStatus = builder.objectRef<{
    consensus: ConsensusStatus;
    projections: ProjectionStatusReport[];
    stateHash: () => string | null;
    behind: { events: number; lagMs: number } | null;
  }>('LedgerStatus').implement({
    fields: (t) => ({
      nodeId: t.string({ resolve: (s) => s.consensus.nodeId }),
      role: t.string({ description: 'LEADER, FOLLOWER, CANDIDATE or STANDALONE', resolve: (s) => s.consensus.role }),
      leaderId: t.string({ nullable: true, resolve: (s) => s.consensus.leaderId }),
      term: t.int({ resolve: (s) => s.consensus.term }),
      commitIndex: t.string({ resolve: (s) => String(s.consensus.commitIndex) }),
      appliedIndex: t.string({ resolve: (s) => String(s.consensus.appliedIndex) }),
      projections: t.field({ type: [ProjectionStatus], resolve: (s) => s.projections }),
      readModelLagMs: t.int({
        nullable: true,
        description:
          'Wall-clock milliseconds since this node applied the oldest event its read models do not hold yet; 0 when they hold everything it applied. What a query without atLeast may miss, in time.',
        resolve: (s) => s.behind?.lagMs ?? null,
      }),
      readModelBacklogEvents: t.int({
        nullable: true,
        description: 'Events this node applied that its read models do not hold yet (under sustained load, new commands wait while this exceeds LEDGER_PROJECTION_BACKLOG_EVENTS_MAX).',
        resolve: (s) => s.behind?.events ?? null,
      }),
      stateHash: t.string({
        nullable: true,
        description:
          'SHA-256 of the ledger state as of appliedIndex (read in the same request): replicas at the same appliedIndex must agree. Costs one pass over the state.',
        resolve: (s) => s.stateHash(),
      }),
    }),
  });

  builder.queryFields((t) => ({
    ledger: t.field({
      type: LedgerStatus,
      authScopes: ANALYSTS,
      resolve: (_root, _args, ctx) => {
        // The hash is computed only when asked for (it costs a pass over the state). The fields resolve
        // within one run of microtasks, and entries are applied only after I/O, so it matches appliedIndex.
        const consensus = ctx.ledger.consensusStatus();
        let hash: string | null | undefined;
        const stateHash = (): string | null => (hash === undefined ? (hash = ctx.ledger.stateHash?.() ?? null) : hash);
        return { consensus, projections: ctx.ledger.projectionStatus(), stateHash, behind: ctx.ledger.readModelsBehind?.() ?? null };
      },
    }),
  }));
}
