import { closeSync, fsyncSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open as openAsync } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { makeDurableDir, syncDir } from './log-storage';

/**
 * State-machine snapshots: `<index>.snapshot` files written to a temporary name, fsync'd and renamed,
 * so a crash leaves either the old snapshot or the new one, never half of one. The first line is a
 * header with the index and the checksum of the body; a snapshot that does not check out is ignored
 * in favour of an older one (the log still holds what it needs, since compaction only follows a
 * snapshot that was read back).
 *
 * The body is written as a stream of lines, never as one string: the state's skeleton first, then
 * every element of its large arrays on a line of its own. So no snapshot is limited by V8's largest
 * string (~512 MB), and the writer yields to the event loop between chunks.
 */

const SUFFIX = '.snapshot';
const SNAPSHOTS_KEPT = 2;
/** The header is rewritten in place once the body's checksum is known, so it has a fixed width. */
const HEADER_BYTES = 128;
const CHUNK_BYTES = 1024 * 1024;
/** Arrays this deep in the state (the state itself is depth 0) get one line per element. */
const SPLIT_DEPTH_MAX = 2;
/** Default largest snapshot body; past it a snapshot is refused (and reported), the log keeps everything. */
export const SNAPSHOT_BYTES_MAX = 16 * 1024 * 1024 * 1024;

export interface StoredSnapshot {
  index: number;
  state: unknown;
}

interface Header {
  index: number;
  crc32: number;
  bytes: number;
  /** 'lines': the streamed layout; absent: the body is one JSON document. */
  format?: 'lines';
}

export class SnapshotTooLargeError extends Error {
  constructor(readonly bytesMax: number) {
    super(`snapshot body exceeds ${bytesMax} bytes; not written (the log keeps every entry it covers)`);
    this.name = 'SnapshotTooLargeError';
  }
}

export interface SnapshotStoreOptions {
  bytesMax?: number;
}

export class SnapshotStore {
  private readonly bytesMax: number;
  constructor(
    private readonly dir: string,
    options: SnapshotStoreOptions = {},
  ) {
    this.bytesMax = options.bytesMax ?? SNAPSHOT_BYTES_MAX;
    makeDurableDir(dir);
    // A crash in the middle of a write leaves a temporary file that no load ever reads.
    for (const name of readdirSync(dir)) if (name.endsWith(`${SUFFIX}.tmp`)) rmSync(join(dir, name));
  }

  /** The newest valid snapshot, or null. */
  loadLatest(): StoredSnapshot | null {
    for (const { name, index } of this.list().reverse()) {
      try {
        const bytes = readFileSync(join(this.dir, name));
        const newline = bytes.indexOf(0x0a);
        if (newline < 0) continue;
        const header = JSON.parse(bytes.subarray(0, newline).toString('utf8')) as Header;
        const body = bytes.subarray(newline + 1);
        if (header.index !== index || body.length !== header.bytes || crc32(body) !== header.crc32) continue;
        return { index, state: header.format === 'lines' ? decodeLines(body) : JSON.parse(body.toString('utf8')) };
      } catch {
        continue;
      }
    }
    return null;
  }

  /** Writes an already-serialized state (small states, tests) durably. */
  save(index: number, serializedState: string): void {
    this.writeFileSync(index, [Buffer.from(serializedState, 'utf8')], undefined);
  }

  /** Streams the state to disk, yielding between chunks; resolves once it is durable. Rejects (leaving nothing) on any failure. */
  async write(index: number, state: unknown): Promise<void> {
    const { path, temp } = this.paths(index);
    const handle = await openAsync(temp, 'w');
    let done = false;
    try {
      const frame = new BodyFrame(this.bytesMax);
      for (const chunk of encodeLines(state)) {
        const at = frame.add(chunk);
        let written = 0;
        while (written < chunk.length) written += (await handle.write(chunk, written, chunk.length - written, at + written)).bytesWritten;
      }
      const header = frame.header(index, 'lines');
      await handle.write(header, 0, header.length, 0);
      await handle.sync();
      await handle.close();
      done = true;
      this.publish(temp, path);
    } finally {
      if (!done) {
        await handle.close().catch(() => undefined);
        rmSync(temp, { force: true });
      }
    }
  }

  /** The same as write(), without yielding (used once the log has stopped and nothing waits on the event loop). */
  writeSync(index: number, state: unknown): void {
    this.writeFileSync(index, encodeLines(state), 'lines');
  }

  private writeFileSync(index: number, chunks: Iterable<Buffer>, format: 'lines' | undefined): void {
    const { path, temp } = this.paths(index);
    const fd = openSync(temp, 'w');
    let done = false;
    try {
      const frame = new BodyFrame(this.bytesMax);
      for (const chunk of chunks) {
        const at = frame.add(chunk);
        let written = 0;
        while (written < chunk.length) written += writeSync(fd, chunk, written, chunk.length - written, at + written);
      }
      const header = frame.header(index, format);
      writeSync(fd, header, 0, header.length, 0);
      fsyncSync(fd);
      closeSync(fd);
      done = true;
      this.publish(temp, path);
    } finally {
      if (!done) {
        try {
          closeSync(fd);
        } catch {
          // already closed
        }
        rmSync(temp, { force: true });
      }
    }
  }

  private paths(index: number): { path: string; temp: string } {
    const path = join(this.dir, `${String(index).padStart(20, '0')}${SUFFIX}`);
    return { path, temp: `${path}.tmp` };
  }

  private publish(temp: string, path: string): void {
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

/**
 * Where each chunk of a body goes, and the header once all are placed: the body follows a
 * fixed-width header (written last, when the checksum is known; until then the file has none that
 * parses, so a half-written file is never loaded). Refuses a body over bytesMax.
 */
class BodyFrame {
  private offset = HEADER_BYTES;
  private checksum = 0;
  constructor(private readonly bytesMax: number) {}

  /** The file offset to write `chunk` at. */
  add(chunk: Buffer): number {
    if (this.offset - HEADER_BYTES + chunk.length > this.bytesMax) throw new SnapshotTooLargeError(this.bytesMax);
    this.checksum = crc32(chunk, this.checksum);
    const at = this.offset;
    this.offset += chunk.length;
    return at;
  }

  header(index: number, format: 'lines' | undefined): Buffer {
    return headerBuffer({ index, crc32: this.checksum, bytes: this.offset - HEADER_BYTES, ...(format ? { format } : {}) });
  }
}

function headerBuffer(header: Header): Buffer {
  const text = JSON.stringify(header);
  if (text.length >= HEADER_BYTES) throw new Error('invariant: snapshot header too long');
  return Buffer.from(`${text.padEnd(HEADER_BYTES - 1, ' ')}\n`, 'utf8');
}

type Path = Array<string>;

/**
 * The streamed layout: line 1 is `{"skeleton": <the state with its split arrays emptied>, "arrays":
 * [{"path": [...], "length": n}, ...]}`, then the elements of each split array in order, one per line.
 */
function* encodeLines(state: unknown): Generator<Buffer> {
  const arrays: Array<{ path: Path; items: unknown[] }> = [];
  const skeleton = strip(state, [], arrays);
  let chunk: string[] = [];
  let chunkChars = 0;
  const push = function* (line: string): Generator<Buffer> {
    chunk.push(line, '\n');
    chunkChars += line.length + 1;
    if (chunkChars >= CHUNK_BYTES) {
      yield Buffer.from(chunk.join(''), 'utf8');
      chunk = [];
      chunkChars = 0;
    }
  };
  yield* push(JSON.stringify({ skeleton, arrays: arrays.map((a) => ({ path: a.path, length: a.items.length })) }));
  for (const { items } of arrays) for (const item of items) yield* push(JSON.stringify(item));
  if (chunk.length > 0) yield Buffer.from(chunk.join(''), 'utf8');
}

function strip(value: unknown, path: Path, arrays: Array<{ path: Path; items: unknown[] }>): unknown {
  if (Array.isArray(value) && path.length <= SPLIT_DEPTH_MAX) {
    arrays.push({ path, items: value });
    return [];
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && path.length < SPLIT_DEPTH_MAX) {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) out[key] = strip(inner, [...path, key], arrays);
    return out;
  }
  return value;
}

function decodeLines(body: Buffer): unknown {
  let at = 0;
  const nextLine = (): unknown => {
    const end = body.indexOf(0x0a, at);
    if (end < 0) throw new Error('snapshot body ends mid-line');
    const value = JSON.parse(body.subarray(at, end).toString('utf8')) as unknown;
    at = end + 1;
    return value;
  };
  const { skeleton, arrays } = nextLine() as { skeleton: unknown; arrays: Array<{ path: Path; length: number }> };
  let root = skeleton;
  for (const { path, length } of arrays) {
    const items: unknown[] = [];
    for (let i = 0; i < length; i += 1) items.push(nextLine());
    if (path.length === 0) root = items;
    else {
      let parent = root as Record<string, unknown>;
      for (const key of path.slice(0, -1)) parent = parent[key] as Record<string, unknown>;
      parent[path.at(-1)!] = items;
    }
  }
  if (at !== body.length) throw new Error('snapshot body has trailing bytes');
  return root;
}
