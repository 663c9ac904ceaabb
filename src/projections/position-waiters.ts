import { OrderedSet } from 'js-sdsl';

interface Waiter {
  position: string;
  deadlineMs: number;
  /** Tells apart waiters with the same position or deadline. */
  seq: number;
  resolve: (reached: boolean) => void;
}

export interface PositionWaitersOptions {
  /** Waits pending at once; past it `wait` refuses with WaitersFullError (default 50,000). */
  waitersMax?: number;
  /** The clock for deadlines (tests). */
  nowMs?: () => number;
}

export const WAITERS_MAX_DEFAULT = 50_000;

/** Refused because too many waits are pending: retry shortly. */
export class WaitersFullError extends Error {
  constructor(readonly waitersMax: number) {
    super(`${waitersMax} reads are already waiting for positions; retry shortly`);
    this.name = 'WaitersFullError';
  }
}

/**
 * Callers waiting, each with a deadline, until the read models reach a position (`atLeast`).
 *
 * The same waiters in two ordered sets (balanced trees), one by position and one by deadline, and a
 * single timer for the earliest deadline: a projection update wakes the k waiters it reaches in
 * O(k log n) and costs one comparison when it reaches nobody; an expiry costs O(log n). Nothing is
 * ever scanned.
 */
export class PositionWaiters {
  private readonly byPosition = new OrderedSet<Waiter>([], (a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : a.seq - b.seq));
  private readonly byDeadline = new OrderedSet<Waiter>([], (a, b) => a.deadlineMs - b.deadlineMs || a.seq - b.seq);
  private seq = 0;
  private timer: NodeJS.Timeout | null = null;
  private timerAtMs = Infinity;
  private readonly waitersMax: number;
  private readonly nowMs: () => number;

  constructor(options: PositionWaitersOptions = {}) {
    this.waitersMax = options.waitersMax ?? WAITERS_MAX_DEFAULT;
    if (!Number.isSafeInteger(this.waitersMax) || this.waitersMax < 1) throw new RangeError(`waitersMax must be a positive integer, got ${this.waitersMax}`);
    this.nowMs = options.nowMs ?? Date.now;
  }

  /** Waits pending now. */
  get size(): number {
    return this.byPosition.size();
  }

  /**
   * Resolves true once `reached(position)` is reported, false after `timeoutMs`. Rejects at once with
   * WaitersFullError when `waitersMax` waits are pending.
   */
  wait(position: string, current: string | null, timeoutMs: number): Promise<boolean> {
    if (current !== null && current >= position) return Promise.resolve(true);
    if (this.size >= this.waitersMax) return Promise.reject(new WaitersFullError(this.waitersMax));
    return new Promise((resolve) => {
      this.seq += 1;
      const waiter: Waiter = { position, deadlineMs: this.nowMs() + timeoutMs, seq: this.seq, resolve };
      this.byPosition.insert(waiter);
      this.byDeadline.insert(waiter);
      if (waiter.deadlineMs < this.timerAtMs) this.armTimer();
    });
  }

  /** Releases everyone waiting for a position at or before `reached`. */
  reached(reached: string | null): void {
    if (reached === null) return;
    for (let first = this.byPosition.front(); first !== undefined && first.position <= reached; first = this.byPosition.front()) {
      this.byPosition.eraseElementByKey(first);
      this.byDeadline.eraseElementByKey(first);
      first.resolve(true);
    }
    // The timer may now be early (its waiter is gone): it rearms for the next deadline when it fires.
  }

  /** Answers false to everyone still waiting. */
  cancelAll(): void {
    const waiters: Waiter[] = [];
    this.byPosition.forEach((waiter) => waiters.push(waiter));
    this.byPosition.clear();
    this.byDeadline.clear();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerAtMs = Infinity;
    for (const waiter of waiters) waiter.resolve(false);
  }

  private expire(): void {
    this.timer = null;
    this.timerAtMs = Infinity;
    const now = this.nowMs();
    for (let first = this.byDeadline.front(); first !== undefined && first.deadlineMs <= now; first = this.byDeadline.front()) {
      this.byDeadline.eraseElementByKey(first);
      this.byPosition.eraseElementByKey(first);
      first.resolve(false);
    }
    this.armTimer();
  }

  /** One timer, for the earliest deadline. */
  private armTimer(): void {
    const first = this.byDeadline.front();
    if (first === undefined) return;
    if (this.timer) {
      if (first.deadlineMs >= this.timerAtMs) return;
      clearTimeout(this.timer);
    }
    this.timerAtMs = first.deadlineMs;
    this.timer = setTimeout(() => this.expire(), Math.max(0, first.deadlineMs - this.nowMs()));
  }
}
