import { RaftCore } from '../../../src/consensus/raft/raft';
import type { DurableState, Entry, Message } from '../../../src/consensus/raft/types';
import { type Cmd, TestCluster } from './harness';

/**
 * One test per claim of the Raft paper (Ongaro & Ousterhout, "In Search of an Understandable
 * Consensus Algorithm", extended version), in the manner of etcd-io/raft raft_paper_test.go, plus
 * the extensions the core implements (pre-vote, check-quorum, snapshots, leader transfer, limits,
 * leader-assigned time).
 */

function entries(from: number, to: number, term: number, tsMs = 1000): Entry<Cmd>[] {
  const out: Entry<Cmd>[] = [];
  for (let i = from; i <= to; i += 1) out.push({ index: i, term, timestampMs: tsMs, command: `t${term}-${i}` });
  return out;
}

function message(fields: Partial<Message<Cmd>> & Pick<Message<Cmd>, 'type' | 'from' | 'to' | 'term'>): Message<Cmd> {
  return { logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, snapshot: null, transfer: false, ...fields };
}

function cluster3(overrides = {}) {
  return new TestCluster(['a', 'b', 'c'], overrides);
}

function coreWithLog(log: Entry<Cmd>[], term: number, overrides = {}): RaftCore<Cmd> {
  const c = cluster3(overrides);
  const durable: DurableState<Cmd> = { hardState: { term, vote: null, commit: 0 }, snapshot: null, entries: log };
  return new RaftCore(c.config('a'), durable);
}

function drain(core: RaftCore<Cmd>): Message<Cmd>[] {
  const out: Message<Cmd>[] = [];
  while (core.hasReady()) {
    const ready = core.ready();
    out.push(...ready.messages);
    core.advance();
  }
  return out;
}

describe('§5.1 terms', () => {
  test('a leader that sees a higher term steps down and adopts it', () => {
    const c = cluster3();
    c.elect('a');
    c.core('a').step(message({ type: 'Heartbeat', from: 'b', to: 'a', term: 5 }));
    expect(c.core('a').role).toBe('follower');
    expect(c.core('a').term).toBe(5);
    expect(c.core('a').leaderId).toBe('b');
  });

  test('a message from a stale term is refused, and the sender learns the newer term', () => {
    const core = coreWithLog(entries(1, 3, 2), 3, { checkQuorum: true });
    drain(core);
    core.step(message({ type: 'App', from: 'b', to: 'a', term: 2, index: 3, logTerm: 2, entries: entries(4, 5, 2) }));
    expect(core.log.lastIndex()).toBe(3);
    const replies = drain(core);
    expect(replies).toEqual([expect.objectContaining({ type: 'AppResp', to: 'b', term: 3 })]);
  });

  test('(planted bug append-without-term-check) the same stale AppendEntries is accepted', () => {
    const core = coreWithLog(entries(1, 3, 2), 3, { plantedBug: 'append-without-term-check' });
    core.step(message({ type: 'App', from: 'b', to: 'a', term: 2, index: 3, logTerm: 2, entries: entries(4, 5, 2) }));
    expect(core.log.lastIndex()).toBe(5);
  });
});

describe('§5.2 leader election', () => {
  test('a follower that hears nothing for its election timeout campaigns: new term, votes for itself, asks everyone', () => {
    const c = cluster3();
    c.tick('a', 25);
    const a = c.core('a');
    expect(a.role).toBe('candidate');
    expect(a.term).toBe(1);
    expect(a.vote).toBe('a');
    const asks = c.queue.filter((m) => m.type === 'Vote' && m.from === 'a');
    expect(asks.map((m) => m.to).sort()).toEqual(['b', 'c']);
    // The vote for itself is in the hard state persisted before the requests go out.
    expect(c.disks.get('a')!.hardState).toEqual(expect.objectContaining({ term: 1, vote: 'a' }));
  });

  test('election timeouts are randomized in [electionTicks, 2·electionTicks), from the seeded source only', () => {
    const ticksToCampaign = (seed: number) => {
      let draws = 0;
      const c = new TestCluster(['a', 'b', 'c'], {
        random: () => {
          draws += 1;
          return ((seed * 7919 + draws * 104729) % 1000) / 1000;
        },
      });
      let ticks = 0;
      while (c.core('a').role === 'follower') {
        c.tick('a');
        ticks += 1;
      }
      return ticks;
    };
    const seen = new Set<number>();
    for (let seed = 1; seed <= 20; seed += 1) {
      const t = ticksToCampaign(seed);
      expect(t).toBeGreaterThanOrEqual(10);
      expect(t).toBeLessThan(20);
      expect(ticksToCampaign(seed)).toBe(t);
      seen.add(t);
    }
    expect(seen.size).toBeGreaterThan(3);
  });

  test('a candidate with votes from a majority becomes leader and asserts itself with an entry of its term', () => {
    const c = cluster3();
    c.elect('a');
    expect(c.core('b').leaderId).toBe('a');
    expect(c.core('c').leaderId).toBe('a');
    expect(c.core('a').log.entry(1)).toEqual(expect.objectContaining({ term: 1, command: 'noop' }));
    expect(c.core('a').log.committed).toBe(1);
  });

  test('a candidate rejected by a majority goes back to follower', () => {
    const c = cluster3();
    c.elect('a');
    // b campaigns in term 2 but its log lacks nothing... make it stale: a and c have more entries.
    c.drop = (m) => m.to === 'b' || m.from === 'b';
    c.propose('a', 'x');
    c.drop = () => false;
    c.core('b').campaign();
    c.stabilize();
    expect(c.core('b').role).toBe('follower');
    expect(c.core('b').term).toBe(2);
  });

  test('each replica grants at most one vote per term, first come first served', () => {
    const core = coreWithLog([], 0);
    core.step(message({ type: 'Vote', from: 'b', to: 'a', term: 1 }));
    core.step(message({ type: 'Vote', from: 'c', to: 'a', term: 1 }));
    core.step(message({ type: 'Vote', from: 'b', to: 'a', term: 1 }));
    const replies = drain(core).filter((m) => m.type === 'VoteResp');
    expect(replies.map((m) => [m.to, m.reject])).toEqual([
      ['b', false],
      ['c', true],
      ['b', false],
    ]);
    expect(core.vote).toBe('b');
  });

  test('term and vote survive a restart, so a restarted replica does not vote twice in a term', () => {
    const c = cluster3();
    c.core('a').step(message({ type: 'Vote', from: 'b', to: 'a', term: 1 }));
    c.process('a');
    c.restart('a');
    c.core('a').step(message({ type: 'Vote', from: 'c', to: 'a', term: 1 }));
    c.process('a');
    expect(c.core('a').vote).toBe('b');
    expect(c.sent.filter((m) => m.type === 'VoteResp' && m.from === 'a').map((m) => [m.to, m.reject])).toEqual([
      ['b', false],
      ['c', true],
    ]);
  });
});

describe('§5.3 log replication', () => {
  test('the leader appends a proposal, replicates it, commits it once a majority has it durable, and everyone applies it', () => {
    const c = cluster3();
    c.elect('a');
    const result = c.propose('a', 'x', 'y');
    expect(result).toEqual({ ok: true, firstIndex: 2, lastIndex: 3, term: 1 });
    for (const id of c.ids) {
      expect(c.commands(id)).toEqual(['x', 'y']);
      expect(c.disks.get(id)!.entries.map((e) => e.command)).toEqual(['noop', 'x', 'y']);
    }
  });

  test('an entry commits with a majority even when one follower is unreachable', () => {
    const c = cluster3();
    c.elect('a');
    c.drop = (m) => m.to === 'c';
    c.propose('a', 'x');
    expect(c.core('a').log.committed).toBe(2);
    expect(c.commands('b')).toEqual(['x']);
    expect(c.commands('c')).toEqual([]);
  });

  test('only a leader takes proposals; a follower names the leader', () => {
    const c = cluster3();
    c.elect('a');
    expect(c.core('b').propose(['x'], 0)).toEqual({ ok: false, reason: 'not-leader', leaderId: 'a' });
  });

  test('log matching: a follower refuses entries whose predecessor it does not hold', () => {
    const core = coreWithLog(entries(1, 2, 1), 1);
    core.step(message({ type: 'App', from: 'b', to: 'a', term: 1, index: 5, logTerm: 1, entries: entries(6, 6, 1) }));
    expect(core.log.lastIndex()).toBe(2);
    const [reply] = drain(core);
    expect(reply).toEqual(expect.objectContaining({ type: 'AppResp', reject: true, index: 5, rejectHint: 2, logTerm: 1 }));
  });

  test('a follower deletes conflicting entries and everything after them, then takes the leader’s', () => {
    const core = coreWithLog([...entries(1, 2, 1), ...entries(3, 5, 2)], 2);
    core.step(message({ type: 'App', from: 'b', to: 'a', term: 3, index: 2, logTerm: 1, entries: entries(3, 3, 3) }));
    expect(core.log.lastIndex()).toBe(3);
    expect(core.log.term(3)).toBe(3);
  });

  test('a delayed, shorter AppendEntries never truncates entries that match', () => {
    const core = coreWithLog(entries(1, 5, 1), 1);
    core.step(message({ type: 'App', from: 'b', to: 'a', term: 1, index: 2, logTerm: 1, entries: entries(3, 3, 1) }));
    expect(core.log.lastIndex()).toBe(5);
    expect(drain(core)).toEqual([expect.objectContaining({ type: 'AppResp', index: 3, reject: false })]);
  });

  test('(planted bug truncate-without-conflict) the same message erases entries 4 and 5', () => {
    const core = coreWithLog(entries(1, 5, 1), 1, { plantedBug: 'truncate-without-conflict' });
    core.step(message({ type: 'App', from: 'b', to: 'a', term: 1, index: 2, logTerm: 1, entries: entries(3, 3, 1) }));
    expect(core.log.lastIndex()).toBe(3);
  });

  test('fast backtracking: a follower with a long conflicting tail is repaired in one rejection, not one per entry', () => {
    const c = cluster3();
    const leaderLog = [...entries(1, 3, 1), ...entries(4, 10, 3)];
    c.disks.set('a', { hardState: { term: 3, vote: null, commit: 3 }, snapshot: null, entries: leaderLog });
    c.disks.set('c', { hardState: { term: 3, vote: null, commit: 3 }, snapshot: null, entries: leaderLog });
    c.disks.set('b', { hardState: { term: 2, vote: null, commit: 3 }, snapshot: null, entries: [...entries(1, 3, 1), ...entries(4, 20, 2)] });
    for (const id of c.ids) c.restart(id);
    c.elect('a');
    const rejections = c.sent.filter((m) => m.type === 'AppResp' && m.from === 'b' && m.reject);
    expect(rejections.length).toBe(1);
    expect(c.core('b').log.lastIndex()).toBe(11);
    expect(c.core('b').log.term(10)).toBe(3);
  });

  test('explicit maximums: entries and bytes per message, messages in flight per follower', () => {
    const c = cluster3({ entriesPerMessageMax: 3, bytesPerMessageMax: 100, inflightMessagesMax: 2 });
    c.elect('a');
    c.propose('a', 'warm');
    const before = c.sent.length;
    // b stops answering: the leader may have at most 2 messages in flight to it.
    c.drop = (m) => m.type === 'AppResp' && m.from === 'b';
    for (let i = 0; i < 10; i += 1) c.propose('a', `p${i}`);
    const toB = c.sent.slice(before).filter((m) => m.type === 'App' && m.to === 'b' && m.entries.length > 0);
    expect(toB.length).toBe(2);
    for (const m of c.sent.filter((m) => m.type === 'App')) expect(m.entries.length).toBeLessThanOrEqual(3);
    // Byte limit: 24 + 60 estimated bytes per entry, 100 per message: one entry each.
    c.drop = () => false;
    const big = 'x'.repeat(60);
    const mark = c.sent.length;
    c.propose('a', big, big, big);
    const bigApps = c.sent.slice(mark).filter((m) => m.type === 'App' && m.to === 'c' && m.entries.some((e) => e.command === big));
    expect(bigApps.length).toBeGreaterThanOrEqual(3);
    for (const m of bigApps) expect(m.entries.length).toBe(1);
  });

  test('proposals are refused once too many entries wait to commit', () => {
    const c = cluster3({ uncommittedEntriesMax: 3 });
    c.elect('a');
    c.drop = (m) => m.from === 'a';
    expect(c.propose('a', 'x', 'y', 'z')).toEqual(expect.objectContaining({ ok: true }));
    expect(c.propose('a', 'w')).toEqual({ ok: false, reason: 'overloaded', leaderId: 'a' });
  });
});

describe('§5.4 safety', () => {
  test('election restriction: a vote is refused to a candidate whose log is less up to date', () => {
    const core = coreWithLog([...entries(1, 2, 1), ...entries(3, 3, 2)], 2);
    core.step(message({ type: 'Vote', from: 'b', to: 'a', term: 3, index: 5, logTerm: 1 }));
    core.step(message({ type: 'Vote', from: 'c', to: 'a', term: 4, index: 2, logTerm: 2 }));
    core.step(message({ type: 'Vote', from: 'b', to: 'a', term: 5, index: 3, logTerm: 2 }));
    const replies = drain(core).filter((m) => m.type === 'VoteResp');
    expect(replies.map((m) => [m.term, m.reject])).toEqual([
      [3, true],
      [4, true],
      [5, false],
    ]);
  });

  test('a leader commits an earlier term’s entry only through an entry of its own term, never by counting (Fig. 8)', () => {
    const run = (plantedBug: 'commit-prior-term' | null) => {
      const c = cluster3({ entriesPerMessageMax: 1, plantedBug });
      c.elect('a');
      // x reaches b, but a never hears back: x (term 1) is on a and b, uncommitted.
      c.drop = (m) => m.to === 'c' || m.from === 'c' || (m.type === 'AppResp' && m.to === 'a');
      c.propose('a', 'x');
      expect(c.core('a').log.committed).toBe(1);
      // b becomes leader of term 2 with c's vote and replicates x to c, one entry per message (c
      // rejects the first probe, which it cannot match); b's own entry of term 2 does not get through yet.
      let probes = 0;
      c.drop = (m) => m.to === 'a' || m.from === 'a' || (m.type === 'App' && m.entries.some((e) => e.term === 2) && ++probes > 1);
      c.elect('b');
      expect(c.core('c').log.entry(2)?.command).toBe('x');
      const committedByCounting = c.core('b').log.committed;
      c.drop = (m) => m.to === 'a' || m.from === 'a';
      c.tick('b');
      c.stabilize();
      return { committedByCounting, finally: c.core('b').log.committed };
    };
    expect(run(null)).toEqual({ committedByCounting: 1, finally: 3 });
    expect(run('commit-prior-term').committedByCounting).toBe(2);
  });

  test('a leader counts its own entry towards a majority only once it is durable', () => {
    const c = cluster3();
    c.elect('a');
    const a = c.core('a');
    a.propose(['x'], 0);
    // b and c acknowledge... only b: a's own copy is not persisted yet (its Ready is still unprocessed).
    a.step(message({ type: 'AppResp', from: 'b', to: 'a', term: 1, index: 2 }));
    expect(a.log.committed).toBe(1);
    c.process('a');
    expect(a.log.committed).toBe(2);
  });

  test('(planted bug ack-before-durable) the leader commits before its own copy is durable', () => {
    const c = cluster3({ plantedBug: 'ack-before-durable' });
    c.elect('a');
    const a = c.core('a');
    a.propose(['x'], 0);
    a.step(message({ type: 'AppResp', from: 'b', to: 'a', term: 1, index: 2 }));
    expect(a.log.committed).toBe(2);
  });

  test('everything committed survives the restart of every replica', () => {
    const c = cluster3();
    c.elect('a');
    c.propose('a', 'x', 'y');
    for (const id of c.ids) c.restart(id);
    for (const id of c.ids) {
      expect(c.core(id).term).toBe(1);
      expect(c.core(id).log.committed).toBeGreaterThanOrEqual(2);
    }
    c.elect('b');
    c.propose('b', 'z');
    for (const id of c.ids) expect(c.commands(id)).toEqual(['x', 'y', 'z']);
  });
});

describe('§6/§9 pre-vote and check-quorum', () => {
  test('pre-vote: a partitioned replica does not inflate its term, and rejoins without deposing the leader', () => {
    const c = cluster3({ preVote: true, checkQuorum: true });
    c.elect('a');
    c.drop = (m) => m.to === 'c' || m.from === 'c';
    c.tick('c', 100);
    c.stabilize();
    expect(c.core('c').term).toBe(1);
    c.drop = () => false;
    c.tick('a');
    c.stabilize();
    expect(c.core('a').role).toBe('leader');
    expect(c.core('a').term).toBe(1);
    expect(c.core('c').leaderId).toBe('a');
  });

  test('without pre-vote the same partition inflates the term', () => {
    const c = cluster3();
    c.elect('a');
    c.drop = (m) => m.to === 'c' || m.from === 'c';
    c.tick('c', 100);
    expect(c.core('c').term).toBeGreaterThan(3);
  });

  test('check-quorum: a leader cut off from the majority steps down within two election timeouts', () => {
    const c = cluster3({ checkQuorum: true });
    c.elect('a');
    c.drop = (m) => m.to === 'a' || m.from === 'a';
    c.tick('a', 10);
    // The first round still counts what it heard before the cut.
    expect(c.core('a').role).toBe('leader');
    c.tick('a', 10);
    c.stabilize();
    expect(c.core('a').role).toBe('follower');
  });

  test('check-quorum lease: followers that hear from a leader ignore vote requests', () => {
    const c = cluster3({ checkQuorum: true });
    c.elect('a');
    c.core('c').campaign();
    c.stabilize();
    expect(c.core('b').term).toBe(1);
    expect(c.core('a').role).toBe('leader');
    expect(c.sent.filter((m) => m.type === 'VoteResp' && m.to === 'c')).toEqual([]);
  });
});

describe('a leader whose connections closed (peerUnreachable, the shell’s hint)', () => {
  /** Pre-vote campaigns of a replica (each asks the two others). */
  const preVotesFrom = (c: ReturnType<typeof cluster3>, id: string) => c.sent.filter((m) => m.type === 'PreVote' && m.from === id).length / 2;

  test('the survivors elect the first of them in id order within three ticks, in one round, instead of after a full election timeout', () => {
    const c = cluster3({ preVote: true, checkQuorum: true });
    c.elect('a');
    c.drop = (m) => m.to === 'a' || m.from === 'a';
    c.core('b').peerUnreachable('a');
    c.core('c').peerUnreachable('a');
    expect(c.core('b').leaderId).toBeNull();
    let ticks = 0;
    while (c.core('b').role !== 'leader' && c.core('c').role !== 'leader' && ticks < 20) {
      ticks += 1;
      c.tick('b');
      c.tick('c');
      c.stabilize();
    }
    expect(c.core('b').role).toBe('leader');
    expect(ticks).toBeLessThanOrEqual(3);
    expect(c.core('b').term).toBe(2);
    expect(preVotesFrom(c, 'c')).toBe(0);
    expect(c.core('c').leaderId).toBe('b');
  });

  test('without the hint nobody campaigns before the election timeout', () => {
    const c = cluster3({ preVote: true, checkQuorum: true });
    c.elect('a');
    c.drop = (m) => m.to === 'a' || m.from === 'a';
    for (let i = 0; i < 9; i += 1) {
      c.tick('b');
      c.tick('c');
      c.stabilize();
    }
    expect(preVotesFrom(c, 'b') + preVotesFrom(c, 'c')).toBe(0);
  });

  test('a wrong hint (the leader is alive) costs one refused pre-vote: same leader, same term, and the usual timer again', () => {
    const c = cluster3({ preVote: true, checkQuorum: true });
    c.elect('a');
    c.core('b').peerUnreachable('a');
    c.tick('b', 3);
    c.stabilize();
    expect(preVotesFrom(c, 'b')).toBe(1);
    expect(c.sent.filter((m) => m.type === 'PreVoteResp' && m.to === 'b' && !m.reject)).toEqual([]);
    c.tick('a');
    c.stabilize();
    expect(c.core('a').role).toBe('leader');
    expect([c.core('a').term, c.core('b').term, c.core('c').term]).toEqual([1, 1, 1]);
    expect(c.core('b').leaderId).toBe('a');
    // The timer is the usual one again: nine quiet ticks bring no new campaign.
    c.tick('b', 9);
    c.stabilize();
    expect(preVotesFrom(c, 'b')).toBe(1);
  });

  test('a hint about a member that is not our leader changes nothing', () => {
    const c = cluster3({ preVote: true, checkQuorum: true });
    c.elect('a');
    c.core('b').peerUnreachable('c');
    expect(c.core('b').leaderId).toBe('a');
    c.tick('b', 9);
    c.stabilize();
    expect(preVotesFrom(c, 'b')).toBe(0);
  });
});

describe('§7 log compaction and snapshots', () => {
  test('a follower behind the leader’s compacted log is sent a snapshot, installs it and catches up', () => {
    const c = cluster3();
    c.elect('a');
    c.propose('a', 'x1', 'x2');
    c.drop = (m) => m.to === 'c' || m.from === 'c';
    for (let i = 0; i < 5; i += 1) c.propose('a', `y${i}`);
    const a = c.core('a');
    const snapshotIndex = a.log.committed;
    a.compact(snapshotIndex, { image: 'state at 8' });
    expect(a.log.offset).toBe(snapshotIndex);
    c.propose('a', 'z');
    c.drop = () => false;
    c.tick('a');
    c.stabilize();
    const snap = c.sent.find((m) => m.type === 'Snap' && m.to === 'c');
    expect(snap?.snapshot).toEqual(expect.objectContaining({ index: snapshotIndex, term: 1, data: { image: 'state at 8' } }));
    expect(c.disks.get('c')!.snapshot?.index).toBe(snapshotIndex);
    expect(c.core('c').log.committed).toBe(a.log.committed);
    // After the snapshot, c applies only what follows it.
    expect(c.commands('c')).toEqual(['x1', 'x2', 'z']);
  });

  test('compaction never goes past what is applied', () => {
    const c = cluster3();
    c.elect('a');
    expect(() => c.core('a').compact(5, null)).toThrow(/no such entry|beyond applied/);
  });
});

describe('§3.10 (thesis) leader transfer', () => {
  test('the leader brings the target up to date, sends TimeoutNow, and the target wins the next term', () => {
    const c = cluster3({ checkQuorum: true, preVote: true });
    c.elect('a');
    c.drop = (m) => m.to === 'c';
    c.propose('a', 'x');
    c.drop = () => false;
    expect(c.core('a').transferLeadership('c')).toBe(true);
    expect(c.core('a').propose(['refused'], 0)).toEqual({ ok: false, reason: 'transferring', leaderId: 'a' });
    c.stabilize();
    expect(c.sent.some((m) => m.type === 'TimeoutNow' && m.to === 'c')).toBe(true);
    expect(c.core('c').role).toBe('leader');
    expect(c.core('c').term).toBe(2);
    expect(c.core('a').role).toBe('follower');
    c.propose('c', 'y');
    for (const id of c.ids) expect(c.commands(id)).toEqual(['x', 'y']);
  });
});

describe('leader-assigned time', () => {
  test('timestamps never decrease along the log, even when a new leader’s clock is behind', () => {
    const c = cluster3();
    c.clockMs = 5_000_000;
    c.elect('a');
    c.propose('a', 'x');
    c.clockMs = 1_000;
    c.tick('b');
    c.elect('b');
    c.propose('b', 'y');
    c.clockMs = 6_000_000;
    c.propose('b', 'z');
    const log = c.applied.get('c')!;
    expect(log.map((e) => e.command)).toEqual(['noop', 'x', 'noop', 'y', 'z']);
    for (let i = 1; i < log.length; i += 1) expect(log[i]!.timestampMs).toBeGreaterThanOrEqual(log[i - 1]!.timestampMs);
    expect(log.find((e) => e.command === 'y')!.timestampMs).toBe(5_000_000);
    expect(log.find((e) => e.command === 'z')!.timestampMs).toBe(6_000_000);
  });
});
