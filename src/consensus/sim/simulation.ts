import { LedgerStateMachine } from '../../app/ledger-node';
import type { LedgerCommand } from '../../domain/commands';
import type { CommandOutcome } from '../../domain/ledger';
import { DEFAULT_RULES } from '../../domain/rules';
import { RaftCore } from '../raft/raft';
import type { Entry, Message, PlantedBug, Ready } from '../raft/types';
import { InvariantViolation, type Invariant, type ReplicaView, SafetyChecker } from './checkers';
import { EventQueue } from './event-queue';
import { checkHistory } from './history';
import { SimRandom } from './random';
import { SimDisk } from './sim-disk';
import { type ClientOp, type WorkloadParams, drawWorkload, genesisCommand, randomCommand } from './workload';

/**
 * A deterministic simulation of a Raft cluster running the ledger: the real core and the real
 * LedgerStateMachine on every replica, with a simulated clock, network and disk, all driven by one
 * seed. Faults (loss, delay, duplication, reordering, symmetric and one-way partitions, crashes that
 * lose unsynced writes, restarts, leader transfers, clock skew) come at rates drawn per seed (swarm
 * testing). Invariants are checked after every event; at the end, after a liveness phase in which a
 * majority is healed, the replicas' states and the clients' histories are checked.
 */

export interface SimOptions {
  seed: number;
  /** Default: 3 for even seeds, 5 for odd ones. */
  replicas?: number;
  plantedBug?: PlantedBug | null;
  /** Keep this many trace lines for the failure report (0: none). */
  traceLines?: number;
  /** Simulated time of the faulty phase. */
  safetyMs?: number;
}

export interface SimResult {
  seed: number;
  replicas: number;
  ok: boolean;
  invariant?: Invariant;
  failure?: string;
  traceHash: string;
  trace: string[];
  simulatedMs: number;
  events: number;
  stats: SimStats;
}

export interface SimStats {
  committed: number;
  opsAcked: number;
  elections: number;
  crashes: number;
  partitions: number;
  snapshotsSent: number;
  messagesDelivered: number;
}

interface Params {
  replicas: number;
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  delayMinMs: number;
  delayMeanMs: number;
  lossRate: number;
  duplicateRate: number;
  straggleRate: number;
  straggleMeanMs: number;
  clientLossRate: number;
  fsyncMeanMs: number;
  tornChance: number;
  crashMeanGapMs: number;
  crashInFsyncChance: number;
  downMeanMs: number;
  partitionMeanGapMs: number;
  partitionMeanMs: number;
  transferMeanGapMs: number;
  skewMaxMs: number;
  entriesPerMessageMax: number;
  bytesPerMessageMax: number;
  inflightMessagesMax: number;
  committedEntriesPerReadyMax: number;
  snapshotEveryEntries: number;
  clients: number;
  clientTimeoutMs: number;
  thinkMeanMs: number;
  workload: WorkloadParams;
}

function drawParams(random: SimRandom, replicas: number): Params {
  return {
    replicas,
    tickMs: 10,
    electionTicks: random.int(8, 15),
    heartbeatTicks: random.int(1, 3),
    delayMinMs: random.int(0, 5),
    delayMeanMs: random.real(1, 25),
    lossRate: random.chance(0.2) ? 0 : random.real(0, 0.15),
    duplicateRate: random.chance(0.3) ? 0 : random.real(0, 0.2),
    straggleRate: random.chance(0.3) ? 0 : random.real(0, 0.03),
    straggleMeanMs: random.real(100, 1000),
    clientLossRate: random.real(0, 0.05),
    fsyncMeanMs: random.chance(0.3) ? random.real(5, 30) : random.real(0.2, 4),
    tornChance: random.real(0.2, 0.9),
    crashMeanGapMs: random.chance(0.2) ? 1e12 : random.real(300, 4000),
    downMeanMs: random.real(20, 800),
    crashInFsyncChance: random.chance(0.5) ? 0 : random.real(0, 0.02),
    partitionMeanGapMs: random.chance(0.2) ? 1e12 : random.real(200, 2500),
    partitionMeanMs: random.real(100, 1500),
    transferMeanGapMs: random.chance(0.5) ? 1e12 : random.real(300, 3000),
    skewMaxMs: random.chance(0.3) ? 0 : random.int(1, 3000),
    entriesPerMessageMax: random.pick([1, 2, 3, 8, 64]),
    bytesPerMessageMax: random.pick([200, 1000, 64 * 1024]),
    inflightMessagesMax: random.int(1, 8),
    committedEntriesPerReadyMax: random.pick([1, 4, 64]),
    snapshotEveryEntries: random.pick([5, 20, 60, 1_000_000]),
    clients: random.int(2, 6),
    clientTimeoutMs: random.int(200, 800),
    thinkMeanMs: random.real(5, 60),
    workload: drawWorkload(random),
  };
}

type ClientReply =
  | { kind: 'result'; outcome: CommandOutcome; index: number }
  | { kind: 'not-leader'; leader: number | null }
  | { kind: 'retry' };

interface ClientRequest {
  op: ClientOp;
  attempt: number;
}

type SimEvent =
  | { kind: 'tick'; node: number; epoch: number; atMs: number; seq: number }
  | { kind: 'deliver'; message: Message<LedgerCommand>; atMs: number; seq: number }
  | { kind: 'fsync'; node: number; epoch: number; atMs: number; seq: number }
  | { kind: 'propose'; node: number; epoch: number; atMs: number; seq: number }
  | { kind: 'request'; node: number; request: ClientRequest; atMs: number; seq: number }
  | { kind: 'reply'; request: ClientRequest; reply: ClientReply; atMs: number; seq: number }
  | { kind: 'timeout'; request: ClientRequest; atMs: number; seq: number }
  | { kind: 'resend'; request: ClientRequest; atMs: number; seq: number }
  | { kind: 'next-op'; client: number; atMs: number; seq: number }
  /** `chained`: the node's regular crash schedule continues after the restart (injected crashes do not). */
  | { kind: 'crash'; node: number; chained: boolean; atMs: number; seq: number }
  | { kind: 'restart'; node: number; chained: boolean; atMs: number; seq: number }
  | { kind: 'partition'; atMs: number; seq: number }
  /** `node` learns that its connections from `peer` closed (the shell's peerUnreachable hint). */
  | { kind: 'unreachable'; node: number; epoch: number; peer: string; atMs: number; seq: number }
  | { kind: 'heal'; atMs: number; seq: number }
  | { kind: 'transfer'; atMs: number; seq: number }
  | { kind: 'liveness'; atMs: number; seq: number }
  | { kind: 'converged?'; atMs: number; seq: number };

type EventInput = SimEvent extends infer E ? (E extends SimEvent ? Omit<E, 'seq'> : never) : never;

const MESSAGE_CODES: Record<string, number> = { PreVote: 1, PreVoteResp: 2, Vote: 3, VoteResp: 4, App: 5, AppResp: 6, Heartbeat: 7, HeartbeatResp: 8, Snap: 9, TimeoutNow: 10 };
const TICK_COMMAND: LedgerCommand = Object.freeze({ type: 'Tick' }) as LedgerCommand;

interface Pending {
  request: ClientRequest | null;
  term: number;
}

class SimNode {
  up = true;
  /** Bumped on every crash: events scheduled for an earlier life are ignored. */
  epoch = 0;
  readonly disk = new SimDisk<LedgerCommand>();
  core!: RaftCore<LedgerCommand>;
  machine!: LedgerStateMachine;
  /** The Ready waiting for its fsync. */
  inReady: Ready<LedgerCommand> | null = null;
  queued: ClientRequest[] = [];
  proposeScheduled = false;
  pending = new Map<number, Pending>();
  tickInFlight = false;
  snapshotIndex = 0;
  readonly view: ReplicaView<LedgerCommand>;

  constructor(
    readonly index: number,
    readonly id: string,
    readonly skewMs: number,
  ) {
    const node = this;
    this.view = {
      id,
      get role() { return node.core.role; },
      get term() { return node.core.term; },
      get committed() { return node.core.log.committed; },
      get lastIndex() { return node.core.log.lastIndex(); },
      get offset() { return node.core.log.offset; },
      entry: (i) => node.core.log.entry(i),
      logTerm: (i) => node.core.log.term(i),
      durableTerm: (i) => node.disk.termAt(i),
    };
  }
}

export class Simulation {
  readonly params: Params;
  readonly nodes: SimNode[];
  readonly checker: SafetyChecker<LedgerCommand>;
  private readonly queue = new EventQueue<SimEvent>();
  private nowMs = 0;
  private events = 0;
  private hash = 0x811c9dc5;
  private readonly trace: string[] = [];
  private readonly traceLines: number;
  private readonly net: SimRandom;
  private readonly diskRandom: SimRandom;
  private readonly faults: SimRandom;
  private readonly work: SimRandom;
  private readonly bug: PlantedBug | null;
  /** Directed links that drop everything, as "from>to". */
  private blocked = new Set<string>();
  private faultsOn = true;
  private lossRate: number;
  private duplicateRate: number;
  private core: number[] = [];
  private readonly ops: ClientOp[] = [];
  private readonly clientsIssuing: boolean[];
  private readonly holds: string[] = [];
  /** When each (index, term) was proposed, and when it was first applied anywhere. */
  private readonly proposedAtMs = new Map<string, number>();
  private readonly appliedAtMs: number[] = [];
  private livenessDeadlineMs = 0;
  private converged = false;
  private readonly safetyMs: number;
  readonly stats: SimStats = { committed: 0, opsAcked: 0, elections: 0, crashes: 0, partitions: 0, snapshotsSent: 0, messagesDelivered: 0 };

  constructor(readonly options: SimOptions) {
    const root = new SimRandom(options.seed, 0);
    const replicas = options.replicas ?? (options.seed % 2 === 0 ? 3 : 5);
    this.params = drawParams(root.child(1), replicas);
    this.net = root.child(2);
    this.diskRandom = root.child(3);
    this.faults = root.child(4);
    this.work = root.child(5);
    const timers = root.child(6);
    this.bug = options.plantedBug ?? null;
    this.traceLines = options.traceLines ?? 0;
    this.safetyMs = options.safetyMs ?? 6000;
    this.lossRate = this.params.lossRate;
    this.duplicateRate = this.params.duplicateRate;
    this.checker = new SafetyChecker(Math.floor(replicas / 2) + 1);
    this.checker.durableCounter = (index, term) => this.durableCount(index, term);
    this.checker.durableLogs = () =>
      this.nodes.map((n) => ({ id: n.id, offset: n.disk.offset, last: n.disk.last(), termAt: (i: number) => n.disk.termAt(i) }));
    const ids = Array.from({ length: replicas }, (_, i) => `r${i + 1}`);
    this.nodes = ids.map((id, i) => new SimNode(i, id, this.params.skewMaxMs === 0 ? 0 : timers.int(-this.params.skewMaxMs, this.params.skewMaxMs)));
    this.timerRandoms = ids.map((_, i) => timers.child(100 + i));
    this.clientsIssuing = Array.from({ length: this.params.clients }, () => true);
  }

  private readonly timerRandoms: SimRandom[];

  run(): SimResult {
    let failure: InvariantViolation | null = null;
    try {
      this.start();
      while (!this.converged) {
        const event = this.queue.pop();
        if (!event) throw new InvariantViolation('liveness', 'the simulation ran out of events');
        this.nowMs = event.atMs;
        this.events += 1;
        this.handle(event);
      }
      this.finalChecks();
    } catch (error) {
      if (error instanceof InvariantViolation) failure = error;
      else failure = new InvariantViolation('core-assertion', error instanceof Error ? `${error.message}` : String(error));
    }
    const committed = this.checker.canonical.length - 1;
    this.stats.committed = committed < 0 ? 0 : committed;
    this.stats.opsAcked = this.ops.filter((op) => op.done).length;
    this.stats.elections = this.checker.elections;
    return {
      seed: this.options.seed,
      replicas: this.params.replicas,
      ok: failure === null,
      invariant: failure?.invariant,
      failure: failure?.message,
      traceHash: (this.hash >>> 0).toString(16).padStart(8, '0'),
      trace: this.trace,
      simulatedMs: this.nowMs,
      events: this.events,
      stats: this.stats,
    };
  }

  // ---- setup -------------------------------------------------------------------------------

  private start(): void {
    for (const node of this.nodes) this.boot(node);
    for (const node of this.nodes) this.scheduleCrash(node);
    this.scheduleFault('partition', this.params.partitionMeanGapMs);
    this.scheduleFault('transfer', this.params.transferMeanGapMs);
    this.schedule({ kind: 'liveness', atMs: this.safetyMs });
    // Client 0 opens the accounts; the others start a little later (their first transfers may find no account yet).
    this.startOp(0, genesisCommand(this.params.workload), 'genesis');
    for (let c = 1; c < this.params.clients; c += 1) this.schedule({ kind: 'next-op', client: c, atMs: this.work.int(50, 400) });
  }

  private boot(node: SimNode): void {
    const p = this.params;
    node.core = new RaftCore<LedgerCommand>(
      {
        id: node.id,
        peers: this.nodes.map((n) => n.id),
        electionTicks: p.electionTicks,
        heartbeatTicks: p.heartbeatTicks,
        random: () => this.timerRandoms[node.index]!.next(),
        preVote: true,
        checkQuorum: true,
        entriesPerMessageMax: p.entriesPerMessageMax,
        bytesPerMessageMax: p.bytesPerMessageMax,
        inflightMessagesMax: p.inflightMessagesMax,
        uncommittedEntriesMax: 1000,
        committedEntriesPerReadyMax: p.committedEntriesPerReadyMax,
        commandBytes: commandBytes,
        noopCommand: TICK_COMMAND,
        plantedBug: this.bug,
      },
      node.disk.durableState(),
    );
    node.machine = new LedgerStateMachine(DEFAULT_RULES);
    const snapshot = node.disk.snapshot;
    if (snapshot) node.machine.restore(JSON.parse(snapshot.data as string));
    node.snapshotIndex = snapshot?.index ?? 0;
    node.inReady = null;
    node.queued = [];
    node.proposeScheduled = false;
    node.pending = new Map();
    node.tickInFlight = false;
    this.checker.onRestart(node.id, node.core.log.committed);
    this.schedule({ kind: 'tick', node: node.index, epoch: node.epoch, atMs: this.nowMs + this.work.int(1, p.tickMs) });
    this.pump(node);
  }

  // ---- events ------------------------------------------------------------------------------

  private handle(event: SimEvent): void {
    switch (event.kind) {
      case 'tick': {
        const node = this.nodes[event.node]!;
        if (!node.up || node.epoch !== event.epoch) return;
        this.record(1, node.index, node.core.term, 0, () => `${node.id} ${node.core.role} term ${node.core.term} commit ${node.core.log.committed}`);
        node.core.tick(this.clockOf(node));
        this.schedule({ kind: 'tick', node: node.index, epoch: node.epoch, atMs: this.nowMs + this.params.tickMs });
        this.maybeProposeTick(node);
        this.afterStep(node);
        return;
      }
      case 'deliver': {
        const m = event.message;
        const to = this.nodeById(m.to);
        if (!to.up || this.blocked.has(`${m.from}>${m.to}`)) return;
        this.stats.messagesDelivered += 1;
        this.record(2, to.index, MESSAGE_CODES[m.type]!, m.term * 1_000_003 + m.index, () =>
          `${m.from}→${m.to} ${m.type} term ${m.term} index ${m.index} logTerm ${m.logTerm} entries ${m.entries.length} commit ${m.commit}${m.reject ? ` reject hint ${m.rejectHint}` : ''}`);
        to.core.step(m);
        this.afterStep(to);
        return;
      }
      case 'fsync': {
        const node = this.nodes[event.node]!;
        if (!node.up || node.epoch !== event.epoch) return;
        this.record(3, node.index, 0, 0, () => `${node.id} durable through ${node.disk.lastIndex}`);
        this.fsyncDisk(node);
        const ready = node.inReady!;
        node.inReady = null;
        this.finishReady(node, ready);
        this.afterStep(node);
        return;
      }
      case 'propose': {
        const node = this.nodes[event.node]!;
        if (!node.up || node.epoch !== event.epoch) return;
        node.proposeScheduled = false;
        this.proposeQueued(node);
        this.afterStep(node);
        return;
      }
      case 'request': {
        const node = this.nodes[event.node]!;
        if (!node.up) return;
        this.record(4, node.index, event.request.op.id, event.request.attempt, () => `${node.id} ← ${event.request.op.key} attempt ${event.request.attempt} (${event.request.op.command.type})`);
        if (node.core.role !== 'leader') {
          this.reply(event.request, { kind: 'not-leader', leader: this.indexOf(node.core.leaderId) });
          return;
        }
        node.queued.push(event.request);
        if (!node.proposeScheduled) {
          node.proposeScheduled = true;
          // Requests arriving within the same millisecond go into one proposal.
          this.schedule({ kind: 'propose', node: node.index, epoch: node.epoch, atMs: this.nowMs + 1 });
        }
        return;
      }
      case 'reply':
        this.onReply(event.request, event.reply);
        return;
      case 'timeout': {
        const { op, attempt } = event.request;
        if (op.done || op.attempt !== attempt) return;
        // Try another replica: this one may be down or cut off.
        op.target = (op.lastTarget + this.work.int(1, this.nodes.length - 1)) % this.nodes.length;
        this.sendAttempt(op);
        return;
      }
      case 'resend': {
        const { op, attempt } = event.request;
        if (op.done || op.attempt !== attempt) return;
        this.sendAttempt(op);
        return;
      }
      case 'next-op':
        this.nextOp(event.client);
        return;
      case 'crash':
        if (!this.crash(this.nodes[event.node]!, event.chained) && event.chained && this.faultsOn) this.scheduleCrash(this.nodes[event.node]!);
        return;
      case 'restart':
        this.restart(this.nodes[event.node]!, event.chained);
        return;
      case 'partition':
        this.partition();
        return;
      case 'unreachable': {
        const node = this.nodes[event.node]!;
        if (!node.up || node.epoch !== event.epoch) return;
        this.record(12, node.index, 0, 0, () => `${node.id} lost its connections from ${event.peer}`);
        node.core.peerUnreachable(event.peer);
        this.afterStep(node);
        return;
      }
      case 'heal':
        if (!this.faultsOn) return;
        this.record(7, 0, 0, 0);
        this.blocked.clear();
        this.scheduleFault('partition', this.params.partitionMeanGapMs);
        return;
      case 'transfer':
        this.leaderTransfer();
        return;
      case 'liveness':
        this.startLiveness();
        return;
      case 'converged?':
        this.checkConverged();
        return;
    }
  }

  private afterStep(node: SimNode): void {
    if (!node.up) return;
    this.pump(node);
    const wasLeaderOfTerm = node.core.role === 'leader';
    this.checker.afterStep(node.view);
    if (wasLeaderOfTerm) this.maybeProposeTick(node);
  }

  // ---- the replica shell -------------------------------------------------------------------

  /** Drains Readys: persist, then (after the fsync) send, apply, advance. */
  private pump(node: SimNode): void {
    while (node.up && node.inReady === null && node.core.hasReady()) {
      const ready = node.core.ready();
      this.checker.onAppend(node.view, ready.entries);
      if (ready.snapshot) {
        node.disk.installSnapshot(ready.snapshot);
        this.fsyncDisk(node);
      }
      node.disk.writeEntries(ready.entries);
      if (ready.hardState) node.disk.writeHardState(ready.hardState);
      if (!ready.mustSync) {
        this.finishReady(node, ready);
        continue;
      }
      // A leader whose term and vote are durable may replicate before its own write is durable
      // (Raft thesis §10.2.1): it counts itself only once the entries are stable.
      const early: Message<LedgerCommand>[] = [];
      const late: Message<LedgerCommand>[] = [];
      const termDurable = node.disk.hardState.term === node.core.term;
      for (const m of ready.messages) {
        if (m.type === 'App' && termDurable && node.core.role === 'leader') early.push(m);
        else if (this.bug === 'vote-before-durable' && (m.type === 'VoteResp' || m.type === 'PreVoteResp')) early.push(m);
        else late.push(m);
      }
      for (const m of early) this.sendMessage(m);
      ready.messages = late;
      node.inReady = ready;
      const fsyncMs = this.diskRandom.exponential(this.params.fsyncMeanMs);
      this.schedule({ kind: 'fsync', node: node.index, epoch: node.epoch, atMs: this.nowMs + fsyncMs });
      // Crash points where they hurt most: between a write and its fsync.
      if (this.faultsOn && this.faults.chance(this.params.crashInFsyncChance)) {
        this.schedule({ kind: 'crash', node: node.index, chained: false, atMs: this.nowMs + this.faults.real(0, fsyncMs) });
      }
      return;
    }
  }

  private finishReady(node: SimNode, ready: Ready<LedgerCommand>): void {
    for (const m of ready.messages) this.sendMessage(m);
    if (ready.snapshot) {
      node.machine.restore(JSON.parse(ready.snapshot.data as string));
      node.snapshotIndex = ready.snapshot.index;
    }
    for (const entry of ready.committedEntries) this.applyEntry(node, entry);
    node.core.advance();
    this.maybeSnapshot(node);
  }

  private applyEntry(node: SimNode, entry: Entry<LedgerCommand>): void {
    this.checker.onApply(node.view, entry);
    if (this.appliedAtMs[entry.index] === undefined) this.appliedAtMs[entry.index] = this.nowMs;
    const result = node.machine.apply(entry);
    if (entry.command.type === 'Tick') node.tickInFlight = false;
    const pending = node.pending.get(entry.index);
    if (pending) {
      node.pending.delete(entry.index);
      if (pending.request) {
        // Same index and term as proposed means it is our entry; anything else replaced it.
        if (entry.term === pending.term) this.reply(pending.request, { kind: 'result', outcome: result.outcome, index: entry.index });
        else this.reply(pending.request, { kind: 'retry' });
      }
    }
  }

  private maybeSnapshot(node: SimNode): void {
    const applied = node.machine.appliedIndex;
    if (applied - node.snapshotIndex < this.params.snapshotEveryEntries || applied > node.core.log.stable) return;
    const data = JSON.stringify(node.machine.snapshot());
    const term = node.core.log.term(applied)!;
    const entry = node.core.log.entry(applied)!;
    node.disk.compact({ index: applied, term, timestampMs: entry.timestampMs, data });
    node.core.compact(applied, data);
    node.snapshotIndex = applied;
  }

  private proposeQueued(node: SimNode): void {
    const requests = node.queued;
    node.queued = [];
    if (requests.length === 0) return;
    const result = node.core.propose(requests.map((r) => r.op.command), this.clockOf(node));
    if (!result.ok) {
      for (const r of requests) this.reply(r, result.reason === 'not-leader' ? { kind: 'not-leader', leader: this.indexOf(result.leaderId) } : { kind: 'retry' });
      return;
    }
    requests.forEach((request, i) => {
      const index = result.firstIndex + i;
      node.pending.set(index, { request, term: result.term });
      this.proposedAtMs.set(`${index}/${result.term}`, this.nowMs);
    });
  }

  /** Only the leader proposes the tick that expires a due hold. */
  private maybeProposeTick(node: SimNode): void {
    if (!node.up || node.core.role !== 'leader' || node.tickInFlight) return;
    const deadline = node.machine.ledger.nextHoldDeadlineMs();
    if (deadline === null || deadline > this.clockOf(node)) return;
    if (node.machine.appliedIndex < node.core.log.committed) return;
    const result = node.core.propose([TICK_COMMAND], this.clockOf(node));
    if (result.ok) {
      node.tickInFlight = true;
      node.pending.set(result.firstIndex, { request: null, term: result.term });
    }
    this.pump(node);
  }

  private fsyncDisk(node: SimNode): void {
    for (const hardState of node.disk.fsync()) this.checker.onDurableHardState(node.id, hardState);
    for (const { index, term } of node.disk.takeErased()) this.checker.onErase(node.id, index, term);
  }

  private crashDisk(node: SimNode): void {
    node.disk.crash(this.diskRandom, this.params.tornChance);
    for (const { index, term } of node.disk.takeErased()) this.checker.onErase(node.id, index, term);
    this.checker.onCrash(node.id, node.disk.hardState);
  }

  private sendMessage(m: Message<LedgerCommand>): void {
    this.checker.onSend(m.from, m.type, m.term, m.to, m.reject);
    if (m.type === 'Snap') this.stats.snapshotsSent += 1;
    if (this.net.chance(this.lossRate)) return;
    const copies = this.net.chance(this.duplicateRate) ? 2 : 1;
    for (let i = 0; i < copies; i += 1) {
      // A copy per delivery, so no replica can alias another's message.
      const message = { ...m };
      this.schedule({ kind: 'deliver', message, atMs: this.nowMs + this.networkDelay() });
    }
  }

  private networkDelay(): number {
    const delay = this.params.delayMinMs + this.net.exponential(this.params.delayMeanMs);
    // A long tail (a clogged link, a retransmission): old messages turn up terms later.
    return this.net.chance(this.params.straggleRate) ? delay + this.net.exponential(this.params.straggleMeanMs) : delay;
  }

  /** The replica's own clock: simulated time plus its skew. */
  private clockOf(node: SimNode): number {
    return 1_700_000_000_000 + this.nowMs + node.skewMs;
  }

  // ---- faults ------------------------------------------------------------------------------

  private scheduleCrash(node: SimNode): void {
    if (this.params.crashMeanGapMs >= 1e12) return;
    this.schedule({ kind: 'crash', node: node.index, chained: true, atMs: this.nowMs + this.faults.exponential(this.params.crashMeanGapMs) });
  }

  /** False when the node was already down (or faults are over). */
  private crash(node: SimNode, chained: boolean): boolean {
    if (!this.faultsOn || !node.up) return false;
    this.record(5, node.index, 0, 0, () => `${node.id} (durable log ${node.disk.lastIndex} before the crash)`);
    this.stats.crashes += 1;
    node.up = false;
    node.epoch += 1;
    this.crashDisk(node);
    // A killed process's TCP connections close, and every live replica hears of it (1 ms later); a
    // power cut or a frozen machine closes nothing. Every other crash is a kill, deterministically.
    if (this.stats.crashes % 2 === 0) for (const other of this.nodes) if (other.up) this.schedule({ kind: 'unreachable', node: other.index, epoch: other.epoch, peer: node.id, atMs: this.nowMs + 1 });
    this.schedule({ kind: 'restart', node: node.index, chained, atMs: this.nowMs + 5 + this.faults.exponential(this.params.downMeanMs) });
    return true;
  }

  private restart(node: SimNode, chained: boolean): void {
    if (node.up) return;
    this.record(6, node.index, 0, 0, () => `${node.id} from durable term ${node.disk.hardState.term} vote ${node.disk.hardState.vote} log ${node.disk.lastIndex}`);
    node.up = true;
    node.epoch += 1;
    this.boot(node);
    this.afterStep(node);
    if (this.faultsOn && chained) this.scheduleCrash(node);
  }

  private scheduleFault(kind: 'partition' | 'transfer', meanGapMs: number): void {
    if (meanGapMs >= 1e12) return;
    this.schedule({ kind, atMs: this.nowMs + this.faults.exponential(meanGapMs) });
  }

  private partition(): void {
    if (!this.faultsOn) return;
    this.stats.partitions += 1;
    const ids = this.nodes.map((n) => n.id);
    const shape = this.faults.int(0, 3);
    this.blocked.clear();
    if (shape === 0) {
      // Isolate one replica, both ways.
      const lone = this.faults.pick(ids);
      for (const other of ids) if (other !== lone) this.block(lone, other, true);
    } else if (shape === 1) {
      // Split into two random sides.
      const side = new Set(ids.filter(() => this.faults.chance(0.5)));
      for (const a of side) for (const b of ids) if (!side.has(b)) this.block(a, b, true);
    } else if (shape === 2) {
      // One-way: a replica that can send but not receive (or the reverse).
      const lone = this.faults.pick(ids);
      const deaf = this.faults.chance(0.5);
      for (const other of ids) if (other !== lone) (deaf ? this.block(other, lone, false) : this.block(lone, other, false));
    } else {
      // Random single links, one-way.
      for (const a of ids) for (const b of ids) if (a !== b && this.faults.chance(0.3)) this.block(a, b, false);
    }
    this.record(8, shape, this.blocked.size, 0, () => `blocked ${[...this.blocked].join(' ')}`);
    // A cut link may also reset its connection (often it is silent): the receiving side is told, right or
    // wrong about the peer, which is the hint's contract. Every other cut link is reported, deterministically.
    let reported = 0;
    for (const link of this.blocked) {
      reported += 1;
      if (reported % 2 === 0) continue;
      const [from, to] = link.split('>') as [string, string];
      const node = this.nodeById(to);
      if (node.up) this.schedule({ kind: 'unreachable', node: node.index, epoch: node.epoch, peer: from, atMs: this.nowMs + 2 });
    }
    this.schedule({ kind: 'heal', atMs: this.nowMs + 20 + this.faults.exponential(this.params.partitionMeanMs) });
  }

  private block(a: string, b: string, bothWays: boolean): void {
    this.blocked.add(`${a}>${b}`);
    if (bothWays) this.blocked.add(`${b}>${a}`);
  }

  private leaderTransfer(): void {
    if (!this.faultsOn) return;
    const leader = this.nodes.find((n) => n.up && n.core.role === 'leader');
    if (leader) {
      const target = this.faults.pick(this.nodes.filter((n) => n !== leader));
      this.record(9, leader.index, target.index, 0, () => `${leader.id} hands over to ${target.id}`);
      leader.core.transferLeadership(target.id);
      this.afterStep(leader);
    }
    this.scheduleFault('transfer', this.params.transferMeanGapMs);
  }

  // ---- liveness ----------------------------------------------------------------------------

  /**
   * As TigerBeetle's VOPR: pick a majority as the core, restart and heal it, stop loss and
   * duplication; faults outside the core become permanent. The core must then converge.
   */
  private startLiveness(): void {
    this.faultsOn = false;
    for (let c = 0; c < this.clientsIssuing.length; c += 1) this.clientsIssuing[c] = false;
    const quorum = Math.floor(this.nodes.length / 2) + 1;
    const order = this.nodes.map((n) => n.index);
    for (let i = order.length - 1; i > 0; i -= 1) {
      const j = this.faults.int(0, i);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    this.core = order.slice(0, quorum + this.faults.int(0, this.nodes.length - quorum)).sort();
    this.record(10, this.core.length, 0, 0);
    this.blocked.clear();
    this.lossRate = 0;
    this.duplicateRate = 0;
    for (const node of this.nodes) {
      const inCore = this.core.includes(node.index);
      if (inCore) {
        if (!node.up) this.restart(node, false);
        continue;
      }
      const fate = this.faults.int(0, 2);
      if (fate === 0 && node.up) {
        node.up = false;
        node.epoch += 1;
        this.crashDisk(node);
      } else if (fate === 1) {
        // Deaf or mute for good.
        const deaf = this.faults.chance(0.5);
        for (const other of this.nodes) if (other !== node) (deaf ? this.block(other.id, node.id, false) : this.block(node.id, other.id, false));
      }
    }
    // Election timeouts, catch-up by snapshot or log, then every client's retries.
    this.livenessDeadlineMs = this.nowMs + 40 * this.params.electionTicks * this.params.tickMs + 10 * 4 * this.params.clientTimeoutMs;
    this.schedule({ kind: 'converged?', atMs: this.nowMs + 100 });
  }

  private checkConverged(): void {
    const core = this.core.map((i) => this.nodes[i]!);
    // The leader may sit outside the core (a healthy replica that was not chosen).
    const leader = this.nodes.find((n) => n.up && n.core.role === 'leader' && core.every((c) => c.core.leaderId === n.id));
    const opsDone = this.ops.every((op) => op.done);
    const settled =
      leader !== undefined &&
      opsDone &&
      core.every(
        (n) =>
          n.core.leaderId === leader.id &&
          n.core.term === leader.core.term &&
          n.inReady === null &&
          n.machine.appliedIndex === leader.core.log.lastIndex() &&
          n.core.log.committed === leader.core.log.lastIndex(),
      );
    if (settled) {
      this.converged = true;
      return;
    }
    if (this.nowMs >= this.livenessDeadlineMs) {
      const pendingOps = this.ops.filter((op) => !op.done).length;
      const states = core.map((n) => `${n.id}:${n.core.role}/t${n.core.term}/c${n.core.log.committed}/a${n.machine.appliedIndex}/l${n.core.log.lastIndex()}`).join(' ');
      throw new InvariantViolation('liveness', `the healed core did not converge within ${this.livenessDeadlineMs - this.safetyMs} ms (${pendingOps} client operations pending; ${states})`);
    }
    this.schedule({ kind: 'converged?', atMs: this.nowMs + 100 });
  }

  private finalChecks(): void {
    const core = this.core.map((i) => this.nodes[i]!);
    const images = core.map((n) => JSON.stringify(n.machine.snapshot()));
    for (let i = 1; i < images.length; i += 1) {
      if (images[i] !== images[0]) throw new InvariantViolation('same-state', `${core[i]!.id}'s ledger differs from ${core[0]!.id}'s at applied index ${core[0]!.machine.appliedIndex}`);
    }
    const w = this.params.workload;
    const state = core[0]!.machine.ledger.view;
    const genesisApplied = [...state.accounts.keys()].length > 0;
    if (genesisApplied) {
      let balance = 0n;
      let available = 0n;
      for (const account of state.accounts.values()) {
        balance += account.balance;
        available += account.availableBalance;
        if (account.availableBalance < -account.overdraftLimit) {
          throw new InvariantViolation('balance-within-limit', `${account.id}'s available balance ${account.availableBalance} is below its limit -${account.overdraftLimit}`);
        }
      }
      let held = 0n;
      for (const hold of state.holds.values()) if (hold.transaction.fromAccountId !== null) held += hold.amount;
      const total = w.openingBalances.reduce((a, b) => a + b, 0n);
      if (balance !== total) throw new InvariantViolation('money-conserved', `balances sum to ${balance}, the accounts were opened with ${total}`);
      if (available + held !== total) throw new InvariantViolation('money-conserved', `available balances ${available} plus holds ${held} differ from ${total}`);
    }
    checkHistory(this.ops, this.checker.canonical, this.proposedAtMs, this.appliedAtMs);
  }

  // ---- clients -----------------------------------------------------------------------------

  private nextOp(client: number): void {
    if (!this.clientsIssuing[client]) return;
    const key = `c${client}-op${this.ops.length}`;
    this.startOp(client, randomCommand(this.work, this.params.workload, key, this.holds), key);
  }

  private startOp(client: number, command: LedgerCommand, key: string): void {
    const op: ClientOp = { id: this.ops.length, client, key, command, invokedAtMs: this.nowMs, attempt: 0, target: null, lastTarget: 0, done: false };
    this.ops.push(op);
    this.sendAttempt(op);
  }

  private sendAttempt(op: ClientOp): void {
    op.attempt += 1;
    const target = op.target ?? this.work.int(0, this.nodes.length - 1);
    op.lastTarget = target;
    const request: ClientRequest = { op, attempt: op.attempt };
    if (!this.work.chance(this.params.clientLossRate)) {
      // The client's hop has a deadline: a request arrives within half the client's timeout or not at
      // all. (An attempt arriving after a later attempt was answered could be decided anew: the ledger
      // records idempotency keys only for accepted commands, so a stale copy of a rejected transfer
      // could still succeed. See the report of issue 10.)
      const delayMs = Math.min(this.params.delayMinMs + this.net.exponential(this.params.delayMeanMs), this.params.clientTimeoutMs / 2);
      this.schedule({ kind: 'request', node: target, request, atMs: this.nowMs + delayMs });
    }
    // Exponential backoff: a client that retries faster than the cluster commits would keep it busy with replays.
    const timeoutMs = this.params.clientTimeoutMs * 2 ** Math.min(op.attempt - 1, 2);
    this.schedule({ kind: 'timeout', request, atMs: this.nowMs + timeoutMs });
  }

  private reply(request: ClientRequest, reply: ClientReply): void {
    if (this.work.chance(this.params.clientLossRate)) return;
    this.schedule({ kind: 'reply', request, reply, atMs: this.nowMs + this.networkDelay() });
  }

  private onReply(request: ClientRequest, reply: ClientReply): void {
    const op = request.op;
    // Only the answer to the latest attempt counts; an older one may describe a superseded try.
    if (op.done || op.attempt !== request.attempt) return;
    this.record(11, op.id, request.attempt, reply.kind === 'result' ? 1 : 0, () => `${op.key} attempt ${request.attempt}: ${reply.kind}${reply.kind === 'result' ? ` at ${reply.index} ${reply.outcome.ok ? 'ok' : reply.outcome.rejection.code}` : ''}`);
    if (reply.kind === 'result') {
      op.done = true;
      op.outcome = reply.outcome;
      op.outcomeIndex = reply.index;
      op.respondedAtMs = this.nowMs;
      const o = reply.outcome;
      if (o.ok && o.outcome.type === 'Transfer' && o.outcome.transaction.status === 'PENDING') this.holds.push(o.outcome.transaction.id);
      this.schedule({ kind: 'next-op', client: op.client, atMs: this.nowMs + this.work.exponential(this.params.thinkMeanMs) });
      return;
    }
    op.target = reply.kind === 'not-leader' ? reply.leader : null;
    // Back off a little, then try again with the same idempotency key.
    const backoffMs = reply.kind === 'not-leader' && reply.leader !== null ? 1 : this.work.int(10, 50);
    this.schedule({ kind: 'resend', request, atMs: this.nowMs + backoffMs });
  }

  // ---- helpers -----------------------------------------------------------------------------

  private durableCount(index: number, term: number): number {
    let count = 0;
    for (const node of this.nodes) {
      const disk = node.disk;
      if (index <= disk.offset || disk.termAt(index) === term) count += 1;
    }
    return count;
  }

  private nodeById(id: string): SimNode {
    return this.nodes[Number(id.slice(1)) - 1]!;
  }

  private indexOf(id: string | null): number | null {
    return id === null ? null : Number(id.slice(1)) - 1;
  }

  private schedule(event: EventInput): void {
    this.queue.push(event as Omit<SimEvent, 'seq'>);
  }

  /** Folds an event into the trace hash (FNV-1a over small integers) and the trace ring. */
  private record(code: number, a: number, b: number, c: number, detail?: () => string): void {
    let h = this.hash;
    for (const v of [code, a, b, c, Math.floor(this.nowMs * 1000)]) {
      h ^= v & 0xffff;
      h = Math.imul(h, 0x01000193);
      h ^= (v / 65536) & 0xffff;
      h = Math.imul(h, 0x01000193);
    }
    this.hash = h;
    if (this.traceLines > 0) {
      this.trace.push(`${this.nowMs.toFixed(3)} ${TRACE_NAMES[code]} ${detail ? detail() : `${a} ${b} ${c}`}`);
      if (this.trace.length > this.traceLines) this.trace.shift();
    }
  }
}

const TRACE_NAMES = ['', 'tick', 'deliver', 'fsync', 'request', 'crash', 'restart', 'heal', 'partition', 'transfer', 'liveness', 'reply'];

/** Estimated encoded size of a command, for the per-message byte limit. */
function commandBytes(command: LedgerCommand): number {
  if (command.type === 'Tick') return 8;
  if (command.type === 'ExecuteBatch') return 64 + 96 * command.input.operations.length;
  return 128;
}

export function runSimulation(options: SimOptions): SimResult {
  return new Simulation(options).run();
}
