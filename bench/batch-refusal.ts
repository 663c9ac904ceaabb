/**
 * `npm run bench:batch-refusal`: how long an oversized executeBatch takes to be refused (issue 8).
 *
 * Starts the real ledger server in this process (temp data folder) and sends, as a new user would,
 * executeBatch requests of BATCH_REFUSAL_SIZES operations (default 1001, 10000, 100000 valid
 * deposits, as variables) over HTTP. For each it prints the body size, the time from sending to the
 * answer, the longest the event loop was held meanwhile, the answer's code and how many log entries
 * the request added (a refusal should add none). Each size runs BATCH_REFUSAL_ROUNDS times (default
 * 3); the median is printed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mintToken } from '../src/api/auth';
import { startLedgerServer } from '../src/app/start-server';
import { loadConfig } from '../src/config';

const SIZES = (process.env.BATCH_REFUSAL_SIZES ?? '1001,10000,100000').split(',').map(Number);
const ROUNDS = Number(process.env.BATCH_REFUSAL_ROUNDS ?? 3);

const BATCH = `mutation ($input: BatchInput!) {
  executeBatch(input: $input) { __typename ... on LedgerError { code message } }
}`;

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ledger-bench-batch-'));
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', LEDGER_DATA_DIR: dataDir, LEDGER_JWT_SECRET: 'bench-secret-bench-secret-bench-secret', NODE_ENV: 'production' });
  const running = await startLedgerServer(config);
  const url = `http://127.0.0.1:${running.port}/graphql`;
  const token = await mintToken(running.secret.key, { sub: 'bench', roles: ['teller'] }, '1h');
  const post = async (body: string) => {
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body });
    return { status: response.status, json: (await response.json()) as any };
  };
  try {
    await post(JSON.stringify({ query: 'mutation { openAccount(input: { id: "bench-a" }) { __typename } }' }));
    console.log(`node ${process.version}, ${ROUNDS} rounds per size, median shown`);
    console.log('operations | body MB | until answer ms | event loop held ms (max) | answer | log entries added');
    for (const size of SIZES) {
      const operations = Array.from({ length: size }, (_, i) => ({ deposit: { accountId: 'bench-a', amount: String(100 + (i % 900)) } }));
      const body = JSON.stringify({ query: BATCH, variables: { input: { operations } } });
      const times: number[] = [];
      const held: number[] = [];
      let answer = '';
      let added = 0;
      for (let round = 0; round < ROUNDS; round += 1) {
        const before = running.ledger.node.status().commitIndex;
        const loop = monitorEventLoopDelay({ resolution: 5 });
        loop.enable();
        const started = performance.now();
        const res = await post(body);
        times.push(performance.now() - started);
        loop.disable();
        held.push(loop.max / 1e6);
        const result = res.json.data?.executeBatch;
        answer = result ? `${result.code ?? result.__typename}: ${String(result.message ?? '').slice(0, 60)}` : `HTTP ${res.status} ${JSON.stringify(res.json.errors?.[0]?.extensions?.code)}`;
        added = Number(running.ledger.node.status().commitIndex) - Number(before);
      }
      console.log(`${size} | ${(Buffer.byteLength(body) / 1e6).toFixed(1)} | ${median(times).toFixed(0)} | ${median(held).toFixed(0)} | ${answer} | ${added}`);
    }
  } finally {
    await running.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
