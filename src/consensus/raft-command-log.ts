import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  type AppliedListener,
  type CommandLog,
  type ConsensusStatus,
  LogOverloadedError,
  LogStoppedError,
  NoLeaderError,
  type NodeRole,
  ReplicationOutcomeUnknownError,
  type StateMachine,
} from './command-log';
import { HardStateFile } from './hard-state-file';
import { GROUP_BYTES_MAX, LogStorage, makeDurableDir } from './log-storage';
import { RaftCore } from './raft/raft';
import type { Entry, HardState, Message, Ready, Snapshot } from './raft/types';
import { SnapshotStore } from './snapshot-store';
import type { ClusterTransport } from './transport/transport';

/**
 * The replicated command log: the pure Raft core (src/consensus/raft/raft.ts) in a process, behind
 * the same CommandLog port as the single-node log. This shell owns every side effect, in the order
 * etcd's contract asks: for each Ready, persist the snapshot, the entries (cutting a conflicting
 * suffix first) and the hard state, fsync, and only then send the messages that depend on them;
 * then apply the committed entries and advance. One Ready carries every proposal that arrived while
 * the previous one was on its way to the disk: one fdatasync per group.
 *
 * A proposal made on a follower is forwarded to the leader and answered with the leader's result.
 * While no leader is known it waits (bounded) and is then refused with NoLeaderError; a command
 * that the leader appended but whose entry was replaced by another leader's is known not to have
 * happened and is routed again. Only when the answer cannot be known (the leader went silent) is
 * it ReplicationOutcomeUnknownError: retry with the same idempotency key, which applies it once.
 */

export interface RaftCommandLogOptions {
  /** Directory of this replica's log segments, hard state and snapshots. */
  dir: string;
  nodeId: string;
  /** Every voter, this replica included. */
  peers: readonly string[];
  transport: ClusterTransport;
  /** One Raft tick; elections and heartbeats are counted in ticks. */
  tickMs?: number;
  electionTicks?: number;
  heartbeatTicks?: number;
  /** Take a state-machine snapshot after this many applied entries. */
  snapshotEveryEntries?: number;
  /** Proposals waiting to be appended beyond this are refused with LogOverloadedError. */
  queuedMax?: number;
  /** A proposal appended (or forwarded) but not answered within this is ReplicationOutcomeUnknownError. */
  proposalTimeoutMs?: number;
  /** How long a proposal waits for a leader to be elected before NoLeaderError. */
  leaderWaitMs?: number;
  /** Randomizes election timeouts (not the domain: entries carry the leader's time and nothing random). */
  random?: () => number;
  clock?: () => number;
  /**
   * An index known to be committed from elsewhere (entries applied into a store that survived a
   * power loss the hard state's commit did not): recovery applies at least this far.
   */
  committedAtLeast?: () => number;
  onFatal?: (error: Error) => void;
  onError?: (where: string, error: Error) => void;
  /** Largest snapshot body written. */
  snapshotBytesMax?: number;
}

/** What travels between replicas, as JSON in one transport payload. */
type Wire<C, R> =
  | { t: 'raft'; m: Message<C> }
  | { t: 'forward'; id: number; command: C }
  | { t: 'result'; id: number; result: R }
  | { t: 'refused'; id: number; reason: RefusalReason; message: string; leaderId: string | null };

/** not-leader: nothing was appended, route again. overloaded, stopped: refused as such. unknown: may have happened. */
type RefusalReason = 'not-leader' | 'overloaded' | 'stopped' | 'unknown';

interface Proposal<C, R> {
  command: C;
  resolve: (result: R) => void;
  reject: (error: Error) => void;
  /** Past this, a proposal still looking for a leader is refused with NoLeaderError. */
  leaderDeadlineMs: number;
}

interface Appended<C, R> {
  proposal: Proposal<C, R>;
  term: number;
  timer: NodeJS.Timeout;
}

interface SnapshotImage {
  term: number;
  timestampMs: number;
  machine: unknown;
}

const ROLE: Record<RaftCore<unknown>['role'], NodeRole> = {
  leader: 'LEADER',
  follower: 'FOLLOWER',
  candidate: 'CANDIDATE',
  precandidate: 'CANDIDATE',
};

export class RaftCommandLog<C, R> implements CommandLog<C, R> {
  private core: RaftCore<C> | null = null;
  private storage: LogStorage<C> | null = null;
  private hardStateFile: HardStateFile | null = null;
  private readonly snapshots: SnapshotStore;
  private readonly listeners: AppliedListener<C, R>[] = [];
  private state: 'new' | 'running' | 'stopped' | 'failed' = 'new';
  private tickTimer: NodeJS.Timeout | null = null;
  private flushScheduled = false;
  private pumping: Promise<void> | null = null;
  private pumpAgain = false;
  /** Proposals to append on this leader at the next flush. */
  private queue: Proposal<C, R>[] = [];
  /** Proposals waiting for a leader to be known. */
  private waitingForLeader: Proposal<C, R>[] = [];
  private readonly appended = new Map<number, Appended<C, R>>();
  private readonly forwarded = new Map<number, { proposal: Proposal<C, R>; timer: NodeJS.Timeout; leader: string }>();
  private forwardSeq = 0;
  private persistedTerm = 0;
  private persistedVote: string | null = null;
  private snapshotIndex = 0;
  /** The snapshot before the newest one: the in-memory log and the segments are compacted only through it. */
  private previousSnapshot: Snapshot | null = null;
  private snapshotWriting: Promise<void> | null = null;
  private durableElsewhereIndex = 0;
  /** The highest commit index a leader told us (its App messages carry its whole commit index). */
  private leaderCommitSeen = 0;
  private readonly clock: () => number;
  private readonly tickMs: number;
  private readonly snapshotEveryEntries: number;
  private readonly queuedMax: number;
  private readonly proposalTimeoutMs: number;
  private readonly leaderWaitMs: number;

  constructor(
    private readonly machine: StateMachine<C, R>,
    private readonly options: RaftCommandLogOptions,
  ) {
    if (!options.peers.includes(options.nodeId)) throw new Error(`the peers (${options.peers.join(', ')}) must include this node (${options.nodeId})`);
    this.snapshots = new SnapshotStore(join(options.dir, 'snapshots'), { bytesMax: options.snapshotBytesMax });
    this.clock = options.clock ?? Date.now;
    this.tickMs = options.tickMs ?? 50;
    this.snapshotEveryEntries = options.snapshotEveryEntries ?? 20_000;
    this.queuedMax = options.queuedMax ?? 20_000;
    this.proposalTimeoutMs = options.proposalTimeoutMs ?? 10_000;
    this.leaderWaitMs = options.leaderWaitMs ?? 5_000;
  }

  onApplied(listener: AppliedListener<C, R>): void {
    this.listeners.push(listener);
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('the command log was already started');
    makeDurableDir(this.options.dir);
    const logDir = join(this.options.dir, 'log');
    // A snapshot install that crashed after swapping the log directory leaves the old one behind.
    rmSync(`${logDir}.old`, { recursive: true, force: true });
    const stored = this.snapshots.loadLatest();
    let snapshot: Snapshot | null = null;
    if (stored) {
      const image = stored.state as SnapshotImage;
      this.machine.restore(image.machine);
      if (this.machine.appliedIndex !== stored.index) throw new Error(`snapshot ${stored.index} restored the machine to ${this.machine.appliedIndex}`);
      snapshot = { index: stored.index, term: image.term, timestampMs: image.timestampMs, data: image.machine };
      this.snapshotIndex = stored.index;
      this.durableElsewhereIndex = stored.index;
    }
    const { storage, recovery } = await LogStorage.open<C>(logDir, this.snapshotIndex);
    this.storage = storage;
    let entries = recovery.entries;
    if (snapshot && recovery.lastStoredIndex < snapshot.index) {
      // A snapshot from the leader was made durable, but the crash came before the log was replaced.
      await storage.resetAfter(snapshot.index);
      entries = [];
    }
    const { file, state } = HardStateFile.open(join(this.options.dir, 'hardstate'));
    this.hardStateFile = file;
    const hardState: HardState = state ?? { term: snapshot?.term ?? 0, vote: null, commit: 0 };
    const lastIndex = entries.at(-1)?.index ?? this.snapshotIndex;
    const knownCommitted = Math.min(Math.max(hardState.commit, this.options.committedAtLeast?.() ?? 0), lastIndex);
    this.persistedTerm = hardState.term;
    this.persistedVote = hardState.vote;
    this.core = new RaftCore<C>(
      {
        id: this.options.nodeId,
        peers: this.options.peers,
        electionTicks: this.options.electionTicks ?? 10,
        heartbeatTicks: this.options.heartbeatTicks ?? 2,
        random: this.options.random ?? Math.random,
        preVote: true,
        checkQuorum: true,
        entriesPerMessageMax: 512,
        bytesPerMessageMax: 4 * 1024 * 1024,
        inflightMessagesMax: 32,
        uncommittedEntriesMax: this.queuedMax,
        committedEntriesPerReadyMax: 4096,
        commandBytes: commandBytes,
        noopCommand: { type: 'Tick' } as C,
      },
      { hardState: { ...hardState, commit: knownCommitted }, snapshot, entries },
    );
    this.options.transport.onMessage((from, payload) => this.receive(from, payload));
    this.options.transport.onPeerLost((peer) => this.peerLost(peer));
    await this.options.transport.start();
    this.state = 'running';
    // Apply what is known committed before anyone reads the state (the node checks its stores next).
    await this.pump();
    this.tickTimer = setInterval(() => this.tick(), this.tickMs);
    this.tickTimer.unref();
  }

  get idle(): boolean {
    return this.queue.length === 0 && this.appended.size === 0 && this.forwarded.size === 0 && this.waitingForLeader.length === 0;
  }

  propose(command: C): Promise<R> {
    if (this.state !== 'running') return Promise.reject(new LogStoppedError());
    return new Promise<R>((resolve, reject) => {
      this.route({ command, resolve, reject, leaderDeadlineMs: this.clock() + this.leaderWaitMs });
    });
  }

  status(): ConsensusStatus {
    const core = this.core;
    return {
      nodeId: this.options.nodeId,
      role: core ? ROLE[core.role] : 'FOLLOWER',
      leaderId: core?.leaderId ?? null,
      term: core?.term ?? 0,
      commitIndex: core?.log.committed ?? 0,
      appliedIndex: this.machine.appliedIndex,
      snapshotIndex: this.snapshotIndex,
      caughtUp: this.caughtUp(),
    };
  }

  setDurableElsewhereIndex(index: number): void {
    if (index > this.durableElsewhereIndex) this.durableElsewhereIndex = index;
  }

  /** Test seam: start an election now. */
  campaign(): void {
    this.core?.campaign();
    void this.pump();
  }

  /** Test seam and graceful hand-over: leadership to `to` once it is up to date. */
  transferLeadership(to: string): boolean {
    const done = this.core?.transferLeadership(to) ?? false;
    void this.pump();
    return done;
  }

  async stop(): Promise<void> {
    if (this.state === 'running') this.state = 'stopped';
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.tickTimer = null;
    const stopped = new LogStoppedError();
    for (const p of [...this.queue, ...this.waitingForLeader]) p.reject(stopped);
    this.queue = [];
    this.waitingForLeader = [];
    while (this.pumping) await this.pumping;
    for (const [index, a] of this.appended) {
      clearTimeout(a.timer);
      a.proposal.reject(new ReplicationOutcomeUnknownError(`this replica stopped before entry ${index} was committed`));
    }
    this.appended.clear();
    for (const [, f] of this.forwarded) {
      clearTimeout(f.timer);
      f.proposal.reject(new ReplicationOutcomeUnknownError('this replica stopped before the leader answered'));
    }
    this.forwarded.clear();
    while (this.snapshotWriting) await this.snapshotWriting;
    await this.options.transport.stop();
    await this.storage?.close();
    this.storage = null;
    this.hardStateFile?.close();
    this.hardStateFile = null;
  }

  // ---- proposals ----------------------------------------------------------------------------

  private route(p: Proposal<C, R>): void {
    const core = this.core;
    if (this.state !== 'running' || !core) {
      p.reject(new LogStoppedError());
      return;
    }
    if (core.role === 'leader') {
      if (this.queue.length >= this.queuedMax) {
        p.reject(new LogOverloadedError(this.queuedMax));
        return;
      }
      this.queue.push(p);
      this.scheduleFlush();
      return;
    }
    const leader = core.leaderId;
    if (leader !== null && leader !== this.options.nodeId) {
      this.forward(p, leader);
      return;
    }
    if (this.clock() >= p.leaderDeadlineMs) {
      p.reject(new NoLeaderError(this.leaderWaitMs));
      return;
    }
    this.waitingForLeader.push(p);
  }

  private forward(p: Proposal<C, R>, leader: string): void {
    const id = ++this.forwardSeq;
    const timer = setTimeout(() => {
      if (!this.forwarded.delete(id)) return;
      p.reject(new ReplicationOutcomeUnknownError(`the leader ${leader} did not answer within ${this.proposalTimeoutMs} ms`));
    }, this.proposalTimeoutMs);
    timer.unref();
    this.forwarded.set(id, { proposal: p, timer, leader });
    const sent = this.sendWire(leader, { t: 'forward', id, command: p.command });
    if (!sent) {
      // Never left this node: safe to route again once the link (or another leader) is back.
      clearTimeout(timer);
      this.forwarded.delete(id);
      this.waitingForLeader.push(p);
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Every proposal made in this turn of the event loop joins one Ready.
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const core = this.core;
    if (!core || this.queue.length === 0 || this.state !== 'running') return;
    const batch = this.queue;
    this.queue = [];
    const result = core.propose(
      batch.map((p) => p.command),
      this.clock(),
    );
    if (!result.ok) {
      if (result.reason === 'overloaded') {
        for (const p of batch) p.reject(new LogOverloadedError(this.queuedMax));
        return;
      }
      // Lost leadership (or handing it over) since they were queued: nothing was appended.
      for (const p of batch) this.waitingForLeader.push(p);
      return;
    }
    batch.forEach((proposal, i) => {
      const index = result.firstIndex + i;
      const timer = setTimeout(() => {
        const a = this.appended.get(index);
        if (a?.proposal !== proposal) return;
        this.appended.delete(index);
        proposal.reject(new ReplicationOutcomeUnknownError(`entry ${index} was not committed within ${this.proposalTimeoutMs} ms`));
      }, this.proposalTimeoutMs);
      timer.unref();
      this.appended.set(index, { proposal, term: result.term, timer });
    });
    void this.pump();
  }

  /** Proposals that waited for a leader go on once one is known, or are refused past their deadline. */
  private retryWaiting(): void {
    if (this.waitingForLeader.length === 0) return;
    const core = this.core;
    if (!core) return;
    const known = core.role === 'leader' || (core.leaderId !== null && core.leaderId !== this.options.nodeId);
    const now = this.clock();
    const waiting = this.waitingForLeader;
    this.waitingForLeader = [];
    for (const p of waiting) {
      if (known) this.route(p);
      else if (now >= p.leaderDeadlineMs) p.reject(new NoLeaderError(this.leaderWaitMs));
      else this.waitingForLeader.push(p);
    }
  }

  // ---- messages -----------------------------------------------------------------------------

  /** A member's connections closed: if it is our leader, the core campaigns soon instead of after a full election timeout. */
  private peerLost(peer: string): void {
    if (!this.core || this.state !== 'running') return;
    this.core.peerUnreachable(peer);
    void this.pump();
  }

  private receive(from: string, payload: Buffer): void {
    const core = this.core;
    if (!core || this.state !== 'running') return;
    let wire: Wire<C, R>;
    try {
      wire = JSON.parse(payload.toString('utf8')) as Wire<C, R>;
    } catch (error) {
      this.options.onError?.(`message from ${from}`, error as Error);
      return;
    }
    switch (wire.t) {
      case 'raft': {
        const m = wire.m;
        if (m.from !== from || m.to !== this.options.nodeId) return;
        if (m.type === 'App' && m.term >= core.term && m.commit > this.leaderCommitSeen) this.leaderCommitSeen = m.commit;
        try {
          core.step(m);
        } catch (error) {
          this.fail(error as Error);
          return;
        }
        void this.pump();
        return;
      }
      case 'forward':
        this.serveForwarded(from, wire.id, wire.command);
        return;
      case 'result':
        this.takeForwarded(wire.id)?.resolve(wire.result);
        return;
      case 'refused': {
        const proposal = this.takeForwarded(wire.id);
        if (!proposal) return;
        if (wire.reason === 'not-leader') this.route(proposal);
        else if (wire.reason === 'overloaded') proposal.reject(new LogOverloadedError(this.queuedMax));
        else if (wire.reason === 'stopped') this.waitingForLeader.push(proposal);
        else proposal.reject(new ReplicationOutcomeUnknownError(wire.message));
        return;
      }
    }
  }

  /**
   * Once another leader is known, a proposal forwarded to the old one has an unknown outcome (the old
   * leader may have appended it, and its entry may yet be kept). Answer it now rather than at the
   * proposal timeout, so that the client retries (same idempotency key: applied at most once) at once.
   */
  private abandonForwardedToOldLeaders(leaderId: string | null): void {
    if (leaderId === null || this.forwarded.size === 0) return;
    for (const [id, f] of this.forwarded) {
      if (f.leader === leaderId) continue;
      this.takeForwarded(id)?.reject(new ReplicationOutcomeUnknownError(`the leader changed from ${f.leader} to ${leaderId} before it answered`));
    }
  }

  /** The forwarded proposal answered by this reply (null: already answered or timed out). */
  private takeForwarded(id: number): Proposal<C, R> | null {
    const f = this.forwarded.get(id);
    if (!f) return null;
    this.forwarded.delete(id);
    clearTimeout(f.timer);
    return f.proposal;
  }

  /** A follower's client proposal: appended here if this replica leads, answered with the result. */
  private serveForwarded(from: string, id: number, command: C): void {
    const core = this.core;
    const refuse = (reason: RefusalReason, message: string): void => {
      this.sendWire(from, { t: 'refused', id, reason, message, leaderId: core?.leaderId ?? null });
    };
    if (!core || core.role !== 'leader') {
      refuse('not-leader', 'not the leader');
      return;
    }
    const proposal: Proposal<C, R> = {
      command,
      resolve: (result) => this.sendWire(from, { t: 'result', id, result }),
      reject: (error) => {
        if (error instanceof LogOverloadedError) refuse('overloaded', error.message);
        else if (error instanceof LogStoppedError) refuse('stopped', error.message);
        // Lost leadership before appending, or its entry was replaced: it did not happen.
        else if (error instanceof NoLeaderError) refuse('not-leader', error.message);
        else refuse('unknown', error.message);
      },
      // A forwarded proposal never waits here for a leader: the follower does the waiting.
      leaderDeadlineMs: 0,
    };
    this.route(proposal);
  }

  private sendWire(to: string, wire: Wire<C, R>): boolean {
    return this.options.transport.send(to, Buffer.from(JSON.stringify(wire), 'utf8'));
  }

  private tick(): void {
    const core = this.core;
    if (!core || this.state !== 'running') return;
    core.tick(this.clock());
    this.abandonForwardedToOldLeaders(core.leaderId);
    this.retryWaiting();
    void this.pump();
  }

  // ---- the Ready loop -----------------------------------------------------------------------

  private pump(): Promise<void> {
    if (this.pumping) {
      this.pumpAgain = true;
      return this.pumping;
    }
    this.pumping = this.pumpLoop().finally(() => {
      this.pumping = null;
    });
    return this.pumping;
  }

  private async pumpLoop(): Promise<void> {
    do {
      this.pumpAgain = false;
      while (this.core && this.storage && this.state !== 'failed' && this.core.hasReady()) {
        const ready = this.core.ready();
        try {
          await this.handleReady(ready);
        } catch (error) {
          this.fail(error as Error);
          return;
        }
        // Proposals that arrived while that Ready was on the disk make the next group.
        if (this.queue.length > 0 && this.state === 'running') this.flush();
      }
    } while (this.pumpAgain && this.state !== 'failed');
  }

  private async handleReady(ready: Ready<C>): Promise<void> {
    const core = this.core!;
    const storage = this.storage!;
    let messages = ready.messages;
    if (ready.mustSync && core.role === 'leader' && this.persistedTerm === core.term) {
      // A leader whose term is durable may replicate while its own write is on the way (Raft thesis
      // §10.2.1): it counts itself towards a majority only once the entries are stable.
      const early = messages.filter((m) => m.type === 'App');
      messages = messages.filter((m) => m.type !== 'App');
      for (const m of early) this.sendWire(m.to, { t: 'raft', m });
    }
    // Committed entries already durable here need not wait for this Ready's write: apply them while
    // it is on the disk (the fdatasync runs off the main thread). A leader's newly committed group is
    // so answered one fsync sooner. Entries this Ready writes (a follower told entries and their
    // commit at once) are applied only after the write, so nothing reaches the event store that this
    // replica's own log could lose in a crash.
    let committed = ready.committedEntries;
    if (!ready.snapshot && committed.length > 0 && ready.entries.length > 0) {
      const durableThrough = Math.min(core.log.stable, ready.entries[0]!.index - 1);
      let early = 0;
      while (early < committed.length && committed[early]!.index <= durableThrough) early += 1;
      if (early > 0) {
        const write = this.writeEntries(ready.entries);
        // Keep an early failure from being an unhandled rejection while we apply; awaited below.
        write.catch(() => undefined);
        for (const entry of committed.slice(0, early)) this.applyEntry(entry);
        committed = committed.slice(early);
        await write;
      } else {
        await this.writeEntries(ready.entries);
      }
    } else {
      if (ready.snapshot) await this.installSnapshot(ready.snapshot);
      if (ready.entries.length > 0) await this.writeEntries(ready.entries);
    }
    if (ready.hardState) {
      // Term and vote must be durable before any message of this Ready leaves; the commit index
      // alone need not be (it is learned again from the leader), so it rides on the next fsync.
      const hs = ready.hardState;
      const termOrVoteChanged = hs.term !== this.persistedTerm || hs.vote !== this.persistedVote;
      this.hardStateFile!.write(hs, termOrVoteChanged);
      this.persistedTerm = hs.term;
      this.persistedVote = hs.vote;
    }
    for (const m of messages) this.sendWire(m.to, { t: 'raft', m });
    if (ready.snapshot) {
      this.machine.restore(ready.snapshot.data);
      this.snapshotIndex = ready.snapshot.index;
      this.previousSnapshot = null;
    }
    for (const entry of committed) this.applyEntry(entry);
    core.advance();
    this.retryWaiting();
    this.maybeSnapshot();
  }

  /** A Ready's entries on the disk: a conflicting suffix cut first, then appended and fdatasync'd. */
  private async writeEntries(entries: Entry<C>[]): Promise<void> {
    const first = entries[0]!.index;
    if (first <= this.storage!.lastIndex) await this.storage!.truncateFrom(first);
    await this.appendEntries(entries);
  }

  private async appendEntries(entries: Entry<C>[]): Promise<void> {
    const storage = this.storage!;
    let group: Buffer[] = [];
    let groupFirst = entries[0]!.index;
    let bytes = 0;
    for (const entry of entries) {
      const record = LogStorage.encode(entry);
      if (group.length > 0 && bytes + record.length > GROUP_BYTES_MAX) {
        await storage.append(groupFirst, groupFirst + group.length - 1, group);
        group = [];
        groupFirst = entry.index;
        bytes = 0;
      }
      group.push(record);
      bytes += record.length;
    }
    await storage.append(groupFirst, groupFirst + group.length - 1, group);
  }

  /** The leader's snapshot replaced our log: make it durable, then drop the log it replaces. */
  private async installSnapshot(snapshot: Snapshot): Promise<void> {
    const image: SnapshotImage = { term: snapshot.term, timestampMs: snapshot.timestampMs, machine: snapshot.data };
    this.snapshots.writeSync(snapshot.index, image);
    await this.storage!.resetAfter(snapshot.index);
    this.options.onError?.(
      'snapshot install',
      new Error(
        `this replica was too far behind and installed the leader's snapshot at index ${snapshot.index}: ` +
          'entries before it were not applied here, so this replica\'s own event store and read models lack their events (rebuild them, or use a shared event store)',
      ),
    );
  }

  private applyEntry(entry: Entry<C>): void {
    const result = this.machine.apply(entry);
    for (const listener of this.listeners) listener(entry, result);
    const appended = this.appended.get(entry.index);
    if (!appended) return;
    this.appended.delete(entry.index);
    clearTimeout(appended.timer);
    // Same index and term as proposed: our entry. Another term: a new leader's entry replaced ours,
    // so our command did not happen at this index, nor anywhere else.
    if (entry.term === appended.term) appended.proposal.resolve(result);
    else if (this.state === 'running') this.route(appended.proposal);
    else appended.proposal.reject(new LogStoppedError());
  }

  /**
   * Snapshots only what the event store already holds (as the single-node log does), and compacts
   * the log only through the previous snapshot, which a lagging follower can still be sent.
   */
  private maybeSnapshot(): void {
    const core = this.core!;
    const applied = this.machine.appliedIndex;
    if (this.snapshotWriting || applied - this.snapshotIndex < this.snapshotEveryEntries) return;
    if (applied > this.durableElsewhereIndex || applied > core.log.stable) return;
    const term = core.log.term(applied);
    const entry = core.log.entry(applied);
    if (term === undefined || entry === undefined) return;
    const machineImage = this.machine.snapshot();
    const image: SnapshotImage = { term, timestampMs: entry.timestampMs, machine: machineImage };
    this.snapshotWriting = this.snapshots
      .write(applied, image)
      .then(() => {
        const previous = this.previousSnapshot;
        this.previousSnapshot = { index: applied, term, timestampMs: entry.timestampMs, data: machineImage };
        this.snapshotIndex = applied;
        if (previous && this.core && previous.index > this.core.log.offset) {
          this.core.compact(previous.index, previous.data);
          this.storage?.compactThrough(previous.index);
        }
      })
      .catch((error: Error) => this.options.onError?.('snapshot', error))
      .finally(() => {
        this.snapshotWriting = null;
      });
  }

  private caughtUp(): boolean {
    const core = this.core;
    if (!core || this.state !== 'running') return false;
    const applied = this.machine.appliedIndex;
    if (core.role === 'leader') return applied >= core.log.committed;
    return core.leaderId !== null && applied >= Math.max(core.log.committed, this.leaderCommitSeen);
  }

  private fail(error: Error): void {
    if (this.state === 'failed') return;
    this.state = 'failed';
    if (this.tickTimer) clearInterval(this.tickTimer);
    const all = [...this.queue, ...this.waitingForLeader];
    this.queue = [];
    this.waitingForLeader = [];
    for (const p of all) p.reject(error);
    for (const [, a] of this.appended) {
      clearTimeout(a.timer);
      a.proposal.reject(new ReplicationOutcomeUnknownError(`this replica failed: ${error.message}`));
    }
    this.appended.clear();
    void this.options.transport.stop();
    (this.options.onFatal ?? defaultFatal)(error);
  }
}

const commandSizes = new WeakMap<object, number>();

/** Estimated encoded size of a command (for the bytes-per-message bound), cached per command. */
function commandBytes<C>(command: C): number {
  if (typeof command !== 'object' || command === null) return 16;
  let size = commandSizes.get(command);
  if (size === undefined) {
    size = JSON.stringify(command).length;
    commandSizes.set(command, size);
  }
  return size;
}

function defaultFatal(error: Error): void {
  // eslint-disable-next-line no-console
  console.error('replicated command log: fatal error, the replica stops', error);
  process.exitCode = 1;
}
