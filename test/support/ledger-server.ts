import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Role, mintToken } from '../../src/api/auth';
import { type RunningLedger, startLedgerServer } from '../../src/app/start-server';
import { loadConfig } from '../../src/config';

export interface TestLedger {
  running: RunningLedger;
  url: string;
  dataDir: string;
  /** A bearer token with these roles. */
  token(roles: Role[], sub?: string): Promise<string>;
  /** POSTs a GraphQL request with a token of these roles (admin by default). */
  gql<T = any>(query: string, variables?: Record<string, unknown>, roles?: Role[]): Promise<{ status: number; body: { data?: T; errors?: Array<{ message: string; extensions?: { code?: string } }> } }>;
  /** Like gql, but fails the test on any GraphQL error or non-200 status, and returns `data`. */
  data<T = any>(query: string, variables?: Record<string, unknown>, roles?: Role[]): Promise<T>;
  close(): Promise<void>;
}

let uniqueSeq = 0;
/** An id no other test (or earlier run on a kept data folder) uses: prefix-n-time. */
export function uniqueId(prefix: string): string {
  uniqueSeq += 1;
  return `${prefix}-${uniqueSeq}-${Date.now().toString(36)}`;
}

/** Starts a real ledger server in this process on a free port and a fresh data folder (or `options.dataDir`, to restart on one). */
export async function startTestLedger(env: Record<string, string> = {}, options: { dataDir?: string } = {}): Promise<TestLedger> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'ledger-test-'));
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', LEDGER_DATA_DIR: dataDir, LEDGER_JWT_SECRET: 'test-secret-test-secret-test-secret-42', NODE_ENV: 'test', ...env });
  const running = await startLedgerServer(config);
  const url = `http://127.0.0.1:${running.port}/graphql`;
  const token = (roles: Role[], sub = 'tester') => mintToken(running.secret.key, { sub, roles }, '1h');
  const gql: TestLedger['gql'] = async (query, variables, roles = ['admin']) => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await token(roles)}` },
      body: JSON.stringify({ query, variables }),
    });
    return { status: response.status, body: (await response.json()) as any };
  };
  return {
    running,
    url,
    dataDir,
    token,
    gql,
    async data(query, variables, roles) {
      const res = await gql(query, variables, roles);
      if (res.body.errors) throw new Error(`unexpected GraphQL errors: ${JSON.stringify(res.body.errors)}`);
      expect(res.status).toBe(200);
      return res.body.data as any;
    },
    async close() {
      await running.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

// ---- helpers for the end-to-end suites (test/api/e2e-*.test.ts) ----------------------------

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: any;
}

/**
 * Sends one raw HTTP request with node:http, so tests control every header (a missing or wrong
 * Content-Length, chunked bodies, no Authorization). `chunks` are written one by one; without
 * `content-length` in `headers`, node sends them chunked.
 */
export async function rawRequest(
  port: number,
  options: { method?: string; path?: string; headers?: Record<string, string>; body?: string | Buffer; chunks?: Array<string | Buffer> },
): Promise<RawResponse> {
  const { request } = await import('node:http');
  return new Promise<RawResponse>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: options.method ?? 'POST', path: options.path ?? '/graphql', headers: options.headers ?? {}, agent: false },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (chunk: Buffer) => parts.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          let json: any;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    // The server may answer (413, 411) and close before it has read what we send: that is the point.
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE' && error.code !== 'ECONNRESET') reject(error);
    });
    if (options.chunks) for (const chunk of options.chunks) req.write(chunk);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

/** POSTs a GraphQL request with exactly this Authorization header value (or none when null). */
export async function gqlWithAuthorization(
  url: string,
  authorization: string | null,
  query: string,
  variables?: Record<string, unknown>,
): Promise<{ status: number; headers: Headers; body: any }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (authorization !== null) headers.authorization = authorization;
  const response = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const text = await response.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: response.status, headers: response.headers, body };
}
