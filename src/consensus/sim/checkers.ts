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
  /** The term of every index some leader committed. */
  private readonly committedTerms: number[] = [];
  /** The newest term (and vote in it) each replica has told others about. */
  private readonly announced = new Map<string, { term: number; vote: string | null }>();

  constructor(private readonly quorum: number) {}

  /** Terms that had a leader. */
  get elections(): number {
    return this.leaders.size;
  }

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
      if (replica.role === 'leader') {
        this.checkCommittedIsDurable(replica, seen, replica.committed);
        this.checkCommittedIsSafe(replica, replica.committed);
        for (let i = seen + 1; i <= replica.committed; i += 1) {
          const term = replica.logTerm(i);
          if (term === undefined) continue;
          const known = this.committedTerms[i];
          if (known !== undefined && known !== term) {
            throw new InvariantViolation('state-machine-safety', `${replica.id} committed entry ${i} of term ${term}; entry ${i} of term ${known} was committed before`);
          }
          this.committedTerms[i] = term;
        }
      }
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

  /** A replica's durable log lost entry (index, term) (overwritten, truncated, replaced by a snapshot). */
  onErase(id: string, index: number, term: number): void {
    if (this.committedTerms[index] === term || this.canonical[index]?.term === term) {
      throw new InvariantViolation('committed-is-durable', `${id} erased committed entry ${index} (term ${term}) from its durable log`);
    }
  }

  /** A message leaves a replica: what it says about the sender's term and vote must survive a crash. */
  onSend(id: string, type: string, term: number, to: string, reject: boolean): void {
    if (type === 'PreVote' || type === 'PreVoteResp') return;
    const previous = this.announced.get(id);
    const vote = type === 'VoteResp' && !reject ? to : type === 'Vote' ? id : null;
    if (!previous || term > previous.term) this.announced.set(id, { term, vote });
    else if (term === previous.term && vote !== null) this.announced.set(id, { term, vote });
  }

  /** After a crash: the durable term and vote are at least what the replica announced before it. */
  onCrash(id: string, durable: HardState): void {
    const told = this.announced.get(id);
    if (!told) return;
    if (durable.term < told.term || (durable.term === told.term && told.vote !== null && durable.vote !== told.vote)) {
      throw new InvariantViolation(
        'durable-term-vote',
        `${id} restarts with term ${durable.term} and vote ${durable.vote}, but had told others term ${told.term}${told.vote ? ` and vote ${told.vote}` : ''}`,
      );
    }
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

  /**
   * Raft's election restriction at work: no replica without a committed entry may be able to collect
   * a majority of votes (every durable log compared as a voter compares it), or it could become leader
   * and overwrite the entry. A leader committing an earlier term's entry by counting breaks this.
   */
  private checkCommittedIsSafe(leader: ReplicaView<C>, index: number): void {
    const term = leader.logTerm(index);
    if (term === undefined) return;
    const logs = this.durableLogs();
    for (const candidate of logs) {
      if (index <= candidate.offset || candidate.termAt(index) === term) continue;
      let votes = 0;
      for (const voter of logs) {
        const ours = voter.last;
        if (candidate.last.term > ours.term || (candidate.last.term === ours.term && candidate.last.index >= ours.index)) votes += 1;
      }
      if (votes >= this.quorum) {
        throw new InvariantViolation(
          'leader-completeness',
          `${leader.id} committed entry ${index} (term ${term}), yet ${candidate.id}, whose durable log lacks it (last entry ${candidate.last.index}, term ${candidate.last.term}), could win ${votes} votes`,
        );
      }
    }
  }

  /** Set by the simulator: every replica's durable log, as it would be after a crash. */
  durableLogs: () => { id: string; offset: number; last: { index: number; term: number }; termAt(index: number): number | undefined }[] = () => [];

  /** Set by the simulator: how many replicas have entry (index, term) durable (or a snapshot past it). */
  durableCounter: (index: number, term: number) => number = () => 0;
}
