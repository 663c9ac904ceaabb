/**
 * The command log port: every mutation goes through `propose`, which resolves with the outcome once
 * the command is durably logged (in a cluster: committed on a majority) and applied to the local
 * state machine. Implementations: SingleNodeLog now; a Raft cluster later, behind the same port.
 *
 * Nothing here assumes a single node: a proposal may be refused because this node is not the leader
 * (NotLeaderError carries the leader's id), and status reports term, role and indexes.
 */

export interface LogEntry<C> {
  /** 1-based, gap-free. */
  index: number;
  /** The leader's term when the entry was created (always 1 on a single node). */
  term: number;
  /** Leader-assigned time, never decreasing along the log; the domain's only clock. */
  timestampMs: number;
  command: C;
}

/** Deterministic: the same entries in the same order give the same results on every replica. */
export interface StateMachine<C, R> {
  readonly appliedIndex: number;
  apply(entry: LogEntry<C>): R;
  /** A JSON-serializable image of the state at `appliedIndex`. */
  snapshot(): unknown;
  restore(snapshot: unknown): void;
}

export type NodeRole = 'LEADER' | 'FOLLOWER' | 'CANDIDATE' | 'STANDALONE';

export interface ConsensusStatus {
  nodeId: string;
  role: NodeRole;
  leaderId: string | null;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  /** Index of the newest durable state-machine snapshot (0: none). */
  snapshotIndex: number;
  /**
   * In a cluster: a leader is known and this replica has applied everything it knows committed (the
   * health check's "ready"). A single node is always caught up once started.
   */
  caughtUp?: boolean;
}

export type AppliedListener<C, R> = (entry: LogEntry<C>, result: R) => void;

export interface CommandLog<C, R> {
  /** Recovers from disk (snapshot, then the log after it) and starts accepting proposals. */
  start(): Promise<void>;
  /** Resolves with the state machine's result for this command once it is durable and applied. */
  propose(command: C): Promise<R>;
  status(): ConsensusStatus;
  /** Called for every applied entry in log order, including those replayed during recovery. */
  onApplied(listener: AppliedListener<C, R>): void;
  /** True when no proposal is waiting to be made durable. */
  readonly idle: boolean;
  /**
   * Indexes up to which other components (the event publisher) have made the entries' effects
   * durable elsewhere: a snapshot, and log compaction, never go beyond it.
   */
  setDurableElsewhereIndex(index: number): void;
  /** Stops accepting proposals, finishes the ones in flight, closes files. */
  stop(): Promise<void>;
}

export class NotLeaderError extends Error {
  constructor(readonly leaderId: string | null) {
    super(leaderId ? `this node is not the leader; the leader is ${leaderId}` : 'this node is not the leader and no leader is known');
    this.name = 'NotLeaderError';
  }
}

export class LogOverloadedError extends Error {
  constructor(
    readonly queuedMax: number,
    message = `the command log has ${queuedMax} commands waiting; try again shortly`,
  ) {
    super(message);
    this.name = 'LogOverloadedError';
  }
}

export class LogStoppedError extends Error {
  constructor() {
    super('the command log is stopped');
    this.name = 'LogStoppedError';
  }
}

/** No leader was elected while the proposal waited: it was not appended anywhere. Retry shortly. */
export class NoLeaderError extends Error {
  constructor(readonly waitedMs: number) {
    super(`no leader was elected within ${waitedMs} ms (an election is under way, or too few replicas are reachable); the command was not applied, retry shortly`);
    this.name = 'NoLeaderError';
  }
}

/**
 * The command was handed to the replicated log but its fate is unknown (the leader went silent, or
 * this replica stopped, before the entry was known committed). Retry with the same idempotency key,
 * which applies it at most once.
 */
export class ReplicationOutcomeUnknownError extends Error {
  constructor(reason: string) {
    super(`${reason}: the command may or may not take effect; retry with the same idempotency key, which applies it at most once`);
    this.name = 'ReplicationOutcomeUnknownError';
  }
}
