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
  close(): Promise<void>;
}

/** Starts a real ledger server in this process on a free port and a fresh data folder. */
export async function startTestLedger(env: Record<string, string> = {}): Promise<TestLedger> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ledger-test-'));
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', LEDGER_DATA_DIR: dataDir, LEDGER_JWT_SECRET: 'test-secret-test-secret-test-secret-42', NODE_ENV: 'test', ...env });
  const running = await startLedgerServer(config);
  const url = `http://127.0.0.1:${running.port}/graphql`;
  const token = (roles: Role[], sub = 'tester') => mintToken(running.secret.key, { sub, roles }, '1h');
  return {
    running,
    url,
    dataDir,
    token,
    async gql(query, variables, roles = ['admin']) {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${await token(roles)}` },
        body: JSON.stringify({ query, variables }),
      });
      return { status: response.status, body: (await response.json()) as any };
    },
    async close() {
      await running.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
