import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { mintToken } from '../../src/api/auth';

const REPO_ROOT = join(__dirname, '..', '..');
export const JWT_SECRET = 'crash-test-secret-crash-test-secret-42';
const OUTPUT_KEPT_CHARS = 20_000;
/**
 * How long a start may take before a test gives up. Loading the server takes ~1.5 s of CPU (its
 * two pipeline threads as much again); with jest's other workers and their child servers on the
 * same 2 cores a start was once seen to exceed 20 s (fresh-clone CI, Node 22). No timing is asserted.
 */
export const READY_TIMEOUT_MS = 60_000;

export interface GqlResponse<T> {
  status: number;
  body: { data?: T; errors?: Array<{ message: string; extensions?: { code?: string } }> };
}

/** Servers still running when the test process exits (a test timed out) are killed, not left behind. */
const LIVE_CHILDREN = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of LIVE_CHILDREN) child.kill('SIGKILL');
});

/**
 * The real ledger server (src/main.ts under tsx) as a child process on a data folder, so that a
 * test can SIGKILL it at any moment and start it again on the same folder.
 */
export class ChildLedger {
  /** Known once the server printed its address. */
  port = 0;
  private token = '';
  private outputText = '';
  private exited: Promise<void>;
  private hasExited = false;
  private constructor(
    readonly child: ChildProcess,
    readonly dataDir: string,
  ) {
    const keep = (chunk: Buffer) => {
      this.outputText = (this.outputText + chunk.toString('utf8')).slice(-OUTPUT_KEPT_CHARS);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = once(child, 'exit').then(() => {
      this.hasExited = true;
    });
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/graphql`;
  }

  /** What the server printed (the end of it), for failure messages. */
  get output(): string {
    return this.outputText;
  }

  get alive(): boolean {
    return !this.hasExited;
  }

  /**
   * Spawns the server; does not wait for it. The read models are embedded unless `env` says
   * otherwise: a MONGODB_URL in the test environment (CI sets one for the MongoDB suites) is not
   * inherited, or every child would share one database.
   */
  static spawn(dataDir: string, env: Record<string, string> = {}): ChildLedger {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        PORT: '0',
        HOST: '127.0.0.1',
        LEDGER_DATA_DIR: dataDir,
        LEDGER_JWT_SECRET: JWT_SECRET,
        NODE_ENV: 'test',
        LOG_LEVEL: 'warn',
        MONGODB_URL: '',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    LIVE_CHILDREN.add(child);
    child.once('exit', () => LIVE_CHILDREN.delete(child));
    return new ChildLedger(child, dataDir);
  }

  /** Spawns the server and resolves once /health answers 200. */
  static async start(dataDir: string, timeoutMs = READY_TIMEOUT_MS, env: Record<string, string> = {}): Promise<ChildLedger> {
    const ledger = ChildLedger.spawn(dataDir, env);
    await ledger.ready(timeoutMs);
    return ledger;
  }

  async ready(timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    const deadline = { atMs: Date.now() + timeoutMs, timeoutMs };
    while (this.port === 0) {
      const match = /listening on http:\/\/localhost:(\d+)\/graphql/.exec(this.outputText);
      if (match) this.port = Number(match[1]);
      else await this.pause(deadline, 'to listen');
    }
    for (;;) {
      const status = await fetch(`http://127.0.0.1:${this.port}/health`).then(
        (r) => r.status,
        () => 0,
      );
      if (status === 200) break;
      await this.pause(deadline, 'to be healthy');
    }
    this.token = await mintToken(new TextEncoder().encode(JWT_SECRET), { sub: 'crash-test', roles: ['admin'] }, '1h');
  }

  private async pause(deadline: { atMs: number; timeoutMs: number }, what: string): Promise<void> {
    if (this.hasExited) throw new Error(`the ledger exited before it was ready (${what}):\n${this.outputText}`);
    if (Date.now() > deadline.atMs) throw new Error(`the ledger took more than ${deadline.timeoutMs} ms ${what}; its output:\n${this.outputText}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }

  /** POSTs a GraphQL request as admin. Rejects when the connection fails (e.g. the server was killed). */
  async gql<T = any>(query: string, variables?: Record<string, unknown>): Promise<GqlResponse<T>> {
    const response = await fetch(this.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${this.token}` },
      body: JSON.stringify({ query, variables }),
    });
    return { status: response.status, body: (await response.json()) as GqlResponse<T>['body'] };
  }

  /** Like gql, but any GraphQL error fails the test with the server's output. */
  async query<T = any>(query: string, variables?: Record<string, unknown>): Promise<T> {
    const { status, body } = await this.gql<T>(query, variables);
    if (status !== 200 || body.errors || !body.data) {
      throw new Error(`query failed (${status}): ${JSON.stringify(body.errors ?? body)}\n${this.outputText.slice(-4000)}`);
    }
    return body.data;
  }

  /** SIGKILL now (no shutdown hooks run); resolves once the process is gone. */
  async kill(): Promise<void> {
    this.killNow();
    await this.exited;
  }

  /** Sends SIGKILL synchronously, for use right where an acknowledgement arrives. */
  killNow(): void {
    if (!this.hasExited) this.child.kill('SIGKILL');
  }

  /** SIGTERM: the graceful shutdown (finish in-flight commands, flush, snapshot). */
  async terminate(timeoutMs = 15_000): Promise<number | null> {
    if (this.hasExited) return this.child.exitCode;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
    return this.child.exitCode;
  }
}
