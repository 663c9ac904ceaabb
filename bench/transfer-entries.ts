/**
 * Applied log entries for the pipeline benches (bench:pipeline, bench:read-models), made by the real
 * LedgerMachine: entry 1 opens `accounts` accounts, then `count` entries of 1,000 transfers between
 * random distinct accounts (seeded, so every run gets the same ledger), one second of ledger time apart.
 */
import type { BatchOperation, LedgerCommand } from '../src/domain/commands';
import { LedgerMachine, type PositionedEvent } from '../src/domain/ledger';
import { DEFAULT_RULES } from '../src/domain/rules';
import { seededRandom } from '../test/support/seeded-random';

export interface AppliedEntry {
  index: number;
  timestampMs: number;
  events: PositionedEvent[];
}

export function transferEntries(count: number, accounts = 1000): AppliedEntry[] {
  const machine = new LedgerMachine(DEFAULT_RULES);
  const random = seededRandom(7);
  const account = (i: number) => `acct-${i}`;
  const entries: AppliedEntry[] = [];
  let timestampMs = Date.UTC(2026, 0, 31, 12);
  const apply = (command: LedgerCommand) => {
    const index = entries.length + 1;
    timestampMs += 1000;
    const result = machine.apply({ index, timestampMs }, command);
    if (!result.outcome.ok) throw new Error(JSON.stringify(result.outcome.rejection));
    entries.push({ index, timestampMs, events: result.events });
  };
  const opening: BatchOperation[] = [];
  for (let j = 0; j < accounts; j += 1) opening.push({ openAccount: { id: account(j), initialBalance: '1000000000' } });
  apply({ type: 'ExecuteBatch', input: { operations: opening } });
  for (let e = 0; e < count; e += 1) {
    const operations: BatchOperation[] = [];
    for (let k = 0; k < 1000; k += 1) {
      const from = Math.floor(random() * accounts);
      const to = (from + 1 + Math.floor(random() * (accounts - 1))) % accounts;
      operations.push({ transfer: { fromAccountId: account(from), toAccountId: account(to), amount: String(1 + Math.floor(random() * 999)) } });
    }
    apply({ type: 'ExecuteBatch', input: { operations } });
  }
  return entries;
}
