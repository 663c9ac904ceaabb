import { appendFileSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LogOverloadedError, LogStoppedError, type LogEntry } from '../../src/consensus/command-log';
import { ENTRY_BYTES_MAX, LogStorage } from '../../src/consensus/log-storage';
import { SingleNodeLog, type SingleNodeLogOptions } from '../../src/consensus/single-node-log';
import { SnapshotStore, SnapshotTooLargeError } from '../../src/consensus/snapshot-store';
import { StorageWriteError } from '../../src/consensus/storage-errors';
import type { FileHandle } from 'node:fs/promises';

const enospcError = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
import { LedgerStateMachine } from '../../src/app/ledger-node';
import type { LedgerCommand } from '../../src/domain/commands';
import type { EntryResult } from '../../src/domain/ledger';
import { DEFAULT_RULES } from '../../src/domain/rules';
import {
  type ListCommand,
  ListMachine,
  type ListResult,
  delay,
  listSegments,
  listSnapshots,
  readRecords,
  removeDir,
  resegment,
  segmentFileName,
  snapshotFileName,
  tempDir,
  flipBits,
} from './log-test-support';

type Options = Partial<Omit<SingleNodeLogOptions, 'dir' | 'nodeId'>>;

describe('SingleNodeLog', () => {
  let dir: string;
  let open: Array<SingleNodeLog<unknown, unknown>>;
  const logDir = () => join(dir, 'log');
  const snapshotDir = () => join(dir, 'snapshots');

  beforeEach(() => {
    dir = tempDir();
    open = [];
  });
  afterEach(async () => {
    jest.restoreAllMocks();
    for (const log of open) await log.stop().catch(() => undefined);
    removeDir(dir);
  });

  function newLog(options: Options = {}) {
    const machine = new ListMachine();
    const fatal: Error[] = [];
    const log = new SingleNodeLog<ListCommand, ListResult>(machine, { dir, nodeId: 'node-t', onFatal: (error) => fatal.push(error), ...options });
    open.push(log as SingleNodeLog<unknown, unknown>);
    return { machine, log, fatal };
  }

  async function startLog(options: Options = {}) {
    const made = newLog(options);
    await made.log.start();
    return made;
  }

  /** Proposes values one after another, each once the previous one resolved. */
  async function proposeInTurn(log: SingleNodeLog<ListCommand, ListResult>, values: number[]): Promise<ListResult[]> {
    const results: ListResult[] = [];
    for (const value of values) results.push(await log.propose({ value }));
    return results;
  }

  async function waitUntil(condition: () => boolean): Promise<void> {
    while (!condition()) await delay(1);
  }

  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
  const prefixSums = (values: number[]) => values.map((_, i) => values.slice(0, i + 1).reduce((a, b) => a + b, 0));

  function spyOnAppend(before?: (first: number, last: number) => Promise<void>, after?: (first: number, last: number) => void) {
    const original = LogStorage.prototype.append;
    const calls: Array<{ first: number; last: number; records: number }> = [];
    const spy = jest.spyOn(LogStorage.prototype, 'append').mockImplementation(async function (this: LogStorage<unknown>, first, last, records) {
      calls.push({ first, last, records: records.length });
      if (before) await before(first, last);
      await original.call(this, first, last, records);
      after?.(first, last);
    });
    return { calls, spy };
  }

  describe('proposals', () => {
    it('resolve in order with their results; indexes are gap-free and timestamps never go back', async () => {
      // A clock that jumps back now and then: the log must not follow it backwards.
      const ticks = [1_000, 1_005, 1_003, 1_003, 1_010, 990, 1_020, 1_019, 1_030];
      let tick = 0;
      const clock = () => ticks[Math.min(tick++, ticks.length - 1)]! + Math.max(0, tick - ticks.length);
      const { log } = await startLog({ clock });
      const values = range(1, 40).map((i) => (i * 37) % 11);
      const resolvedInOrder: number[] = [];
      const concurrent = values.slice(0, 30).map((value) => log.propose({ value }).then((r) => (resolvedInOrder.push(r.index), r)));
      const first = await Promise.all(concurrent);
      const rest = await proposeInTurn(log, values.slice(30));
      const results = [...first, ...rest];

      expect(results.map((r) => r.index)).toEqual(range(1, 40));
      expect(resolvedInOrder).toEqual(range(1, 30));
      expect(results.map((r) => r.sum)).toEqual(prefixSums(values));
      const stamps = results.map((r) => r.timestampMs);
      expect(stamps.slice(0, 9)).toEqual([1_000, 1_005, 1_005, 1_005, 1_010, 1_010, 1_020, 1_020, 1_030]);
      for (let i = 1; i < stamps.length; i += 1) expect(stamps[i]).toBeGreaterThanOrEqual(stamps[i - 1]!);

      expect(log.status()).toEqual({
        nodeId: 'node-t',
        role: 'STANDALONE',
        leaderId: 'node-t',
        term: 1,
        commitIndex: 40,
        appliedIndex: 40,
        snapshotIndex: 0,
      });
      // What is on disk is what was acknowledged.
      await log.stop();
      const onDisk = readRecords(logDir()).map((r) => r.entry);
      expect(onDisk.map((e) => e.index)).toEqual(range(1, 40));
      expect(onDisk.map((e) => e.timestampMs)).toEqual(stamps);
      expect(onDisk.map((e) => e.command.value)).toEqual(values);
      expect(onDisk.every((e) => e.term === 1)).toBe(true);
    });

    it('are refused before start and after stop with LogStoppedError; start runs once', async () => {
      const { log } = newLog();
      await expect(log.propose({ value: 1 })).rejects.toBeInstanceOf(LogStoppedError);
      await log.start();
      await expect(log.start()).rejects.toThrow(/already started/);
      await log.propose({ value: 1 });
      await log.stop();
      await expect(log.propose({ value: 2 })).rejects.toBeInstanceOf(LogStoppedError);
      await log.stop();
      const reopened = await startLog();
      expect(reopened.machine.values).toEqual([1]);
    });

    it('stop() finishes the proposals already made before closing', async () => {
      const { log } = await startLog();
      const pending = range(1, 50).map((value) => log.propose({ value }));
      await log.stop();
      const results = await Promise.all(pending);
      expect(results.map((r) => r.index)).toEqual(range(1, 50));
      expect(log.idle).toBe(true);
      const reopened = await startLog();
      expect(reopened.machine.values).toEqual(range(1, 50));
    });

    it('beyond queuedMax waiting for the disk are refused with LogOverloadedError, and accepted again once it drains', async () => {
      const { log, machine } = await startLog({ queuedMax: 5 });
      const accepted = range(1, 5).map((value) => log.propose({ value }));
      const refused = log.propose({ value: 6 });
      await expect(refused).rejects.toBeInstanceOf(LogOverloadedError);
      await expect(refused).rejects.toMatchObject({ queuedMax: 5 });
      expect((await Promise.all(accepted)).map((r) => r.index)).toEqual(range(1, 5));
      // The refusal took no index.
      expect((await log.propose({ value: 7 })).index).toBe(6);
      expect(machine.values).toEqual([1, 2, 3, 4, 5, 7]);
    });

    it(`an entry over ENTRY_BYTES_MAX (${ENTRY_BYTES_MAX} bytes) is refused without taking an index`, async () => {
      const { log, machine } = await startLog();
      await log.propose({ value: 1 });
      await expect(log.propose({ value: 2, pad: 'x'.repeat(ENTRY_BYTES_MAX) })).rejects.toThrow(/exceeds/);
      expect((await log.propose({ value: 3 })).index).toBe(2);
      expect(machine.values).toEqual([1, 3]);
      await log.stop();
      expect(readRecords(logDir()).map((r) => r.entry.index)).toEqual([1, 2]);
    });
  });

  describe('group commit', () => {
    it('writes many concurrent proposals with far fewer appends (fdatasyncs) than entries', async () => {
      const { log } = await startLog();
      const { calls } = spyOnAppend();
      const results = await Promise.all(range(1, 1_000).map((value) => log.propose({ value })));
      expect(results.map((r) => r.index)).toEqual(range(1, 1_000));
      expect(calls.length).toBeGreaterThanOrEqual(1);
      expect(calls.length).toBeLessThanOrEqual(3);
      // The groups are consecutive and cover every entry exactly once.
      let next = 1;
      for (const call of calls) {
        expect(call.first).toBe(next);
        expect(call.records).toBe(call.last - call.first + 1);
        next = call.last + 1;
      }
      expect(next).toBe(1_001);
    });

    it('puts at most groupEntriesMax entries in one append', async () => {
      const { log } = await startLog({ groupEntriesMax: 64 });
      const { calls } = spyOnAppend();
      await Promise.all(range(1, 1_000).map((value) => log.propose({ value })));
      expect(calls.length).toBe(Math.ceil(1_000 / 64));
      expect(Math.max(...calls.map((c) => c.records))).toBe(64);
    });

    it('applies and acknowledges nothing before its group is durable; proposals made meanwhile form the next group', async () => {
      const listened: number[] = [];
      const { log, machine } = await startLog();
      let durableThrough = 0;
      const violations: string[] = [];
      const { calls } = spyOnAppend(
        () => delay(60),
        (_first, last) => {
          durableThrough = last;
        },
      );
      const originalApply = machine.apply.bind(machine);
      jest.spyOn(machine, 'apply').mockImplementation((entry: LogEntry<ListCommand>) => {
        if (entry.index > durableThrough) violations.push(`applied ${entry.index} with ${durableThrough} durable`);
        return originalApply(entry);
      });
      log.onApplied((entry) => listened.push(entry.index));
      const acknowledged: number[] = [];
      const track = (p: Promise<ListResult>) =>
        p.then((r) => {
          if (r.index > durableThrough) violations.push(`acknowledged ${r.index} with ${durableThrough} durable`);
          acknowledged.push(r.index);
          return r;
        });

      const firstWave = range(1, 10).map((value) => track(log.propose({ value })));
      await waitUntil(() => calls.length === 1);
      // The first group is on its way to the disk: nothing is applied or acknowledged yet.
      expect(calls).toEqual([{ first: 1, last: 10, records: 10 }]);
      expect(log.idle).toBe(false);
      expect(acknowledged).toEqual([]);
      expect(machine.applyCalls).toBe(0);
      expect(listened).toEqual([]);
      const secondWave = range(11, 30).map((value) => track(log.propose({ value })));
      await Promise.all([...firstWave, ...secondWave]);

      expect(violations).toEqual([]);
      expect(calls).toEqual([
        { first: 1, last: 10, records: 10 },
        { first: 11, last: 30, records: 20 },
      ]);
      expect(acknowledged).toEqual(range(1, 30));
      expect(listened).toEqual(range(1, 30));
      expect(log.idle).toBe(true);
    });
  });

  describe('recovery', () => {
    it('restarts with every entry and the same state, and goes on from the next index', async () => {
      const first = await startLog();
      const values = range(1, 200).map((i) => (i * 7919) % 101);
      for (let at = 0; at < values.length; at += 50) await Promise.all(values.slice(at, at + 50).map((value) => first.log.propose({ value })));
      const lastTimestamp = (await first.log.propose({ value: 0 })).timestampMs;
      values.push(0);
      await first.log.stop();

      const second = newLog({ clock: () => lastTimestamp - 60_000 });
      const replayed: Array<[number, number]> = [];
      second.log.onApplied((entry, result) => replayed.push([entry.index, result.sum]));
      await second.log.start();
      expect(second.machine.values).toEqual(values);
      expect(second.machine.applyCalls).toBe(201);
      // onApplied listeners see the replayed entries, in order, with their results.
      expect(replayed).toEqual(prefixSums(values).map((sum, i) => [i + 1, sum]));
      expect(second.log.status()).toMatchObject({ commitIndex: 201, appliedIndex: 201, snapshotIndex: 0 });
      const next = await second.log.propose({ value: 5 });
      expect(next.index).toBe(202);
      // The clock went back an hour; the log's time did not.
      expect(next.timestampMs).toBe(lastTimestamp);
      expect(second.fatal).toEqual([]);
    });

    const tears: Array<[string, (path: string) => void, number]> = [
      ['garbage appended', (path) => appendFileSync(path, Buffer.from('\x13\x37garbage that is not a record')), 20],
      ['zeros appended', (path) => appendFileSync(path, Buffer.alloc(512)), 20],
      ['the last record cut short', (path) => truncateSync(path, statSync(path).size - 3), 19],
    ];
    it.each(tears)('cuts a torn tail (%s) off on restart; the entries before it survive', async (_name, tear, survivors) => {
      const first = await startLog();
      await Promise.all(range(1, 20).map((value) => first.log.propose({ value })));
      await first.log.stop();
      const path = join(logDir(), segmentFileName(1));
      tear(path);

      const second = await startLog();
      expect(second.machine.values).toEqual(range(1, survivors));
      expect((await second.log.propose({ value: 100 })).index).toBe(survivors + 1);
      await second.log.stop();

      const third = await startLog();
      expect(third.machine.values).toEqual([...range(1, survivors), 100]);
      expect(third.fatal).toEqual([]);
    });

    it('stops start() with a clear error when a record is corrupt in a segment that is not the last', async () => {
      const first = await startLog();
      await Promise.all(range(1, 30).map((value) => first.log.propose({ value })));
      await first.log.stop();
      resegment(logDir(), [1, 11, 21]);
      expect(listSegments(logDir())).toEqual([1, 11, 21].map(segmentFileName));
      // Still whole: a restart reads all three segments.
      const check = await startLog();
      expect(check.machine.values).toEqual(range(1, 30));
      await check.log.stop();

      const path = join(logDir(), segmentFileName(11));
      const bytes = readFileSync(path);
      flipBits(bytes, 12, 0x20);
      writeFileSync(path, bytes);
      const broken = newLog();
      await expect(broken.log.start()).rejects.toThrow(`log segment ${segmentFileName(11)} is corrupt at byte 0: checksum mismatch`);
      await expect(broken.log.propose({ value: 1 })).rejects.toBeInstanceOf(LogStoppedError);
      expect(readFileSync(path).equals(bytes)).toBe(true);
    });
  });

  describe('snapshots', () => {
    it('are written only once setDurableElsewhereIndex reaches them; a restart restores one and replays only the entries after it', async () => {
      const first = await startLog({ snapshotEveryEntries: 10 });
      await proposeInTurn(first.log, range(1, 10));
      // Taken at 10, but the entries are not durable elsewhere yet.
      expect(listSnapshots(snapshotDir())).toEqual([]);
      expect(first.log.status().snapshotIndex).toBe(0);
      first.log.setDurableElsewhereIndex(9);
      await first.log.snapshotsSettled();
      expect(listSnapshots(snapshotDir())).toEqual([]);
      first.log.setDurableElsewhereIndex(10);
      await first.log.snapshotsSettled();
      expect(listSnapshots(snapshotDir())).toEqual([snapshotFileName(10)]);
      expect(first.log.status().snapshotIndex).toBe(10);
      // Going back changes nothing.
      first.log.setDurableElsewhereIndex(3);
      await first.log.snapshotsSettled();
      await proposeInTurn(first.log, range(11, 14));
      await first.log.stop();
      // stop() takes a snapshot at 14, still waiting for the entries to be durable elsewhere.
      expect(listSnapshots(snapshotDir())).toEqual([snapshotFileName(10)]);

      const second = await startLog({ snapshotEveryEntries: 10 });
      expect(second.machine.restoredFrom).toBe(10);
      expect(second.machine.applyCalls).toBe(4);
      expect(second.machine.values).toEqual(range(1, 14));
      expect(second.log.status()).toMatchObject({ snapshotIndex: 10, appliedIndex: 14, commitIndex: 14 });
      expect((await second.log.propose({ value: 15 })).index).toBe(15);
    });

    it('taken at stop() is written when the entries become durable elsewhere afterwards (publisher flushing after the log stopped)', async () => {
      const first = await startLog();
      await proposeInTurn(first.log, range(1, 7));
      await first.log.stop();
      expect(listSnapshots(snapshotDir())).toEqual([]);
      first.log.setDurableElsewhereIndex(7);
      await first.log.snapshotsSettled();
      expect(listSnapshots(snapshotDir())).toEqual([snapshotFileName(7)]);

      const second = await startLog();
      expect(second.machine.restoredFrom).toBe(7);
      expect(second.machine.applyCalls).toBe(0);
      expect(second.machine.values).toEqual(range(1, 7));
      expect((await second.log.propose({ value: 8 })).index).toBe(8);
    });

    it('keep the two newest when the entries become durable elsewhere as soon as they are applied', async () => {
      const first = newLog({ snapshotEveryEntries: 5 });
      first.log.onApplied((entry) => first.log.setDurableElsewhereIndex(entry.index));
      await first.log.start();
      for (const value of range(1, 23)) {
        await first.log.propose({ value });
        await first.log.snapshotsSettled();
      }
      expect(listSnapshots(snapshotDir())).toEqual([snapshotFileName(15), snapshotFileName(20)]);
      expect(first.log.status().snapshotIndex).toBe(20);
    });

    /**
     * Builds: snapshots at 5 and 10, the log in segments [1..6] and [7..]. Segments are 64 MiB in
     * production, so the test splits the log where it would have rolled.
     */
    async function twoSnapshotsAcrossSegments() {
      const first = await startLog({ snapshotEveryEntries: 5 });
      await proposeInTurn(first.log, range(1, 5));
      first.log.setDurableElsewhereIndex(5);
      await first.log.snapshotsSettled();
      await proposeInTurn(first.log, range(6, 8));
      await first.log.stop();
      expect(listSnapshots(snapshotDir())).toEqual([snapshotFileName(5)]);
      resegment(logDir(), [1, 7]);

      const second = await startLog({ snapshotEveryEntries: 5 });
      expect(second.machine.restoredFrom).toBe(5);
      expect(second.machine.applyCalls).toBe(3);
      await proposeInTurn(second.log, range(9, 10));
      second.log.setDurableElsewhereIndex(10);
      await second.log.snapshotsSettled();
      expect(listSnapshots(snapshotDir())).toEqual([snapshotFileName(5), snapshotFileName(10)]);
      // Entry 6 is after the previous snapshot (5): its segment stays.
      expect(listSegments(logDir())).toEqual([segmentFileName(1), segmentFileName(7)]);
      await proposeInTurn(second.log, range(11, 12));
      return second;
    }

    it('fall back to the previous snapshot when the newest is corrupt, and the log still has every entry after it', async () => {
      const second = await twoSnapshotsAcrossSegments();
      await second.log.stop();
      const newest = join(snapshotDir(), snapshotFileName(10));
      const bytes = readFileSync(newest);
      flipBits(bytes, bytes.length - 2, 0x01);
      writeFileSync(newest, bytes);

      const third = await startLog({ snapshotEveryEntries: 5 });
      expect(third.machine.restoredFrom).toBe(5);
      expect(third.machine.applyCalls).toBe(7);
      expect(third.machine.values).toEqual(range(1, 12));
      expect((await third.log.propose({ value: 13 })).index).toBe(13);
    });

    it('let the log drop old segments once a snapshot that is not the newest covers them', async () => {
      const second = await twoSnapshotsAcrossSegments();
      await proposeInTurn(second.log, range(13, 15));
      second.log.setDurableElsewhereIndex(15);
      await second.log.snapshotsSettled();
      expect(listSnapshots(snapshotDir())).toEqual([snapshotFileName(10), snapshotFileName(15)]);
      // [1..6] is covered by both kept snapshots; [7..] is the segment being written.
      expect(listSegments(logDir())).toEqual([segmentFileName(7)]);
      await second.log.stop();

      const third = await startLog({ snapshotEveryEntries: 5 });
      expect(third.machine.restoredFrom).toBe(15);
      expect(third.machine.applyCalls).toBe(0);
      expect(third.machine.values).toEqual(range(1, 15));
      await third.log.stop();

      // And the previous snapshot still has what it needs.
      writeFileSync(join(snapshotDir(), snapshotFileName(15)), 'not a snapshot');
      const fourth = await startLog({ snapshotEveryEntries: 5 });
      expect(fourth.machine.restoredFrom).toBe(10);
      expect(fourth.machine.applyCalls).toBe(5);
      expect(fourth.machine.values).toEqual(range(1, 15));
    });
  });

  describe('a failing disk', () => {
    it('rejects every waiting proposal, calls onFatal, applies nothing and refuses what follows', async () => {
      const { log, machine, fatal } = await startLog();
      const listened: number[] = [];
      log.onApplied((entry) => listened.push(entry.index));
      const diskError = new Error('EIO: i/o error, fdatasync');
      let appendStarted = false;
      jest.spyOn(LogStorage.prototype, 'append').mockImplementation(async () => {
        appendStarted = true;
        await delay(50);
        throw diskError;
      });
      const inFirstGroup = range(1, 5).map((value) => log.propose({ value }));
      await waitUntil(() => appendStarted);
      // Made while the failing group is on its way: waiting in the queue.
      const queued = range(6, 8).map((value) => log.propose({ value }));
      const settled = await Promise.allSettled([...inFirstGroup, ...queued]);
      expect(settled.map((s) => s.status)).toEqual(Array(8).fill('rejected'));
      for (const s of settled) expect((s as PromiseRejectedResult).reason).toBe(diskError);
      expect(fatal).toEqual([diskError]);
      expect(machine.applyCalls).toBe(0);
      expect(listened).toEqual([]);
      expect(log.status().appliedIndex).toBe(0);
      await expect(log.propose({ value: 9 })).rejects.toBeInstanceOf(LogStoppedError);
      expect(log.idle).toBe(true);
      await log.stop();
      jest.restoreAllMocks();

      const reopened = await startLog();
      expect(reopened.machine.values).toEqual([]);
      expect((await reopened.log.propose({ value: 1 })).index).toBe(1);
    });
  });

  describe('a disk that refuses a write (full, I/O error)', () => {
    type Seam = { writeGroup(handle: FileHandle, buffer: Buffer, position: number): Promise<void> };
    const seam = LogStorage.prototype as unknown as Seam;
    const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });

    it('answers the group and the proposals behind it with a retryable StorageWriteError, applies none of them, and takes writes again', async () => {
      const errors: Array<[string, Error]> = [];
      const { log, machine, fatal } = await startLog({ onError: (where, error) => errors.push([where, error]) });
      await proposeInTurn(log, range(1, 3));
      const real = seam.writeGroup;
      let failing = true;
      jest.spyOn(seam, 'writeGroup').mockImplementation(async function (this: unknown, handle, buffer, position) {
        if (!failing) return real.call(this, handle, buffer, position);
        await handle.write(buffer, 0, Math.ceil(buffer.length / 3), position);
        await delay(20);
        throw enospc();
      });
      const refused = range(4, 9).map((value) => log.propose({ value }));
      const settled = await Promise.allSettled(refused);
      expect(settled.every((s) => s.status === 'rejected' && s.reason instanceof StorageWriteError)).toBe(true);
      expect(fatal).toEqual([]);
      expect(errors.map(([where]) => where)).toContain('command log append');
      expect(machine.values).toEqual([1, 2, 3]);
      expect(log.status()).toMatchObject({ commitIndex: 3, appliedIndex: 3 });
      // Still refused while the disk is full, and still nothing applied.
      await expect(log.propose({ value: 10 })).rejects.toBeInstanceOf(StorageWriteError);
      failing = false;
      // Space is back: the next proposal takes the first free index.
      expect((await log.propose({ value: 11 })).index).toBe(4);
      await log.stop();
      jest.restoreAllMocks();
      const reopened = await startLog();
      expect(reopened.machine.values).toEqual([1, 2, 3, 11]);
    });
  });

  describe('a snapshot that fails', () => {
    it('is reported and retried while commands keep being acknowledged; nothing is fatal', async () => {
      const errors: Array<[string, Error]> = [];
      const first = newLog({ snapshotEveryEntries: 5, snapshotRetryDelayMs: 0, onError: (where, error) => errors.push([where, error]) });
      first.log.onApplied((entry) => first.log.setDurableElsewhereIndex(entry.index));
      await first.log.start();
      const real = SnapshotStore.prototype.write;
      let failuresLeft = 2;
      jest.spyOn(SnapshotStore.prototype, 'write').mockImplementation(async function (this: SnapshotStore, index, state) {
        if (failuresLeft > 0) {
          failuresLeft -= 1;
          throw enospcError();
        }
        return real.call(this, index, state);
      });
      for (const value of range(1, 12)) {
        expect((await first.log.propose({ value })).index).toBe(value);
        await first.log.snapshotsSettled();
      }
      expect(errors.filter(([where]) => where === 'snapshot').map(([, e]) => e.message)).toEqual([expect.stringMatching(/ENOSPC/), expect.stringMatching(/ENOSPC/)]);
      expect(first.fatal).toEqual([]);
      expect(first.log.status().snapshotIndex).toBe(12);
      await first.log.stop();
      const second = await startLog();
      expect(second.machine.restoredFrom).toBe(12);
      expect(second.machine.values).toEqual(range(1, 12));
    });

    it('too large: refused and reported, the log keeps every entry, commands go on', async () => {
      const errors: Array<[string, Error]> = [];
      const first = newLog({ snapshotEveryEntries: 3, snapshotBytesMax: 10, snapshotRetryDelayMs: 0, onError: (where, error) => errors.push([where, error]) });
      first.log.onApplied((entry) => first.log.setDurableElsewhereIndex(entry.index));
      await first.log.start();
      for (const value of range(1, 8)) {
        await first.log.propose({ value });
        await first.log.snapshotsSettled();
      }
      expect(errors.length).toBeGreaterThan(0);
      expect(errors.every(([where, e]) => where === 'snapshot' && e instanceof SnapshotTooLargeError)).toBe(true);
      expect(first.fatal).toEqual([]);
      expect(listSnapshots(snapshotDir())).toEqual([]);
      await first.log.stop();
      const second = await startLog();
      expect(second.machine.values).toEqual(range(1, 8));
    });
  });

  describe('a state machine that breaks an invariant', () => {
    it('fails the node, and stop() then writes no snapshot of the doubtful state', async () => {
      // Applying -1 changes the state, then throws (a bug in the machine: it stops half-way).
      class HalfWayMachine extends ListMachine {
        broken = true;
        override apply(entry: LogEntry<ListCommand>) {
          if (entry.command.value === -1 && this.broken) {
            this.values.push(-1);
            throw new Error('invariant: broken half-way');
          }
          return super.apply(entry);
        }
      }
      const machine = new HalfWayMachine();
      const fatal: Error[] = [];
      const log = new SingleNodeLog<ListCommand, ListResult>(machine, { dir, nodeId: 'node-t', onFatal: (error) => fatal.push(error) });
      open.push(log as SingleNodeLog<unknown, unknown>);
      log.onApplied((entry) => log.setDurableElsewhereIndex(entry.index));
      await log.start();
      await proposeInTurn(log, [1, 2, 3]);
      await expect(log.propose({ value: -1 })).rejects.toThrow(/broken half-way/);
      expect(fatal.map((e) => e.message)).toEqual(['invariant: broken half-way']);
      await expect(log.propose({ value: 4 })).rejects.toBeInstanceOf(LogStoppedError);
      await log.stop();
      expect(listSnapshots(snapshotDir())).toEqual([]);

      // With the machine fixed, a restart replays the log, -1 included, to the right state.
      const fixed = new HalfWayMachine();
      fixed.broken = false;
      const again = new SingleNodeLog<ListCommand, ListResult>(fixed, { dir, nodeId: 'node-t' });
      open.push(again as SingleNodeLog<unknown, unknown>);
      await again.start();
      expect(fixed.values).toEqual([1, 2, 3, -1]);
      expect(fixed.appliedIndex).toBe(4);
    });
  });

  describe('with the ledger state machine', () => {
    it('restarts from a snapshot and the log to exactly the same ledger state', async () => {
      const commands: LedgerCommand[] = [
        { type: 'OpenAccount', input: { id: 'alice', initialBalance: '10000' } },
        { type: 'OpenAccount', input: { id: 'bob' } },
        ...range(1, 40).map((i): LedgerCommand => ({ type: 'Transfer', input: { fromAccountId: 'alice', toAccountId: 'bob', amount: String(i) }, idempotencyKey: `t-${i}` })),
        { type: 'Deposit', input: { accountId: 'bob', amount: '5', pending: true, holdTimeoutSeconds: 3600 } },
        { type: 'Withdraw', input: { accountId: 'bob', amount: '1000000' } },
      ];
      const makeLog = (machine: LedgerStateMachine) => {
        const log = new SingleNodeLog<LedgerCommand, EntryResult>(machine, { dir, nodeId: 'node-l', snapshotEveryEntries: 16, clock: () => 1_700_000_000_000 });
        log.onApplied((entry) => log.setDurableElsewhereIndex(entry.index));
        open.push(log as SingleNodeLog<unknown, unknown>);
        return log;
      };
      const firstMachine = new LedgerStateMachine(DEFAULT_RULES);
      const firstLog = makeLog(firstMachine);
      await firstLog.start();
      const outcomes = [];
      for (const command of commands) outcomes.push((await firstLog.propose(command)).outcome);
      expect(outcomes.at(-1)).toMatchObject({ ok: false, rejection: { code: 'INSUFFICIENT_FUNDS' } });
      expect(firstMachine.ledger.account('bob')).toMatchObject({ balance: String((40 * 41) / 2) });
      await firstLog.stop();
      expect(firstLog.status().snapshotIndex).toBe(commands.length);

      const secondMachine = new LedgerStateMachine(DEFAULT_RULES);
      const secondLog = makeLog(secondMachine);
      await secondLog.start();
      expect(secondMachine.ledger.snapshot()).toEqual(firstMachine.ledger.snapshot());
      // A retried idempotency key answers with the first outcome after the restart, too.
      const retried = await secondLog.propose(commands[2]!);
      expect(retried.outcome).toMatchObject({ ok: true, replayed: true });
      expect(retried.outcome).toEqual({ ...outcomes[2]!, replayed: true });
      await secondLog.stop();

      // Without any snapshot, the whole log gives the same state.
      removeDir(snapshotDir());
      const thirdMachine = new LedgerStateMachine(DEFAULT_RULES);
      const thirdLog = new SingleNodeLog<LedgerCommand, EntryResult>(thirdMachine, { dir, nodeId: 'node-l' });
      open.push(thirdLog as SingleNodeLog<unknown, unknown>);
      await thirdLog.start();
      expect(thirdMachine.ledger.snapshot()).toEqual(secondMachine.ledger.snapshot());
    });
  });
});
