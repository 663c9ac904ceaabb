import { type Server, Socket, createServer } from 'node:net';

/**
 * A TCP proxy of the tests' own, put between two replicas so that a test can break the link:
 * `cut()` closes every connection and refuses new ones (a partition), `delayMs` holds every chunk
 * that long, `dropChance` throws chunks away (the transport's framing and MACs must notice and
 * reconnect). `heal()` restores a clean link.
 */
export class TcpProxy {
  delayMs = 0;
  dropChance = 0;
  private cutOff = false;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(
    private readonly targetPort: number,
    private readonly targetHost = '127.0.0.1',
    private readonly random: () => number = Math.random,
  ) {}

  async start(port = 0): Promise<number> {
    const server = createServer((client) => this.accept(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as { port: number }).port;
    return this.port;
  }

  cut(): void {
    this.cutOff = true;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  heal(): void {
    this.cutOff = false;
    this.delayMs = 0;
    this.dropChance = 0;
  }

  get isCut(): boolean {
    return this.cutOff;
  }

  async stop(): Promise<void> {
    this.cut();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    if (this.cutOff) {
      client.destroy();
      return;
    }
    const upstream = new Socket();
    this.sockets.add(client).add(upstream);
    const close = (): void => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    upstream.connect(this.targetPort, this.targetHost);
    this.pipe(client, upstream);
    this.pipe(upstream, client);
  }

  private pipe(from: Socket, to: Socket): void {
    from.on('data', (chunk: Buffer) => {
      if (this.cutOff) return;
      if (this.dropChance > 0 && this.random() < this.dropChance) return;
      if (this.delayMs > 0) {
        from.pause();
        setTimeout(() => {
          if (!to.destroyed && !this.cutOff) to.write(chunk);
          from.resume();
        }, this.delayMs);
        return;
      }
      to.write(chunk);
    });
  }
}
