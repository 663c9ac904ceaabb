import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { syncDir } from './log-storage';

/**
 * State-machine snapshots: `<index>.snapshot` files written to a temporary name, fsync'd and renamed,
 * so a crash leaves either the old snapshot or the new one, never half of one. The first line is a
 * header with the index and the checksum of the body; a snapshot that does not check out is ignored
 * in favour of an older one (the log still holds what it needs, since compaction only follows a
 * snapshot that was read back).
 */

const SUFFIX = '.snapshot';
const SNAPSHOTS_KEPT = 2;

export interface StoredSnapshot {
  index: number;
  state: unknown;
}

export class SnapshotStore {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    // A crash in the middle of save() leaves a temporary file that no load ever reads.
    for (const name of readdirSync(dir)) if (name.endsWith(`${SUFFIX}.tmp`)) rmSync(join(dir, name));
  }

  /** The newest valid snapshot, or null. */
  loadLatest(): StoredSnapshot | null {
    for (const { name, index } of this.list().reverse()) {
      try {
        const bytes = readFileSync(join(this.dir, name));
        const newline = bytes.indexOf(0x0a);
        const header = JSON.parse(bytes.subarray(0, newline).toString('utf8')) as { index: number; crc32: number; bytes: number };
        const body = bytes.subarray(newline + 1);
        if (header.index !== index || body.length !== header.bytes || crc32(body) !== header.crc32) continue;
        return { index, state: JSON.parse(body.toString('utf8')) };
      } catch {
        continue;
      }
    }
    return null;
  }

  /** Writes the serialized state durably; resolves once it is safe to compact the log through `index`. */
  save(index: number, serializedState: string): void {
    const body = Buffer.from(serializedState, 'utf8');
    const header = Buffer.from(`${JSON.stringify({ index, crc32: crc32(body), bytes: body.length })}\n`, 'utf8');
    const path = join(this.dir, `${String(index).padStart(20, '0')}${SUFFIX}`);
    const temp = `${path}.tmp`;
    const fd = openSync(temp, 'w');
    try {
      writeFileSync(fd, Buffer.concat([header, body]));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
    syncDir(this.dir);
    for (const old of this.list().slice(0, -SNAPSHOTS_KEPT)) rmSync(join(this.dir, old.name));
  }

  private list(): Array<{ name: string; index: number }> {
    return readdirSync(this.dir)
      .filter((name) => name.endsWith(SUFFIX))
      .map((name) => ({ name, index: Number(name.slice(0, -SUFFIX.length)) }))
      .filter((s) => Number.isSafeInteger(s.index))
      .sort((a, b) => a.index - b.index);
  }
}
