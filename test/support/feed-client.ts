import { type Client, type ClientOptions, createClient } from 'graphql-ws';
import WebSocket from 'ws';

/** ws://…/graphql for an http://…/graphql url. */
export function wsUrl(httpUrl: string): string {
  return httpUrl.replace(/^http/, 'ws');
}

export interface CloseRecord {
  code: number;
  reason: string;
}

/** A standard graphql-ws client (over `ws`) that records every close it sees. */
export function feedClient(httpUrl: string, token: string | (() => Promise<string> | string), options: Partial<ClientOptions> = {}): { client: Client; closes: CloseRecord[]; connects: number } {
  const state = { client: null as unknown as Client, closes: [] as CloseRecord[], connects: 0 };
  state.client = createClient({
    url: wsUrl(httpUrl),
    webSocketImpl: options.webSocketImpl ?? WebSocket,
    lazy: true,
    retryAttempts: 0,
    connectionParams: async () => ({ authorization: `Bearer ${typeof token === 'string' ? token : await token()}` }),
    ...options,
    on: {
      ...options.on,
      connected: (...args) => {
        state.connects += 1;
        (options.on?.connected as ((...a: unknown[]) => void) | undefined)?.(...args);
      },
      closed: (event) => {
        const e = event as { code: number; reason: string };
        state.closes.push({ code: e.code, reason: String(e.reason) });
        options.on?.closed?.(event);
      },
    },
  });
  return state;
}

/** Collects what one subscription delivers. */
export class Collected<T = any> {
  readonly items: T[] = [];
  readonly errors: unknown[] = [];
  completed = false;
  dispose: () => void = () => undefined;
  private waiters: Array<() => void> = [];

  constructor(client: Client, query: string, variables: Record<string, unknown> = {}, pick: (data: any) => T = (data) => Object.values(data)[0] as T) {
    this.dispose = client.subscribe(
      { query, variables },
      {
        next: (result) => {
          if (result.errors) this.errors.push(result.errors);
          else this.items.push(pick(result.data));
          this.notify();
        },
        error: (error) => {
          this.errors.push(error);
          this.notify();
        },
        complete: () => {
          this.completed = true;
          this.notify();
        },
      },
    );
  }

  /** Resolves once `predicate` holds; rejects after `timeoutMs` with what arrived so far. */
  async until(predicate: (self: this) => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${this.items.length} items, errors ${JSON.stringify(this.errors)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  count(n: number, timeoutMs?: number): Promise<void> {
    return this.until((s) => s.items.length >= n, `${n} items`, timeoutMs);
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

export async function eventually(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export const TX_FIELDS = 'id kind status amount fromAccountId toAccountId large position';

/**
 * The README's resuming client: on every (re)connect it subscribes again with `after` set to the
 * last position it saw, because the graphql-ws client would otherwise resend the first variables.
 */
export class ResumingFeed {
  readonly items: any[] = [];
  readonly closes: CloseRecord[] = [];
  connects = 0;
  lastPosition: string | null;
  readonly client: Client;
  private unsubscribe: (() => void) | null = null;

  constructor(
    httpUrl: string,
    token: string,
    /** A subscription with a `$after: Position` variable; its single field yields transactions. */
    query: string,
    options: { after?: string | null; variables?: Record<string, unknown>; webSocketImpl?: unknown } = {},
  ) {
    this.lastPosition = options.after ?? null;
    this.client = createClient({
      url: wsUrl(httpUrl),
      webSocketImpl: options.webSocketImpl ?? WebSocket,
      lazy: false,
      retryAttempts: Number.POSITIVE_INFINITY,
      // Also retry when the server is unreachable (restarting): by default only close events retry.
      shouldRetry: () => true,
      onNonLazyError: () => undefined,
      retryWait: () => new Promise((resolve) => setTimeout(resolve, 100)),
      connectionParams: () => ({ authorization: `Bearer ${token}` }),
      on: {
        connected: () => {
          this.connects += 1;
          this.unsubscribe = this.client.subscribe(
            { query, variables: { ...options.variables, after: this.lastPosition } },
            {
              next: (result) => {
                if (result.errors) throw new Error(JSON.stringify(result.errors));
                const item = Object.values(result.data as object)[0] as { position: string };
                this.items.push(item);
                this.lastPosition = item.position;
              },
              error: () => undefined,
              complete: () => undefined,
            },
          );
        },
        closed: (event) => {
          const e = event as { code: number; reason: string };
          this.closes.push({ code: e.code, reason: String(e.reason) });
          this.unsubscribe?.();
          this.unsubscribe = null;
        },
      },
    });
  }

  positions(): string[] {
    return this.items.map((item) => item.position);
  }

  async dispose(): Promise<void> {
    this.unsubscribe?.();
    // Disposing while it retries an unreachable server rejects with the last connect error.
    await Promise.resolve(this.client.dispose()).catch(() => undefined);
  }
}
