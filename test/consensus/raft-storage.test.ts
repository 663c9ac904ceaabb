import { mkdtempSync, openSync, rmSync, writeSync, closeSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HardStateFile } from '../../src/consensus/hard-state-file';
import { LogStorage } from '../../src/consensus/log-storage';
import type { LogEntry } from '../../src/consensus/command-log';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'raft-storage-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const entry = (index: number, term: number): LogEntry<{ n: number }> => ({ index, term, timestampMs: 1000 + index, command: { n: index } });

async function appendAll(storage: LogStorage<{ n: number }>, entries: LogEntry<{ n: number }>[]): Promise<void> {
  for (const e of entries) await storage.append(e.index, e.index, [LogStorage.encode(e)]);
}

describe('LogStorage for Raft: terms, suffix truncation, reset', () => {
  test('truncateFrom cuts a conflicting suffix durably; new entries follow the cut and a reopen reads exactly them', async () => {
    const logDir = join(dir, 'log');
    const { storage } = await LogStorage.open<{ n: number }>(logDir, 0);
    await appendAll(storage, [1, 2, 3, 4, 5].map((i) => entry(i, 1)));
    await storage.truncateFrom(3);
    expect(storage.lastIndex).toBe(2);
    await appendAll(storage, [entry(3, 2), entry(4, 2)]);
    await storage.close();
    const reopened = await LogStorage.open<{ n: number }>(logDir, 0);
    expect(reopened.recovery.entries.map((e) => [e.index, e.term])).toEqual([
      [1, 1],
      [2, 1],
      [3, 2],
      [4, 2],
    ]);
    expect(reopened.recovery.tornTail).toBeNull();
    await reopened.storage.close();
  });

  test('truncateFrom the first entry empties the log; beyond the end it changes nothing', async () => {
    const logDir = join(dir, 'log');
    const { storage } = await LogStorage.open<{ n: number }>(logDir, 0);
    await appendAll(storage, [entry(1, 1), entry(2, 1)]);
    await storage.truncateFrom(9);
    expect(storage.lastIndex).toBe(2);
    await storage.truncateFrom(1);
    expect(storage.lastIndex).toBe(0);
    await appendAll(storage, [entry(1, 3)]);
    await storage.close();
    const reopened = await LogStorage.open<{ n: number }>(logDir, 0);
    expect(reopened.recovery.entries.map((e) => e.term)).toEqual([3]);
    await reopened.storage.close();
  });

  test('resetAfter replaces the whole log with one that continues after a snapshot', async () => {
    const logDir = join(dir, 'log');
    const { storage } = await LogStorage.open<{ n: number }>(logDir, 0);
    await appendAll(storage, [entry(1, 1), entry(2, 1), entry(3, 1)]);
    await storage.resetAfter(100);
    expect(storage.lastIndex).toBe(100);
    await appendAll(storage, [entry(101, 4)]);
    await storage.close();
    expect(existsSync(`${logDir}.old`)).toBe(false);
    const reopened = await LogStorage.open<{ n: number }>(logDir, 100);
    expect(reopened.recovery.entries.map((e) => e.index)).toEqual([101]);
    await reopened.storage.close();
  });
});

describe('HardStateFile', () => {
  test('reads back the newest state written', () => {
    const path = join(dir, 'hardstate');
    const { file, state } = HardStateFile.open(path);
    expect(state).toBeNull();
    file.write({ term: 1, vote: 'a', commit: 0 }, true);
    file.write({ term: 2, vote: 'b', commit: 5 }, true);
    file.write({ term: 2, vote: 'b', commit: 9 }, false);
    file.close();
    expect(HardStateFile.open(path).state).toEqual({ term: 2, vote: 'b', commit: 9 });
  });

  test('a torn write of one slot falls back to the state before it; both slots damaged refuses to start', () => {
    const path = join(dir, 'hardstate');
    const { file } = HardStateFile.open(path);
    file.write({ term: 3, vote: 'a', commit: 1 }, true); // seq 1: slot 1
    file.write({ term: 4, vote: 'c', commit: 2 }, true); // seq 2: slot 0
    file.close();
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.from('garbage!'), 0, 8, 20); // tear slot 0
    closeSync(fd);
    const reopened = HardStateFile.open(path);
    expect(reopened.state).toEqual({ term: 3, vote: 'a', commit: 1 });
    reopened.file.close();
    const fd2 = openSync(path, 'r+');
    writeSync(fd2, Buffer.from('garbage!'), 0, 8, 512 + 20); // tear slot 1 too
    closeSync(fd2);
    expect(() => HardStateFile.open(path)).toThrow(/both hard-state slots are damaged/);
  });
});
