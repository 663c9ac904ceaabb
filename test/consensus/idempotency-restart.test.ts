import { join } from 'node:path';
import { LedgerStateMachine } from '../../src/app/ledger-node';
import { SingleNodeLog } from '../../src/consensus/single-node-log';
import type { BatchOperation, LedgerCommand } from '../../src/domain/commands';
import type { CommandOutcome, EntryResult } from '../../src/domain/ledger';
import { DEFAULT_RULES } from '../../src/domain/rules';
import { listSnapshots, removeDir, tempDir } from './log-test-support';

/**
 * Idempotency records no longer keep the first result (src/domain/idempotency.ts): across real
 * restarts, from a snapshot on disk and from the log alone, a retry still answers with the first
 * result to the byte.
 */
describe('idempotency keys across restarts of the single-node log', () => {
  let dir: string;
  const open: Array<SingleNodeLog<LedgerCommand, EntryResult>> = [];
  beforeEach(() => {
    dir = tempDir('ledger-idem-restart-');
  });
  afterEach(async () => {
    for (const log of open.splice(0)) await log.stop().catch(() => undefined);
    removeDir(dir);
  });

  const start = async (snapshotEveryEntries?: number) => {
    const machine = new LedgerStateMachine(DEFAULT_RULES);
    const log = new SingleNodeLog<LedgerCommand, EntryResult>(machine, { dir, nodeId: 'node-i', snapshotEveryEntries, clock: () => 1_700_000_000_000 });
    log.onApplied((entry) => log.setDurableElsewhereIndex(entry.index));
    open.push(log);
    await log.start();
    return { machine, log };
  };
  const firstResult = (outcome: CommandOutcome) => {
    if (!outcome.ok) throw new Error(`rejected: ${outcome.rejection.code}`);
    return JSON.stringify(outcome.outcome);
  };

  it('answers a retried batch and a retried settle with the first results after a snapshot restart and after a log replay', async () => {
    const metadata = { note: 'n'.repeat(4000), nested: { b: [1, 2], a: null } };
    const batch: LedgerCommand = {
      type: 'ExecuteBatch',
      input: {
        operations: [
          ...Array.from({ length: 50 }, (_, i): BatchOperation => ({ deposit: { accountId: 'alice', amount: String(i + 1), metadata } })),
          { transfer: { fromAccountId: 'alice', toAccountId: 'bob', amount: '300', pending: true, holdTimeoutSeconds: 86_400, metadata } },
        ],
      },
      idempotencyKey: 'batch-1',
    };
    const settle: LedgerCommand = { type: 'SettleTransaction', input: { transactionId: 'tx-52' }, idempotencyKey: 'settle-1' };
    const commands: LedgerCommand[] = [
      { type: 'OpenAccount', input: { id: 'alice', initialBalance: '1000', metadata }, idempotencyKey: 'open-alice' },
      { type: 'OpenAccount', input: { id: 'bob' } },
      batch,
      settle,
    ];
    const first = await start(4);
    const firsts: string[] = [];
    for (const command of commands) firsts.push(firstResult((await first.log.propose(command)).outcome));
    // Later entries change both accounts, and push the log past the snapshot.
    for (let i = 0; i < 6; i += 1) await first.log.propose({ type: 'Transfer', input: { fromAccountId: 'alice', toAccountId: 'bob', amount: '1' } });
    await first.log.stop();
    expect(listSnapshots(join(dir, 'snapshots')).length).toBeGreaterThan(0);

    const retry = async (log: SingleNodeLog<LedgerCommand, EntryResult>) => {
      for (const [i, command] of commands.entries()) {
        if (command.type === 'Tick' || command.idempotencyKey === undefined) continue;
        const { outcome } = await log.propose(command);
        expect(outcome).toMatchObject({ ok: true, replayed: true });
        expect(firstResult(outcome)).toBe(firsts[i]);
      }
    };
    const fromSnapshot = await start(4);
    expect(fromSnapshot.log.status().snapshotIndex).toBeGreaterThan(0);
    await retry(fromSnapshot.log);
    await fromSnapshot.log.stop();

    removeDir(join(dir, 'snapshots'));
    const fromLog = await start();
    expect(fromLog.log.status().snapshotIndex).toBe(0);
    await retry(fromLog.log);
  }, 60_000);
});
