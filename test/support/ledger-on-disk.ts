import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ComposedLedger, composeLedger } from '../../src/app/compose';
import { loadConfig } from '../../src/config';
import type { LedgerCommand } from '../../src/domain/commands';
import type { CommandOutcome } from '../../src/domain/ledger';

/** A composed ledger (no HTTP) on a data folder, for tests that restart it on the same folder. */
export async function openLedgerOn(dataDir: string, errors: Array<[string, Error]> = [], options: { pipelineInThread?: boolean } = {}): Promise<ComposedLedger> {
  const config = loadConfig({ LEDGER_DATA_DIR: dataDir, NODE_ENV: 'test', LEDGER_JWT_SECRET: 'test-secret-test-secret-test-secret-42' });
  return composeLedger(config, {
    onError: (where, error) => errors.push([where, error]),
    onFatal: (error) => errors.push(['fatal', error]),
    pipelineInThread: options.pipelineInThread,
  });
}

export function freshDataDir(prefix = 'ledger-disk-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export const openAccount = (id: string, initialBalance: bigint, idempotencyKey?: string): LedgerCommand => ({
  type: 'OpenAccount',
  input: { id, initialBalance: String(initialBalance) },
  ...(idempotencyKey ? { idempotencyKey } : {}),
});

export const transfer = (fromAccountId: string, toAccountId: string, amount: bigint, idempotencyKey?: string): LedgerCommand => ({
  type: 'Transfer',
  input: { fromAccountId, toAccountId, amount: String(amount) },
  ...(idempotencyKey ? { idempotencyKey } : {}),
});

export function expectOk(outcome: CommandOutcome): Extract<CommandOutcome, { ok: true }> {
  if (!outcome.ok) throw new Error(`command rejected: ${JSON.stringify(outcome.rejection)}`);
  return outcome;
}

/** Waits until the event store and every read model include the ledger's last event. */
export async function settle(ledger: ComposedLedger): Promise<void> {
  const position = ledger.node.machine.lastEventPosition;
  if (position === null) return;
  if (!(await ledger.api.waitForPosition(position, 30_000))) throw new Error(`read models did not reach ${position}`);
}
