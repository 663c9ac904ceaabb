import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { mintToken } from '../../src/api/auth';
import { freePort } from './free-port';
import { TcpProxy } from './tcp-proxy';

/**
 * Three ledger replicas as real child processes (`node --import tsx src/main.ts`), each with its own
 * data folder and embedded stores, for tests that SIGKILL and partition them. Every Raft link from a
 * replica to another goes through a TcpProxy of its own (a→b is a different proxy than b→a), so a
 * test can cut one direction, or isolate a replica completely.
 */

const ROOT = resolve(__dirname, '..', '..');

export interface ReplicaProcess {
  id: string;
  httpPort: number;
  raftPort: number;
  dataDir: string;
  env: Record<string, string>;
  child: ChildProcess | null;
  output: string[];
}

export interface Health {
  live: boolean;
  ready: boolean;
  role: string;
  leaderId: string | null;
  term: number;
  appliedIndex: number;
  commitIndex: number;
}

export class ProcessCluster {
  readonly replicas: ReplicaProcess[] = [];
  /** `${from}>${to}`: the proxy `from` dials to reach `to`. */
  readonly proxies = new Map<string, TcpProxy>();
  readonly root: string;
  private token = '';
  private readonly jwtSecret = randomBytes(32).toString('hex');

  private constructor(root: string) {
    this.root = root;
  }

  static async create(ids: readonly string[] = ['r1', 'r2', 'r3'], extraEnv: Record<string, string> = {}): Promise<ProcessCluster> {
    const cluster = new ProcessCluster(mkdtempSync(join(tmpdir(), 'ledger-cluster-')));
    const clusterSecret = randomBytes(32).toString('hex');
    const raftPorts = new Map<string, number>();
    for (const id of ids) raftPorts.set(id, await freePort());
    for (const from of ids) {
      for (const to of ids) {
        if (from === to) continue;
        const proxy = new TcpProxy(raftPorts.get(to)!);
        await proxy.start();
        cluster.proxies.set(`${from}>${to}`, proxy);
      }
    }
    for (const id of ids) {
      const peers = ids.map((other) => `${other}=127.0.0.1:${other === id ? raftPorts.get(id) : cluster.proxies.get(`${id}>${other}`)!.port}`).join(',');
      const httpPort = await freePort();
      const dataDir = join(cluster.root, id);
      cluster.replicas.push({
        id,
        httpPort,
        raftPort: raftPorts.get(id)!,
        dataDir,
        child: null,
        output: [],
        env: {
          LEDGER_NODE_ID: id,
          LEDGER_PEERS: peers,
          LEDGER_RAFT_PORT: String(raftPorts.get(id)),
          LEDGER_CLUSTER_SECRET: clusterSecret,
          LEDGER_JWT_SECRET: cluster.jwtSecret,
          LEDGER_DATA_DIR: dataDir,
          PORT: String(httpPort),
          HOST: '127.0.0.1',
          NODE_ENV: 'test',
          ...extraEnv,
        },
      });
    }
    cluster.token = await mintToken(new TextEncoder().encode(cluster.jwtSecret), { sub: 'cluster-test', roles: ['admin'] }, '1h');
    return cluster;
  }

  replica(id: string): ReplicaProcess {
    const r = this.replicas.find((x) => x.id === id);
    if (!r) throw new Error(`no replica ${id}`);
    return r;
  }

  start(id: string): void {
    const r = this.replica(id);
    if (r.child) throw new Error(`${id} is running`);
    const env: NodeJS.ProcessEnv = { ...process.env, ...r.env };
    delete env.EVENTSTORE_URL;
    delete env.MONGODB_URL;
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    r.child = child;
    const keep = (chunk: Buffer): void => {
      r.output.push(chunk.toString('utf8'));
      if (r.output.length > 400) r.output.splice(0, r.output.length - 400);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.once('exit', () => {
      if (r.child === child) r.child = null;
    });
  }

  startAll(): void {
    for (const r of this.replicas) this.start(r.id);
  }

  /** Sends the signal and waits for the process to be gone. */
  async kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const r = this.replica(id);
    const child = r.child;
    if (!child) return;
    const exited = new Promise<void>((res) => child.once('exit', () => res()));
    child.kill(signal);
    await exited;
    r.child = null;
  }

  running(id: string): boolean {
    return this.replica(id).child !== null;
  }

  /** Cuts both directions of every link between `id` and the others. */
  isolate(id: string): void {
    for (const [key, proxy] of this.proxies) if (key.startsWith(`${id}>`) || key.endsWith(`>${id}`)) proxy.cut();
  }

  healAll(): void {
    for (const proxy of this.proxies.values()) proxy.heal();
  }

  async health(id: string): Promise<Health | null> {
    try {
      const response = await fetch(`http://127.0.0.1:${this.replica(id).httpPort}/health`, { signal: AbortSignal.timeout(2000) });
      return (await response.json()) as Health;
    } catch {
      return null;
    }
  }

  async gql<T = any>(id: string, query: string, variables: Record<string, unknown> = {}, timeoutMs = 15_000): Promise<{ data?: T; errors?: Array<{ message: string; extensions?: { code?: string } }> }> {
    const response = await fetch(`http://127.0.0.1:${this.replica(id).httpPort}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${this.token}` },
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    return (await response.json()) as { data?: T; errors?: Array<{ message: string; extensions?: { code?: string } }> };
  }

  /** The one replica that reports itself leader and is ready, once all running replicas agree on it. */
  async waitForLeader(timeoutMs = 20_000, among: readonly string[] = this.replicas.map((r) => r.id)): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const views = await Promise.all(among.filter((id) => this.running(id)).map(async (id) => ({ id, h: await this.health(id) })));
      const leaders = views.filter((v) => v.h?.role === 'LEADER' && v.h.ready);
      if (leaders.length === 1 && views.every((v) => v.h?.leaderId === leaders[0]!.id)) return leaders[0]!.id;
      if (Date.now() > deadline) throw new Error(`no leader agreed within ${timeoutMs} ms: ${JSON.stringify(views)}\n${this.tails()}`);
      await sleep(100);
    }
  }

  async waitReady(id: string, timeoutMs = 30_000): Promise<Health> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const h = await this.health(id);
      if (h?.ready) return h;
      if (Date.now() > deadline) throw new Error(`${id} not ready within ${timeoutMs} ms: ${JSON.stringify(h)}\n${this.tails()}`);
      await sleep(100);
    }
  }

  /** The last lines each replica printed, for failure messages. */
  tails(): string {
    return this.replicas.map((r) => `--- ${r.id}\n${r.output.join('').split('\n').slice(-25).join('\n')}`).join('\n');
  }

  async close(): Promise<void> {
    await Promise.all(this.replicas.map((r) => this.kill(r.id, 'SIGKILL')));
    await Promise.all([...this.proxies.values()].map((p) => p.stop()));
    rmSync(this.root, { recursive: true, force: true });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
