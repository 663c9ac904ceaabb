import net from 'node:net';
import pino from 'pino';
import type { ClusterTransport } from './transport';
import {
  DATA_OVERHEAD_BYTES,
  FrameReader,
  FrameTooLargeError,
  type HandshakeTranscript,
  checkData,
  decodeHello,
  encodeData,
  encodeFrame,
  encodeHello,
  encodeProof,
  handshakeProof,
  newNonce,
  sessionKey,
  verifyProof,
} from './wire';

/** A member this node dials; resolved at every dial, so an address may change between attempts. */
export interface TransportPeer {
  id: string;
  host: string;
  port: number;
}

/** The subset of pino's logger the transport uses (a pino Logger fits). */
export interface TransportLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface TcpTransportOptions {
  nodeId: string;
  /** 0 picks a free port; start() resolves to the bound one. */
  listenPort: number;
  listenHost?: string;
  secret: string;
  /** Every member (this node's own entry is skipped), or a function read at each dial. */
  peers: TransportPeer[] | (() => TransportPeer[]);
  logger?: TransportLogger;
  /** Largest frame body accepted or sent; a bigger length header drops the connection. */
  maxFrameBytes?: number;
  /** Payloads held per peer while it is disconnected; past it send() returns false. */
  queuedPayloadsMax?: number;
  /** Bytes buffered on a connected socket before send() starts dropping (a slow peer). */
  socketBufferedBytesMax?: number;
  handshakeTimeoutMs?: number;
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
}

export interface TransportCounters {
  framesSent: number;
  framesReceived: number;
  /** Payloads send() refused plus received frames rejected (bad MAC, stale seq, malformed, oversized). */
  framesDropped: number;
  /** Handshakes refused: unknown id, wrong proof, malformed, or timed out. */
  handshakeFailures: number;
}

const DEFAULTS = {
  maxFrameBytes: 16 * 1024 * 1024,
  queuedPayloadsMax: 1024,
  socketBufferedBytesMax: 64 * 1024 * 1024,
  handshakeTimeoutMs: 5000,
  reconnectInitialMs: 50,
  reconnectMaxMs: 5000,
};

/** One outbound link: the only connection this node sends to that peer on. */
interface OutboundLink {
  peerId: string;
  queue: Buffer[];
  socket: net.Socket | null;
  /** Set once the handshake completed on the current socket. */
  session: { key: Buffer; nextSeq: bigint } | null;
  reconnectAttempts: number;
  reconnectTimer: NodeJS.Timeout | null;
}

type Settings = typeof DEFAULTS;

/**
 * ClusterTransport over TCP. Each node dials every peer and sends only on its outbound connection;
 * it receives only on inbound ones. That keeps both directions symmetric and free of tie-breaking
 * (two nodes dialing each other at once is the normal case, not a race).
 */
export class TcpTransport implements ClusterTransport {
  readonly nodeId: string;
  readonly counters: TransportCounters = { framesSent: 0, framesReceived: 0, framesDropped: 0, handshakeFailures: 0 };
  private readonly settings: Settings;
  private readonly logger: TransportLogger;
  private readonly links = new Map<string, OutboundLink>();
  private readonly inbound = new Set<net.Socket>();
  private server: net.Server | null = null;
  private handler: (from: string, payload: Buffer) => void = () => {};
  private lostHandler: (peer: string) => void = () => {};
  /** Authenticated inbound connections open, by member. */
  private readonly inboundSessions = new Map<string, number>();
  private stopped = false;
  private boundPort: number | null = null;

  constructor(private readonly options: TcpTransportOptions) {
    this.nodeId = options.nodeId;
    this.settings = {
      maxFrameBytes: options.maxFrameBytes ?? DEFAULTS.maxFrameBytes,
      queuedPayloadsMax: options.queuedPayloadsMax ?? DEFAULTS.queuedPayloadsMax,
      socketBufferedBytesMax: options.socketBufferedBytesMax ?? DEFAULTS.socketBufferedBytesMax,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs,
      reconnectInitialMs: options.reconnectInitialMs ?? DEFAULTS.reconnectInitialMs,
      reconnectMaxMs: options.reconnectMaxMs ?? DEFAULTS.reconnectMaxMs,
    };
    this.logger = options.logger ?? pino({ name: 'cluster-transport' });
  }

  /** Resolves once listening (read the bound port from `port`, useful with listenPort 0); dialing starts then. */
  async start(): Promise<void> {
    const server = net.createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.listenPort, this.options.listenHost, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.logger.warn({ err }, 'cluster transport listener error'));
    this.boundPort = (server.address() as net.AddressInfo).port;
    for (const peer of this.otherPeers()) this.linkFor(peer.id);
  }

  /** The port listened on, after start(). */
  get port(): number {
    if (this.boundPort === null) throw new Error('TcpTransport.port read before start()');
    return this.boundPort;
  }

  onMessage(handler: (from: string, payload: Buffer) => void): void {
    this.handler = handler;
  }

  onPeerLost(handler: (peer: string) => void): void {
    this.lostHandler = handler;
  }

  send(to: string, payload: Buffer): boolean {
    if (this.stopped || to === this.nodeId || !this.peerById(to) || payload.length + DATA_OVERHEAD_BYTES > this.settings.maxFrameBytes) {
      return this.dropped();
    }
    const link = this.linkFor(to);
    if (link.session && link.socket) return this.writeData(link, link.socket, payload);
    if (link.queue.length >= this.settings.queuedPayloadsMax) return this.dropped();
    link.queue.push(payload);
    return true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const link of this.links.values()) {
      if (link.reconnectTimer) clearTimeout(link.reconnectTimer);
      link.socket?.destroy();
      link.queue = [];
    }
    for (const socket of this.inbound) socket.destroy();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  // ---- outbound ----

  private linkFor(peerId: string): OutboundLink {
    let link = this.links.get(peerId);
    if (!link) {
      link = { peerId, queue: [], socket: null, session: null, reconnectAttempts: 0, reconnectTimer: null };
      this.links.set(peerId, link);
      this.dial(link);
    }
    return link;
  }

  private dial(link: OutboundLink): void {
    link.reconnectTimer = null;
    const peer = this.peerById(link.peerId);
    if (this.stopped || !peer) return;
    const socket = net.connect({ host: peer.host, port: peer.port });
    link.socket = socket;
    link.session = null;
    const nonce = newNonce();
    let transcript: HandshakeTranscript | null = null;
    let acceptorProved = false;
    const timeout = this.handshakeTimer(socket, peer.id);
    socket.once('connect', () => {
      if (isConnectedToItself(socket)) {
        // Dropped at once: while it lasts, it holds the port the peer needs to listen on.
        return this.refuse(
          socket,
          peer.id,
          `connected to itself: nothing listens on ${peer.host}:${peer.port} and the kernel gave the dial that same port as its own (keep Raft ports below net.ipv4.ip_local_port_range)`,
        );
      }
      socket.write(encodeFrame(encodeHello(nonce, this.nodeId)));
    });
    this.readFrames(socket, peer.id, (body) => {
      if (!transcript) {
        const hello = decodeHello(body);
        if (!hello || hello.nodeId !== peer.id) return this.refuse(socket, peer.id, 'peer answered with another id or a malformed hello');
        transcript = { dialerId: this.nodeId, acceptorId: peer.id, dialerNonce: nonce, acceptorNonce: hello.nonce };
        return;
      }
      if (acceptorProved) return this.protocolViolation(socket, peer.id, 'frame on an outbound connection');
      if (!verifyProof(body, this.options.secret, 'acceptor', transcript)) {
        return this.refuse(socket, peer.id, 'peer failed to prove the cluster secret (is LEDGER_CLUSTER_SECRET the same on every replica?)');
      }
      acceptorProved = true;
      clearTimeout(timeout);
      socket.write(encodeFrame(encodeProof(handshakeProof(this.options.secret, 'dialer', transcript))));
      this.established(link, socket, sessionKey(this.options.secret, transcript));
    });
    socket.on('error', (err) => this.logger.debug({ peer: peer.id, err: err.message }, 'cluster connection error'));
    socket.on('close', () => {
      clearTimeout(timeout);
      if (link.socket === socket) this.scheduleReconnect(link);
    });
  }

  private established(link: OutboundLink, socket: net.Socket, key: Buffer): void {
    link.session = { key, nextSeq: 1n };
    link.reconnectAttempts = 0;
    this.logger.info({ peer: link.peerId }, 'cluster connection established');
    const queued = link.queue;
    link.queue = [];
    for (const payload of queued) this.writeData(link, socket, payload);
  }

  private writeData(link: OutboundLink, socket: net.Socket, payload: Buffer): boolean {
    if (socket.writableLength > this.settings.socketBufferedBytesMax) return this.dropped();
    const session = link.session!;
    socket.write(encodeFrame(encodeData(session.key, session.nextSeq, payload)));
    session.nextSeq += 1n;
    this.counters.framesSent += 1;
    return true;
  }

  /** Exponential backoff with jitter (half to full of the step), so restarted peers are not dialed in lockstep. */
  private scheduleReconnect(link: OutboundLink): void {
    link.socket = null;
    link.session = null;
    if (this.stopped) return;
    const stepMs = Math.min(this.settings.reconnectMaxMs, this.settings.reconnectInitialMs * 2 ** link.reconnectAttempts);
    link.reconnectAttempts += 1;
    link.reconnectTimer = setTimeout(() => this.dial(link), stepMs * (0.5 + Math.random() * 0.5));
  }

  /**
   * A member that just proved itself on an inbound connection is up: if our link to it is waiting out
   * a reconnect backoff (grown while it was down, up to reconnectMaxMs), dial now. Without this, a
   * restarted member could not hear from us for seconds — a vote or pre-vote answer among them.
   */
  private redialNow(peerId: string): void {
    const link = this.links.get(peerId);
    if (!link || link.session || !link.reconnectTimer) return;
    clearTimeout(link.reconnectTimer);
    link.reconnectAttempts = 0;
    this.dial(link);
  }

  // ---- inbound ----

  private accept(socket: net.Socket): void {
    if (this.stopped) return void socket.destroy();
    this.inbound.add(socket);
    socket.on('close', () => this.inbound.delete(socket));
    socket.on('error', () => {});
    const nonce = newNonce();
    const label = `${socket.remoteAddress}:${socket.remotePort}`;
    let transcript: HandshakeTranscript | null = null;
    let session: { key: Buffer; lastSeq: bigint } | null = null;
    const timeout = this.handshakeTimer(socket, label);
    socket.on('close', () => clearTimeout(timeout));
    this.readFrames(socket, label, (body) => {
      if (session && transcript) return this.receiveData(socket, transcript.dialerId, session, body);
      if (!transcript) {
        const hello = decodeHello(body);
        if (!hello) return this.refuse(socket, label, 'malformed hello');
        if (hello.nodeId === this.nodeId || !this.peerById(hello.nodeId)) return this.refuse(socket, label, `unknown member id ${JSON.stringify(hello.nodeId)}`);
        transcript = { dialerId: hello.nodeId, acceptorId: this.nodeId, dialerNonce: hello.nonce, acceptorNonce: nonce };
        socket.write(encodeFrame(encodeHello(nonce, this.nodeId)));
        socket.write(encodeFrame(encodeProof(handshakeProof(this.options.secret, 'acceptor', transcript))));
        return;
      }
      if (!verifyProof(body, this.options.secret, 'dialer', transcript)) {
        return this.refuse(socket, transcript.dialerId, 'member failed to prove the cluster secret (is LEDGER_CLUSTER_SECRET the same on every replica?)');
      }
      clearTimeout(timeout);
      session = { key: sessionKey(this.options.secret, transcript), lastSeq: 0n };
      const member = transcript.dialerId;
      this.inboundSessions.set(member, (this.inboundSessions.get(member) ?? 0) + 1);
      this.redialNow(member);
      socket.once('close', () => {
        const open = (this.inboundSessions.get(member) ?? 1) - 1;
        if (open > 0) return void this.inboundSessions.set(member, open);
        this.inboundSessions.delete(member);
        if (!this.stopped) this.lostHandler(member);
      });
    });
  }

  private receiveData(socket: net.Socket, from: string, session: { key: Buffer; lastSeq: bigint }, body: Buffer): void {
    const check = checkData(body, session.key, session.lastSeq);
    if (!check.ok) return this.protocolViolation(socket, from, `rejected frame: ${check.reason}`);
    session.lastSeq = check.seq;
    this.counters.framesReceived += 1;
    this.handler(from, check.payload);
  }

  // ---- shared ----

  /** Feeds socket bytes through a FrameReader; an oversized header or a throwing handler drops the connection. */
  private readFrames(socket: net.Socket, label: string, onBody: (body: Buffer) => void): void {
    const reader = new FrameReader(this.settings.maxFrameBytes);
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const body of reader.push(chunk)) {
          if (socket.destroyed) return;
          onBody(body);
        }
      } catch (err) {
        if (err instanceof FrameTooLargeError) return this.protocolViolation(socket, label, err.message);
        this.logger.warn({ peer: label, err }, 'cluster message handler threw; connection dropped');
        socket.destroy();
      }
    });
  }

  private handshakeTimer(socket: net.Socket, label: string): NodeJS.Timeout {
    return setTimeout(() => this.refuse(socket, label, 'handshake timed out'), this.settings.handshakeTimeoutMs);
  }

  private refuse(socket: net.Socket, peer: string, reason: string): void {
    this.counters.handshakeFailures += 1;
    this.logger.warn({ peer, reason }, 'cluster handshake refused');
    socket.destroy();
  }

  private protocolViolation(socket: net.Socket, peer: string, reason: string): void {
    this.counters.framesDropped += 1;
    this.logger.warn({ peer, reason }, 'cluster connection dropped');
    socket.destroy();
  }

  private dropped(): false {
    this.counters.framesDropped += 1;
    return false;
  }

  private otherPeers(): TransportPeer[] {
    const peers = typeof this.options.peers === 'function' ? this.options.peers() : this.options.peers;
    return peers.filter((peer) => peer.id !== this.nodeId);
  }

  private peerById(id: string): TransportPeer | undefined {
    return this.otherPeers().find((peer) => peer.id === id);
  }
}

/**
 * A dial to a port of this host that nothing listens on can connect to itself when the kernel picks
 * that very port as the dial's own (TCP simultaneous open; only ports inside the ephemeral range can
 * be picked). Such a socket answers every hello with our own.
 */
export function isConnectedToItself(socket: net.Socket): boolean {
  return socket.localPort !== undefined && socket.localPort === socket.remotePort && socket.localAddress === socket.remoteAddress;
}
