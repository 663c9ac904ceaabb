import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BatchOperation, LedgerCommand } from '../../src/domain/commands';
import { LedgerMachine } from '../../src/domain/ledger';
import { DEFAULT_RULES } from '../../src/domain/rules';
import type { RecordedEvent } from '../../src/eventstore/event-store';
import { projectBatch } from '../../src/projections/project-batch';
import { LEDGER_PROJECTORS } from '../../src/projections/projectors';
import type { BalanceHistoryDoc, Checkpoint } from '../../src/projections/read-model-store';
import { SqliteReadModelStore } from '../../src/projections/sqlite-read-model-store';
import { recordEntry } from '../support/recorded-events';

const T0 = Date.UTC(2026, 0, 31, 12);

/** Recorded events of the real decider: entry 1 opens a and b, entry 2 (one instant) moves 10, 20 and 30 from a to b, entry 3 (a second later) 5 back. */
function history(): RecordedEvent[] {
  const machine = new LedgerMachine(DEFAULT_RULES);
  const transfer = (fromAccountId: string, toAccountId: string, amount: string): BatchOperation => ({ transfer: { fromAccountId, toAccountId, amount } });
  const commands: LedgerCommand[] = [
    { type: 'ExecuteBatch', input: { operations: [{ openAccount: { id: 'a', initialBalance: '100' } }, { openAccount: { id: 'b', initialBalance: '0' } }] } },
    { type: 'ExecuteBatch', input: { operations: [transfer('a', 'b', '10'), transfer('a', 'b', '20'), transfer('a', 'b', '30')] } },
    { type: 'ExecuteBatch', input: { operations: [transfer('b', 'a', '5')] } },
  ];
  const recorded: RecordedEvent[] = [];
  commands.forEach((command, i) => {
    const envelope = { index: i + 1, timestampMs: T0 + i * 1000 };
    const result = machine.apply(envelope, command);
    if (!result.outcome.ok) throw new Error(JSON.stringify(result.outcome.rejection));
    recordEntry(recorded, envelope.timestampMs, result.events);
  });
  return recorded;
}

describe('projectBatch', () => {
  it('writes one balance-history row per account and instant: the newest of the batch', () => {
    const events = history();
    const { writes } = projectBatch(events, LEDGER_PROJECTORS, new Map<string, Checkpoint | null>(), 0);
    const rows = writes.flatMap((w) => (w.collection === 'balanceHistory' ? [w.doc as BalanceHistoryDoc] : []));
    const iso = (ms: number) => new Date(ms).toISOString();
    // Entry 2 touched a and b three times each at one instant: only the last balance of each is kept.
    expect(rows.map((r) => [r.accountId, r.at, r.balance]).sort()).toEqual(
      [
        ['a', iso(T0), '100'],
        ['b', iso(T0), '0'],
        ['a', iso(T0 + 1000), '40'],
        ['b', iso(T0 + 1000), '60'],
        ['a', iso(T0 + 2000), '45'],
        ['b', iso(T0 + 2000), '55'],
      ].sort(),
    );
    const lastOfEntry2 = events.filter((e) => e.metadata.position.startsWith('0000000000000002')).at(-1)!.metadata.position;
    expect(rows.find((r) => r.accountId === 'a' && r.at === iso(T0 + 1000))!.position).toBe(lastOfEntry2);
    // Transactions are not merged: a's opening deposit (b opens at 0, with none) and the four transfers.
    expect(writes.filter((w) => w.collection === 'transactions')).toHaveLength(5);
  });

  it('answers balanceAt the same whether the history is projected in one batch or event by event', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'project-batch-'));
    try {
      const events = history();
      const project = async (file: string, batchSize: number) => {
        const store = SqliteReadModelStore.open(join(dir, file));
        let checkpoints = new Map<string, Checkpoint | null>();
        for (let i = 0; i < events.length; i += batchSize) {
          const batch = projectBatch(events.slice(i, i + batchSize), LEDGER_PROJECTORS, checkpoints, 0);
          await store.applyBatch(batch.writes, batch.checkpoints);
          checkpoints = new Map(Object.entries(batch.checkpoints));
        }
        return store;
      };
      const whole = await project('whole.sqlite', events.length);
      const single = await project('single.sqlite', 1);
      // Cut inside entry 2: its first transfer lands in a batch of its own.
      const cut = await project('cut.sqlite', 3);
      const instants = [T0 - 1, T0, T0 + 999, T0 + 1000, T0 + 1500, T0 + 2000, T0 + 5000].map((ms) => new Date(ms).toISOString());
      const answers = async (store: SqliteReadModelStore) => Promise.all(['a', 'b'].flatMap((id) => instants.map((at) => store.balanceAt(id, at))));
      const expected = [null, '100', '100', '40', '40', '45', '45', null, '0', '0', '60', '60', '55', '55'];
      expect(await answers(whole)).toEqual(expected);
      expect(await answers(single)).toEqual(expected);
      expect(await answers(cut)).toEqual(expected);
      await Promise.all([whole.close(), single.close(), cut.close()]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
