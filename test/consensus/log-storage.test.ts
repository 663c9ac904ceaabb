import { appendFileSync, existsSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ENTRY_BYTES_MAX, LogStorage } from '../../src/consensus/log-storage';
import { type ListCommand, entry, listSegments, removeDir, segmentFileName, tempDir, writeSegments, flipBits } from './log-test-support';

describe('LogStorage', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => removeDir(dir));

  async function appendEntries(storage: LogStorage<ListCommand>, first: number, last: number): Promise<void> {
    const records: Buffer[] = [];
    for (let i = first; i <= last; i += 1) records.push(LogStorage.encode(entry(i, i * 10)));
    await storage.append(first, last, records);
  }

  it('starts empty, appends groups of records and reads them back in order after reopening', async () => {
    const { storage, recovery } = await LogStorage.open<ListCommand>(dir, 0);
    expect(recovery).toEqual({ entries: [], truncatedBytes: 0 });
    expect(storage.lastIndex).toBe(0);
    await appendEntries(storage, 1, 1);
    await appendEntries(storage, 2, 40);
    expect(storage.lastIndex).toBe(40);
    await storage.close();

    const reopened = await LogStorage.open<ListCommand>(dir, 0);
    expect(reopened.recovery.truncatedBytes).toBe(0);
    expect(reopened.recovery.entries).toEqual(Array.from({ length: 40 }, (_, i) => entry(i + 1, (i + 1) * 10)));
    expect(reopened.storage.lastIndex).toBe(40);
    await appendEntries(reopened.storage, 41, 41);
    await reopened.storage.close();
    expect(listSegments(dir)).toEqual([segmentFileName(1)]);
  });

  it('refuses an append that would leave a gap or go back', async () => {
    const { storage } = await LogStorage.open<ListCommand>(dir, 0);
    await appendEntries(storage, 1, 3);
    await expect(appendEntries(storage, 5, 5)).rejects.toThrow(/invariant: append of 5 after 3/);
    await expect(appendEntries(storage, 3, 3)).rejects.toThrow(/invariant: append of 3 after 3/);
    await storage.close();
  });

  it('encodes a record as [length][crc32][JSON] and refuses one over ENTRY_BYTES_MAX', () => {
    const record = LogStorage.encode(entry(1, 7));
    const payload = record.subarray(8);
    expect(record.readUInt32LE(0)).toBe(payload.length);
    expect(JSON.parse(payload.toString('utf8'))).toEqual(entry(1, 7));
    const huge = { index: 1, term: 1, timestampMs: 0, command: { value: 1, pad: 'x'.repeat(ENTRY_BYTES_MAX) } };
    expect(() => LogStorage.encode(huge)).toThrow(/exceeds/);
  });

  it('skips entries covered by a snapshot (afterIndex) and continues after them', async () => {
    writeSegments(dir, [Array.from({ length: 10 }, (_, i) => entry(i + 1, i + 1))]);
    const { storage, recovery } = await LogStorage.open<ListCommand>(dir, 6);
    expect(recovery.entries.map((e) => e.index)).toEqual([7, 8, 9, 10]);
    expect(storage.lastIndex).toBe(10);
    await storage.close();
  });

  it('refuses to open a log that starts after the snapshot: entries would be missing', async () => {
    writeSegments(dir, [[entry(5, 5), entry(6, 6)]]);
    await expect(LogStorage.open<ListCommand>(dir, 3)).rejects.toThrow(/log starts at index 5 but the snapshot only covers up to 3/);
    const ok = await LogStorage.open<ListCommand>(dir, 4);
    expect(ok.recovery.entries.map((e) => e.index)).toEqual([5, 6]);
    await ok.storage.close();
  });

  it('refuses segments that do not follow each other', async () => {
    writeSegments(dir, [[entry(1, 1), entry(2, 2)], [entry(4, 4)]]);
    await expect(LogStorage.open<ListCommand>(dir, 0)).rejects.toThrow(/starts at 4, expected 3/);
  });

  it('refuses a record whose index is not the next one', async () => {
    writeFileSync(join(dir, segmentFileName(1)), Buffer.concat([LogStorage.encode(entry(1, 1)), LogStorage.encode(entry(3, 3))]));
    await expect(LogStorage.open<ListCommand>(dir, 0)).rejects.toThrow(/entry 3 where 2 was expected/);
  });

  describe('a torn tail of the last segment is cut off and the entries before it survive', () => {
    const whole = () => Array.from({ length: 5 }, (_, i) => entry(i + 1, i + 1));
    const cases: Array<[string, (path: string) => void]> = [
      ['random garbage', (path) => appendFileSync(path, Buffer.from('7f3a9c0e11d2b4a6c8e0f2a4b6c8d0e2f4a6b8c0d2e4f6a8', 'hex'))],
      ['a truncated header', (path) => appendFileSync(path, Buffer.from([0x10, 0x00, 0x00]))],
      ['a header whose payload never arrived', (path) => appendFileSync(path, LogStorage.encode(entry(6, 6)).subarray(0, 20))],
      [
        'a whole-length record with a bad checksum',
        (path) => {
          const record = Buffer.from(LogStorage.encode(entry(6, 6)));
          flipBits(record, record.length - 2, 0xff);
          appendFileSync(path, record);
        },
      ],
      // A crash can leave a file extended with zeros (the size was updated, the data never written).
      ['zeros (a file extended but never written)', (path) => appendFileSync(path, Buffer.alloc(4096))],
      ['a zero-length header followed by garbage', (path) => appendFileSync(path, Buffer.concat([Buffer.alloc(8), Buffer.from('{"index":6')]))],
    ];
    it.each(cases)('%s', async (_name, tear) => {
      writeSegments(dir, [whole()]);
      const path = join(dir, segmentFileName(1));
      const goodBytes = statSync(path).size;
      tear(path);
      const tornBytes = statSync(path).size - goodBytes;

      const { storage, recovery } = await LogStorage.open<ListCommand>(dir, 0);
      expect(recovery.entries).toEqual(whole());
      expect(recovery.truncatedBytes).toBe(tornBytes);
      expect(statSync(path).size).toBe(goodBytes);
      // The log goes on from the last whole entry, and what it writes next reads back.
      await appendEntries(storage, 6, 7);
      await storage.close();
      const again = await LogStorage.open<ListCommand>(dir, 0);
      expect(again.recovery.truncatedBytes).toBe(0);
      expect(again.recovery.entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5, 6, 7]);
      await again.storage.close();
    });

    it('a record cut short at the very end loses only that record', async () => {
      writeSegments(dir, [whole()]);
      const path = join(dir, segmentFileName(1));
      const size = statSync(path).size;
      truncateSync(path, size - 3);
      const { storage, recovery } = await LogStorage.open<ListCommand>(dir, 0);
      expect(recovery.entries.map((e) => e.index)).toEqual([1, 2, 3, 4]);
      expect(storage.lastIndex).toBe(4);
      expect(recovery.truncatedBytes).toBe(LogStorage.encode(entry(5, 5)).length - 3);
      await storage.close();
    });

    it('only in the last segment: the earlier segments are left alone', async () => {
      writeSegments(dir, [[entry(1, 1), entry(2, 2)], [entry(3, 3), entry(4, 4)]]);
      const first = join(dir, segmentFileName(1));
      const firstBytes = readFileSync(first);
      appendFileSync(join(dir, segmentFileName(3)), Buffer.from('garbage!garbage!'));
      const { storage, recovery } = await LogStorage.open<ListCommand>(dir, 0);
      expect(recovery.entries.map((e) => e.index)).toEqual([1, 2, 3, 4]);
      expect(recovery.truncatedBytes).toBe(16);
      expect(readFileSync(first).equals(firstBytes)).toBe(true);
      await storage.close();
    });
  });

  describe('corruption anywhere but the tail stops the node loudly', () => {
    it('a bad checksum in a segment that is not the last', async () => {
      writeSegments(dir, [[entry(1, 1), entry(2, 2), entry(3, 3)], [entry(4, 4)]]);
      const path = join(dir, segmentFileName(1));
      const bytes = readFileSync(path);
      const second = LogStorage.encode(entry(1, 1)).length;
      flipBits(bytes, second + 12, 0x01);
      writeFileSync(path, bytes);
      await expect(LogStorage.open<ListCommand>(dir, 0)).rejects.toThrow(
        new RegExp(`log segment ${segmentFileName(1)} is corrupt at byte ${second}: checksum mismatch`),
      );
      // Nothing was cut off.
      expect(readFileSync(path).equals(bytes)).toBe(true);
    });

    it('a segment that is not the last ends in a torn record', async () => {
      writeSegments(dir, [[entry(1, 1), entry(2, 2)], [entry(3, 3)]]);
      const path = join(dir, segmentFileName(1));
      const size = statSync(path).size;
      truncateSync(path, size - 1);
      await expect(LogStorage.open<ListCommand>(dir, 0)).rejects.toThrow(/is corrupt at byte \d+: truncated record/);
      expect(statSync(path).size).toBe(size - 1);
    });
  });

  it('rolls to a new segment, named by its first index, once the current one passes 64 MiB', async () => {
    const { storage } = await LogStorage.open<ListCommand>(dir, 0);
    const pad = 'p'.repeat(14 * 1024 * 1024);
    const big = (index: number) => ({ index, term: 1, timestampMs: index, command: { value: index, pad } });
    for (let index = 1; index <= 5; index += 1) await storage.append(index, index, [LogStorage.encode(big(index))]);
    expect(listSegments(dir)).toEqual([segmentFileName(1)]);
    await storage.append(6, 7, [LogStorage.encode(entry(6, 6)), LogStorage.encode(entry(7, 7))]);
    expect(listSegments(dir)).toEqual([segmentFileName(1), segmentFileName(6)]);
    await storage.close();

    const reopened = await LogStorage.open<ListCommand>(dir, 0);
    expect(reopened.recovery.entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    await appendEntries(reopened.storage, 8, 8);
    reopened.storage.compactThrough(5);
    expect(listSegments(dir)).toEqual([segmentFileName(6)]);
    await reopened.storage.close();
    const compacted = await LogStorage.open<ListCommand>(dir, 5);
    expect(compacted.recovery.entries.map((e) => e.index)).toEqual([6, 7, 8]);
    await compacted.storage.close();
  });

  describe('compactThrough', () => {
    beforeEach(() => {
      writeSegments(dir, [
        Array.from({ length: 10 }, (_, i) => entry(i + 1, 1)),
        Array.from({ length: 10 }, (_, i) => entry(i + 11, 1)),
        Array.from({ length: 10 }, (_, i) => entry(i + 21, 1)),
        Array.from({ length: 5 }, (_, i) => entry(i + 31, 1)),
      ]);
    });

    it('deletes only whole segments whose entries are all at or before the index', async () => {
      const { storage } = await LogStorage.open<ListCommand>(dir, 0);
      storage.compactThrough(9);
      expect(listSegments(dir)).toEqual([1, 11, 21, 31].map(segmentFileName));
      storage.compactThrough(10);
      expect(listSegments(dir)).toEqual([11, 21, 31].map(segmentFileName));
      storage.compactThrough(25);
      expect(listSegments(dir)).toEqual([21, 31].map(segmentFileName));
      await storage.close();
      // Reopened with a snapshot at 25, the log still has every entry after it.
      const reopened = await LogStorage.open<ListCommand>(dir, 25);
      expect(reopened.recovery.entries.map((e) => e.index)).toEqual([26, 27, 28, 29, 30, 31, 32, 33, 34, 35]);
      await reopened.storage.close();
    });

    it('never deletes the segment being written, even when everything is covered', async () => {
      const { storage } = await LogStorage.open<ListCommand>(dir, 0);
      await appendEntries(storage, 36, 36);
      storage.compactThrough(1_000);
      expect(listSegments(dir)).toEqual([segmentFileName(31)]);
      await appendEntries(storage, 37, 38);
      await storage.close();
      const reopened = await LogStorage.open<ListCommand>(dir, 36);
      expect(reopened.recovery.entries.map((e) => e.index)).toEqual([37, 38]);
      expect(existsSync(join(dir, segmentFileName(31)))).toBe(true);
      await reopened.storage.close();
    });
  });
});
