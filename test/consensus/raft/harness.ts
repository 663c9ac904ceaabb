import { RaftCore } from '../../../src/consensus/raft/raft';
import type { DurableState, Entry, Message, RaftConfig } from '../../../src/consensus/raft/types';
import { seededRandom } from '../../support/seeded-random';

export type Cmd = string;

/**
 * A synchronous test network for the Raft core: persists every Ready instantly into an in-memory
 * disk, delivers messages in FIFO order (optionally dropping some), and records what each replica
 * applied. Nothing is timed: elections are driven by explicit campaign() or tick() calls.
 */
export class TestCluster {
  readonly cores = new Map<string, RaftCore<Cmd>>();
  readonly disks = new Map<string, DurableState<Cmd>>();
  readonly applied = new Map<string, Entry<Cmd>[]>();
  readonly sent: Message<Cmd>[] = [];
  queue: Message<Cmd>[] = [];
  /** Return true to drop a message. */
  drop: (m: Message<Cmd>) => boolean = () => false;
  /** Replicas whose messages stay in their Ready unsent (a paused replica) — none by default. */
  readonly isolated = new Set<string>();
  clockMs = 1_000_000;

  constructor(
    readonly ids: string[],
    readonly overrides: Partial<RaftConfig<Cmd>> = {},
  ) {
    for (const id of ids) {
      this.disks.set(id, { hardState: { term: 0, vote: null, commit: 0 }, snapshot: null, entries: [] });
      this.applied.set(id, []);
      this.cores.set(id, new RaftCore(this.config(id), this.disks.get(id)));
    }
  }

  config(id: string): RaftConfig<Cmd> {
    return {
      id,
      peers: this.ids,
      electionTicks: 10,
      heartbeatTicks: 1,
      random: seededRandom(this.ids.indexOf(id) + 1),
      preVote: false,
      checkQuorum: false,
      entriesPerMessageMax: 100,
      bytesPerMessageMax: 1 << 20,
      inflightMessagesMax: 256,
      uncommittedEntriesMax: 10_000,
      committedEntriesPerReadyMax: 10_000,
      commandBytes: (c) => c.length,
      noopCommand: 'noop',
      ...this.overrides,
    };
  }

  core(id: string): RaftCore<Cmd> {
    return this.cores.get(id)!;
  }

  /** Persists and processes every pending Ready of one replica; queues its messages. */
  process(id: string): void {
    const core = this.core(id);
    const disk = this.disks.get(id)!;
    while (core.hasReady()) {
      const ready = core.ready();
      if (ready.snapshot) {
        disk.snapshot = ready.snapshot;
        disk.entries = [];
      }
      if (ready.entries.length > 0) {
        const from = ready.entries[0]!.index;
        const offset = disk.snapshot?.index ?? 0;
        disk.entries = [...disk.entries.slice(0, from - offset - 1), ...ready.entries];
      }
      if (ready.hardState) disk.hardState = ready.hardState;
      for (const m of ready.messages) {
        this.sent.push(m);
        if (!this.isolated.has(m.from) && !this.isolated.has(m.to)) this.queue.push(m);
      }
      this.applied.get(id)!.push(...ready.committedEntries);
      core.advance();
    }
  }

  /** Delivers messages until the network is quiet. */
  stabilize(maxSteps = 10_000): void {
    for (const id of this.ids) this.process(id);
    let steps = 0;
    while (this.queue.length > 0) {
      if (++steps > maxSteps) throw new Error('the cluster did not stabilize');
      const m = this.queue.shift()!;
      if (this.drop(m)) continue;
      this.core(m.to).step(m);
      this.process(m.to);
    }
  }

  /** Delivers only the messages currently queued (one round), not the ones they cause. */
  deliverRound(): void {
    for (const id of this.ids) this.process(id);
    const round = this.queue;
    this.queue = [];
    for (const m of round) {
      if (this.drop(m)) continue;
      this.core(m.to).step(m);
      this.process(m.to);
    }
  }

  elect(id: string): void {
    this.core(id).campaign();
    this.stabilize();
    if (this.core(id).role !== 'leader') throw new Error(`${id} did not become leader`);
  }

  propose(id: string, ...commands: Cmd[]) {
    const result = this.core(id).propose(commands, this.clockMs);
    this.stabilize();
    return result;
  }

  tick(id: string, times = 1): void {
    for (let i = 0; i < times; i += 1) {
      this.core(id).tick(this.clockMs);
      this.process(id);
    }
  }

  /** Replaces a replica by a fresh core built from its durable state (a crash and restart). */
  restart(id: string): void {
    this.applied.set(id, []);
    this.cores.set(id, new RaftCore(this.config(id), structuredClone(this.disks.get(id)!)));
  }

  commands(id: string): Cmd[] {
    return this.applied.get(id)!.map((e) => e.command).filter((c) => c !== 'noop');
  }
}
