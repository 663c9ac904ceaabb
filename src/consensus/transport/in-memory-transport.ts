import type { ClusterTransport } from './transport';

/**
 * Transports between members of one process, for tests of the Raft shell: payloads are delivered on
 * a later turn of the event loop, and a link can be cut both ways (a partition) and healed. A cut
 * is silent; a member that stops is reported lost to the running ones, as closed TCP connections are.
 */
export class InMemoryNetwork {
  private readonly members = new Map<string, InMemoryTransport>();
  private readonly cut = new Set<string>();

  transport(nodeId: string): InMemoryTransport {
    const transport = new InMemoryTransport(nodeId, this);
    this.members.set(nodeId, transport);
    return transport;
  }

  /** Cuts every link between `nodeId` and the others. */
  isolate(nodeId: string): void {
    for (const other of this.members.keys()) if (other !== nodeId) this.cutLink(nodeId, other);
  }

  cutLink(a: string, b: string): void {
    this.cut.add(`${a}|${b}`).add(`${b}|${a}`);
  }

  healAll(): void {
    this.cut.clear();
  }

  /** @internal */
  stopped(nodeId: string): void {
    for (const [id, member] of this.members) {
      if (id !== nodeId && member.running && !this.cut.has(`${nodeId}|${id}`)) setImmediate(() => member.running && member.lost(nodeId));
    }
  }

  /** @internal */
  deliver(from: string, to: string, payload: Buffer): boolean {
    if (this.cut.has(`${from}|${to}`)) return true;
    const target = this.members.get(to);
    if (!target || !target.running) return false;
    setImmediate(() => {
      if (target.running && !this.cut.has(`${from}|${to}`)) target.receive(from, payload);
    });
    return true;
  }
}

export class InMemoryTransport implements ClusterTransport {
  running = false;
  private handler: ((from: string, payload: Buffer) => void) | null = null;
  private lostHandler: ((peer: string) => void) | null = null;

  constructor(
    readonly nodeId: string,
    private readonly network: InMemoryNetwork,
  ) {}

  async start(): Promise<void> {
    this.running = true;
  }

  send(to: string, payload: Buffer): boolean {
    if (!this.running) return false;
    return this.network.deliver(this.nodeId, to, payload);
  }

  onMessage(handler: (from: string, payload: Buffer) => void): void {
    this.handler = handler;
  }

  onPeerLost(handler: (peer: string) => void): void {
    this.lostHandler = handler;
  }

  /** @internal */
  receive(from: string, payload: Buffer): void {
    this.handler?.(from, payload);
  }

  /** @internal */
  lost(peer: string): void {
    this.lostHandler?.(peer);
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.network.stopped(this.nodeId);
  }
}
