import type { DurableState, Entry, HardState, Snapshot } from '../raft/types';
import type { SimRandom } from './random';

type PendingWrite<C> = { kind: 'entries'; entries: Entry<C>[] } | { kind: 'hardState'; hardState: HardState };

/**
 * One replica's disk. Writes land in a pending list and become durable only when an fsync completes;
 * a crash keeps a random prefix of the pending writes, may tear the next log append to a prefix of its
 * entries (a CRC-framed log drops a partial record), and loses the rest. Snapshots are written to a
 * temporary file, fsynced and renamed: durable at once, or not at all.
 */
export class SimDisk<C> {
  hardState: HardState = { term: 0, vote: null, commit: 0 };
  snapshot: Snapshot | null = null;
  /** Durable log after the snapshot. */
  entries: Entry<C>[] = [];
  private pending: PendingWrite<C>[] = [];
  /** Durable entries overwritten or dropped since the last call of takeErased(): what a checker must vet. */
  private erased: { index: number; term: number }[] = [];

  takeErased(): { index: number; term: number }[] {
    const erased = this.erased;
    this.erased = [];
    return erased;
  }

  get offset(): number {
    return this.snapshot?.index ?? 0;
  }

  get lastIndex(): number {
    return this.offset + this.entries.length;
  }

  get hasPending(): boolean {
    return this.pending.length > 0;
  }

  writeEntries(entries: Entry<C>[]): void {
    if (entries.length > 0) this.pending.push({ kind: 'entries', entries });
  }

  writeHardState(hardState: HardState): void {
    this.pending.push({ kind: 'hardState', hardState });
  }

  /** Makes every pending write durable; returns the hard states that became durable, in order. */
  fsync(): HardState[] {
    const hardStates: HardState[] = [];
    for (const write of this.pending) this.applyDurably(write, hardStates);
    this.pending = [];
    return hardStates;
  }

  /** Installs a snapshot received from the leader: it replaces the log. */
  installSnapshot(snapshot: Snapshot): void {
    for (const entry of this.entries) if (entry.index > snapshot.index) this.erased.push({ index: entry.index, term: entry.term });
    this.snapshot = snapshot;
    this.entries = [];
  }

  /** A local snapshot at `snapshot.index` (within the durable log): entries through it are dropped. */
  compact(snapshot: Snapshot): void {
    if (snapshot.index <= this.offset) return;
    if (snapshot.index > this.lastIndex) throw new Error(`sim disk: compaction to ${snapshot.index} beyond the durable log ${this.lastIndex}`);
    this.entries = this.entries.slice(snapshot.index - this.offset);
    this.snapshot = snapshot;
  }

  crash(random: SimRandom, tornChance: number): void {
    if (random.chance(0.1)) {
      this.fsync();
      return;
    }
    const keep = random.int(0, this.pending.length);
    const kept = this.pending.slice(0, keep);
    const next = this.pending[keep];
    this.pending = [];
    const ignored: HardState[] = [];
    for (const write of kept) this.applyDurably(write, ignored);
    if (next?.kind === 'entries' && random.chance(tornChance)) {
      this.applyDurably({ kind: 'entries', entries: next.entries.slice(0, random.int(0, next.entries.length - 1)) }, ignored);
    }
  }

  /** The durable log's last (index, term), as a voter would compare it. */
  last(): { index: number; term: number } {
    return { index: this.lastIndex, term: this.termAt(this.lastIndex)! };
  }

  durableState(): DurableState<C> {
    return { hardState: { ...this.hardState }, snapshot: this.snapshot, entries: this.entries.slice() };
  }

  /** The durable entry at `index`, if the durable log holds one (a snapshot covers earlier ones). */
  termAt(index: number): number | undefined {
    if (index === this.offset) return this.snapshot?.term ?? 0;
    if (index < this.offset || index > this.lastIndex) return undefined;
    return this.entries[index - this.offset - 1]!.term;
  }

  private applyDurably(write: PendingWrite<C>, hardStates: HardState[]): void {
    if (write.kind === 'hardState') {
      this.hardState = write.hardState;
      hardStates.push(write.hardState);
      return;
    }
    if (write.entries.length === 0) return;
    const from = write.entries[0]!.index;
    if (from <= this.offset) {
      // Entries a snapshot already covers (a snapshot installed after this write was issued).
      const skip = this.offset + 1 - from;
      if (skip >= write.entries.length) return;
      this.applyDurably({ kind: 'entries', entries: write.entries.slice(skip) }, hardStates);
      return;
    }
    if (from > this.lastIndex + 1) throw new Error(`sim disk: append at ${from} leaves a gap after ${this.lastIndex}`);
    for (let i = from - this.offset - 1; i < this.entries.length; i += 1) this.erased.push({ index: this.entries[i]!.index, term: this.entries[i]!.term });
    this.entries.length = from - this.offset - 1;
    for (const entry of write.entries) this.entries.push(entry);
  }
}
