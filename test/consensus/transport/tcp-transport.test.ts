import net from 'node:net';
import { TcpTransport, isConnectedToItself, type TransportLogger, type TransportPeer } from '../../../src/consensus/transport/tcp-transport';
import {
  FrameReader,
  type HandshakeTranscript,
  decodeHello,
  encodeData,
  encodeFrame,
  encodeHello,
  encodeProof,
  handshakeProof,
  newNonce,
  sessionKey,
  verifyProof,
} from '../../../src/consensus/transport/wire';
import { freePort } from '../../support/free-port';

const SECRET = 'a-cluster-secret-of-at-least-32-characters';
const IDS = ['n1', 'n2', 'n3'];

interface Received {
  from: string;
  text: string;
}

interface Member {
  transport: TcpTransport;
  received: Received[];
  warnings: string[];
}

/** Peers are read lazily, so the ports bound on port 0 can be filled in after every member started. */
const ports = new Map<string, number>();
const peers = (): TransportPeer[] => IDS.map((id) => ({ id, host: '127.0.0.1', port: ports.get(id) ?? 1 }));
const running: TcpTransport[] = [];
const sockets: net.Socket[] = [];
const closed = new WeakSet<net.Socket>();

function track(socket: net.Socket): net.Socket {
  socket.on('error', () => {});
  socket.on('close', () => closed.add(socket));
  socket.resume(); // flowing, so the far end's FIN is seen and the socket closes
  sockets.push(socket);
  return socket;
}

function captureLogger(warnings: string[]): TransportLogger {
  return { info: () => {}, debug: () => {}, warn: (obj, msg) => warnings.push(`${msg} ${JSON.stringify(obj)}`) };
}

async function startMember(
  id: string,
  options: { secret?: string; listenPort?: number; handshakeTimeoutMs?: number; reconnectInitialMs?: number; reconnectMaxMs?: number } = {},
): Promise<Member> {
  const warnings: string[] = [];
  const received: Received[] = [];
  const transport = new TcpTransport({
    nodeId: id,
    listenPort: options.listenPort ?? 0,
    secret: options.secret ?? SECRET,
    peers,
    logger: captureLogger(warnings),
    maxFrameBytes: 64 * 1024,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 2000,
    reconnectInitialMs: options.reconnectInitialMs ?? 10,
    reconnectMaxMs: options.reconnectMaxMs ?? 100,
  });
  transport.onMessage((from, payload) => received.push({ from, text: payload.toString('utf8') }));
  await transport.start();
  ports.set(id, transport.port);
  running.push(transport);
  return { transport, received, warnings };
}

async function startCluster(): Promise<Member[]> {
  return Promise.all(IDS.map((id) => startMember(id)));
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Sends until one payload arrives: the first sends may be queued while links are still dialing. */
async function sendUntilDelivered(from: Member, to: Member, toId: string, text: string): Promise<void> {
  await waitFor(`${from.transport.nodeId} → ${toId}`, () => {
    if (to.received.some((r) => r.text === text)) return true;
    from.transport.send(toId, Buffer.from(text));
    return false;
  });
}

function texts(member: Member, from: string): string[] {
  return member.received.filter((r) => r.from === from).map((r) => r.text);
}

/** A raw client doing the real handshake as member `asId`, so the test can then write frames of its own. */
async function rawAuthenticatedSocket(port: number, asId: string): Promise<{ socket: net.Socket; key: Buffer }> {
  const socket = track(net.connect({ host: '127.0.0.1', port }));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const nonce = newNonce();
  socket.write(encodeFrame(encodeHello(nonce, asId)));
  const reader = new FrameReader(64 * 1024);
  const bodies: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => bodies.push(...reader.push(chunk)));
  await waitFor('acceptor hello and proof', () => bodies.length >= 2);
  const hello = decodeHello(bodies[0]!)!;
  const transcript: HandshakeTranscript = { dialerId: asId, acceptorId: hello.nodeId, dialerNonce: nonce, acceptorNonce: hello.nonce };
  expect(verifyProof(bodies[1]!, SECRET, 'acceptor', transcript)).toBe(true);
  socket.write(encodeFrame(encodeProof(handshakeProof(SECRET, 'dialer', transcript))));
  return { socket, key: sessionKey(SECRET, transcript) };
}

function rawSocket(port: number): net.Socket {
  return track(net.connect({ host: '127.0.0.1', port }));
}

async function waitClosed(socket: net.Socket): Promise<void> {
  await waitFor('the transport to drop the raw connection', () => closed.has(socket));
}

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(running.splice(0).map((t) => t.stop()));
  ports.clear();
});

describe('TcpTransport', () => {
  it('dials a member back at once when it connects, instead of waiting out a long reconnect backoff', async () => {
    // n1's first dial to n2 fails (n2 is not listening yet) and its next one would be 15 to 30 s later.
    const n1 = await startMember('n1', { reconnectInitialMs: 30_000, reconnectMaxMs: 30_000 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const n2 = await startMember('n2');
    // n2 dials n1; proving itself there brings n1's link to n2 up now, so n1 is heard within seconds.
    await waitFor('n1 → n2 without waiting for the backoff', () => {
      if (n2.received.some((r) => r.text === 'back')) return true;
      n1.transport.send('n2', Buffer.from('back'));
      return false;
    }, 5_000);
    expect(texts(n2, 'n1')[0]).toBe('back');
  });

  it('reports a member lost when its last authenticated connection closes (its process stopped), and not before', async () => {
    const [n1, n2] = await Promise.all([startMember('n1'), startMember('n2')]);
    const lost: string[] = [];
    n1.transport.onPeerLost((peer) => lost.push(peer));
    await sendUntilDelivered(n2, n1, 'n1', 'hello');
    // A second authenticated connection as n2 that closes while n2's own stays open: nothing to report.
    const { socket } = await rawAuthenticatedSocket(n1.transport.port, 'n2');
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(lost).toEqual([]);
    await n2.transport.stop();
    await waitFor('n1 to report n2 lost', () => lost.length > 0);
    expect(lost).toEqual(['n2']);
  });

  it('delivers between every pair of three members, in the order each sent', async () => {
    const members = await startCluster();
    for (const [i, from] of members.entries()) {
      for (const [j, to] of members.entries()) {
        if (i !== j) await sendUntilDelivered(from, to, IDS[j]!, `hello-${IDS[i]}`);
      }
    }
    const count = 200;
    for (const [i, from] of members.entries()) {
      for (const [j] of members.entries()) {
        if (i === j) continue;
        for (let k = 0; k < count; k++) expect(from.transport.send(IDS[j]!, Buffer.from(`${IDS[i]}-${k}`))).toBe(true);
      }
    }
    const expected = (from: string) => Array.from({ length: count }, (_, k) => `${from}-${k}`);
    await waitFor('every ordered stream', () =>
      members.every((to, j) => IDS.every((from, i) => i === j || texts(to, from).filter((t) => !t.startsWith('hello')).length === count)),
    );
    for (const [j, to] of members.entries()) {
      for (const [i, from] of IDS.entries()) {
        if (i !== j) expect(texts(to, from).filter((t) => !t.startsWith('hello'))).toEqual(expected(from));
      }
    }
    expect(members[0]!.transport.counters.handshakeFailures).toBe(0);
    expect(members[0]!.transport.counters.framesReceived).toBeGreaterThanOrEqual(2 * count);
  });

  it('refuses a member with the wrong secret and delivers nothing from it, counting and logging the failure', async () => {
    const good = await startMember('n1');
    const bad = await startMember('n2', { secret: 'a-different-secret-of-at-least-32-chars!' });
    await waitFor('handshake failures on both sides', () => good.transport.counters.handshakeFailures >= 1 && bad.transport.counters.handshakeFailures >= 1);
    for (let k = 0; k < 20; k++) bad.transport.send('n1', Buffer.from(`forged-${k}`));
    await waitFor('more refused reconnects', () => good.transport.counters.handshakeFailures >= 3);
    expect(good.received).toEqual([]);
    expect(bad.received).toEqual([]);
    expect(good.warnings.some((w) => w.includes('cluster handshake refused') && w.includes('cluster secret'))).toBe(true);
  });

  it('tells a dial that connected to itself from one that reached a listener', async () => {
    // Nothing listens on the port and the dial is given it as its own: TCP connects the socket to itself.
    const port = await freePort();
    const self = track(net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1', localPort: port }));
    await new Promise((resolve) => self.once('connect', resolve));
    expect(isConnectedToItself(self)).toBe(true);
    const n1 = await startMember('n1');
    const other = rawSocket(n1.transport.port);
    await new Promise((resolve) => other.once('connect', resolve));
    expect(isConnectedToItself(other)).toBe(false);
  });

  it('refuses an unknown member id', async () => {
    const [n1] = await startCluster();
    const socket = rawSocket(ports.get('n1')!);
    socket.write(encodeFrame(encodeHello(newNonce(), 'intruder')));
    await waitClosed(socket);
    expect(n1!.transport.counters.handshakeFailures).toBeGreaterThanOrEqual(1);
    expect(n1!.warnings.some((w) => w.includes('unknown member id'))).toBe(true);
  });

  it('drops a connection that never completes the handshake, and a HELLO with an overlong id', async () => {
    const n1 = await startMember('n1', { handshakeTimeoutMs: 100 });
    const silent = rawSocket(n1.transport.port);
    await waitClosed(silent);
    expect(n1.warnings.some((w) => w.includes('handshake timed out'))).toBe(true);
    const overlong = rawSocket(n1.transport.port);
    overlong.write(encodeFrame(encodeHello(newNonce(), 'x'.repeat(1000))));
    await waitClosed(overlong);
    expect(n1.warnings.some((w) => w.includes('malformed hello'))).toBe(true);
    expect(n1.transport.counters.handshakeFailures).toBeGreaterThanOrEqual(2);
  });

  it('drops garbage and an oversized length header, and still delivers from real members', async () => {
    const members = await startCluster();
    const [n1, n2] = members as [Member, Member];
    const garbage = rawSocket(n1.transport.port);
    garbage.write(Buffer.from([0, 0, 0, 5, 0xff, 0xfe, 0xfd, 0xfc, 0xfb]));
    const oversized = rawSocket(n1.transport.port);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(64 * 1024 + 1, 0);
    oversized.write(header);
    await waitClosed(garbage);
    await waitClosed(oversized);
    expect(n1.warnings.some((w) => w.includes('exceeds the maximum'))).toBe(true);
    await sendUntilDelivered(n2, n1, 'n1', 'still-here');
  });

  it('drops a connection that sends a frame with a bad MAC or a repeated seq', async () => {
    const [n1] = (await startCluster()) as [Member];
    const port = n1.transport.port;

    const first = await rawAuthenticatedSocket(port, 'n3');
    first.socket.write(encodeFrame(encodeData(first.key, 1n, Buffer.from('genuine'))));
    await waitFor('the genuine frame', () => texts(n1, 'n3').includes('genuine'));
    first.socket.write(encodeFrame(encodeData(first.key, 1n, Buffer.from('replayed'))));
    await waitClosed(first.socket);

    const second = await rawAuthenticatedSocket(port, 'n3');
    const forged = encodeData(second.key, 1n, Buffer.from('forged'));
    forged.writeUInt8(forged.readUInt8(forged.length - 1) ^ 0x01, forged.length - 1); // payload changed after the MAC
    second.socket.write(encodeFrame(forged));
    await waitClosed(second.socket);

    const third = await rawAuthenticatedSocket(port, 'n3');
    third.socket.write(encodeFrame(encodeData(first.key, 2n, Buffer.from('other-session'))));
    await waitClosed(third.socket);

    expect(texts(n1, 'n3').filter((t) => !t.startsWith('hello'))).toEqual(['genuine']);
    expect(n1.warnings.some((w) => w.includes('stale-seq'))).toBe(true);
    expect(n1.warnings.filter((w) => w.includes('bad-mac')).length).toBe(2);
  });

  it('resumes delivery after a member stops and restarts on the same port', async () => {
    const [n1, n2] = (await startCluster()) as [Member, Member];
    await sendUntilDelivered(n1, n2, 'n2', 'before');
    const port = n2.transport.port;
    await n2.transport.stop();
    const restarted = await startMember('n2', { listenPort: port });
    await sendUntilDelivered(n1, restarted, 'n2', 'after');
    await sendUntilDelivered(restarted, n1, 'n1', 'back');
  });

  it('refuses sends to unknown members and past the queue bound, and after stop', async () => {
    const n1 = await startMember('n1');
    // n2 and n3 never start: their payloads queue up to the bound, then send() says false.
    expect(n1.transport.send('nobody', Buffer.from('x'))).toBe(false);
    let accepted = 0;
    while (n1.transport.send('n2', Buffer.from('x'))) accepted += 1;
    expect(accepted).toBe(1024);
    await n1.transport.stop();
    expect(n1.transport.send('n3', Buffer.from('x'))).toBe(false);
    expect(n1.transport.counters.framesDropped).toBeGreaterThanOrEqual(3);
  });
});
