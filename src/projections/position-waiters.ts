interface Waiter {
  position: string;
  resolve: (reached: boolean) => void;
  timer: NodeJS.Timeout;
}

/** Callers waiting, each with a deadline, until the read models reach a position (`atLeast`). */
export class PositionWaiters {
  private waiters: Waiter[] = [];

  /** Resolves true once `reached(position)` is reported, false after `timeoutMs`. */
  wait(position: string, current: string | null, timeoutMs: number): Promise<boolean> {
    if (current !== null && current >= position) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        position,
        resolve,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          resolve(false);
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  /** Releases everyone waiting for a position at or before `reached`. */
  reached(reached: string | null): void {
    if (reached === null || this.waiters.length === 0) return;
    this.waiters = this.waiters.filter((waiter) => {
      if (waiter.position > reached) return true;
      clearTimeout(waiter.timer);
      waiter.resolve(true);
      return false;
    });
  }

  /** Answers false to everyone still waiting. */
  cancelAll(): void {
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(false);
    }
    this.waiters = [];
  }
}
