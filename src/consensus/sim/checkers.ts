import type { Entry, HardState } from '../raft/types';

/** A broken invariant found by the simulator: the run stops and reports it with its seed. */
export class InvariantViolation extends Error {
  constructor(
    readonly invariant: Invariant,
    detail: string,
  ) {
    super(`${invariant}: ${detail}`);
    this.name = 'InvariantViolation';
  }
}

export type Invariant =
  | 'election-safety'
  | 'log-matching'
  | 'leader-completeness'
  | 'state-machine-safety'
  | 'commit-monotonic'
  | 'committed-is-durable'
  | 'durable-term-vote'
  | 'timestamps-non-decreasing'
  | 'core-assertion'
  | 'liveness'
  | 'same-state'
  | 'money-conserved'
  | 'balance-within-limit'
  | 'acknowledged-exactly-once'
  | 'linearizability';

/** What the checkers need to see of one replica. */
export interface ReplicaView<C> {
  id: string;
  role: string;
  term: number;
  committed: number;
  lastIndex: number;
  entry(index: number): Entry<C> | undefined;
  /** The log's term at `index` (snapshot included), undefined when compacted or beyond. */
  logTerm(index: number): number | undefined;
  /** Index covered by the in-memory snapshot. */
  offset: number;
  durableTerm(index: number): number | undefined;
}

function sameEntry<C>(a: Entry<C>, b: Entry<C>): boolean {
  return a === b || (a.index === b.index && a.term === b.term && a.timestampMs === b.timestampMs && a.command === b.command);
}

/**
 * The Raft invariants (paper Fig. 3; etcd-io/raft tla/etcdraft.tla), checked continuously against a
 * global view no replica has: the leader of every term, every entry ever created by (index, term),
 * and the one canonical committed log.
 */
export class SafetyChecker<C> {
  private readonly leaders = new Map<number, string>();
  /** Every entry seen, by `${index}/${term}`, with the term of the entry before it when it was created. */
  private readonly entries = new Map<string, { entry: Entry<C>; prevTerm: number | undefined }>();
  /** The committed log as applied by anyone: index → entry. */
  readonly canonical: Entry<C>[] = [];
  private readonly commitSeen = new Map<string, number>();
  private readonly durableHardState = new Map<string, HardState>();

  constructor(private readonly quorum: number) {}

  /** Entries a replica is about to persist (from its Ready), checked against every entry ever seen. */
  onAppend(replica: ReplicaView<C>, appended: readonly Entry<C>[]): void {
    for (const entry of appended) {
      const key = `${entry.index}/${entry.term}`;
      const prevTerm = replica.logTerm(entry.index - 1);
      const known = this.entries.get(key);
      if (!known) {
        this.entries.set(key, { entry, prevTerm });
        continue;
      }
      if (!sameEntry(known.entry, entry)) {
        throw new InvariantViolation('log-matching', `${replica.id} holds a different entry ${key} than was created`);
      }
      if (prevTerm !== undefined && known.prevTerm !== undefined && prevTerm !== known.prevTerm) {
        throw new InvariantViolation('log-matching', `${replica.id} has entry ${key} after an entry of term ${prevTerm}; it was created after term ${known.prevTerm}`);
      }
    }
  }

  /** After every event at a replica. */
  afterStep(replica: ReplicaView<C>): void {
    if (replica.role === 'leader') {
      const leader = this.leaders.get(replica.term);
      if (leader === undefined) {
        this.leaders.set(replica.term, replica.id);
        this.checkLeaderCompleteness(replica);
      } else if (leader !== replica.id) {
        throw new InvariantViolation('election-safety', `${leader} and ${replica.id} are both leaders of term ${replica.term}`);
      }
    }
    const seen = this.commitSeen.get(replica.id) ?? 0;
    if (replica.committed < seen) {
      throw new InvariantViolation('commit-monotonic', `${replica.id}'s commit index went back from ${seen} to ${replica.committed}`);
    }
    if (replica.committed > seen) {
      this.commitSeen.set(replica.id, replica.committed);
      if (replica.role === 'leader') this.checkCommittedIsDurable(replica, seen, replica.committed);
    }
  }

  /** A restarted replica starts a new life: its in-memory commit index restarts from the durable one. */
  onRestart(id: string, committed: number): void {
    this.commitSeen.set(id, committed);
  }

  /** Every durable hard state, in order, across restarts. */
  onDurableHardState(id: string, next: HardState): void {
    const previous = this.durableHardState.get(id);
    if (previous) {
      if (next.term < previous.term) throw new InvariantViolation('durable-term-vote', `${id}'s durable term went back from ${previous.term} to ${next.term}`);
      if (next.term === previous.term && previous.vote !== null && next.vote !== previous.vote) {
        throw new InvariantViolation('durable-term-vote', `${id} changed its durable vote in term ${next.term} from ${previous.vote} to ${next.vote}`);
      }
      if (next.commit < previous.commit) throw new InvariantViolation('commit-monotonic', `${id}'s durable commit went back from ${previous.commit} to ${next.commit}`);
    }
    this.durableHardState.set(id, next);
  }

  /** A replica applies a committed entry: it must be the one everybody else applied at that index. */
  onApply(replica: ReplicaView<C>, entry: Entry<C>): void {
    const known = this.canonical[entry.index];
    if (known === undefined) {
      const previous = this.canonical[entry.index - 1];
      if (previous && previous.timestampMs > entry.timestampMs) {
        throw new InvariantViolation('timestamps-non-decreasing', `entry ${entry.index} has time ${entry.timestampMs}, before entry ${entry.index - 1}'s ${previous.timestampMs}`);
      }
      const next = this.canonical[entry.index + 1];
      if (next && entry.timestampMs > next.timestampMs) {
        throw new InvariantViolation('timestamps-non-decreasing', `entry ${entry.index} has time ${entry.timestampMs}, after entry ${entry.index + 1}'s ${next.timestampMs}`);
      }
      this.canonical[entry.index] = entry;
      return;
    }
    if (!sameEntry(known, entry)) {
      throw new InvariantViolation(
        'state-machine-safety',
        `${replica.id} applied entry ${entry.index} of term ${entry.term}, but entry ${entry.index} of term ${known.term} was applied elsewhere`,
      );
    }
  }

  /** Leader completeness (§5.4): a new leader's log holds every committed entry. */
  private checkLeaderCompleteness(replica: ReplicaView<C>): void {
    for (let i = replica.offset + 1; i < this.canonical.length; i += 1) {
      const committed = this.canonical[i];
      if (committed === undefined) continue;
      const own = replica.entry(i);
      if (own === undefined || !sameEntry(own, committed)) {
        throw new InvariantViolation('leader-completeness', `${replica.id} became leader of term ${replica.term} without committed entry ${i} (term ${committed.term})`);
      }
    }
    const atOffset = this.canonical[replica.offset];
    if (replica.offset > 0 && atOffset && replica.logTerm(replica.offset) !== atOffset.term) {
      throw new InvariantViolation('leader-completeness', `${replica.id}'s snapshot at ${replica.offset} is not of committed term ${atOffset.term}`);
    }
  }

  /** etcd's CommittedIsDurableInv: what a leader commits is durable on a majority. */
  private checkCommittedIsDurable(leader: ReplicaView<C>, from: number, through: number): void {
    for (let i = from + 1; i <= through; i += 1) {
      const term = leader.logTerm(i);
      if (term === undefined) continue;
      const durable = this.durableCounter(i, term);
      if (durable < this.quorum) {
        throw new InvariantViolation('committed-is-durable', `${leader.id} committed entry ${i} (term ${term}) while only ${durable} replicas have it durable`);
      }
    }
  }

  /** Set by the simulator: how many replicas have entry (index, term) durable (or a snapshot past it). */
  durableCounter: (index: number, term: number) => number = () => 0;
}
