import { closeSync, existsSync, fdatasyncSync, openSync, readSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import type { HardState } from './raft/types';
import { syncDir } from './log-storage';
import { dirname } from 'node:path';

/**
 * A Raft replica's hard state (term, vote, commit) in one small file of two fixed slots. Each write
 * goes to the slot the last one did not use, with a sequence number and a checksum; reading takes the
 * valid slot with the higher sequence. A write torn by a crash damages only its own slot, so the
 * other still holds the state before it, and nothing that depended on the torn write was sent (the
 * shell sends only after the fsync). No rename, so a write is one pwrite (and one fdatasync when the
 * term or vote changed).
 *
 * Slot layout: [u32 length][u32 crc32(payload)][payload: JSON {seq, term, vote, commit}], zero-padded.
 */
const SLOT_BYTES = 512;
const HEADER_BYTES = 8;

interface SlotPayload extends HardState {
  seq: number;
}

export class HardStateFile {
  private fd: number;
  private seq = 0;
  private readonly buffer = Buffer.alloc(SLOT_BYTES);

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  /** Opens (creating) the file and reads the newest valid state; null when none was ever written. */
  static open(path: string): { file: HardStateFile; state: HardState | null } {
    const created = !existsSync(path);
    const fd = openSync(path, created ? 'w+' : 'r+');
    if (created) {
      fdatasyncSync(fd);
      syncDir(dirname(path));
    }
    const file = new HardStateFile(path, fd);
    const read = [0, 1].map((slot) => file.readSlot(slot));
    const slots = read.filter((s): s is SlotPayload => s !== null && s !== 'blank');
    if (slots.length === 0) {
      // One crash tears at most the slot being written; both damaged is not a crash's doing, and
      // starting with no vote could vote twice in a term.
      if (read.every((s) => s === null)) {
        closeSync(fd);
        throw new Error(`${path}: both hard-state slots are damaged; refusing to start (restore this replica's data folder, or wipe it so it rejoins as a new replica)`);
      }
      return { file, state: null };
    }
    const newest = slots.reduce((a, b) => (b.seq > a.seq ? b : a));
    file.seq = newest.seq;
    return { file, state: { term: newest.term, vote: newest.vote, commit: newest.commit } };
  }

  /** Writes the state; with `sync`, it is durable when this returns. */
  write(state: HardState, sync: boolean): void {
    this.seq += 1;
    const payload = Buffer.from(JSON.stringify({ seq: this.seq, term: state.term, vote: state.vote, commit: state.commit } satisfies SlotPayload), 'utf8');
    if (payload.length > SLOT_BYTES - HEADER_BYTES) throw new Error(`hard state of ${payload.length} bytes does not fit a slot`);
    this.buffer.fill(0);
    this.buffer.writeUInt32LE(payload.length, 0);
    this.buffer.writeUInt32LE(crc32(payload), 4);
    payload.copy(this.buffer, HEADER_BYTES);
    writeSync(this.fd, this.buffer, 0, SLOT_BYTES, (this.seq % 2) * SLOT_BYTES);
    if (sync) fdatasyncSync(this.fd);
  }

  sync(): void {
    fdatasyncSync(this.fd);
  }

  close(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
  }

  /** 'blank': never written (or a first write torn before any byte landed); null: damaged. */
  private readSlot(slot: number): SlotPayload | 'blank' | null {
    const bytes = Buffer.alloc(SLOT_BYTES);
    const read = readSync(this.fd, bytes, 0, SLOT_BYTES, slot * SLOT_BYTES);
    if (bytes.subarray(0, read).every((b) => b === 0)) return 'blank';
    if (read < HEADER_BYTES) return null;
    const length = bytes.readUInt32LE(0);
    if (length === 0 || length > SLOT_BYTES - HEADER_BYTES || HEADER_BYTES + length > read) return null;
    const payload = bytes.subarray(HEADER_BYTES, HEADER_BYTES + length);
    if (crc32(payload) !== bytes.readUInt32LE(4)) return null;
    try {
      const parsed = JSON.parse(payload.toString('utf8')) as SlotPayload;
      const valid =
        Number.isSafeInteger(parsed.seq) &&
        Number.isSafeInteger(parsed.term) &&
        Number.isSafeInteger(parsed.commit) &&
        (parsed.vote === null || typeof parsed.vote === 'string');
      return valid ? parsed : null;
    } catch {
      return null;
    }
  }
}
