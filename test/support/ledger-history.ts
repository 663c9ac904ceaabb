/**
 * Random ledger histories as the event store would deliver them: commands drawn by fast-check, applied
 * by the real LedgerMachine (so every event is one the ledger can produce), with timestamps that cross
 * hour and day boundaries in UTC and sometimes land exactly on them.
 */
import fc from 'fast-check';
import type { LedgerCommand } from '../../src/domain/commands';
import type { AccountRecord, LedgerEvent, TransactionRecord } from '../../src/domain/events';
import { LedgerMachine } from '../../src/domain/ledger';
import { DEFAULT_RULES } from '../../src/domain/rules';
import type { EventStore, RecordedEvent } from '../../src/eventstore/event-store';
import { LEDGER_STREAM, LedgerEventPublisher } from '../../src/eventstore/ledger-event-publisher';

const ACCOUNTS = ['a', 'b', 'c', 'd', 'e', 'f'];
/** 2024-02-29 23:00 UTC: the first hours cross a day, a month and a leap day. */
export const HISTORY_START_MS = Date.UTC(2024, 1, 29, 23, 0, 0);

type Step =
  | { kind: 'open'; account: number; currency: 'USD' | 'EUR'; initial: number }
  | { kind: 'deposit' | 'withdraw'; account: number; amount: number; pending: boolean; timeout: boolean }
  | { kind: 'transfer'; from: number; to: number; amount: number; pending: boolean; timeout: boolean }
  | { kind: 'settle' | 'cancel'; tx: number }
  | { kind: 'tick' };

const account = fc.nat({ max: ACCOUNTS.length - 1 });
// Amounts around the large-transaction threshold (1,000,000) as well as small ones.
const amount = fc.oneof(fc.integer({ min: 1, max: 5_000 }), fc.integer({ min: 900_000, max: 2_000_000 }));
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('open' as const), account, currency: fc.constantFrom('USD' as const, 'EUR' as const), initial: fc.oneof(fc.constant(0), amount) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom('deposit' as const, 'withdraw' as const), account, amount, pending: fc.boolean(), timeout: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('transfer' as const), from: account, to: account, amount, pending: fc.boolean(), timeout: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constantFrom('settle' as const, 'cancel' as const), tx: fc.nat({ max: 60 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('tick' as const) }) },
);
/** Gaps between entries: exact quarter hours (so some land on boundaries) or odd milliseconds. */
const gapMs = fc.oneof(fc.constantFrom(0, 15 * 60_000, 30 * 60_000, 60 * 60_000, 6 * 3_600_000), fc.integer({ min: 1, max: 40 * 60_000 }));

const entry = fc.tuple(step, gapMs);
export const historyArbitrary: fc.Arbitrary<Array<[Step, number]>> = fc.array(entry, { minLength: 1, maxLength: 120 });

/** A long history, reproducible from its seed. */
export function sampleHistory(entries: number, seed: number): Array<[Step, number]> {
  return fc.sample(entry, { numRuns: entries, seed });
}

/** Applies the steps and appends their events to a real event store, as the node's pipeline does. */
export async function publishHistory(eventStore: EventStore, steps: ReadonlyArray<[Step, number]>): Promise<number> {
  const machine = new LedgerMachine(DEFAULT_RULES);
  const publisher = new LedgerEventPublisher(eventStore);
  await publisher.start();
  let timestampMs = HISTORY_START_MS;
  let events = 0;
  for (const [i, [s, gap]] of steps.entries()) {
    timestampMs += gap;
    const result = machine.apply({ index: i + 1, timestampMs }, command(s));
    publisher.enqueue(i + 1, timestampMs, result.events);
    events += result.events.length;
    if (i % 500 === 499) await publisher.flush();
  }
  await publisher.flush();
  await publisher.stop();
  return events;
}

function command(s: Step): LedgerCommand {
  const timeout = (t: boolean) => (t ? 2 * 3600 : null);
  switch (s.kind) {
    case 'open':
      return { type: 'OpenAccount', input: { id: ACCOUNTS[s.account]!, currency: s.currency, initialBalance: String(s.initial) } };
    case 'deposit':
      return { type: 'Deposit', input: { accountId: ACCOUNTS[s.account]!, amount: String(s.amount), pending: s.pending, holdTimeoutSeconds: s.pending ? timeout(s.timeout) : null } };
    case 'withdraw':
      return { type: 'Withdraw', input: { accountId: ACCOUNTS[s.account]!, amount: String(s.amount), pending: s.pending, holdTimeoutSeconds: s.pending ? timeout(s.timeout) : null } };
    case 'transfer':
      return {
        type: 'Transfer',
        input: { fromAccountId: ACCOUNTS[s.from]!, toAccountId: ACCOUNTS[s.to]!, amount: String(s.amount), pending: s.pending, holdTimeoutSeconds: s.pending ? timeout(s.timeout) : null },
      };
    case 'settle':
      return { type: 'SettleTransaction', input: { transactionId: `tx-${s.tx}` } };
    case 'cancel':
      return { type: 'CancelTransaction', input: { transactionId: `tx-${s.tx}` } };
    case 'tick':
      return { type: 'Tick' };
  }
}

/** Applies the steps and returns the events as recorded events of the ledger stream, in order. */
export function recordHistory(steps: ReadonlyArray<[Step, number]>): RecordedEvent[] {
  const machine = new LedgerMachine(DEFAULT_RULES);
  const recorded: RecordedEvent[] = [];
  let timestampMs = HISTORY_START_MS;
  steps.forEach(([s, gap], i) => {
    timestampMs += gap;
    const result = machine.apply({ index: i + 1, timestampMs }, command(s));
    for (const { position, event } of result.events) recorded.push(recordedEvent(recorded.length, position, timestampMs, event));
  });
  return recorded;
}

export function recordedEvent(sequence: number, position: string, timestampMs: number, event: LedgerEvent): RecordedEvent {
  return {
    id: `event-${sequence}`,
    streamId: LEDGER_STREAM,
    revision: BigInt(sequence),
    type: event.type,
    data: event.data as unknown as Record<string, unknown>,
    metadata: { position, timestampMs },
    storePosition: String(sequence).padStart(12, '0'),
    createdAtMs: timestampMs,
  };
}

/** The final state of every account and transaction, read straight off the events. */
export function finalState(events: readonly RecordedEvent[]): {
  accounts: Map<string, AccountRecord>;
  transactions: Map<string, TransactionRecord>;
  recordedCount: Map<string, number>;
} {
  const accounts = new Map<string, AccountRecord>();
  const transactions = new Map<string, TransactionRecord>();
  const recordedCount = new Map<string, number>();
  for (const recorded of events) {
    const event = { type: recorded.type, data: recorded.data } as unknown as LedgerEvent;
    if (event.type === 'IdempotencyKeyRecorded') continue;
    if (event.type === 'AccountOpened') {
      accounts.set(event.data.account.id, event.data.account);
      continue;
    }
    for (const a of event.data.accounts) accounts.set(a.id, a);
    transactions.set(event.data.transaction.id, event.data.transaction);
    if (event.type === 'TransactionRecorded') recordedCount.set(event.data.transaction.currency, (recordedCount.get(event.data.transaction.currency) ?? 0) + 1);
  }
  return { accounts, transactions, recordedCount };
}
