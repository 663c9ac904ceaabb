import { Progress, SNAPSHOT_RESEND_HEARTBEATS } from './progress';
import { RaftInvariantError, RaftLog } from './raft-log';
import type { DurableState, Entry, HardState, Message, MessageType, ProposeResult, RaftConfig, RaftRole, Ready, Snapshot } from './types';

/**
 * A pure Raft replica in the style of etcd-io/raft (raft.go, rawnode.go). No I/O, no clock, no
 * randomness of its own: the shell calls tick(nowMs) on a timer, step(message) for every message
 * received and propose(commands, nowMs) for clients; then, while hasReady(), it takes ready(),
 * persists its entries and hard state (and snapshot), sends its messages, applies its committed
 * entries, and calls advance().
 *
 * Safety rules kept here: one vote per term, recorded before it is sent (the shell persists the Ready
 * before sending); a leader counts an entry only once it is durable on a majority, itself included,
 * and commits by counting only entries of its own term (§5.4.2); followers truncate only on conflict
 * and never below their commit index; timestamps never decrease along the log.
 */
export class RaftCore<C> {
  readonly id: string;
  term = 0;
  vote: string | null = null;
  role: RaftRole = 'follower';
  leaderId: string | null = null;
  readonly log: RaftLog<C>;
  /** Latest clock reading the shell passed in (the leader's time for new entries). */
  clockMs = 0;

  private readonly config: RaftConfig<C>;
  private readonly others: string[];
  private readonly quorum: number;
  private readonly progress = new Map<string, Progress>();
  private readonly votes = new Map<string, boolean>();
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** The election timer was shortened by peerUnreachable(); the next leader message or campaign restores it. */
  private hastened = false;
  private leadTransferee: string | null = null;
  private messages: Message<C>[] = [];
  private handedHardState: HardState;
  private snapshotToPersist: Snapshot | null = null;
  /** What the Ready in the shell's hands covers, until advance(). */
  private inProgress: { entriesThrough: number; snapshotIndex: number } | null = null;
  private readonly sizes = new WeakMap<Entry<C>, number>();

  constructor(config: RaftConfig<C>, durable?: DurableState<C>) {
    if (!config.peers.includes(config.id)) throw new Error(`peers must include this replica (${config.id})`);
    if (new Set(config.peers).size !== config.peers.length) throw new Error('peers must be distinct');
    if (config.heartbeatTicks < 1 || config.electionTicks <= config.heartbeatTicks) throw new Error('need 1 ≤ heartbeatTicks < electionTicks');
    for (const key of ['entriesPerMessageMax', 'bytesPerMessageMax', 'inflightMessagesMax', 'uncommittedEntriesMax', 'committedEntriesPerReadyMax'] as const) {
      if (!Number.isInteger(config[key]) || config[key] < 1) throw new Error(`${key} must be a positive integer`);
    }
    this.config = config;
    this.id = config.id;
    this.others = config.peers.filter((p) => p !== config.id);
    this.quorum = Math.floor(config.peers.length / 2) + 1;
    for (const peer of this.others) this.progress.set(peer, new Progress(config.inflightMessagesMax));
    const hardState = durable?.hardState ?? { term: 0, vote: null, commit: 0 };
    this.log = RaftLog.restore(durable?.snapshot ?? null, durable?.entries ?? [], hardState.commit);
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.handedHardState = { term: this.term, vote: this.vote, commit: this.log.committed };
    this.becomeFollower(this.term, null);
  }

  // ---- inputs -------------------------------------------------------------------------------

  tick(nowMs: number): void {
    this.clockMs = nowMs;
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  /**
   * Appends commands as entries of the current term, stamped with the leader's time (never before the
   * last entry's). Only a leader accepts proposals.
   */
  propose(commands: readonly C[], nowMs: number): ProposeResult {
    if (commands.length === 0) throw new Error('propose needs at least one command');
    this.clockMs = nowMs;
    if (this.role !== 'leader') return { ok: false, reason: 'not-leader', leaderId: this.leaderId };
    if (this.leadTransferee !== null) return { ok: false, reason: 'transferring', leaderId: this.leaderId };
    if (this.log.lastIndex() - this.log.committed + commands.length > this.config.uncommittedEntriesMax) {
      return { ok: false, reason: 'overloaded', leaderId: this.id };
    }
    const firstIndex = this.log.lastIndex() + 1;
    this.appendEntries(commands);
    this.broadcastAppend();
    return { ok: true, firstIndex, lastIndex: this.log.lastIndex(), term: this.term };
  }

  /**
   * The shell's hint that `peer` cannot be reached any more: its connection closed, as when its
   * process dies. A follower of that peer stops counting on it at once: its lease ends (so it grants
   * the other survivors' pre-votes) and it campaigns soon, after a delay ranked by id so that the
   * survivors do not split the vote: the r-th of the remaining members (in id order) waits
   * 2 + r·⌈electionTicks/5⌉ ticks, never longer than its timer already said. The first campaigns
   * alone; the next one's turn comes only if the first could not win (its log was behind), and two
   * ticks apart leave more than a tick, whatever the phase of the two timers, for a pre-vote round.
   * A wrong hint (a link that only blipped) costs a pre-vote that members still hearing the leader
   * refuse; safety never rests on timing.
   */
  peerUnreachable(peer: string): void {
    if (this.role !== 'follower' || this.leaderId === null || this.leaderId !== peer) return;
    this.leaderId = null;
    const rank = this.config.peers.filter((p) => p !== peer).sort().indexOf(this.id);
    const delay = 2 + rank * Math.ceil(this.config.electionTicks / 5);
    if (this.electionElapsed + delay < this.randomizedElectionTimeout) {
      this.randomizedElectionTimeout = this.electionElapsed + delay;
      this.hastened = true;
    }
  }

  /** Starts an election now (as if the election timeout had elapsed). */
  campaign(): void {
    this.hup(false);
  }

  /** Leader only: hands leadership to `to` once it is up to date (it campaigns on TimeoutNow). */
  transferLeadership(to: string): boolean {
    if (this.role !== 'leader' || to === this.id || !this.progress.has(to)) return false;
    if (this.leadTransferee === to) return true;
    this.leadTransferee = to;
    // The transfer must finish within an election timeout, or it is abandoned.
    this.electionElapsed = 0;
    const pr = this.progress.get(to)!;
    if (pr.match === this.log.lastIndex()) this.send({ type: 'TimeoutNow', to });
    else this.sendAppend(to, true);
    return true;
  }

  /** The shell made a snapshot at `index` (≤ applied) durable: entries through it can go. */
  compact(index: number, data: unknown): void {
    const term = this.log.term(index);
    const entry = this.log.entry(index);
    if (term === undefined || entry === undefined) {
      if (index <= this.log.offset) return;
      throw new RaftInvariantError(`cannot compact to ${index}: no such entry`);
    }
    this.log.compact({ index, term, timestampMs: entry.timestampMs, data });
  }

  step(m: Message<C>): void {
    if (m.to !== this.id) throw new Error(`message for ${m.to} stepped into ${this.id}`);
    if (m.from === this.id || !this.config.peers.includes(m.from)) return;
    if (m.term > this.term) {
      if (m.type === 'Vote' || m.type === 'PreVote') {
        // With check-quorum, a replica that heard from a leader within the election timeout keeps it:
        // a partitioned replica rejoining with a high term cannot depose a healthy leader.
        const inLease = this.config.checkQuorum && this.leaderId !== null && this.electionElapsed < this.config.electionTicks;
        if (inLease && !m.transfer) return;
      }
      if (m.type === 'PreVote') {
        // A pre-vote never changes our term.
      } else if (m.type === 'PreVoteResp' && !m.reject) {
        // The term is taken when the real election is won.
      } else if (m.type === 'App' || m.type === 'Heartbeat' || m.type === 'Snap') {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, null);
      }
    } else if (m.term < this.term) {
      if (m.type === 'App' && this.config.plantedBug === 'append-without-term-check') {
        this.handleAppend(m);
        return;
      }
      if ((this.config.checkQuorum || this.config.preVote) && (m.type === 'Heartbeat' || m.type === 'App')) {
        // Tell a stale leader about the newer term, or it may never step down (etcd raft.go, "m.Term < r.Term").
        this.send({ type: 'AppResp', to: m.from });
      } else if (m.type === 'PreVote') {
        this.send({ type: 'PreVoteResp', to: m.from, reject: true });
      }
      return;
    }

    if (m.type === 'Vote' || m.type === 'PreVote') {
      this.handleVote(m);
      return;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        return;
      case 'candidate':
      case 'precandidate':
        this.stepCandidate(m);
        return;
      case 'follower':
        this.stepFollower(m);
        return;
    }
  }

  // ---- outputs ------------------------------------------------------------------------------

  hasReady(): boolean {
    if (this.inProgress !== null) return false;
    return (
      this.messages.length > 0 ||
      this.log.lastIndex() > this.log.handedThrough ||
      this.snapshotToPersist !== null ||
      this.hardStateChanged() ||
      this.applicableThrough() > this.log.applied
    );
  }

  ready(): Ready<C> {
    if (this.inProgress !== null) throw new Error('ready() before advance() of the previous Ready');
    const hardState = this.hardStateChanged() ? this.hardState() : null;
    const entries = this.log.entries.slice(this.log.handedThrough - this.log.offset);
    const snapshot = this.snapshotToPersist;
    const committedThrough = this.applicableThrough();
    const committedEntries: Entry<C>[] = [];
    for (let i = this.log.applied + 1; i <= committedThrough; i += 1) committedEntries.push(this.log.entry(i)!);
    const ready: Ready<C> = {
      hardState,
      entries,
      snapshot,
      committedEntries,
      messages: this.messages,
      mustSync: entries.length > 0 || snapshot !== null || (hardState !== null && (hardState.term !== this.handedHardState.term || hardState.vote !== this.handedHardState.vote)),
    };
    this.messages = [];
    if (hardState) this.handedHardState = hardState;
    this.snapshotToPersist = null;
    this.log.handedThrough = this.log.lastIndex();
    this.log.applied = committedThrough;
    this.inProgress = { entriesThrough: this.log.handedThrough, snapshotIndex: snapshot?.index ?? 0 };
    return ready;
  }

  /** The shell has persisted, sent and applied the last Ready. */
  advance(): void {
    const done = this.inProgress;
    if (done === null) throw new Error('advance() without ready()');
    this.inProgress = null;
    // A conflict resolved since ready() may have truncated below what that Ready persisted.
    const through = Math.min(done.entriesThrough, this.log.handedThrough);
    if (through > this.log.stable) this.log.stable = through;
    if (done.snapshotIndex > this.log.stable && done.snapshotIndex <= this.log.lastIndex()) this.log.stable = Math.max(this.log.stable, done.snapshotIndex);
    if (this.role === 'leader' && this.maybeCommit()) this.broadcastAppend();
  }

  get leadTransferTarget(): string | null {
    return this.leadTransferee;
  }

  /** The leader's view of a follower (tests, status). */
  progressOf(peer: string): Readonly<Progress> | undefined {
    return this.progress.get(peer);
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  // ---- roles --------------------------------------------------------------------------------

  private reset(term: number): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = null;
    }
    this.leaderId = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizeElectionTimeout();
    this.leadTransferee = null;
    this.votes.clear();
    for (const pr of this.progress.values()) pr.reset(this.log.lastIndex() + 1);
  }

  private randomizeElectionTimeout(): void {
    this.randomizedElectionTimeout = this.config.electionTicks + Math.floor(this.config.random() * this.config.electionTicks);
    this.hastened = false;
  }

  /** A message from the leader of our term: its lease runs again, and a hastened timer is restored. */
  private heardFromLeader(leaderId: string): void {
    this.electionElapsed = 0;
    this.leaderId = leaderId;
    if (this.hastened) this.randomizeElectionTimeout();
  }

  private becomeFollower(term: number, leaderId: string | null): void {
    this.reset(term);
    this.role = 'follower';
    this.leaderId = leaderId;
  }

  private becomePreCandidate(): void {
    // Neither term nor vote changes: a pre-vote only asks whether an election could be won.
    this.role = 'precandidate';
    this.votes.clear();
    this.leaderId = null;
  }

  private becomeCandidate(): void {
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    this.reset(this.term);
    this.role = 'leader';
    this.leaderId = this.id;
    // §5.4.2: entries of earlier terms commit only through one of our own; append it at once.
    this.appendEntries([this.config.noopCommand]);
  }

  private appendEntries(commands: readonly C[]): void {
    // A new leader's clock may be behind the last leader's: time never goes back along the log.
    const timestampMs = Math.max(this.clockMs, this.log.lastTimestampMs());
    const first = this.log.lastIndex() + 1;
    this.log.append(commands.map((command, i) => ({ index: first + i, term: this.term, timestampMs, command })));
    if (this.config.peers.length === 1 || this.config.plantedBug === 'ack-before-durable') this.maybeCommit();
  }

  // ---- elections ----------------------------------------------------------------------------

  private tickElection(): void {
    this.electionElapsed += 1;
    if (this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      // A hastened campaign happens once; if it does not settle, the usual timer takes over.
      if (this.hastened) this.randomizeElectionTimeout();
      this.hup(false);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed += 1;
    this.electionElapsed += 1;
    if (this.electionElapsed >= this.config.electionTicks) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum && !this.quorumActive()) {
        this.becomeFollower(this.term, null);
        return;
      }
      // A transfer that did not finish within an election timeout is abandoned.
      this.leadTransferee = null;
    }
    if (this.heartbeatElapsed >= this.config.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      for (const peer of this.others) {
        const pr = this.progress.get(peer)!;
        this.send({ type: 'Heartbeat', to: peer, commit: Math.min(pr.match, this.log.committed) });
      }
    }
  }

  /** Counts followers heard from since the last round (and forgets them for the next one). */
  private quorumActive(): boolean {
    let active = 1;
    for (const pr of this.progress.values()) {
      if (pr.recentActive) active += 1;
      pr.recentActive = false;
    }
    return active >= this.quorum;
  }

  private hup(transfer: boolean): void {
    if (this.role === 'leader') return;
    if (this.config.preVote && !transfer) this.startCampaign('PreVote', false);
    else this.startCampaign('Vote', transfer);
  }

  private startCampaign(kind: 'PreVote' | 'Vote', transfer: boolean): void {
    let term: number;
    if (kind === 'PreVote') {
      this.becomePreCandidate();
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      term = this.term;
    }
    if (this.poll(this.id, true) === 'won') {
      if (kind === 'PreVote') this.startCampaign('Vote', false);
      else this.becomeLeaderAndAnnounce();
      return;
    }
    for (const peer of this.others) {
      this.send({ type: kind, to: peer, term, index: this.log.lastIndex(), logTerm: this.log.lastTerm(), transfer });
    }
  }

  private becomeLeaderAndAnnounce(): void {
    this.becomeLeader();
    this.broadcastAppend();
  }

  private poll(from: string, granted: boolean): 'won' | 'lost' | 'pending' {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    let yes = 0;
    let no = 0;
    for (const v of this.votes.values()) {
      if (v) yes += 1;
      else no += 1;
    }
    if (yes >= this.quorum) return 'won';
    if (no > this.config.peers.length - this.quorum) return 'lost';
    return 'pending';
  }

  private handleVote(m: Message<C>): void {
    const respType: MessageType = m.type === 'Vote' ? 'VoteResp' : 'PreVoteResp';
    // We may vote again for the one we voted for; vote for anyone if we voted for no one and know no
    // leader; and pre-vote for a future term we have not entered.
    const canVote = this.vote === m.from || (this.vote === null && this.leaderId === null) || (m.type === 'PreVote' && m.term > this.term);
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      // The vote is recorded now, in the hard state of the Ready that carries this reply.
      this.send({ type: respType, to: m.from, term: m.term, reject: false });
      if (m.type === 'Vote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, to: m.from, reject: true });
    }
  }

  // ---- per-role message handling ------------------------------------------------------------

  private stepLeader(m: Message<C>): void {
    const pr = this.progress.get(m.from);
    if (!pr) return;
    switch (m.type) {
      case 'AppResp': {
        pr.recentActive = true;
        if (m.reject) {
          let nextProbe = m.rejectHint;
          if (m.logTerm > 0) nextProbe = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
          if (pr.maybeDecrTo(m.index, nextProbe)) {
            if (pr.state === 'replicate') pr.becomeProbe();
            this.sendAppend(m.from, true);
          }
          return;
        }
        const wasPaused = pr.isPaused();
        if (!pr.maybeUpdate(m.index)) return;
        if (pr.state === 'probe') pr.becomeReplicate();
        else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) {
          pr.becomeProbe();
          pr.becomeReplicate();
        } else if (pr.state === 'replicate') pr.freeInflightThrough(m.index);
        if (this.maybeCommit()) this.broadcastAppend();
        else if (wasPaused) this.sendAppend(m.from, true);
        // Fill the pipeline up to the in-flight limit.
        while (this.sendAppend(m.from, false)) {
          // keep sending
        }
        if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.send({ type: 'TimeoutNow', to: m.from });
        return;
      }
      case 'HeartbeatResp': {
        pr.recentActive = true;
        pr.probeSent = false;
        if (pr.state === 'replicate' && pr.isPaused()) pr.freeFirstInflight();
        if (pr.state === 'snapshot') {
          pr.snapshotWaitHeartbeats += 1;
          // The snapshot (or its answer) may have been lost: probe again, which re-sends it if still needed.
          if (pr.snapshotWaitHeartbeats >= SNAPSHOT_RESEND_HEARTBEATS) pr.becomeProbe();
        }
        if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, true);
        return;
      }
      default:
        return;
    }
  }

  private stepCandidate(m: Message<C>): void {
    switch (m.type) {
      case 'App':
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        return;
      case 'Heartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case 'Snap':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case 'PreVoteResp':
      case 'VoteResp': {
        const mine = this.role === 'precandidate' ? 'PreVoteResp' : 'VoteResp';
        if (m.type !== mine) return;
        // A granted pre-vote names the term we would campaign in; an old grant for another round does not count.
        if (m.type === 'PreVoteResp' && !m.reject && m.term !== this.term + 1) return;
        const result = this.poll(m.from, !m.reject);
        if (result === 'won') {
          if (this.role === 'precandidate') this.startCampaign('Vote', false);
          else this.becomeLeaderAndAnnounce();
        } else if (result === 'lost') {
          this.becomeFollower(this.term, null);
        }
        return;
      }
      default:
        return;
    }
  }

  private stepFollower(m: Message<C>): void {
    switch (m.type) {
      case 'App':
        this.heardFromLeader(m.from);
        this.handleAppend(m);
        return;
      case 'Heartbeat':
        this.heardFromLeader(m.from);
        this.handleHeartbeat(m);
        return;
      case 'Snap':
        this.heardFromLeader(m.from);
        this.handleSnapshot(m);
        return;
      case 'TimeoutNow':
        // The leader hands over: campaign at once, without pre-vote, past the others' leases.
        this.hup(true);
        return;
      default:
        return;
    }
  }

  private handleAppend(m: Message<C>): void {
    if (m.index < this.log.committed) {
      this.send({ type: 'AppResp', to: m.from, index: this.log.committed });
      return;
    }
    if (!this.log.matchTerm(m.index, m.logTerm)) {
      // Fast backtracking (etcd raft.go handleAppendEntries): hint the last index that may match,
      // skipping every entry of a term newer than the leader's term at m.index.
      const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
      this.send({ type: 'AppResp', to: m.from, index: m.index, reject: true, rejectHint: hint.index, logTerm: hint.term });
      return;
    }
    const lastNew = m.index + m.entries.length;
    if (this.config.plantedBug === 'truncate-without-conflict') {
      // Everything after m.index goes, matching or not: a delayed, shorter App erases newer entries.
      if (m.entries.length > 0) this.log.truncateAndAppend(m.entries, true);
    } else {
      const conflict = this.log.findConflict(m.entries);
      if (conflict !== 0) {
        if (conflict <= this.log.committed) throw new RaftInvariantError(`entry ${conflict} conflicts with committed entries (commit ${this.log.committed})`);
        this.log.truncateAndAppend(m.entries.slice(conflict - m.entries[0]!.index));
      }
    }
    this.log.commitTo(Math.min(m.commit, lastNew));
    this.send({ type: 'AppResp', to: m.from, index: lastNew });
  }

  private handleHeartbeat(m: Message<C>): void {
    // The leader sends min(our match, its commit), so this never passes our log.
    this.log.commitTo(m.commit);
    this.send({ type: 'HeartbeatResp', to: m.from });
  }

  private handleSnapshot(m: Message<C>): void {
    const s = m.snapshot;
    if (s === null) return;
    if (s.index <= this.log.committed) {
      this.send({ type: 'AppResp', to: m.from, index: this.log.committed });
      return;
    }
    if (this.log.matchTerm(s.index, s.term)) {
      // We already have the entry the snapshot ends with: just move the commit index.
      this.log.commitTo(s.index);
      this.send({ type: 'AppResp', to: m.from, index: this.log.committed });
      return;
    }
    this.log.installSnapshot(s);
    this.snapshotToPersist = s;
    if (this.inProgress) this.inProgress.entriesThrough = Math.min(this.inProgress.entriesThrough, this.log.stable);
    this.send({ type: 'AppResp', to: m.from, index: this.log.lastIndex() });
  }

  // ---- replication --------------------------------------------------------------------------

  /** Commits the highest index durable on a majority, if it is of the current term (§5.4.2). */
  private maybeCommit(): boolean {
    const selfMatch = this.config.plantedBug === 'ack-before-durable' ? this.log.lastIndex() : this.log.stable;
    const matches = [selfMatch];
    for (const pr of this.progress.values()) matches.push(pr.match);
    matches.sort((a, b) => b - a);
    const candidate = matches[this.quorum - 1]!;
    if (candidate <= this.log.committed) return false;
    if (this.log.term(candidate) !== this.term && this.config.plantedBug !== 'commit-prior-term') return false;
    this.log.commitTo(candidate);
    return true;
  }

  private broadcastAppend(): void {
    for (const peer of this.others) this.sendAppend(peer, true);
  }

  /** Sends the follower what it lacks (or a snapshot); false when nothing was sent. */
  private sendAppend(to: string, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(to)!;
    if (pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) {
      // The follower needs entries we compacted: send the snapshot instead.
      const snapshot = this.log.snapshot;
      if (!snapshot) throw new RaftInvariantError(`no term for ${prevIndex} and no snapshot`);
      this.send({ type: 'Snap', to, snapshot });
      pr.becomeSnapshot(snapshot.index);
      return true;
    }
    const entries = this.log.slice(pr.next, this.config.entriesPerMessageMax, this.config.bytesPerMessageMax, (e) => this.entryBytes(e));
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({ type: 'App', to, index: prevIndex, logTerm: prevTerm, entries, commit: this.log.committed });
    pr.sentEntries(entries.length, prevIndex + entries.length);
    return true;
  }

  private entryBytes(entry: Entry<C>): number {
    let size = this.sizes.get(entry);
    if (size === undefined) {
      // index, term and timestamp as fixed-width fields, plus the command.
      size = 24 + this.config.commandBytes(entry.command);
      this.sizes.set(entry, size);
    }
    return size;
  }

  // ---- helpers ------------------------------------------------------------------------------

  private send(fields: Partial<Message<C>> & { type: MessageType; to: string }): void {
    this.messages.push({
      type: fields.type,
      from: this.id,
      to: fields.to,
      term: fields.term ?? this.term,
      logTerm: fields.logTerm ?? 0,
      index: fields.index ?? 0,
      entries: fields.entries ?? [],
      commit: fields.commit ?? 0,
      reject: fields.reject ?? false,
      rejectHint: fields.rejectHint ?? 0,
      snapshot: fields.snapshot ?? null,
      transfer: fields.transfer ?? false,
    });
  }

  private hardStateChanged(): boolean {
    const h = this.handedHardState;
    return h.term !== this.term || h.vote !== this.vote || h.commit !== this.log.committed;
  }

  /** Committed entries can be applied once handed to the shell to persist (it persists before applying). */
  private applicableThrough(): number {
    const through = Math.min(this.log.committed, this.log.lastIndex());
    return Math.min(through, this.log.applied + this.config.committedEntriesPerReadyMax);
  }
}
