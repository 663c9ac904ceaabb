/**
 * The port between replicas: opaque payloads from one member to another. The Raft shell encodes its
 * messages (and forwarded proposals) into payloads; a transport moves them, authenticated, and may
 * drop, delay or reorder them (Raft tolerates all three), but never delivers a payload that a member
 * of the cluster did not send, nor the same frame twice.
 *
 * Implementations: TcpTransport (src/consensus/transport/tcp-transport.ts) between processes, and an
 * in-memory one for tests of the shell.
 */
export interface ClusterTransport {
  /** This member's id. */
  readonly nodeId: string;
  /** Listens for the other members and starts dialing them (reconnecting with backoff). */
  start(): Promise<void>;
  /**
   * Queues a payload for a member; false when it was dropped (unknown member, queue full, stopped).
   * Never throws and never blocks: the caller goes on, and Raft retries what matters.
   */
  send(to: string, payload: Buffer): boolean;
  /** Called once per payload received from an authenticated member, in the order that member sent them. */
  onMessage(handler: (from: string, payload: Buffer) => void): void;
  /**
   * Called when the last authenticated connection from a member closes (as when its process dies).
   * A hint, not proof: a silent partition closes nothing, and a link that only blipped reconnects.
   */
  onPeerLost(handler: (peer: string) => void): void;
  /** Closes the listener and every connection; queued payloads are dropped. */
  stop(): Promise<void>;
}
