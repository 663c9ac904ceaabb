import type { FileHandle } from 'node:fs/promises';
import { appendFileSync, existsSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ENTRY_BYTES_MAX, GROUP_BYTES_MAX, LogStorage } from '../../src/consensus/log-storage';
import { LogCorruptionError, OutcomeUnknownError, StorageWriteError } from '../../src/consensus/storage-errors';
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
    expect(recovery).toEqual({ entries: [], truncatedBytes: 0, tornTail: null, lastStoredIndex: 0 });
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
        new RegExp(`log segment ${segmentFileName(1)} is corrupt at byte ${second}: checksum mismatch in a segment that is not the last; entries at stake: index 2 and later`),
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

describe('LogStorage: a crash tears only the last group write; anything else is corruption', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => removeDir(dir));
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => entry(from + i, from + i));
  const offsetOf = (index: number) => range(1, index - 1).reduce((sum, e) => sum + LogStorage.encode(e).length, 0);

  it('a flipped byte inside the 11th of 52 records refuses to start, naming the segment, the offset and the indexes 11 to 52', async () => {
    writeSegments(dir, [range(1, 52)]);
    const path = join(dir, segmentFileName(1));
    const bytes = readFileSync(path);
    flipBits(bytes, offsetOf(11) + 20, 0x04);
    writeFileSync(path, bytes);
    const opened = LogStorage.open<ListCommand>(dir, 0);
    await expect(opened).rejects.toBeInstanceOf(LogCorruptionError);
    await expect(opened).rejects.toThrow(
      new RegExp(`log segment ${segmentFileName(1)} is corrupt at byte ${offsetOf(11)}: checksum mismatch, followed by a valid record of entry 12 at byte ${offsetOf(12)}; entries at stake: indexes 11 to 52`),
    );
    const error = (await opened.catch((e: unknown) => e)) as LogCorruptionError;
    expect(error.file).toBe(segmentFileName(1));
    expect(error.offset).toBe(offsetOf(11));
    expect(error.indexes).toEqual({ first: 11, last: 52 });
    // Nothing was cut.
    expect(readFileSync(path).equals(bytes)).toBe(true);
  });

  it('a zero-filled range over middle records is corruption, not a tear', async () => {
    writeSegments(dir, [range(1, 10)]);
    const path = join(dir, segmentFileName(1));
    const bytes = readFileSync(path);
    bytes.fill(0, offsetOf(3), offsetOf(5) + 5);
    writeFileSync(path, bytes);
    await expect(LogStorage.open<ListCommand>(dir, 0)).rejects.toThrow(/corrupt at byte \d+: empty record, followed by a valid record of entry 6 .*indexes 3 to 10/);
  });

  it('a torn final record is cut and reported: file, offset, bytes and the first index lost', async () => {
    writeSegments(dir, [range(1, 52)]);
    const path = join(dir, segmentFileName(1));
    const size = statSync(path).size;
    truncateSync(path, size - 5);
    const { storage, recovery } = await LogStorage.open<ListCommand>(dir, 0);
    expect(recovery.entries.map((e) => e.index)).toEqual(range(1, 51).map((e) => e.index));
    expect(recovery.tornTail).toEqual({ file: segmentFileName(1), offset: offsetOf(52), bytes: size - 5 - offsetOf(52), fromIndex: 52, reason: 'truncated record' });
    expect(recovery.lastStoredIndex).toBe(51);
    await storage.close();
  });

  it('damage followed by more bytes than one group write can hold is corruption', async () => {
    writeSegments(dir, [range(1, 3)]);
    const path = join(dir, segmentFileName(1));
    const size = statSync(path).size;
    truncateSync(path, size + GROUP_BYTES_MAX + 1); // sparse: reads back as zeros
    await expect(LogStorage.open<ListCommand>(dir, 0)).rejects.toThrow(/more than one group write/);
    expect(statSync(path).size).toBe(size + GROUP_BYTES_MAX + 1);
  });

  it('the planted bug (cut anything bad in the last segment) is off by default and, when on, silently cuts acknowledged entries', async () => {
    writeSegments(dir, [range(1, 20)]);
    const path = join(dir, segmentFileName(1));
    const bytes = readFileSync(path);
    flipBits(bytes, offsetOf(11) + 9, 0x01);
    writeFileSync(path, bytes);
    await expect(LogStorage.open<ListCommand>(dir, 0)).rejects.toBeInstanceOf(LogCorruptionError);
    const { storage, recovery } = await LogStorage.open<ListCommand>(dir, 0, { plantedBugCutAnythingInLastSegment: true });
    expect(storage.lastIndex).toBe(10);
    expect(recovery.tornTail?.fromIndex).toBe(11);
    await storage.close();
  });
});

describe('LogStorage: a failed append leaves nothing behind', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => {
    jest.restoreAllMocks();
    removeDir(dir);
  });
  const records = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => LogStorage.encode(entry(from + i, from + i)));
  const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  type Seam = { writeGroup(handle: FileHandle, buffer: Buffer, position: number): Promise<void> };
  const seam = LogStorage.prototype as unknown as Seam;

  it('a partial write then ENOSPC: StorageWriteError, the segment is cut back to its durable length, the next append lands', async () => {
    const { storage } = await LogStorage.open<ListCommand>(dir, 0);
    await storage.append(1, 3, records(1, 3));
    const path = join(dir, segmentFileName(1));
    const durable = statSync(path).size;
    const real = seam.writeGroup;
    const spy = jest.spyOn(seam, 'writeGroup').mockImplementationOnce(async (handle, buffer, position) => {
      // Half of the group reaches the file, then the disk is full.
      await handle.write(buffer, 0, Math.floor(buffer.length / 2), position);
      throw enospc();
    });
    const failed = storage.append(4, 8, records(4, 8));
    await expect(failed).rejects.toBeInstanceOf(StorageWriteError);
    await expect(failed).rejects.toThrow(/ENOSPC.*nothing was recorded, retry later/);
    expect(statSync(path).size).toBe(durable);
    expect(storage.lastIndex).toBe(3);
    spy.mockImplementation(real);
    await storage.append(4, 5, records(4, 5));
    await storage.close();
    const reopened = await LogStorage.open<ListCommand>(dir, 0);
    expect(reopened.recovery.tornTail).toBeNull();
    expect(reopened.recovery.entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5]);
    await reopened.storage.close();
  });

  it('when the cut-back fails too: OutcomeUnknownError, and nothing is appended until the cut-back succeeds', async () => {
    const { storage } = await LogStorage.open<ListCommand>(dir, 0);
    await storage.append(1, 2, records(1, 2));
    const path = join(dir, segmentFileName(1));
    const durable = statSync(path).size;
    jest.spyOn(seam, 'writeGroup').mockImplementationOnce(async (handle, buffer, position) => {
      await handle.write(buffer, 0, buffer.length, position);
      throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
    });
    const handleProto = Object.getPrototypeOf((storage as unknown as { handle: FileHandle }).handle) as FileHandle;
    const truncate = jest.spyOn(handleProto, 'truncate').mockRejectedValueOnce(Object.assign(new Error('EIO: i/o error, ftruncate'), { code: 'EIO' }));
    await expect(storage.append(3, 4, records(3, 4))).rejects.toThrow(OutcomeUnknownError);
    await expect(storage.append(3, 4, records(3, 4))).resolves.toBeUndefined();
    // The second append first cut the stray bytes away (truncate now works), then wrote its own.
    expect(truncate).toHaveBeenCalledTimes(2);
    expect(statSync(path).size).toBeGreaterThan(durable);
    await storage.close();
    const reopened = await LogStorage.open<ListCommand>(dir, 0);
    expect(reopened.recovery.entries.map((e) => e.index)).toEqual([1, 2, 3, 4]);
    await reopened.storage.close();
  });
});
