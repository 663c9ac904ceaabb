import type { LedgerCommand } from '../../../src/domain/commands';
import { LedgerMachine } from '../../../src/domain/ledger';
import { DEFAULT_RULES } from '../../../src/domain/rules';
import type { Entry } from '../../../src/consensus/raft/types';
import { type ReplicaView, SafetyChecker } from '../../../src/consensus/sim/checkers';
import { checkHistory } from '../../../src/consensus/sim/history';
import { SimDisk } from '../../../src/consensus/sim/sim-disk';
import { SimRandom } from '../../../src/consensus/sim/random';
import type { ClientOp } from '../../../src/consensus/sim/workload';

function view(id: string, role: string, term: number, committed = 0, log: Entry<string>[] = []): ReplicaView<string> {
  return {
    id,
    role,
    term,
    committed,
    lastIndex: log.length,
    offset: 0,
    entry: (i) => log[i - 1],
    logTerm: (i) => (i === 0 ? 0 : log[i - 1]?.term),
    durableTerm: (i) => log[i - 1]?.term,
  };
}

const e = (index: number, term: number, command = `c${index}`): Entry<string> => ({ index, term, timestampMs: index, command });

describe('safety checker', () => {
  test('two leaders in one term break election safety', () => {
    const checker = new SafetyChecker<string>(2);
    checker.afterStep(view('a', 'leader', 3));
    checker.afterStep(view('a', 'leader', 3));
    expect(() => checker.afterStep(view('b', 'leader', 3))).toThrow(/election-safety/);
  });

  test('two different entries at one (index, term) break log matching', () => {
    const checker = new SafetyChecker<string>(2);
    checker.onAppend(view('a', 'leader', 1), [e(1, 1, 'x')]);
    expect(() => checker.onAppend(view('b', 'follower', 1), [e(1, 1, 'y')])).toThrow(/log-matching/);
  });

  test('applying another entry at a committed index breaks state-machine safety', () => {
    const checker = new SafetyChecker<string>(2);
    checker.onApply(view('a', 'leader', 1), e(1, 1, 'x'));
    expect(() => checker.onApply(view('b', 'follower', 2), e(1, 2, 'y'))).toThrow(/state-machine-safety/);
  });

  test('a commit index that goes back, a durable term that goes back, a changed vote', () => {
    const checker = new SafetyChecker<string>(2);
    checker.afterStep(view('a', 'follower', 1, 5));
    expect(() => checker.afterStep(view('a', 'follower', 1, 4))).toThrow(/commit-monotonic/);
    checker.onDurableHardState('a', { term: 2, vote: 'b', commit: 0 });
    expect(() => checker.onDurableHardState('a', { term: 2, vote: 'c', commit: 0 })).toThrow(/durable-term-vote/);
    expect(() => checker.onDurableHardState('a', { term: 1, vote: null, commit: 0 })).toThrow(/durable-term-vote/);
  });

  test('a vote told to a candidate must survive a crash', () => {
    const checker = new SafetyChecker<string>(2);
    checker.onSend('a', 'VoteResp', 4, 'b', false);
    expect(() => checker.onCrash('a', { term: 3, vote: null, commit: 0 })).toThrow(/durable-term-vote/);
    expect(() => checker.onCrash('a', { term: 4, vote: 'b', commit: 0 })).not.toThrow();
  });

  test('a leader committing what only a minority holds durably breaks committed-is-durable', () => {
    const checker = new SafetyChecker<string>(2);
    checker.durableCounter = () => 1;
    expect(() => checker.afterStep(view('a', 'leader', 1, 1, [e(1, 1)]))).toThrow(/committed-is-durable/);
  });
});

describe('sim disk', () => {
  test('nothing is durable before fsync; a crash keeps a prefix of the pending writes, possibly torn, never a gap', () => {
    for (let seed = 1; seed <= 200; seed += 1) {
      const disk = new SimDisk<string>();
      disk.writeEntries([e(1, 1), e(2, 1)]);
      disk.fsync();
      disk.writeEntries([e(3, 1), e(4, 1), e(5, 1)]);
      disk.writeHardState({ term: 1, vote: 'a', commit: 5 });
      disk.writeEntries([e(6, 1)]);
      expect(disk.lastIndex).toBe(2);
      disk.crash(new SimRandom(seed), 0.5);
      expect(disk.lastIndex).toBeGreaterThanOrEqual(2);
      disk.entries.forEach((entry, i) => expect(entry.index).toBe(i + 1));
      // The hard state after entries 3..5 survives only with all of them.
      if (disk.hardState.commit === 5) expect(disk.lastIndex).toBeGreaterThanOrEqual(5);
    }
  });
});

describe('history checker (the committed log as witness)', () => {
  const open: LedgerCommand = { type: 'ExecuteBatch', idempotencyKey: 'g', input: { operations: [{ openAccount: { id: 'a', initialBalance: '100' } }, { openAccount: { id: 'b' } }] } };
  const transfer: LedgerCommand = { type: 'Transfer', idempotencyKey: 't', input: { fromAccountId: 'a', toAccountId: 'b', amount: '10' } };
  const log: Entry<LedgerCommand>[] = [e(1, 1, open as never) as never, { index: 2, term: 1, timestampMs: 2, command: transfer }];
  const canonical = [undefined, { ...log[0]!, command: open }, log[1]!];
  const model = new LedgerMachine(DEFAULT_RULES);
  const outcomes = canonical.slice(1).map((entry) => model.apply({ index: entry!.index, timestampMs: entry!.timestampMs }, entry!.command).outcome);
  const proposed = new Map([['1/1', 0], ['2/1', 10]]);
  const applied = [undefined, 5, 15];
  const op = (over: Partial<ClientOp>): ClientOp => ({
    id: 1, client: 1, key: 't', command: transfer, invokedAtMs: 8, attempt: 1, target: null, lastTarget: 0, done: true, outcome: outcomes[1], outcomeIndex: 2, respondedAtMs: 20, ...over,
  });

  test('an answer that matches the log at its index passes', () => {
    expect(() => checkHistory([op({})], canonical, proposed, applied)).not.toThrow();
  });

  test('a wrong answer, an answer before the entry applied, or an effect before the call are not linearizable', () => {
    expect(() => checkHistory([op({ outcome: outcomes[0] })], canonical, proposed, applied)).toThrow(/linearizability/);
    expect(() => checkHistory([op({ respondedAtMs: 12 })], canonical, proposed, applied)).toThrow(/linearizability/);
    expect(() => checkHistory([op({ invokedAtMs: 11 })], canonical, proposed, applied)).toThrow(/linearizability/);
  });

  test('real-time order: an operation answered before another began must come first in the log', () => {
    const first = op({ key: 'g', command: open, outcome: outcomes[0], outcomeIndex: 1, invokedAtMs: 0, respondedAtMs: 6 });
    expect(() => checkHistory([first, op({})], canonical, proposed, applied)).not.toThrow();
    // A history in which the transfer (entry 2) was answered before the opening (entry 1) was invoked.
    const transferFirst = op({ invokedAtMs: -5, respondedAtMs: -1 });
    const proposedEarly = new Map([['1/1', 0], ['2/1', -4]]);
    expect(() => checkHistory([first, transferFirst], canonical, proposedEarly, [undefined, 5, -2])).toThrow(/t \(entry 2\) was answered before g \(entry 1\) was invoked/);
  });
});
