import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BatchOperation, CommandEnvelope, LedgerCommand } from '../../src/domain/commands';
import type { SuccessOutcome } from '../../src/domain/events';
import { type EntryResult, LedgerMachine, type LedgerSnapshotV1 } from '../../src/domain/ledger';
import { DEFAULT_RULES } from '../../src/domain/rules';

/**
 * Idempotency records keep what the first decision read, not its result (src/domain/idempotency.ts).
 * These tests hold the guarantee to the byte: a same-input retry answers with exactly the first
 * result, whatever happened since, after a restart from a snapshot and after a replay of the log.
 */

const BASE_MS = Date.UTC(2026, 11, 1);
const METADATA_4KIB = { note: 'm'.repeat(4096 - '{"note":""}'.length) };

interface LoggedEntry {
  envelope: CommandEnvelope;
  command: LedgerCommand;
}

/** A machine with its log, so tests can replay the log into a fresh machine. */
function ledger() {
  const machine = new LedgerMachine(DEFAULT_RULES);
  const log: LoggedEntry[] = [];
  let nowMs = BASE_MS;
  const apply = (command: LedgerCommand, stepMs = 1000): EntryResult => {
    nowMs += stepMs;
    const envelope = { index: machine.appliedIndex + 1, timestampMs: nowMs };
    log.push({ envelope, command });
    return machine.apply(envelope, command);
  };
  return { machine, log, apply, nowMs: () => nowMs };
}

function success(result: EntryResult): SuccessOutcome {
  if (!result.outcome.ok) throw new Error(`rejected: ${result.outcome.rejection.code} ${result.outcome.rejection.message}`);
  return result.outcome.outcome;
}

const keyOf = (command: LedgerCommand): string => (command as { idempotencyKey: string }).idempotencyKey;

const idempotencyRecordBytes = (machine: LedgerMachine, key: string) => Buffer.byteLength(JSON.stringify(machine.view.idempotency(key)), 'utf8');

/** Every kind of keyed command, one of them in an entry that expires a hold first (events before its own). */
function keyedCommands(): LedgerCommand[] {
  return [
    { type: 'OpenAccount', input: { id: 'A', initialBalance: '100000', metadata: { owner: 'alice', nested: { b: 1, a: [2, { z: 1, y: null }] } } }, idempotencyKey: 'open-a' },
    { type: 'OpenAccount', input: { id: 'B', overdraftLimit: '500' }, idempotencyKey: 'open-b' },
    { type: 'Withdraw', input: { accountId: 'A', amount: '700', pending: true, holdTimeoutSeconds: 86_400, metadata: { why: 'hold' } }, idempotencyKey: 'hold-w' },
    { type: 'Deposit', input: { accountId: 'B', amount: '40', pending: true, holdTimeoutSeconds: 1 }, idempotencyKey: 'short-hold' },
    // Applied 5 s later: tx-3's hold expires in the same entry, before this command's events.
    { type: 'Transfer', input: { fromAccountId: 'A', toAccountId: 'B', amount: '1234', description: 'rent', metadata: { month: 12 } }, idempotencyKey: 't1' },
    { type: 'SettleTransaction', input: { transactionId: 'tx-2' }, idempotencyKey: 's1' },
    { type: 'Deposit', input: { accountId: 'B', amount: '50', pending: true }, idempotencyKey: 'pd' },
    { type: 'CancelTransaction', input: { transactionId: 'tx-5' }, idempotencyKey: 'c1' },
    {
      type: 'ExecuteBatch',
      input: {
        operations: [
          { openAccount: { id: 'C', initialBalance: '10', metadata: { kind: 'batch' } } },
          { deposit: { accountId: 'C', amount: '5', metadata: { n: 1 } } },
          { transfer: { fromAccountId: 'A', toAccountId: 'C', amount: '99', pending: true, holdTimeoutSeconds: 3600 } },
          { withdraw: { accountId: 'B', amount: '3' } },
          { transfer: { fromAccountId: 'C', toAccountId: 'A', amount: '2' } },
        ],
      },
      idempotencyKey: 'b1',
    },
  ];
}

describe('idempotency records', () => {
  it('rebuild the first result byte for byte, after later changes, a snapshot restore and a log replay', () => {
    const { machine, log, apply } = ledger();
    const first = new Map<string, string>();
    for (const command of keyedCommands()) {
      const result = apply(command, command.type === 'Transfer' ? 5000 : 1000);
      if (keyOf(command) === 't1') expect(result.events[0]!.event.type).toBe('TransactionExpired');
      first.set(keyOf(command), JSON.stringify(success(result)));
    }
    // Later changes to every account the keyed commands touched, so nothing of the first results is current.
    apply({ type: 'Transfer', input: { fromAccountId: 'A', toAccountId: 'B', amount: '7' } });
    apply({ type: 'Transfer', input: { fromAccountId: 'B', toAccountId: 'C', amount: '1' } });
    apply({ type: 'SettleTransaction', input: { transactionId: 'tx-8' } });

    const retryAll = (target: LedgerMachine, atMs: number) => {
      for (const command of keyedCommands()) {
        const before = JSON.stringify(target.snapshot());
        const result = target.apply({ index: target.appliedIndex + 1, timestampMs: atMs }, command);
        expect(result.outcome).toMatchObject({ ok: true, replayed: true });
        expect(JSON.stringify(success(result))).toBe(first.get(keyOf(command)));
        expect(result.events).toEqual([]);
        const after = JSON.parse(JSON.stringify(target.snapshot()));
        expect({ ...after, appliedIndex: 0, lastTimestampMs: 0 }).toEqual({ ...JSON.parse(before), appliedIndex: 0, lastTimestampMs: 0 });
      }
    };

    const snapshotJson = JSON.stringify(machine.snapshot());
    const retryAtMs = BASE_MS + 3600_000;
    retryAll(machine, retryAtMs);

    const restored = new LedgerMachine(DEFAULT_RULES);
    restored.restore(JSON.parse(snapshotJson));
    retryAll(restored, retryAtMs);

    const replayed = new LedgerMachine(DEFAULT_RULES);
    for (const entry of log) replayed.apply(entry.envelope, entry.command);
    expect(JSON.stringify(replayed.snapshot())).toBe(snapshotJson);
    retryAll(replayed, retryAtMs);
  });

  it('detect other input under the same key, also after a restore', () => {
    const { machine, apply } = ledger();
    for (const command of keyedCommands()) apply(command, command.type === 'Transfer' ? 5000 : 1000);
    const record = machine.view.idempotency('t1')!;
    expect(record.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    const restored = new LedgerMachine(DEFAULT_RULES);
    restored.restore(JSON.parse(JSON.stringify(machine.snapshot())));
    for (const target of [machine, restored]) {
      const other: LedgerCommand = { type: 'Transfer', input: { fromAccountId: 'A', toAccountId: 'B', amount: '1234', description: 'rent', metadata: { month: 11 } }, idempotencyKey: 't1' };
      const result = target.apply({ index: target.appliedIndex + 1, timestampMs: BASE_MS + 60_000 }, other);
      expect(result.outcome).toMatchObject({ ok: false, rejection: { code: 'IDEMPOTENCY_CONFLICT' } });
      const otherType: LedgerCommand = { type: 'Deposit', input: { accountId: 'B', amount: '40', pending: true, holdTimeoutSeconds: 1 }, idempotencyKey: 'b1' };
      expect(target.apply({ index: target.appliedIndex + 1, timestampMs: BASE_MS + 60_000 }, otherType).outcome).toMatchObject({ ok: false, rejection: { code: 'IDEMPOTENCY_CONFLICT' } });
    }
  });

  it('stay small: a 1,000-operation batch with 4 KiB metadata records under 2 KB, and 8 of them grow the snapshot by under 16 KB', () => {
    const { machine, apply } = ledger();
    for (let i = 0; i < 10; i += 1) apply({ type: 'OpenAccount', input: { id: `acct-${i}` } });
    const bytesBefore = Buffer.byteLength(JSON.stringify(machine.snapshot()), 'utf8');
    let resultBytes = 0;
    for (let b = 0; b < 8; b += 1) {
      const operations: BatchOperation[] = Array.from({ length: 1000 }, (_, i) => ({ deposit: { accountId: `acct-${i % 10}`, amount: String(i + 1), metadata: METADATA_4KIB } }));
      const result = apply({ type: 'ExecuteBatch', input: { operations }, idempotencyKey: `batch-${b}` });
      resultBytes = Buffer.byteLength(JSON.stringify(success(result)), 'utf8');
      expect(idempotencyRecordBytes(machine, `batch-${b}`)).toBeLessThan(2000);
    }
    // What each record kept before: the whole result.
    expect(resultBytes).toBeGreaterThan(4_000_000);
    const grownBytes = Buffer.byteLength(JSON.stringify(machine.snapshot()), 'utf8') - bytesBefore;
    expect(grownBytes).toBeLessThan(16_000);
  });

  it('stay within the stated bound in the worst case: 1,000 transfers between 2,000 accounts with long ids', () => {
    const { machine, apply } = ledger();
    const id = (i: number) => `${'x'.repeat(44)}-${String(i).padStart(5, '0')}`;
    for (let part = 0; part < 2; part += 1) {
      const operations: BatchOperation[] = Array.from({ length: 1000 }, (_, i) => ({ openAccount: { id: id(part * 1000 + i), initialBalance: '999999999', overdraftLimit: '9223372036854775807' } }));
      success(apply({ type: 'ExecuteBatch', input: { operations } }));
    }
    const operations: BatchOperation[] = Array.from({ length: 1000 }, (_, i) => ({
      transfer: { fromAccountId: id(i), toAccountId: id(1000 + i), amount: '1000000000', metadata: METADATA_4KIB, description: 'd'.repeat(500) },
    }));
    const key = 'k'.repeat(200);
    const result = apply({ type: 'ExecuteBatch', input: { operations }, idempotencyKey: key });
    const recordBytes = idempotencyRecordBytes(machine, key);
    // The bound stated in src/domain/idempotency.ts: ~1.6 KB + 140 bytes per account read.
    expect(recordBytes).toBeLessThanOrEqual(1600 + 140 * 2000);
    expect(Buffer.byteLength(JSON.stringify(success(result)), 'utf8')).toBeGreaterThan(10 * recordBytes);
    const retry = machine.apply({ index: machine.appliedIndex + 1, timestampMs: BASE_MS + 3600_000 }, { type: 'ExecuteBatch', input: { operations }, idempotencyKey: key });
    expect(JSON.stringify(success(retry))).toBe(JSON.stringify(success(result)));
  });
});

describe('a snapshot written by the version-1 code', () => {
  const fixture = JSON.parse(readFileSync(join(__dirname, '../fixtures/ledger-snapshot-v1.json'), 'utf8')) as {
    commands: Array<{ command: LedgerCommand; timestampMs: number }>;
    firstOutcomes: Record<string, SuccessOutcome>;
    snapshot: LedgerSnapshotV1;
  };

  it('is the old record shape (the whole result, the canonical input as fingerprint)', () => {
    expect(fixture.snapshot.version).toBe(1);
    const record = fixture.snapshot.idempotencyKeys.find((r) => r.key === 't1')!;
    expect(record.fingerprint.startsWith('{"input":')).toBe(true);
    expect(record.outcome).toEqual(fixture.firstOutcomes.t1);
  });

  it('loads: the same accounts and holds, same-input retries answer with the stored first results, other input conflicts', () => {
    const machine = new LedgerMachine(DEFAULT_RULES);
    machine.restore(fixture.snapshot);
    // The new code, given the same commands, reaches the same ledger (only the records' shape differs).
    const rebuilt = new LedgerMachine(DEFAULT_RULES);
    for (const [i, { command, timestampMs }] of fixture.commands.entries()) rebuilt.apply({ index: i + 1, timestampMs }, command);
    const { idempotencyKeys: _old, version: _v1, ...oldState } = fixture.snapshot;
    const { idempotencyKeys: _new, version: _v2, ...newState } = rebuilt.snapshot();
    expect(newState).toEqual(oldState);

    const retryAtMs = fixture.snapshot.lastTimestampMs + 60_000;
    const keyed = fixture.commands.filter(({ command }) => command.type !== 'Tick' && command.idempotencyKey !== undefined);
    expect(keyed.length).toBe(7);
    for (const target of [machine, rebuilt]) {
      for (const { command } of keyed) {
        const key = (command as { idempotencyKey: string }).idempotencyKey;
        const result = target.apply({ index: target.appliedIndex + 1, timestampMs: retryAtMs }, command);
        expect(result.outcome).toMatchObject({ ok: true, replayed: true });
        expect(JSON.stringify(success(result))).toBe(JSON.stringify(fixture.firstOutcomes[key]));
        expect(result.events).toEqual([]);
      }
    }
    const conflicting: LedgerCommand = { type: 'Deposit', input: { accountId: 'B', amount: '51', pending: true }, idempotencyKey: 'pd' };
    expect(machine.apply({ index: machine.appliedIndex + 1, timestampMs: retryAtMs }, conflicting).outcome).toMatchObject({ ok: false, rejection: { code: 'IDEMPOTENCY_CONFLICT' } });

    // Written again it is version 2, and the upcast records survive another restart.
    const again = new LedgerMachine(DEFAULT_RULES);
    const image = JSON.parse(JSON.stringify(machine.snapshot()));
    expect(image.version).toBe(2);
    again.restore(image);
    const t1 = keyed.find(({ command }) => (command as { idempotencyKey?: string }).idempotencyKey === 't1')!.command;
    const result = again.apply({ index: again.appliedIndex + 1, timestampMs: retryAtMs }, t1);
    expect(JSON.stringify(success(result))).toBe(JSON.stringify(fixture.firstOutcomes.t1));
  });
});
