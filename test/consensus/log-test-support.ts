import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LogEntry, StateMachine } from '../../src/consensus/command-log';
import { LogStorage } from '../../src/consensus/log-storage';

/** A command of the tiny test state machine: append a value to a list. */
export interface ListCommand {
  value: number;
  /** Padding, to make an entry as large as a test needs. */
  pad?: string;
}

export interface ListResult {
  index: number;
  timestampMs: number;
  /** Sum of every value applied so far, this one included. */
  sum: number;
}

interface ListImage {
  appliedIndex: number;
  values: number[];
}

/** A deterministic state machine that remembers what was applied and how often `apply` ran. */
export class ListMachine implements StateMachine<ListCommand, ListResult> {
  appliedIndex = 0;
  values: number[] = [];
  applyCalls = 0;
  restoredFrom: number | null = null;

  apply(entry: LogEntry<ListCommand>): ListResult {
    if (entry.index !== this.appliedIndex + 1) throw new Error(`test machine: entry ${entry.index} applied after ${this.appliedIndex}`);
    this.applyCalls += 1;
    this.values.push(entry.command.value);
    this.appliedIndex = entry.index;
    return { index: entry.index, timestampMs: entry.timestampMs, sum: this.values.reduce((a, b) => a + b, 0) };
  }

  snapshot(): unknown {
    const image: ListImage = { appliedIndex: this.appliedIndex, values: [...this.values] };
    return image;
  }

  restore(snapshot: unknown): void {
    const image = snapshot as ListImage;
    this.appliedIndex = image.appliedIndex;
    this.values = [...image.values];
    this.restoredFrom = image.appliedIndex;
  }
}

export function tempDir(prefix = 'ledger-log-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function segmentFileName(firstIndex: number): string {
  return `${String(firstIndex).padStart(20, '0')}.log`;
}

export function snapshotFileName(index: number): string {
  return `${String(index).padStart(20, '0')}.snapshot`;
}

/** Segment files of a log directory, oldest first. */
export function listSegments(logDir: string): string[] {
  return readdirSync(logDir)
    .filter((name) => name.endsWith('.log'))
    .sort();
}

export function listSnapshots(snapshotDir: string): string[] {
  return readdirSync(snapshotDir)
    .filter((name) => name.endsWith('.snapshot'))
    .sort();
}

export function entry(index: number, value: number, timestampMs = 1_000 + index): LogEntry<ListCommand> {
  return { index, term: 1, timestampMs, command: { value } };
}

/** Writes segment files directly: each inner array becomes one segment named by its first entry. */
export function writeSegments(logDir: string, segments: Array<Array<LogEntry<ListCommand>>>): void {
  for (const entries of segments) {
    const first = entries[0];
    if (!first) throw new Error('writeSegments: empty segment');
    writeFileSync(join(logDir, segmentFileName(first.index)), Buffer.concat(entries.map((e) => LogStorage.encode(e))));
  }
}

/** Reads every whole record of a log directory, in order (no validation beyond the framing). */
export function readRecords(logDir: string): Array<{ entry: LogEntry<ListCommand>; record: Buffer }> {
  const out: Array<{ entry: LogEntry<ListCommand>; record: Buffer }> = [];
  for (const name of listSegments(logDir)) {
    const bytes = readFileSync(join(logDir, name));
    let offset = 0;
    while (offset + 8 <= bytes.length) {
      const length = bytes.readUInt32LE(offset);
      if (offset + 8 + length > bytes.length) break;
      const record = bytes.subarray(offset, offset + 8 + length);
      out.push({ entry: JSON.parse(record.subarray(8).toString('utf8')) as LogEntry<ListCommand>, record: Buffer.from(record) });
      offset += 8 + length;
    }
  }
  return out;
}

/**
 * Rewrites a (closed) log directory into segments starting at the given indexes, as if the log had
 * rolled there: segments are 64 MiB in production, far more than a test writes.
 */
export function resegment(logDir: string, firstIndexes: number[]): void {
  const records = readRecords(logDir);
  for (const name of listSegments(logDir)) rmSync(join(logDir, name));
  const starts = [...firstIndexes].sort((a, b) => a - b);
  for (let s = 0; s < starts.length; s += 1) {
    const from = starts[s]!;
    const to = s + 1 < starts.length ? starts[s + 1]! - 1 : Number.MAX_SAFE_INTEGER;
    const chosen = records.filter((r) => r.entry.index >= from && r.entry.index <= to).map((r) => r.record);
    writeFileSync(join(logDir, segmentFileName(from)), Buffer.concat(chosen));
  }
}

/** XORs one byte of a buffer in place (a bit flip on the disk). */
export function flipBits(bytes: Buffer, offset: number, mask: number): void {
  bytes.writeUInt8(bytes.readUInt8(offset) ^ mask, offset);
}
