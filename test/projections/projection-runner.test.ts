import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LedgerCommand } from '../../src/domain/commands';
import { LedgerMachine } from '../../src/domain/ledger';
import { DEFAULT_RULES } from '../../src/domain/rules';
import { LedgerEventPublisher } from '../../src/eventstore/ledger-event-publisher';
import { SqliteEventStore } from '../../src/eventstore/sqlite-event-store';
import { ProjectionRunner } from '../../src/projections/projection-runner';
import { LEDGER_PROJECTORS } from '../../src/projections/projectors';
import { SqliteReadModelStore } from '../../src/projections/sqlite-read-model-store';

const open = (id: string, initialBalance = '0'): LedgerCommand => ({ type: 'OpenAccount', input: { id, currency: 'USD', initialBalance, overdraftLimit: '0' } });
const transfer = (from: string, to: string, amount: string, pending = false): LedgerCommand => ({
  type: 'Transfer',
  input: { fromAccountId: from, toAccountId: to, amount, pending },
});

describe('ProjectionRunner', () => {
  let dir: string;
  let events: SqliteEventStore;
  let readModels: SqliteReadModelStore;
  let machine: LedgerMachine;
  let publisher: LedgerEventPublisher;
  let index = 0;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'runner-'));
    events = SqliteEventStore.open(join(dir, 'events.sqlite'));
    readModels = SqliteReadModelStore.open(join(dir, 'read-models.sqlite'));
    machine = new LedgerMachine(DEFAULT_RULES);
    publisher = new LedgerEventPublisher(events);
    await publisher.start();
    index = 0;
  });
  afterEach(async () => {
    await readModels.close();
    await events.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function run(...commands: LedgerCommand[]): Promise<string> {
    let last = '';
    for (const command of commands) {
      index += 1;
      const envelope = { index, timestampMs: 1_700_000_000_000 + index * 1000 };
      const result = machine.apply(envelope, command);
      publisher.enqueue(index, envelope.timestampMs, result.events);
      if (result.outcome.ok && result.outcome.outcome.position) last = result.outcome.outcome.position;
    }
    await publisher.flush();
    return last;
  }

  it('projects accounts, transactions and balance history, and waitFor resolves at the position', async () => {
    const runner = new ProjectionRunner(events, readModels, LEDGER_PROJECTORS);
    await runner.start();
    const position = await run(open('a', '1000'), open('b'), transfer('a', 'b', '300'), transfer('a', 'b', '50', true));
    await expect(runner.waitFor(position, 5000)).resolves.toBe(true);

    const [a, b] = await readModels.getAccounts(['a', 'b']);
    expect(a).toMatchObject({ balance: '700', availableBalance: '650', transactionCount: 3 });
    expect(b).toMatchObject({ balance: '300', availableBalance: '300', transactionCount: 2 });
    const page = await readModels.findTransactions({ accountId: 'a' }, null, 10);
    expect(page.docs.map((t) => [t.id, t.status])).toEqual([
      ['tx-3', 'PENDING'],
      ['tx-2', 'SETTLED'],
      ['tx-1', 'SETTLED'],
    ]);
    expect(runner.status().map((s) => s.position)).toEqual([position, position, position, position]);
    await runner.stop();
  });

  it('resumes from its checkpoint after a restart and a replay changes nothing', async () => {
    const first = new ProjectionRunner(events, readModels, LEDGER_PROJECTORS);
    await first.start();
    const p1 = await run(open('a', '1000'), open('b'), transfer('a', 'b', '300'));
    await first.waitFor(p1, 5000);
    await first.stop();

    const p2 = await run(transfer('b', 'a', '100'));
    const seen: string[] = [];
    const second = new ProjectionRunner(events, readModels, LEDGER_PROJECTORS);
    second.onProjected((batch) => seen.push(...batch.map((e) => e.position)));
    await second.start();
    await expect(second.waitFor(p2, 5000)).resolves.toBe(true);
    // Only what came after the checkpoint is handed to live listeners.
    expect(seen.every((p) => p > p1)).toBe(true);
    const [a, b] = await readModels.getAccounts(['a', 'b']);
    expect(a?.balance).toBe('800');
    expect(b?.balance).toBe('200');
    await second.stop();

    // Throw the checkpoints away: a full replay over existing documents must land on the same state.
    const before = await readModels.findTransactions({}, null, 100);
    const rebuilt = new ProjectionRunner(events, readModels, LEDGER_PROJECTORS);
    (readModels as any).loadCheckpoint = async () => null;
    await rebuilt.start();
    await rebuilt.waitFor(p2, 5000);
    expect(await readModels.findTransactions({}, null, 100)).toEqual(before);
    expect((await readModels.getAccounts(['a']))[0]?.balance).toBe('800');
    await rebuilt.stop();
  });

  it('waitFor answers false when the position is not reached in time', async () => {
    const runner = new ProjectionRunner(events, readModels, LEDGER_PROJECTORS);
    await runner.start();
    await expect(runner.waitFor('0000000000000099-000000', 50)).resolves.toBe(false);
    await runner.stop();
  });
});
