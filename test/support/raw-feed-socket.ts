import WebSocket from 'ws';
import { FEED_PROTOCOL } from '../../src/api/subscriptions/feed-server';
import { type CloseRecord, wsUrl } from './feed-client';

/**
 * A graphql-ws connection driven frame by frame: what is sent is exactly the text (or bytes) given,
 * numbers as written, which the standard client would re-serialise. Records every message and the close.
 */
export class RawFeedSocket {
  /** Messages received, parsed (a message that is not JSON is kept as its text). */
  readonly messages: any[] = [];
  closed: CloseRecord | null = null;
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data, isBinary) => {
      const text = String(data);
      let message: unknown = text;
      if (!isBinary) {
        try {
          message = JSON.parse(text);
        } catch {
          // kept as text
        }
      }
      this.messages.push(message);
      this.notify();
    });
    socket.on('close', (code, reason) => {
      this.closed = { code, reason: String(reason) };
      this.notify();
    });
    // A refused connection may error on the client side too (e.g. a send after the close).
    socket.on('error', () => undefined);
  }

  /** Opens ws://…/graphql with this subprotocol (the server's by default; null: none). */
  static open(httpUrl: string, protocol: string | null = FEED_PROTOCOL, timeoutMs = 20_000): Promise<RawFeedSocket> {
    return new Promise((resolve, reject) => {
      const socket = protocol === null ? new WebSocket(wsUrl(httpUrl)) : new WebSocket(wsUrl(httpUrl), protocol);
      const raw = new RawFeedSocket(socket);
      const timer = setTimeout(() => {
        socket.terminate();
        reject(new Error(`the WebSocket did not open within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('open', () => {
        clearTimeout(timer);
        resolve(raw);
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  }

  get isOpen(): boolean {
    return this.socket.readyState === WebSocket.OPEN;
  }

  /** Sends a text frame (a string) or raw bytes, as a binary frame unless `text` says otherwise. */
  send(data: string | Buffer, options: { binary?: boolean } = {}): void {
    if (!this.isOpen) return;
    this.socket.send(data, { binary: options.binary ?? typeof data !== 'string' }, () => undefined);
  }

  /** connection_init with this Authorization value, then waits for connection_ack (or the close). */
  async init(authorization: string): Promise<void> {
    this.send(JSON.stringify({ type: 'connection_init', payload: { authorization } }));
    await this.until(() => this.closed !== null || this.messages.some((m) => m?.type === 'connection_ack'), 'connection_ack or a close');
  }

  /** Resolves once `predicate` holds; rejects after `timeoutMs` with what arrived so far. */
  async until(predicate: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.messages).slice(0, 400)}, close ${JSON.stringify(this.closed)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Messages for one operation id. */
  forId(id: string): any[] {
    return this.messages.filter((m) => m !== null && typeof m === 'object' && m.id === id);
  }

  /** Closes from the client side and waits for the close to complete. */
  async close(): Promise<void> {
    if (this.closed) return;
    const gone = new Promise<void>((resolve) => this.socket.once('close', () => resolve()));
    if (this.socket.readyState === WebSocket.CONNECTING || this.socket.readyState === WebSocket.OPEN) this.socket.close(1000);
    const timer = setTimeout(() => this.socket.terminate(), 2_000);
    await gone;
    clearTimeout(timer);
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
