import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, writeSync, ftruncateSync } from 'node:fs';
import { open as openAsync, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { crc32 } from 'node:zlib';
import type { LogEntry } from './command-log';
import { LogCorruptionError, OutcomeUnknownError, StorageWriteError } from './storage-errors';

/**
 * The durable, append-only log on disk: segment files named by their first index, each a sequence
 * of records `[u32 length][u32 crc32(payload)][payload: JSON entry]`. An append is one write and one
 * fdatasync for a whole group of entries (at most GROUP_BYTES_MAX bytes).
 *
 * On open, a crash can only have torn what the last group write was writing: the end of the last
 * segment, at most GROUP_BYTES_MAX bytes, with no whole record after the damage. Such a tail is cut
 * and reported. Anything else that does not check out (a bad record followed by a valid one, more
 * damaged bytes than one group write holds, damage in an earlier segment) is corruption: open
 * refuses, naming the file, the offset and the indexes at stake. Nothing is cut silently.
 *
 * A failed append (ENOSPC, EIO) is cut back to the last durable length and fsync'd before the error
 * is returned, so a restart never finds a record whose caller was told it failed.
 */

const HEADER_BYTES = 8;
/** Larger entries are refused before they reach the disk. */
export const ENTRY_BYTES_MAX = 16 * 1024 * 1024;
/** One group write (one write + one fdatasync) never carries more: the most a crash can tear. */
export const GROUP_BYTES_MAX = 2 * (ENTRY_BYTES_MAX + HEADER_BYTES);
const SEGMENT_BYTES_TARGET = 64 * 1024 * 1024;
/**
 * Group writes up to this size go to the page cache synchronously (ten single transfers are ~5 KB,
 * tens of microseconds); larger ones off the thread. An asynchronous write completes only when the
 * event loop comes round again: under single-transfer load that took 2.3-3.1 ms per group before
 * the fdatasync could even start (bench/RESULTS.md, fourth pass).
 */
const SYNC_WRITE_BYTES_MAX = 256 * 1024;
const SEGMENT_SUFFIX = '.log';
/** Every JSON-encoded entry starts so: a cheap filter before a checksum when looking for records after damage. */
const PAYLOAD_PREFIX = Buffer.from('{"index":', 'utf8');

export interface TornTail {
  file: string;
  /** Where the cut was made (the segment's new length). */
  offset: number;
  bytes: number;
  /** The index the first cut record would have had: no entry at or after it was ever durable. */
  fromIndex: number;
  reason: string;
}

export interface LogStorageRecovery<C> {
  entries: LogEntry<C>[];
  /** Bytes cut off the end of the last segment (a torn final write). */
  truncatedBytes: number;
  /** What was cut, for the startup output; null when nothing was. */
  tornTail: TornTail | null;
  /** Index of the last entry found in the segments (0: none), before any snapshot is considered. */
  lastStoredIndex: number;
}

export interface LogStorageOptions {
  /**
   * Test seam, off in production: the old rule that took any bad record in the last segment for a
   * torn tail. Only the storage-fault harness turns it on, to show that it catches it.
   */
  plantedBugCutAnythingInLastSegment?: boolean;
}

export class LogStorage<C> {
  private handle: FileHandle | null = null;
  private segmentFirstIndex = 0;
  /** Length of the tail segment that is durable (every byte up to here was fdatasync'd). */
  private segmentBytes = 0;
  private lastIndexValue = 0;
  /** A failed append whose cut-back also failed: bytes past segmentBytes may be on the disk. */
  private needsCutBack = false;

  private constructor(
    private readonly dir: string,
    private readonly options: LogStorageOptions,
  ) {}

  /** Opens the log directory and reads every entry after `afterIndex` (entries at or before it are covered by a snapshot). */
  static async open<C>(
    dir: string,
    afterIndex: number,
    options: LogStorageOptions = {},
  ): Promise<{ storage: LogStorage<C>; recovery: LogStorageRecovery<C> }> {
    makeDurableDir(dir);
    const storage = new LogStorage<C>(dir, options);
    const recovery = storage.recover(afterIndex);
    await storage.openTail();
    return { storage, recovery };
  }

  get lastIndex(): number {
    return this.lastIndexValue;
  }

  /** Encodes entries, refusing any over ENTRY_BYTES_MAX, so a caller can reject it before it is assigned. */
  static encode<C>(entry: LogEntry<C>): Buffer {
    const payload = Buffer.from(JSON.stringify(entry), 'utf8');
    if (payload.length > ENTRY_BYTES_MAX) throw new Error(`log entry of ${payload.length} bytes exceeds ${ENTRY_BYTES_MAX}`);
    const record = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
    record.writeUInt32LE(payload.length, 0);
    record.writeUInt32LE(crc32(payload), 4);
    payload.copy(record, HEADER_BYTES);
    return record;
  }

  /**
   * Appends already-encoded records of consecutive entries (at most GROUP_BYTES_MAX bytes) and makes
   * them durable (fdatasync) before resolving. Only one append runs at a time (the caller groups
   * commits). Rejects with StorageWriteError when the write failed and nothing of it remains, or
   * OutcomeUnknownError when the partial write could not be undone.
   */
  async append(firstIndex: number, lastIndex: number, records: Buffer[]): Promise<void> {
    if (firstIndex !== this.lastIndexValue + 1) throw new Error(`invariant: append of ${firstIndex} after ${this.lastIndexValue}`);
    const buffer = records.length === 1 ? records[0]! : Buffer.concat(records);
    if (buffer.length > GROUP_BYTES_MAX) throw new Error(`invariant: a group write of ${buffer.length} bytes exceeds ${GROUP_BYTES_MAX}`);
    if (this.needsCutBack) {
      // An earlier failure left bytes we could not remove; nothing new goes after them until they are gone.
      try {
        await this.cutBack();
      } catch (error) {
        throw new StorageWriteError(error as Error);
      }
    }
    if (this.segmentBytes >= SEGMENT_BYTES_TARGET) {
      try {
        await this.rollSegment(firstIndex);
      } catch (error) {
        throw new StorageWriteError(error as Error);
      }
    }
    const handle = this.handle;
    if (!handle) throw new Error('log storage is closed');
    try {
      await this.writeGroup(handle, buffer, this.segmentBytes);
      await handle.datasync();
    } catch (error) {
      try {
        await this.cutBack();
      } catch {
        this.needsCutBack = true;
        throw new OutcomeUnknownError(error as Error);
      }
      throw new StorageWriteError(error as Error);
    }
    this.segmentBytes += buffer.length;
    this.lastIndexValue = lastIndex;
  }

  /**
   * Removes every entry from `index` on (a replica's uncommitted suffix that conflicts with its
   * leader's log) and makes that durable before resolving, so that nothing appended after it can be
   * followed, after a crash, by the entries it replaced. Later segments go first, newest first: a
   * crash part-way leaves a prefix of the old log, which is what the replica had before (Raft
   * resolves that conflict again). Rare, so it reads the segment to find the cut.
   */
  async truncateFrom(index: number): Promise<void> {
    if (index > this.lastIndexValue) return;
    const segments = this.listSegments();
    const target = [...segments].reverse().find((s) => s.firstIndex <= index) ?? segments[0];
    if (!target) throw new Error(`invariant: truncate from ${index} with no segments`);
    if (index < target.firstIndex) throw new Error(`invariant: truncate from ${index}, before the log's first entry ${target.firstIndex}`);
    const later = segments.filter((s) => s.firstIndex > target.firstIndex).reverse();
    const tailIsLater = later.length > 0;
    if (tailIsLater) await this.close();
    for (const segment of later) rmSync(join(this.dir, segment.name));
    if (tailIsLater) syncDir(this.dir);
    const path = join(this.dir, target.name);
    const bytes = readFileSync(path);
    let offset = 0;
    for (let at = target.firstIndex; at < index; at += 1) {
      if (checkRecord(bytes, offset) !== null) throw new Error(`invariant: ${target.name} has no whole record for entry ${at} at byte ${offset}`);
      offset += HEADER_BYTES + bytes.readUInt32LE(offset);
    }
    if (!this.handle) {
      this.handle = await openAsync(path, 'r+');
      this.segmentFirstIndex = target.firstIndex;
    }
    await this.handle.truncate(offset);
    await this.handle.datasync();
    this.segmentBytes = offset;
    this.needsCutBack = false;
    this.lastIndexValue = index - 1;
  }

  /**
   * Drops the whole log so that it continues after `index` (a snapshot received from the leader
   * replaced it; that snapshot is durable before this runs). The directory is swapped, not emptied
   * file by file, so a crash leaves either the old log or the new, empty one.
   */
  async resetAfter(index: number): Promise<void> {
    await this.close();
    const old = `${this.dir}.old`;
    rmSync(old, { recursive: true, force: true });
    renameSync(this.dir, old);
    syncDir(dirname(this.dir));
    makeDurableDir(this.dir);
    this.segmentFirstIndex = index + 1;
    this.segmentBytes = 0;
    this.needsCutBack = false;
    this.lastIndexValue = index;
    await this.openTail();
    rmSync(old, { recursive: true, force: true });
  }

  /** Deletes whole segments whose entries are all at or before `index` (covered by a durable snapshot). */
  compactThrough(index: number): void {
    const segments = this.listSegments();
    let removed = false;
    for (let i = 0; i + 1 < segments.length; i += 1) {
      const next = segments[i + 1]!;
      if (next.firstIndex - 1 <= index && segments[i]!.firstIndex !== this.segmentFirstIndex) {
        rmSync(join(this.dir, segments[i]!.name));
        removed = true;
      }
    }
    if (removed) syncDir(this.dir);
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    if (handle) await handle.close();
  }

  /** The one place bytes go to a segment: a seam for tests that inject write failures (a partial write, then ENOSPC). */
  protected async writeGroup(handle: FileHandle, buffer: Buffer, position: number): Promise<void> {
    let written = 0;
    if (buffer.length <= SYNC_WRITE_BYTES_MAX) {
      while (written < buffer.length) written += writeSync(handle.fd, buffer, written, buffer.length - written, position + written);
      return;
    }
    while (written < buffer.length) written += (await handle.write(buffer, written, buffer.length - written, position + written)).bytesWritten;
  }

  /** Cuts the tail segment back to its last durable length and makes that durable. */
  private async cutBack(): Promise<void> {
    const handle = this.handle;
    if (!handle) throw new Error('log storage is closed');
    await handle.truncate(this.segmentBytes);
    await handle.datasync();
    this.needsCutBack = false;
  }

  private listSegments(): Array<{ name: string; firstIndex: number }> {
    return readdirSync(this.dir)
      .filter((name) => name.endsWith(SEGMENT_SUFFIX))
      .map((name) => ({ name, firstIndex: Number(name.slice(0, -SEGMENT_SUFFIX.length)) }))
      .filter((s) => Number.isSafeInteger(s.firstIndex) && s.firstIndex > 0)
      .sort((a, b) => a.firstIndex - b.firstIndex);
  }

  private recover(afterIndex: number): LogStorageRecovery<C> {
    const segments = this.listSegments();
    const entries: LogEntry<C>[] = [];
    let tornTail: TornTail | null = null;
    let expected = segments[0]?.firstIndex ?? afterIndex + 1;
    if (expected > afterIndex + 1) {
      throw new Error(`log starts at index ${expected} but the snapshot only covers up to ${afterIndex}: entries are missing`);
    }
    segments.forEach((segment, segmentNumber) => {
      const isLast = segmentNumber === segments.length - 1;
      const path = join(this.dir, segment.name);
      const bytes = readFileSync(path);
      if (segment.firstIndex !== expected) throw new Error(`log segment ${segment.name} starts at ${segment.firstIndex}, expected ${expected}`);
      let offset = 0;
      while (offset < bytes.length) {
        const problem = checkRecord(bytes, offset);
        if (problem !== null) {
          tornTail = this.judgeDamage(segment.name, path, bytes, offset, expected, problem, isLast);
          break;
        }
        const length = bytes.readUInt32LE(offset);
        const entry = JSON.parse(bytes.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + length).toString('utf8')) as LogEntry<C>;
        if (entry.index !== expected) throw new Error(`log segment ${segment.name}: entry ${entry.index} where ${expected} was expected`);
        if (entry.index > afterIndex) entries.push(entry);
        expected += 1;
        offset += HEADER_BYTES + length;
      }
      if (isLast) {
        this.segmentFirstIndex = segment.firstIndex;
        this.segmentBytes = offset;
      }
    });
    const lastStoredIndex = segments.length === 0 ? 0 : expected - 1;
    this.lastIndexValue = Math.max(expected - 1, afterIndex);
    if (segments.length === 0) this.segmentFirstIndex = afterIndex + 1;
    const torn = tornTail as TornTail | null;
    return { entries, truncatedBytes: torn?.bytes ?? 0, tornTail: torn, lastStoredIndex };
  }

  /**
   * A record at `offset` does not check out. A crash explains it only at the end of the last
   * segment, within one group write, with no whole record after it: then it is cut. Otherwise the
   * node refuses to start.
   */
  private judgeDamage(file: string, path: string, bytes: Buffer, offset: number, index: number, reason: string, isLast: boolean): TornTail {
    const damagedBytes = bytes.length - offset;
    if (!(isLast && this.options.plantedBugCutAnythingInLastSegment)) {
      if (!isLast) throw new LogCorruptionError(file, offset, { first: index, last: null }, `${reason} in a segment that is not the last`);
      if (damagedBytes > GROUP_BYTES_MAX) {
        throw new LogCorruptionError(file, offset, { first: index, last: null }, `${reason}, followed by ${damagedBytes} bytes: more than one group write (${GROUP_BYTES_MAX}) can tear`);
      }
      const later = findValidRecordAfter(bytes, offset + 1);
      if (later !== null) {
        throw new LogCorruptionError(file, offset, { first: index, last: later.lastIndex }, `${reason}, followed by a valid record of entry ${later.firstIndex} at byte ${later.offset}`);
      }
    }
    const fd = openSync(path, 'r+');
    try {
      ftruncateSync(fd, offset);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return { file, offset, bytes: damagedBytes, fromIndex: index, reason };
  }

  private async openTail(): Promise<void> {
    const path = join(this.dir, segmentName(this.segmentFirstIndex));
    if (!existsSync(path)) {
      writeFileSync(path, Buffer.alloc(0));
      this.segmentBytes = 0;
    }
    // Also when the file exists: the run that created it may have died before syncing the directory.
    syncDir(this.dir);
    this.handle = await openAsync(path, 'r+');
  }

  private async rollSegment(firstIndex: number): Promise<void> {
    // The new segment is ready before the old one is let go, so a failure here leaves the log as it was.
    const path = join(this.dir, segmentName(firstIndex));
    const temp = `${path}.new`;
    writeFileSync(temp, Buffer.alloc(0));
    renameSync(temp, path);
    syncDir(this.dir);
    const handle = await openAsync(path, 'r+');
    await this.close();
    this.handle = handle;
    this.segmentFirstIndex = firstIndex;
    this.segmentBytes = 0;
  }
}

/** Null when a whole, valid record starts at `offset`; otherwise why not. */
function checkRecord(bytes: Buffer, offset: number): string | null {
  if (offset + HEADER_BYTES > bytes.length) return 'truncated header';
  const length = bytes.readUInt32LE(offset);
  // A real record is never empty; zeros are a file extended by a crash before its data was written (crc32 of nothing is 0).
  if (length === 0) return 'empty record';
  if (length > ENTRY_BYTES_MAX || offset + HEADER_BYTES + length > bytes.length) return 'truncated record';
  const payload = bytes.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + length);
  if (crc32(payload) !== bytes.readUInt32LE(offset + 4)) return 'checksum mismatch';
  return null;
}

/**
 * Looks for a whole record anywhere at or after `from` (records may be misaligned by the damage).
 * Returns where the first one is, its index and the index of the last whole record that follows it.
 */
function findValidRecordAfter(bytes: Buffer, from: number): { offset: number; firstIndex: number; lastIndex: number } | null {
  for (let at = bytes.indexOf(PAYLOAD_PREFIX, from + HEADER_BYTES); at >= 0; at = bytes.indexOf(PAYLOAD_PREFIX, at + 1)) {
    const start = at - HEADER_BYTES;
    if (start < from || checkRecord(bytes, start) !== null) continue;
    const firstIndex = indexOfRecord(bytes, start);
    if (firstIndex === null) continue;
    let lastIndex = firstIndex;
    let next = start + HEADER_BYTES + bytes.readUInt32LE(start);
    while (next < bytes.length && checkRecord(bytes, next) === null) {
      lastIndex = indexOfRecord(bytes, next) ?? lastIndex;
      next += HEADER_BYTES + bytes.readUInt32LE(next);
    }
    return { offset: start, firstIndex, lastIndex };
  }
  return null;
}

function indexOfRecord(bytes: Buffer, offset: number): number | null {
  try {
    const length = bytes.readUInt32LE(offset);
    const index = (JSON.parse(bytes.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + length).toString('utf8')) as { index?: unknown }).index;
    return typeof index === 'number' && Number.isSafeInteger(index) ? index : null;
  } catch {
    return null;
  }
}

function segmentName(firstIndex: number): string {
  return `${String(firstIndex).padStart(20, '0')}${SEGMENT_SUFFIX}`;
}

/** Makes a file's creation, rename or removal durable. */
export function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * mkdir -p, then fsync every directory it created and the parent of the topmost one, so that the
 * whole path survives a power loss. Also syncs `dir` when it existed (a previous run may have died
 * before syncing it).
 */
export function makeDurableDir(dir: string): void {
  const target = resolve(dir);
  const created = mkdirSync(target, { recursive: true });
  if (created === undefined) {
    syncDir(target);
    return;
  }
  for (let d = target; ; d = dirname(d)) {
    syncDir(d);
    if (d === resolve(created) || d === dirname(d)) {
      syncDir(dirname(d));
      return;
    }
  }
}
