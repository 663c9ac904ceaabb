import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NoLeaderError, ReplicationOutcomeUnknownError } from '../../src/consensus/command-log';
import { RaftCommandLog } from '../../src/consensus/raft-command-log';
import { InMemoryNetwork } from '../../src/consensus/transport/in-memory-transport';
import { LedgerStateMachine } from '../../src/app/ledger-node';
import type { LedgerCommand } from '../../src/domain/commands';
import type { EntryResult } from '../../src/domain/ledger';
import { DEFAULT_RULES } from '../../src/domain/rules';
import { seededRandom } from '../support/seeded-random';

type Log = RaftCommandLog<LedgerCommand, EntryResult>;

const IDS = ['a', 'b', 'c'];

interface Replica {
  id: string;
  dir: string;
  machine: LedgerStateMachine;
  log: Log;
  applied: number[];
  /** Where the log reported a survivable problem (or a notable event such as a snapshot install). */
  reported: string[];
}

let root: string;
let network: InMemoryNetwork;
let replicas: Map<string, Replica>;

function boot(id: string, dir = join(root, id)): Replica {
  const machine = new LedgerStateMachine(DEFAULT_RULES);
  const log: Log = new RaftCommandLog(machine, {
    dir,
    nodeId: id,
    peers: IDS,
    transport: network.transport(id),
    tickMs: 10,
    electionTicks: 10,
    heartbeatTicks: 2,
    leaderWaitMs: 3000,
    proposalTimeoutMs: 3000,
    snapshotEveryEntries: 40,
    random: seededRandom(id.charCodeAt(0)),
    onFatal: (error) => {
      throw error;
    },
    onError: (where) => replica.reported.push(where),
  });
  const replica: Replica = { id, dir, machine, log, applied: [], reported: [] };
  log.onApplied((entry) => replica.applied.push(entry.index));
  // Every entry is durable elsewhere at once here (no event store), so snapshots are taken on schedule.
  log.onApplied((entry) => log.setDurableElsewhereIndex(entry.index));
  replicas.set(id, replica);
  return replica;
}

async function waitFor<T>(what: string, probe: () => T | null | undefined | false, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function leader(): Replica | null {
  const leaders = [...replicas.values()].filter((r) => r.log.status().role === 'LEADER');
  return leaders.length === 1 ? leaders[0]! : null;
}

function balanceOf(r: Replica, account: string): bigint | null {
  const image = r.machine.snapshot() as { accounts: Array<{ id: string; balance: string }> };
  const found = image.accounts.find((a) => a.id === account);
  return found ? BigInt(found.balance) : null;
}

const open = (id: string, initialBalance = '0'): LedgerCommand => ({ type: 'OpenAccount', input: { id, currency: 'EUR', initialBalance } });
const transfer = (from: string, to: string, amount: string, key?: string): LedgerCommand => ({
  type: 'Transfer',
  input: { fromAccountId: from, toAccountId: to, amount },
  idempotencyKey: key,
});

function stateImage(r: Replica): string {
  return JSON.stringify(r.machine.snapshot());
}

beforeEach(async () => {
  root = mkdtempSync(join(tmpdir(), 'raft-log-'));
  network = new InMemoryNetwork();
  replicas = new Map();
  for (const id of IDS) boot(id);
  await Promise.all([...replicas.values()].map((r) => r.log.start()));
});

afterEach(async () => {
  await Promise.all([...replicas.values()].map((r) => r.log.stop().catch(() => undefined)));
  rmSync(root, { recursive: true, force: true });
});

describe('RaftCommandLog over an in-memory network', () => {
  test('elects one leader; proposals through any replica are applied once, in the same order, on all three', async () => {
    const first = await waitFor('a leader', leader);
    const follower = [...replicas.values()].find((r) => r !== first)!;
    expect((await follower.log.propose(open('acc-1', '1000'))).outcome.ok).toBe(true);
    expect((await first.log.propose(open('acc-2'))).outcome.ok).toBe(true);
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => [...replicas.values()][i % 3]!.log.propose(transfer('acc-1', 'acc-2', '10'))),
    );
    expect(results.every((r) => r.outcome.ok)).toBe(true);
    const target = first.log.status().commitIndex;
    await waitFor('every replica applied the commit index', () => [...replicas.values()].every((r) => r.machine.appliedIndex >= target));
    const images = [...replicas.values()].map(stateImage);
    expect(new Set(images).size).toBe(1);
    for (const r of replicas.values()) {
      expect(balanceOf(r, 'acc-1')).toBe(700n);
      expect(balanceOf(r, 'acc-2')).toBe(300n);
      // Gap-free, once each.
      expect(r.applied).toEqual(Array.from({ length: r.applied.length }, (_, i) => i + 1));
      const status = r.log.status();
      expect(status.term).toBe(first.log.status().term);
      expect(status.leaderId).toBe(first.id);
    }
    expect(follower.log.status().role).toBe('FOLLOWER');
  });

  test('the leader stops: a new leader is elected, acknowledged entries survive, and the old leader catches up on restart', async () => {
    const old = await waitFor('a leader', leader);
    await old.log.propose(open('x', '500'));
    await old.log.propose(open('y'));
    for (let i = 0; i < 5; i += 1) await old.log.propose(transfer('x', 'y', '7'));
    const oldTerm = old.log.status().term;
    await old.log.stop();
    replicas.delete(old.id);
    const next = await waitFor('a new leader', leader);
    expect(next.id).not.toBe(old.id);
    expect(next.log.status().term).toBeGreaterThan(oldTerm);
    expect(balanceOf(next, 'y')).toBe(35n);
    const other = [...replicas.values()].find((r) => r !== next)!;
    await other.log.propose(transfer('x', 'y', '5'));
    const back = boot(old.id);
    await back.log.start();
    // Recovery replays what was committed before the stop, before anything else.
    expect(balanceOf(back, 'y')).toBeGreaterThanOrEqual(35n);
    await waitFor('the old leader caught up', () => back.log.status().caughtUp && back.machine.appliedIndex >= next.log.status().commitIndex);
    expect(balanceOf(back, 'y')).toBe(40n);
    expect(stateImage(back)).toBe(stateImage(next));
    expect(back.log.status().role).toBe('FOLLOWER');
  });

  test('an isolated leader cannot commit; the majority elects another; on healing the old leader follows, and its replaced entry is routed again and applied once', async () => {
    const old = await waitFor('a leader', leader);
    await old.log.propose(open('p', '100'));
    await old.log.propose(open('q'));
    network.isolate(old.id);
    // Appended on the isolated leader only: it cannot commit.
    const stranded = old.log.propose(transfer('p', 'q', '60', 'stranded-key'));
    const strandedIndex = old.log.status().commitIndex + 1;
    const majority = [...replicas.values()].filter((r) => r !== old);
    const next = await waitFor('a leader among the majority', () => majority.find((r) => r.log.status().role === 'LEADER'));
    await next.log.propose(transfer('p', 'q', '30'));
    // No two leaders accepting writes in one term.
    expect(next.log.status().term).toBeGreaterThan(old.log.status().term);
    expect(balanceOf(old, 'q')).toBe(0n);
    network.healAll();
    await waitFor('the old leader follows', () => old.log.status().role === 'FOLLOWER' && old.log.status().leaderId === next.id);
    // Its entry at strandedIndex was replaced by the new leader's, so the command had not happened:
    // the shell routed it again, to the new leader, where it was applied once.
    const result = await stranded;
    expect(result.outcome.ok && !result.outcome.replayed).toBe(true);
    await waitFor('all applied', () => [...replicas.values()].every((r) => r.machine.appliedIndex >= next.log.status().commitIndex));
    for (const r of replicas.values()) {
      expect(balanceOf(r, 'q')).toBe(90n);
      expect(stateImage(r)).toBe(stateImage(next));
    }
    expect(old.applied.filter((i) => i === strandedIndex)).toHaveLength(1);
    // A client's retry with the same idempotency key applies at most once.
    const retry = await next.log.propose(transfer('p', 'q', '60', 'stranded-key'));
    expect(retry.outcome.ok && retry.outcome.replayed).toBe(true);
    expect(balanceOf(next, 'q')).toBe(90n);
  });

  test('a proposal forwarded to a leader that is then cut off is answered OUTCOME_UNKNOWN once another leader is known, not at the timeout; its retry applies once', async () => {
    const old = await waitFor('a leader', leader);
    await old.log.propose(open('m', '100'));
    await old.log.propose(open('n'));
    const follower = [...replicas.values()].find((r) => r !== old)!;
    await waitFor('the follower knows the leader', () => follower.log.status().leaderId === old.id);
    network.isolate(old.id);
    // Forwarded to the old leader over a cut link: lost on the way.
    const forwarded = follower.log.propose(transfer('m', 'n', '25', 'forwarded-key'));
    const outcome = await forwarded.then(
      () => null,
      (error: Error) => error,
    );
    expect(outcome).toBeInstanceOf(ReplicationOutcomeUnknownError);
    // Answered because the leader changed, not by the 3 s proposal timeout ("did not answer within").
    expect(outcome?.message).toMatch(new RegExp(`leader changed from ${old.id} to`));
    expect(follower.log.status().leaderId).not.toBe(old.id);
    // The client's retry with the same key applies it once, through the same replica.
    const retry = await follower.log.propose(transfer('m', 'n', '25', 'forwarded-key'));
    expect(retry.outcome.ok).toBe(true);
    const again = await follower.log.propose(transfer('m', 'n', '25', 'forwarded-key'));
    expect(again.outcome.ok && again.outcome.replayed).toBe(true);
    const next = replicas.get(follower.log.status().leaderId!)!;
    await waitFor('applied on the majority', () => follower.machine.appliedIndex >= next.log.status().commitIndex);
    expect(balanceOf(follower, 'n')).toBe(25n);
    expect(balanceOf(next, 'n')).toBe(25n);
  });

  test('with no majority, a proposal waits for a leader, bounded, then is refused as NO_LEADER and not applied', async () => {
    await waitFor('a leader', leader);
    for (const id of IDS) network.isolate(id);
    const lone = replicas.get('a')!;
    await waitFor('a has no leader', () => lone.log.status().role !== 'LEADER' && lone.log.status().leaderId === null, 10_000);
    const before = lone.machine.appliedIndex;
    const started = Date.now();
    await expect(lone.log.propose(open('never'))).rejects.toBeInstanceOf(NoLeaderError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2900);
    network.healAll();
    const l = await waitFor('a leader again', leader);
    await l.log.propose(open('after'));
    await waitFor('applied', () => [...replicas.values()].every((r) => r.machine.appliedIndex >= l.log.status().commitIndex));
    expect(lone.machine.appliedIndex).toBeGreaterThan(before);
    expect(balanceOf(l, 'never')).toBeNull();
    expect(balanceOf(l, 'after')).toBe(0n);
  }, 20_000);

  test('a follower that missed more than a snapshot interval catches up (by snapshot) and agrees', async () => {
    const l = await waitFor('a leader', leader);
    const lagging = [...replicas.values()].find((r) => r !== l)!;
    await lagging.log.stop();
    replicas.delete(lagging.id);
    await l.log.propose(open('s', '100000'));
    await l.log.propose(open('t'));
    for (let round = 0; round < 6; round += 1) {
      await Promise.all(Array.from({ length: 30 }, () => l.log.propose(transfer('s', 't', '1'))));
    }
    await waitFor('the leader compacted its log', () => l.log.status().snapshotIndex > 0);
    const back = boot(lagging.id);
    await back.log.start();
    await waitFor('caught up', () => back.machine.appliedIndex >= l.log.status().commitIndex, 10_000);
    expect(balanceOf(back, 't')).toBe(180n);
    expect(stateImage(back)).toBe(stateImage(l));
    expect(back.reported).toContain('snapshot install');
    expect(back.log.status().snapshotIndex).toBeGreaterThan(0);
    // And it restarts from what it installed.
    await back.log.stop();
    const again = boot(lagging.id);
    await again.log.start();
    expect(again.machine.appliedIndex).toBeGreaterThanOrEqual(back.log.status().snapshotIndex);
    await waitFor('caught up again', () => again.machine.appliedIndex >= l.log.status().commitIndex, 10_000);
    expect(stateImage(again)).toBe(stateImage(l));
  }, 20_000);
});
