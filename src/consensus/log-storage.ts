import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, ftruncateSync } from 'node:fs';
import { open as openAsync, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { LogEntry } from './command-log';

/**
 * The durable, append-only log on disk: segment files named by their first index, each a sequence
 * of records `[u32 length][u32 crc32(payload)][payload: JSON entry]`. An append is one write and one
 * fdatasync for a whole group of entries. On open, a torn record at the end of the last segment
 * (a crash mid-write) is cut off; anything else that does not check out stops the node loudly.
 */

const HEADER_BYTES = 8;
/** Larger entries are refused before they reach the disk. */
export const ENTRY_BYTES_MAX = 16 * 1024 * 1024;
const SEGMENT_BYTES_TARGET = 64 * 1024 * 1024;
const SEGMENT_SUFFIX = '.log';

export interface LogStorageRecovery<C> {
  entries: LogEntry<C>[];
  /** Bytes cut off the end of the last segment (a torn final write). */
  truncatedBytes: number;
}

export class LogStorage<C> {
  private handle: FileHandle | null = null;
  private segmentFirstIndex = 0;
  private segmentBytes = 0;
  private lastIndexValue = 0;

  private constructor(private readonly dir: string) {}

  /** Opens the log directory and reads every entry after `afterIndex` (entries at or before it are covered by a snapshot). */
  static async open<C>(dir: string, afterIndex: number): Promise<{ storage: LogStorage<C>; recovery: LogStorageRecovery<C> }> {
    mkdirSync(dir, { recursive: true });
    const storage = new LogStorage<C>(dir);
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
   * Appends already-encoded records of consecutive entries and makes them durable (fdatasync)
   * before resolving. Only one append runs at a time (the caller groups commits).
   */
  async append(firstIndex: number, lastIndex: number, records: Buffer[]): Promise<void> {
    if (firstIndex !== this.lastIndexValue + 1) throw new Error(`invariant: append of ${firstIndex} after ${this.lastIndexValue}`);
    if (this.segmentBytes >= SEGMENT_BYTES_TARGET) await this.rollSegment(firstIndex);
    const handle = this.handle;
    if (!handle) throw new Error('log storage is closed');
    const buffer = records.length === 1 ? records[0]! : Buffer.concat(records);
    let written = 0;
    while (written < buffer.length) {
      const { bytesWritten } = await handle.write(buffer, written, buffer.length - written, this.segmentBytes + written);
      written += bytesWritten;
    }
    await handle.datasync();
    this.segmentBytes += buffer.length;
    this.lastIndexValue = lastIndex;
  }

  /** Deletes whole segments whose entries are all at or before `index` (covered by a durable snapshot). */
  compactThrough(index: number): void {
    const segments = this.listSegments();
    for (let i = 0; i + 1 < segments.length; i += 1) {
      const next = segments[i + 1]!;
      if (next.firstIndex - 1 <= index && segments[i]!.firstIndex !== this.segmentFirstIndex) {
        rmSync(join(this.dir, segments[i]!.name));
      }
    }
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    if (handle) await handle.close();
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
    let truncatedBytes = 0;
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
        const torn = (reason: string) => {
          if (!isLast) throw new Error(`log segment ${segment.name} is corrupt at byte ${offset}: ${reason}`);
          truncatedBytes = bytes.length - offset;
          const fd = openSync(path, 'r+');
          ftruncateSync(fd, offset);
          fsyncSync(fd);
          closeSync(fd);
        };
        if (offset + HEADER_BYTES > bytes.length) { torn('truncated header'); break; }
        const length = bytes.readUInt32LE(offset);
        const checksum = bytes.readUInt32LE(offset + 4);
        // A real record is never empty; zeros are a file extended by a crash before its data was written (crc32 of nothing is 0).
        if (length === 0) { torn('empty record'); break; }
        if (length > ENTRY_BYTES_MAX || offset + HEADER_BYTES + length > bytes.length) { torn('truncated record'); break; }
        const payload = bytes.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + length);
        if (crc32(payload) !== checksum) { torn('checksum mismatch'); break; }
        const entry = JSON.parse(payload.toString('utf8')) as LogEntry<C>;
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
    this.lastIndexValue = Math.max(expected - 1, afterIndex);
    if (segments.length === 0) this.segmentFirstIndex = afterIndex + 1;
    return { entries, truncatedBytes };
  }

  private async openTail(): Promise<void> {
    const path = join(this.dir, segmentName(this.segmentFirstIndex));
    if (!existsSync(path)) {
      writeFileSync(path, Buffer.alloc(0));
      syncDir(this.dir);
      this.segmentBytes = 0;
    }
    this.handle = await openAsync(path, 'r+');
  }

  private async rollSegment(firstIndex: number): Promise<void> {
    await this.close();
    const path = join(this.dir, segmentName(firstIndex));
    const temp = `${path}.new`;
    writeFileSync(temp, Buffer.alloc(0));
    renameSync(temp, path);
    syncDir(this.dir);
    this.segmentFirstIndex = firstIndex;
    this.segmentBytes = 0;
    this.handle = await openAsync(path, 'r+');
  }
}

function segmentName(firstIndex: number): string {
  return `${String(firstIndex).padStart(20, '0')}${SEGMENT_SUFFIX}`;
}

/** Makes a file's creation or rename durable. */
export function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
