import type { TransactionWithPosition } from '../domain/events';
import type { ChangedTransactionsQuery, TransactionDoc } from '../projections/read-model-store';
import { FeedEvent, type FeedHub, type FeedSink, type FeedTopic } from './feed-hub';

/** Catch-up reads the read models in pages of this many transactions. */
export const CATCH_UP_PAGE_SIZE = 500;

/**
 * The outbound budget of one connection, shared by its subscriptions: events queued and their bytes,
 * plus what the socket itself still holds. Exceeding either maximum means the client does not keep
 * up: the connection is closed (retryably) instead of buffering without bound or slowing anyone else.
 */
export class ConnectionBudget {
  queuedEvents = 0;
  queuedBytes = 0;
  private overflowed = false;
  private readonly subscriptions = new Set<FeedSubscription>();

  constructor(
    readonly queuedEventsMax: number,
    readonly queuedBytesMax: number,
    /** Bytes written to the socket but not yet sent (ws bufferedAmount). */
    private readonly socketBufferedBytes: () => number,
    /** Closes the connection: called once, at the first overflow. */
    private readonly onOverflow: (reason: string) => void,
  ) {}

  get exceeded(): boolean {
    return this.overflowed;
  }

  attach(subscription: FeedSubscription): void {
    this.subscriptions.add(subscription);
  }

  detach(subscription: FeedSubscription): void {
    this.subscriptions.delete(subscription);
  }

  /** Charges one event; false (and the connection is being closed) when it does not fit. */
  charge(bytes: number): boolean {
    if (this.overflowed) return false;
    const socketBytes = this.socketBufferedBytes();
    if (this.queuedEvents + 1 > this.queuedEventsMax || this.queuedBytes + bytes + socketBytes > this.queuedBytesMax) {
      this.overflow(
        this.queuedEvents + 1 > this.queuedEventsMax
          ? `more than ${this.queuedEventsMax} events waiting`
          : `more than ${this.queuedBytesMax} bytes waiting`,
      );
      return false;
    }
    this.queuedEvents += 1;
    this.queuedBytes += bytes;
    return true;
  }

  release(bytes: number): void {
    this.queuedEvents -= 1;
    this.queuedBytes -= bytes;
  }

  /** Stops every subscription of the connection at once (their queues are dropped) and closes it. */
  overflow(why: string): void {
    if (this.overflowed) return;
    this.overflowed = true;
    for (const subscription of this.subscriptions) subscription.abort();
    this.onOverflow(why);
  }
}

export interface FeedSubscriptionDeps {
  hub: FeedHub;
  budget: ConnectionBudget;
  /** Catch-up source: the read models. */
  transactionsChangedBetween(query: ChangedTransactionsQuery, afterPosition: string, upToPosition: string, limit: number): Promise<TransactionDoc[]>;
  /** Resolves true once the read models include `position`. */
  waitForPosition(position: string, timeoutMs: number): Promise<boolean>;
  catchUpWaitMs: number;
  /** Turns an event into what is sent (shared by subscribers of the same cohort through event.results). */
  render(event: FeedEvent): Promise<unknown>;
  /** The read models did not reach the hand-over position in time: the connection is closed retryably. */
  onCatchUpTimeout(position: string): void;
}

interface Queued {
  event: FeedEvent;
  bytes: number;
}

/**
 * One subscription: an async iterator that graphql-ws pulls one result at a time (it awaits each
 * socket send, so a slow socket stops the pulling and the queue here fills up, bounded by the
 * connection's budget).
 *
 * With `after`, delivery is catch-up then live, handed over by position:
 *   1. register with the hub first (synchronously) and remember its head H: every live event queued
 *      from then on is after H, every event at or before H was applied before;
 *   2. wait until the read models include H, then read the matching transactions whose last change
 *      lies in (after, H], in position order, page by page;
 *   3. then drain the queue, skipping anything at or before the last position sent.
 * Nothing is missed (everything ≤ H is in the read models, everything > H is queued) and nothing comes
 * twice (positions sent only ever increase). A transaction that changed more than once before H is
 * caught up once, in its state at its last change.
 */
export class FeedSubscription implements AsyncIterableIterator<unknown>, FeedSink {
  private readonly queue: Queued[] = [];
  private queueHead = 0;
  private waiter: (() => void) | null = null;
  private finished = false;
  private aborted = false;
  private readonly unregister: () => void;
  /** Last position examined by catch-up, then the last sent: never decreases. */
  private cursor: string | null;
  private catchUpTo: string | null;
  private catchUpPage: TransactionDoc[] = [];
  private catchUpPageHead = 0;
  private readModelsReady = false;

  constructor(
    readonly topic: FeedTopic,
    after: string | null,
    private readonly deps: FeedSubscriptionDeps,
  ) {
    this.unregister = deps.hub.register(topic, this);
    const head = deps.hub.head;
    this.cursor = after;
    this.catchUpTo = after !== null && head !== null && head > after && topic.kind !== 'accountUpdated' ? head : null;
    deps.budget.attach(this);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  push(event: FeedEvent): void {
    if (this.finished || this.aborted) return;
    const bytes = event.approxBytes;
    if (!this.deps.budget.charge(bytes)) return;
    this.queue.push({ event, bytes });
    this.wake();
  }

  async next(): Promise<IteratorResult<unknown>> {
    for (;;) {
      if (this.finished) return { done: true, value: undefined };
      if (this.aborted) {
        // The connection is closing; graphql-ws ends this iterator with return(). Completing it here
        // would tell the client the feed is over, and the client would not resubscribe.
        await this.sleep();
        continue;
      }
      if (this.catchUpTo !== null) {
        const doc = await this.nextCatchUp(this.catchUpTo);
        if (doc === 'waiting') continue;
        if (doc !== null) {
          this.cursor = doc.position;
          return { done: false, value: await this.deps.render(new FeedEvent<TransactionWithPosition>(doc.position, doc)) };
        }
        this.catchUpTo = null;
        continue;
      }
      if (this.queueHead < this.queue.length) {
        const { event, bytes } = this.queue[this.queueHead]!;
        this.queue[this.queueHead] = undefined as never;
        this.queueHead += 1;
        if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
          this.queue.splice(0, this.queueHead);
          this.queueHead = 0;
        }
        this.deps.budget.release(bytes);
        // Only the transaction feeds hand over by position; an account changes several times per position.
        if (this.topic.kind !== 'accountUpdated') {
          if (this.cursor !== null && event.position <= this.cursor) continue;
          this.cursor = event.position;
        }
        return { done: false, value: await this.deps.render(event) };
      }
      await this.sleep();
    }
  }

  async return(): Promise<IteratorResult<unknown>> {
    this.finish();
    return { done: true, value: undefined };
  }

  async throw(error: unknown): Promise<IteratorResult<unknown>> {
    this.finish();
    throw error;
  }

  /** Drops the queue and stops listening; the iterator stays open until graphql-ws returns it. */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.unregister();
    this.dropQueue();
  }

  get queuedEvents(): number {
    return this.queue.length - this.queueHead;
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.unregister();
    this.dropQueue();
    this.deps.budget.detach(this);
    this.wake();
  }

  private dropQueue(): void {
    for (let i = this.queueHead; i < this.queue.length; i += 1) this.deps.budget.release(this.queue[i]!.bytes);
    this.queue.length = 0;
    this.queueHead = 0;
  }

  private async nextCatchUp(upTo: string): Promise<TransactionDoc | null | 'waiting'> {
    if (!this.readModelsReady) {
      const reached = await this.deps.waitForPosition(upTo, this.deps.catchUpWaitMs);
      if (this.finished || this.aborted) return 'waiting';
      if (!reached) {
        this.deps.onCatchUpTimeout(upTo);
        return 'waiting';
      }
      this.readModelsReady = true;
    }
    if (this.catchUpPageHead >= this.catchUpPage.length) {
      this.catchUpPage = await this.deps.transactionsChangedBetween(this.catchUpQuery(), this.cursor!, upTo, CATCH_UP_PAGE_SIZE);
      this.catchUpPageHead = 0;
      if (this.finished || this.aborted) return 'waiting';
      if (this.catchUpPage.length === 0) return null;
    }
    const doc = this.catchUpPage[this.catchUpPageHead]!;
    this.catchUpPageHead += 1;
    return doc;
  }

  private catchUpQuery(): ChangedTransactionsQuery {
    switch (this.topic.kind) {
      case 'transactionPosted':
        return { accountId: this.topic.accountId };
      case 'largeTransaction':
        return { minAmount: this.topic.minAmountMinor };
      case 'accountUpdated':
        throw new Error('invariant: accountUpdated has no catch-up');
    }
  }

  private sleep(): Promise<void> {
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }
}
