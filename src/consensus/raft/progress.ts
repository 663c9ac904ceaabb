/**
 * The leader's view of one follower (etcd-io/raft tracker/progress.go): probing for the match point
 * one message at a time, replicating optimistically with a bounded number of messages in flight, or
 * waiting for a snapshot to land.
 */
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** A snapshot not acknowledged within this many heartbeat responses is sent again (it may have been lost). */
export const SNAPSHOT_RESEND_HEARTBEATS = 10;

export class Progress {
  match = 0;
  next = 1;
  state: ProgressState = 'probe';
  /** Probe state: an App is outstanding; wait for its answer or the next heartbeat response. */
  probeSent = false;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  pendingSnapshot = 0;
  snapshotWaitHeartbeats = 0;
  /** Last index of each App in flight (replicate state), oldest first. */
  private inflight: number[] = [];

  constructor(readonly inflightMax: number) {}

  /** A new leader's view: nothing known to match, probe from the end of its log. */
  reset(next: number): void {
    this.match = 0;
    this.next = next;
    this.state = 'probe';
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflight = [];
    this.recentActive = false;
  }

  becomeProbe(): void {
    // After a snapshot, the follower has at least the snapshot.
    this.next = this.state === 'snapshot' ? Math.max(this.match + 1, this.pendingSnapshot + 1) : this.match + 1;
    this.state = 'probe';
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflight = [];
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.next = this.match + 1;
    this.probeSent = false;
    this.inflight = [];
  }

  becomeSnapshot(index: number): void {
    this.state = 'snapshot';
    this.pendingSnapshot = index;
    this.snapshotWaitHeartbeats = 0;
    this.inflight = [];
  }

  isPaused(): boolean {
    if (this.state === 'probe') return this.probeSent;
    if (this.state === 'replicate') return this.inflight.length >= this.inflightMax;
    return true;
  }

  /** An acknowledgement of `index`; false if it is stale. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /** A rejection of the App at `rejected`; moves `next` back using the follower's hint. False if stale. */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1, 1);
    this.probeSent = false;
    return true;
  }

  sentEntries(count: number, lastIndex: number): void {
    if (this.state === 'replicate') {
      if (count > 0) {
        this.next = lastIndex + 1;
        this.inflight.push(lastIndex);
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }

  freeInflightThrough(index: number): void {
    let drop = 0;
    while (drop < this.inflight.length && this.inflight[drop]! <= index) drop += 1;
    if (drop > 0) this.inflight.splice(0, drop);
  }

  freeFirstInflight(): void {
    this.inflight.shift();
  }

  get inflightCount(): number {
    return this.inflight.length;
  }
}
