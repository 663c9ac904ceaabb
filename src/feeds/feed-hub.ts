import type { AccountRecord, TransactionWithPosition } from '../domain/events';
import type { PositionedEvent } from '../domain/ledger';

/**
 * Live feeds, fed from the entries this node applies (CommandLog.onApplied, on the main thread):
 * every replica applies every committed entry, so a feed works on any node and never shows an
 * uncommitted change. There is no shared pub/sub and no queue here: the hub matches each event
 * against each distinct filter once and hands the same FeedEvent object to every subscriber of that
 * filter; each subscriber's own bounded queue (FeedSubscription) is the only buffer.
 */

/** What a subscription listens to. */
export type FeedTopic =
  | { kind: 'accountUpdated'; accountId: string }
  | { kind: 'transactionPosted'; accountId: string | null }
  | { kind: 'largeTransaction'; minAmountMinor: bigint };

/** One change as a feed delivers it, shared by every subscriber whose filter matches it. */
export class FeedEvent<P extends object = AccountRecord | TransactionWithPosition> {
  private bytes: number | null = null;
  /** Results already executed for this event, by cohort (same document and variables): execute and serialise once. */
  readonly results = new Map<string, Promise<unknown>>();
  constructor(
    readonly position: string,
    readonly payload: P,
  ) {}

  /** The payload's JSON size: what a subscriber's byte budget is charged for it (computed once). */
  get approxBytes(): number {
    this.bytes ??= Buffer.byteLength(JSON.stringify(this.payload));
    return this.bytes;
  }
}

export interface FeedSink {
  push(event: FeedEvent): void;
}

/** The changes of one applied entry, by feed: a pure function of the entry's events. */
export function feedChangesOf(events: readonly PositionedEvent[]): {
  accounts: Array<{ position: string; account: AccountRecord }>;
  transactions: TransactionWithPosition[];
} {
  const accounts: Array<{ position: string; account: AccountRecord }> = [];
  const transactions: TransactionWithPosition[] = [];
  for (const { position, event } of events) {
    switch (event.type) {
      case 'AccountOpened':
        accounts.push({ position, account: event.data.account });
        break;
      case 'TransactionRecorded':
      case 'TransactionSettled':
      case 'TransactionCancelled':
      case 'TransactionExpired':
        transactions.push({ ...event.data.transaction, position });
        for (const account of event.data.accounts) accounts.push({ position, account });
        break;
      case 'IdempotencyKeyRecorded':
        break;
    }
  }
  return { accounts, transactions };
}

export function topicKey(topic: FeedTopic): string {
  switch (topic.kind) {
    case 'accountUpdated':
      return `a:${topic.accountId}`;
    case 'transactionPosted':
      return topic.accountId === null ? 'p*' : `p:${topic.accountId}`;
    case 'largeTransaction':
      return `l:${topic.minAmountMinor}`;
  }
}

export class FeedHub {
  private readonly groups = new Map<string, Set<FeedSink>>();
  /** Distinct thresholds with subscribers: every transaction is compared with each once. */
  private readonly largeThresholds = new Map<string, bigint>();
  private headPosition: string | null = null;
  private subscriberCount = 0;
  private readonly failureListeners: Array<(error: Error) => void> = [];

  /**
   * Position of the last event applied on this node (null: none known yet). Every event at or
   * before it reached ingest() before any subscriber registered after it was read.
   */
  get head(): string | null {
    return this.headPosition;
  }

  get subscribers(): number {
    return this.subscriberCount;
  }

  /** Raises the head to a position known to be applied (the event store's last event at start). */
  noteApplied(position: string): void {
    if (this.headPosition === null || position > this.headPosition) this.headPosition = position;
  }

  /** Registers a sink; the returned function unregisters it. Synchronous, so no event falls between reading `head` and registering. */
  register(topic: FeedTopic, sink: FeedSink): () => void {
    const key = topicKey(topic);
    let group = this.groups.get(key);
    if (!group) {
      group = new Set();
      this.groups.set(key, group);
      if (topic.kind === 'largeTransaction') this.largeThresholds.set(key, topic.minAmountMinor);
    }
    group.add(sink);
    this.subscriberCount += 1;
    let registered = true;
    return () => {
      if (!registered) return;
      registered = false;
      this.subscriberCount -= 1;
      group.delete(sink);
      if (group.size === 0 && this.groups.get(key) === group) {
        this.groups.delete(key);
        this.largeThresholds.delete(key);
      }
    };
  }

  /** Called when an event could not be fanned out: every feed must then start over from a position. */
  onFailure(listener: (error: Error) => void): void {
    this.failureListeners.push(listener);
  }

  /**
   * Called with the events of every applied entry, in log order. Never throws into the command path:
   * a failure (a bug) is reported to the failure listeners, which close every feed connection
   * retryably, so that clients resume with `after` instead of silently missing an event.
   */
  ingest(events: readonly PositionedEvent[]): void {
    if (events.length === 0) return;
    this.noteApplied(events.at(-1)!.position);
    if (this.subscriberCount === 0) return;
    try {
      this.fanOut(events);
    } catch (error) {
      for (const listener of this.failureListeners) listener(error as Error);
    }
  }

  private fanOut(events: readonly PositionedEvent[]): void {
    const { accounts, transactions } = feedChangesOf(events);
    for (const { position, account } of accounts) this.deliver(`a:${account.id}`, () => new FeedEvent(position, account));
    for (const transaction of transactions) {
      let shared: FeedEvent | null = null;
      const event = () => (shared ??= new FeedEvent(transaction.position, transaction));
      this.deliver('p*', event);
      if (transaction.fromAccountId !== null) this.deliver(`p:${transaction.fromAccountId}`, event);
      if (transaction.toAccountId !== null && transaction.toAccountId !== transaction.fromAccountId) this.deliver(`p:${transaction.toAccountId}`, event);
      if (this.largeThresholds.size > 0) {
        const amount = BigInt(transaction.amount);
        for (const [key, threshold] of this.largeThresholds) if (amount >= threshold) this.deliver(key, event);
      }
    }
  }

  private deliver(key: string, event: () => FeedEvent): void {
    const group = this.groups.get(key);
    if (!group) return;
    const shared = event();
    for (const sink of group) sink.push(shared);
  }
}
