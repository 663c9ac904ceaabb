/** Limits of the live feeds (configured with LEDGER_FEED_*, see src/config.ts). */
export interface FeedLimits {
  subscriptionsPerConnectionMax: number;
  connectionsPerTokenMax: number;
  /** Per connection: events queued for the client, over all its subscriptions. */
  queuedEventsMax: number;
  /** Per connection: bytes queued plus bytes the socket has not sent yet (ws bufferedAmount). */
  queuedBytesMax: number;
}

export const DEFAULT_FEED_LIMITS: FeedLimits = {
  subscriptionsPerConnectionMax: 20,
  connectionsPerTokenMax: 20,
  queuedEventsMax: 1_000,
  queuedBytesMax: 1024 * 1024,
};
