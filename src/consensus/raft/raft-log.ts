import type { Entry, Snapshot } from './types';

/** A broken Raft invariant: the replica must stop rather than go on with doubtful state. */
export class RaftInvariantError extends Error {
  constructor(message: string) {
    super(`raft invariant: ${message}`);
    this.name = 'RaftInvariantError';
  }
}

/**
 * The replica's log in memory: an optional snapshot (everything up to `offset`), then entries
 * offset+1..lastIndex. Tracks how far the shell has been handed entries to persist (`handedThrough`),
 * how far they are durable (`stable`), and how far committed entries were handed out to apply.
 */
export class RaftLog<C> {
  /** Index covered by the snapshot (0: none). */
  offset = 0;
  offsetTerm = 0;
  offsetTimestampMs = 0;
  snapshot: Snapshot | null = null;
  entries: Entry<C>[] = [];
  committed = 0;
  /** Committed entries handed out in a Ready (or covered by the snapshot). */
  applied = 0;
  /** Entries through this index were handed to the shell to persist. */
  handedThrough = 0;
  /** Entries through this index are durable and match this log. */
  stable = 0;

  static restore<C>(snapshot: Snapshot | null, entries: readonly Entry<C>[], commit: number): RaftLog<C> {
    const log = new RaftLog<C>();
    if (snapshot) log.installSnapshot(snapshot);
    for (const entry of entries) {
      if (entry.index !== log.lastIndex() + 1) throw new RaftInvariantError(`durable log has a gap before ${entry.index}`);
      log.entries.push(entry);
    }
    const committed = Math.max(commit, log.offset);
    if (committed > log.lastIndex()) throw new RaftInvariantError(`durable commit ${committed} is beyond the durable log (${log.lastIndex()})`);
    log.committed = committed;
    log.applied = log.offset;
    log.handedThrough = log.lastIndex();
    log.stable = log.lastIndex();
    return log;
  }

  firstIndex(): number {
    return this.offset + 1;
  }

  lastIndex(): number {
    return this.offset + this.entries.length;
  }

  /** The term of entry `index`, or undefined when it is compacted or beyond the log. */
  term(index: number): number | undefined {
    if (index === this.offset) return this.offsetTerm;
    if (index < this.offset || index > this.lastIndex()) return undefined;
    return this.entries[index - this.offset - 1]!.term;
  }

  lastTerm(): number {
    return this.term(this.lastIndex())!;
  }

  entry(index: number): Entry<C> | undefined {
    if (index <= this.offset || index > this.lastIndex()) return undefined;
    return this.entries[index - this.offset - 1];
  }

  lastTimestampMs(): number {
    return this.entries.length > 0 ? this.entries[this.entries.length - 1]!.timestampMs : this.offsetTimestampMs;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: a candidate's log is at least as up to date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ours = this.lastTerm();
    return lastTerm > ours || (lastTerm === ours && lastIndex >= this.lastIndex());
  }

  /** Index of the first entry that conflicts with ours (same index, other term) or is new; 0 when all match. */
  findConflict(entries: readonly Entry<C>[]): number {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /**
   * The largest index ≤ `index` whose term is ≤ `term`, with that term: where the leader (or follower)
   * should probe next, skipping a whole term of mismatching entries at once. Term 0 when unknown.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    let i = Math.min(index, this.lastIndex());
    for (;;) {
      const t = this.term(i);
      if (t === undefined) return { index: i, term: 0 };
      if (t <= term) return { index: i, term: t };
      i -= 1;
    }
  }

  /** Entries [from, lastIndex], at most `countMax`, stopping before `bytesMax` (always at least one). */
  slice(from: number, countMax: number, bytesMax: number, sizeOf: (entry: Entry<C>) => number): Entry<C>[] {
    const out: Entry<C>[] = [];
    let bytes = 0;
    for (let i = from; i <= this.lastIndex() && out.length < countMax; i += 1) {
      const entry = this.entry(i)!;
      bytes += sizeOf(entry);
      if (out.length > 0 && bytes > bytesMax) break;
      out.push(entry);
    }
    return out;
  }

  append(entries: readonly Entry<C>[]): void {
    for (const entry of entries) {
      if (entry.index !== this.lastIndex() + 1) throw new RaftInvariantError(`append of ${entry.index} after ${this.lastIndex()}`);
      this.entries.push(entry);
    }
  }

  /** Drops entries from `from` on (never a committed one unless `allowCommitted`, a planted bug), then appends. */
  truncateAndAppend(entries: readonly Entry<C>[], allowCommitted = false): void {
    if (entries.length === 0) return;
    const from = entries[0]!.index;
    if (from <= this.offset) throw new RaftInvariantError(`truncation at ${from} inside the snapshot (${this.offset})`);
    if (from > this.lastIndex() + 1) throw new RaftInvariantError(`append of ${from} leaves a gap after ${this.lastIndex()}`);
    if (from <= this.committed && !allowCommitted) throw new RaftInvariantError(`truncation at ${from} would drop committed entries (commit ${this.committed})`);
    if (from <= this.lastIndex()) {
      this.entries.length = from - this.offset - 1;
      this.handedThrough = Math.min(this.handedThrough, from - 1);
      this.stable = Math.min(this.stable, from - 1);
    }
    this.append(entries);
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    if (index > this.lastIndex()) throw new RaftInvariantError(`commit ${index} is beyond the last index ${this.lastIndex()}`);
    this.committed = index;
  }

  /** Replaces the whole log by a snapshot received from the leader. */
  installSnapshot(snapshot: Snapshot): void {
    this.snapshot = snapshot;
    this.offset = snapshot.index;
    this.offsetTerm = snapshot.term;
    this.offsetTimestampMs = snapshot.timestampMs;
    this.entries = [];
    this.committed = Math.max(this.committed, snapshot.index);
    this.applied = snapshot.index;
    this.handedThrough = snapshot.index;
    // Only the snapshot's own Ready makes it durable; until then nothing beyond the old durable prefix counts.
    this.stable = Math.min(this.stable, snapshot.index);
  }

  /** Discards entries through `snapshot.index`, which the shell has made durable as a snapshot. */
  compact(snapshot: Snapshot): void {
    if (snapshot.index <= this.offset) return;
    if (snapshot.index > this.applied || snapshot.index > this.stable) {
      throw new RaftInvariantError(`compaction to ${snapshot.index} beyond applied ${this.applied} or stable ${this.stable}`);
    }
    if (this.term(snapshot.index) !== snapshot.term) throw new RaftInvariantError(`snapshot term ${snapshot.term} differs from the log at ${snapshot.index}`);
    this.entries = this.entries.slice(snapshot.index - this.offset);
    this.snapshot = snapshot;
    this.offset = snapshot.index;
    this.offsetTerm = snapshot.term;
    this.offsetTimestampMs = snapshot.timestampMs;
  }
}
