import type { LedgerCommand } from '../../domain/commands';
import { type CommandOutcome, LedgerMachine } from '../../domain/ledger';
import { DEFAULT_RULES } from '../../domain/rules';
import type { Entry } from '../raft/types';
import { InvariantViolation } from './checkers';
import type { ClientOp } from './workload';

/**
 * Checks the clients' histories against the sequential ledger, with the committed log as the witness
 * (research note simulation.md §10): replaying the log through a fresh ledger gives every entry's
 * outcome; each answered operation must have taken effect at one index between its invocation and
 * its answer, with exactly the outcome it was told, and operations answered before another began
 * must sit earlier in the log. That is linearizability with the log order as the linearization, in
 * O(n log n) instead of a search.
 */
export function checkHistory(
  ops: readonly ClientOp[],
  canonical: readonly (Entry<LedgerCommand> | undefined)[],
  proposedAtMs: ReadonlyMap<string, number>,
  appliedAtMs: readonly (number | undefined)[],
): void {
  const model = new LedgerMachine(DEFAULT_RULES);
  const outcomes: CommandOutcome[] = [];
  /** Per idempotency key: indexes of its entries, and how many were accepted (not replays, not rejections). */
  const byKey = new Map<string, { indexes: number[]; accepted: number }>();
  for (let i = 1; i < canonical.length; i += 1) {
    const entry = canonical[i];
    if (entry === undefined) throw new InvariantViolation('state-machine-safety', `no replica applied committed entry ${i} (of ${canonical.length - 1})`);
    const { outcome } = model.apply({ index: entry.index, timestampMs: entry.timestampMs }, entry.command);
    outcomes[i] = outcome;
    const key = entry.command.type === 'Tick' ? undefined : entry.command.idempotencyKey;
    if (key === undefined) continue;
    let record = byKey.get(key);
    if (!record) byKey.set(key, (record = { indexes: [], accepted: 0 }));
    record.indexes.push(i);
    if (outcome.ok && !outcome.replayed) record.accepted += 1;
  }

  const effects: { op: ClientOp; index: number }[] = [];
  for (const op of ops) {
    const record = byKey.get(op.key);
    if (record && record.accepted > 1) throw new InvariantViolation('acknowledged-exactly-once', `operation ${op.key} took effect ${record.accepted} times`);
    if (!op.done) continue;
    const index = op.outcomeIndex!;
    const entry = canonical[index];
    if (!entry || entry.command !== op.command) {
      throw new InvariantViolation('linearizability', `operation ${op.key} was answered from entry ${index}, which is not its command in the committed log`);
    }
    const expected = JSON.stringify(outcomes[index]);
    if (JSON.stringify(op.outcome) !== expected) {
      throw new InvariantViolation('linearizability', `operation ${op.key} was told ${JSON.stringify(op.outcome).slice(0, 200)}; the log gives ${expected.slice(0, 200)} at ${index}`);
    }
    const success = op.outcome!.ok;
    if (success && record!.accepted !== 1) throw new InvariantViolation('acknowledged-exactly-once', `acknowledged operation ${op.key} took effect ${record!.accepted} times`);
    if (!success && record!.accepted !== 0) throw new InvariantViolation('acknowledged-exactly-once', `operation ${op.key} was rejected, yet took effect`);
    // The operation's effect: its accepted entry, or for a rejection the entry that answered.
    const effect = success ? record!.indexes.find((i) => outcomes[i]!.ok && !(outcomes[i] as { replayed: boolean }).replayed)! : index;
    const effectEntry = canonical[effect]!;
    const proposed = proposedAtMs.get(`${effect}/${effectEntry.term}`);
    if (proposed === undefined || proposed < op.invokedAtMs) {
      throw new InvariantViolation('linearizability', `operation ${op.key} took effect at ${effect}, proposed at ${proposed} ms, before it was invoked at ${op.invokedAtMs} ms`);
    }
    if ((appliedAtMs[index] ?? Infinity) > op.respondedAtMs!) {
      throw new InvariantViolation('linearizability', `operation ${op.key} was answered at ${op.respondedAtMs} ms, before entry ${index} was applied anywhere`);
    }
    effects.push({ op, index: effect });
  }

  // Real-time order: an operation answered before another was invoked takes effect earlier in the log.
  const byInvoke = effects.slice().sort((a, b) => a.op.invokedAtMs - b.op.invokedAtMs);
  const byResponse = effects.slice().sort((a, b) => a.op.respondedAtMs! - b.op.respondedAtMs!);
  let r = 0;
  let latest: { op: ClientOp; index: number } | null = null;
  for (const b of byInvoke) {
    while (r < byResponse.length && byResponse[r]!.op.respondedAtMs! < b.op.invokedAtMs) {
      const a = byResponse[r]!;
      if (latest === null || a.index > latest.index) latest = a;
      r += 1;
    }
    if (latest !== null && latest.index >= b.index) {
      throw new InvariantViolation('linearizability', `operation ${latest.op.key} (entry ${latest.index}) was answered before ${b.op.key} (entry ${b.index}) was invoked`);
    }
  }
}
