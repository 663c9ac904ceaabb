/**
 * WalCheckpointer: the embedded stores' WAL checkpoints on a thread of their own, so that neither
 * writer stalls on them. With the checkpointer a writer's WAL stays short; without it the WAL grows
 * to the writer's own checkpoint bound (read models opened `checkpointedElsewhere`: a backstop of
 * 16,384 pages; the event store: 8,192); nothing is lost either way.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WalCheckpointer } from '../../src/app/wal-checkpointer';
import type { NewEvent, RecordedEvent } from '../../src/eventstore/event-store';
import { SqliteEventStore } from '../../src/eventstore/sqlite-event-store';
import { LEDGER_PROJECTORS } from '../../src/projections/projectors';
import { Replayer } from '../../src/projections/replay';
import { SqliteReadModelStore } from '../../src/projections/sqlite-read-model-store';
import { transferEntries } from '../../bench/transfer-entries';
import { recordEntry } from '../support/recorded-events';

/** Far off: the tests checkpoint when they choose (checkpointNow), not on the timer. */
const NEVER_MS = 3_600_000;

let dir: string;
let errors: Error[];
/** Closed after each test, in this order: checkpointers before the stores they checkpoint. */
let toClose: Array<{ close(): Promise<unknown> }>;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ledger-wal-checkpointer-'));
  errors = [];
  toClose = [];
});

afterEach(async () => {
  for (const closable of toClose) await closable.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A checkpointer whose errors go to `errors`, closed after the test. */
function startCheckpointer(intervalMs: number, ...rest: Parameters<typeof WalCheckpointer.start> extends [number, unknown, ...infer R] ? R : never): WalCheckpointer {
  const checkpointer = WalCheckpointer.start(intervalMs, (error) => errors.push(error), ...rest);
  toClose.push(checkpointer);
  return checkpointer;
}

/** `store`, closed after the test (after the checkpointers). */
function closedAfter<T extends { close(): Promise<unknown> }>(store: T): T {
  toClose.push(store);
  return store;
}

const walBytes = (file: string): number => statSync(`${file}-wal`).size;

/** One entry's events as the event store records them; store positions go on from entry to entry, as the store's would. */
function recordedBatch(entry: ReturnType<typeof transferEntries>[number]): RecordedEvent[] {
  const recorded: RecordedEvent[] = [];
  recordEntry(recorded, entry.timestampMs, entry.events);
  const offset = entry.index * 10_000;
  return recorded.map((event, i) => ({ ...event, storePosition: String(offset + i).padStart(19, '0') }));
}

describe('WalCheckpointer', () => {
  it('keeps the WAL of read models opened checkpointedElsewhere short while they are written; without it the WAL grows', async () => {
    const checkpointer = startCheckpointer(NEVER_MS);
    const entries = transferEntries(12, 300);
    const stores = [join(dir, 'checkpointed.db'), join(dir, 'alone.db')].map((file) => ({
      file,
      store: closedAfter(SqliteReadModelStore.open(file, { checkpointedElsewhere: true })),
      walBytes: [] as number[],
    }));
    const [checkpointed, alone] = stores as [(typeof stores)[0], (typeof stores)[0]];
    checkpointer.add(checkpointed.file);
    const replayers = await Promise.all(stores.map(({ store }) => Replayer.open(store, LEDGER_PROJECTORS)));
    for (const entry of entries) {
      const batch = recordedBatch(entry);
      for (const [i, { file, walBytes: sizes }] of stores.entries()) await replayers[i]!.apply(batch).then(() => sizes.push(walBytes(file)));
      await checkpointer.checkpointNow();
    }
    // The WAL restarts from its beginning after each complete checkpoint: it never outgrows a couple of batches.
    expect(Math.max(...checkpointed.walBytes)).toBeLessThan(alone.walBytes.at(-1)! / 3);
    expect(alone.walBytes.at(-1)!).toBeGreaterThan(alone.walBytes[2]! * 2);
    // And nothing is lost: both stores hold the same read models.
    expect(await checkpointed.store.currencyTotals('USD')).toEqual(await alone.store.currencyTotals('USD'));
    const ids = ['acct-0', 'acct-1', 'acct-299'];
    expect(await checkpointed.store.getAccounts(ids)).toEqual(await alone.store.getAccounts(ids));
    expect((await checkpointed.store.getAccounts(ids)).every((doc) => doc !== null)).toBe(true);
    expect(errors).toEqual([]);
  });

  it('keeps the WAL of an event store short while it is appended to, and every event stays readable', async () => {
    const checkpointer = startCheckpointer(NEVER_MS);
    const stores = [join(dir, 'checkpointed.sqlite'), join(dir, 'alone.sqlite')].map((file) => ({
      file,
      store: closedAfter(SqliteEventStore.open(file)),
      walBytes: [] as number[],
    }));
    const [checkpointed, alone] = stores as [(typeof stores)[0], (typeof stores)[0]];
    checkpointer.add(checkpointed.file);
    const appends = 40;
    const perAppend = 500;
    for (let a = 0; a < appends; a++) {
      const batch: NewEvent[] = Array.from({ length: perAppend }, (_, i) => {
        const n = a * perAppend + i;
        return { id: randomUUID(), type: 'Tested', data: { n, padding: 'x'.repeat(200) }, metadata: { position: String(n).padStart(16, '0') } };
      });
      for (const { store, file, walBytes: sizes } of stores) {
        await store.append('stream', batch, a === 0 ? 'no_stream' : BigInt(a * perAppend - 1));
        sizes.push(walBytes(file));
      }
      await checkpointer.checkpointNow();
    }
    expect(Math.max(...checkpointed.walBytes)).toBeLessThan(alone.walBytes.at(-1)! / 3);
    expect(alone.walBytes.at(-1)!).toBeGreaterThan(alone.walBytes[2]! * 2);
    for (const { store } of stores) {
      const read: number[] = [];
      for (let from = 0; from < appends * perAppend; from += 4096) {
        const page = await store.readStream('stream', { fromRevision: BigInt(from), maxCount: 4096 });
        read.push(...page.map((event) => (event.data as { n: number }).n));
      }
      expect(read).toEqual(Array.from({ length: appends * perAppend }, (_, n) => n));
    }
    expect(errors).toEqual([]);
  });

  it('reports a file that does not exist, without creating it, and goes on checkpointing the others', async () => {
    const checkpointer = startCheckpointer(NEVER_MS);
    const missing = join(dir, 'missing.db');
    const present = join(dir, 'present.db');
    const store = closedAfter(SqliteReadModelStore.open(present, { checkpointedElsewhere: true }));
    checkpointer.add(missing);
    checkpointer.add(present);
    await checkpointer.checkpointNow();
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toContain(missing);
    expect(existsSync(missing)).toBe(false);
    await store.applyBatch([], { p: { position: '0000000000000001-000000', storePosition: '1', updatedAtMs: 1 } });
    expect(walBytes(present)).toBeGreaterThan(0);
    await checkpointer.checkpointNow();
    // Everything in the WAL was copied: the next write starts it over, so it stays at one commit's size.
    const afterCheckpoint = walBytes(present);
    await store.applyBatch([], { p: { position: '0000000000000002-000000', storePosition: '2', updatedAtMs: 2 } });
    expect(walBytes(present)).toBeLessThanOrEqual(afterCheckpoint);
  });

  it('checkpoints on its timer, and close() ends the thread (adding afterwards does nothing)', async () => {
    const stores = [join(dir, 'checkpointed.db'), join(dir, 'alone.db')].map((file) => ({ file, store: closedAfter(SqliteReadModelStore.open(file, { checkpointedElsewhere: true })) }));
    const [checkpointed, alone] = stores as [(typeof stores)[0], (typeof stores)[0]];
    const checkpointer = startCheckpointer(20);
    checkpointer.add(checkpointed.file);
    const replayers = await Promise.all(stores.map(({ store }) => Replayer.open(store, LEDGER_PROJECTORS)));
    for (const entry of transferEntries(8, 200)) {
      const batch = recordedBatch(entry);
      for (const replayer of replayers) await replayer.apply(batch);
      // Longer than the timer's interval: checkpoints run between two batches, with nobody asking.
      await new Promise((resolve) => setTimeout(resolve, 120));
    }
    expect(walBytes(checkpointed.file)).toBeLessThan(walBytes(alone.file) / 3);
    await checkpointer.close();
    checkpointer.add(join(dir, 'missing-after-close.db'));
    await checkpointer.checkpointNow();
    expect(errors).toEqual([]);
  });

  it('keeps the event store\'s WAL bounded under commits that never pause (its writer finishes what the thread copied)', async () => {
    const file = join(dir, 'events.sqlite');
    const store = closedAfter(SqliteEventStore.open(file));
    const checkpointer = startCheckpointer(50);
    checkpointer.add(file);
    let largest = 0;
    const perAppend = 20;
    const until = performance.now() + 2500;
    let revision = -1;
    // ~1 ms apart, for 2.5 s: a single PASSIVE round almost never ends with the whole WAL copied.
    while (performance.now() < until) {
      const batch: NewEvent[] = Array.from({ length: perAppend }, (_, i) => ({
        id: randomUUID(),
        type: 'Tested',
        data: { n: revision + 1 + i, padding: 'x'.repeat(400) },
        metadata: { position: String(revision + 1 + i).padStart(16, '0') },
      }));
      await store.append('stream', batch, revision < 0 ? 'no_stream' : BigInt(revision));
      revision += perAppend;
      largest = Math.max(largest, walBytes(file));
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    // The thread alone never lets the WAL start over under such a stream (it grew to ~150 MB in this
    // test): the writer's own checkpoint at 8,192 pages (32 MiB) finishes what the thread copied.
    expect(revision).toBeGreaterThan(10_000);
    expect(largest).toBeLessThan(40 * 1024 * 1024);
    expect(errors).toEqual([]);
  });

  it('lets go of a file replaced under the same name and checkpoints the new one, without touching it otherwise', async () => {
    const file = join(dir, 'read-models.db');
    const checkpointer = startCheckpointer(NEVER_MS);
    let store = SqliteReadModelStore.open(file, { checkpointedElsewhere: true });
    checkpointer.add(file);
    await checkpointer.checkpointNow();
    await store.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${file}${suffix}`, { force: true });
    store = SqliteReadModelStore.open(file, { checkpointedElsewhere: true });
    const replayer = await Replayer.open(store, LEDGER_PROJECTORS);
    for (const entry of transferEntries(6, 200)) {
      await replayer.apply(recordedBatch(entry));
      await checkpointer.checkpointNow();
    }
    // The new file was checkpointed (its WAL started over), and it is whole: its tables and rows are there.
    const sizes = walBytes(file);
    await store.close();
    store = closedAfter(SqliteReadModelStore.open(file, { checkpointedElsewhere: true }));
    expect((await store.getAccounts(['acct-0', 'acct-199'])).every((doc) => doc !== null)).toBe(true);
    expect(sizes).toBeLessThan(4 * 1024 * 1024);
    expect(errors).toEqual([]);
  });

  it('tries a failed file again later, says when it works again, and answers at once once its thread is gone', async () => {
    const recovered: string[] = [];
    const file = join(dir, 'late.db');
    const checkpointer = startCheckpointer(20, (again) => recovered.push(again), { retryDelayMs: 100 });
    checkpointer.add(file);
    await checkpointer.checkpointNow();
    expect(errors.map((error) => error.message)).toEqual([expect.stringContaining(file)]);
    const store = SqliteReadModelStore.open(file, { checkpointedElsewhere: true });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(recovered).toEqual([file]);
    // Reported once, not at every try.
    expect(errors).toHaveLength(1);
    await store.close();
    await (checkpointer as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    await expect(checkpointer.checkpointNow()).resolves.toBeUndefined();
  });

  it('refuses an interval that is not a positive whole number of ms', () => {
    expect(() => WalCheckpointer.start(0, () => undefined)).toThrow(/intervalMs must be a positive integer, got 0/);
    expect(() => WalCheckpointer.start(1.5, () => undefined)).toThrow(/got 1.5/);
  });
});
