/**
 * `npm run bench:feeds`: live-feed fan-out on the real server (src/main.ts in a child process).
 *
 * 1. Single transfers from BENCH_FEEDS_CONNECTIONS concurrent HTTP clients for BENCH_FEEDS_SECONDS,
 *    with no subscriber: the baseline mutation rate.
 * 2. The same with BENCH_FEEDS_SUBSCRIBERS graphql-ws connections open (a tenth on largeTransaction,
 *    the rest on transactionPosted for a random account; they run in a child process of their own),
 *    one transfer in BENCH_FEEDS_LARGE_EVERY large. Latency of a delivery = when the subscriber got it
 *    minus when the mutation's acknowledgement reached its client (same machine, same clock).
 *
 * Targets (issue 9): delivery p99 ≤ 100 ms; rate with subscribers ≥ 80% of the rate without.
 * BENCH_FEEDS_PROFILE_DIR: the server runs under `node --cpu-prof` and writes its profiles there (both phases).
 * Prints the figures and writes them to BENCH_FEEDS_RESULTS (default bench/RESULTS-feeds.md; "-": nowhere).
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { mintToken } from '../src/api/auth';

const ROOT = resolve(__dirname, '..');
const int = (name: string, fallback: number) => {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return value;
};
const SECONDS = int('BENCH_FEEDS_SECONDS', 10);
const CONNECTIONS = int('BENCH_FEEDS_CONNECTIONS', 20);
const SUBSCRIBERS = int('BENCH_FEEDS_SUBSCRIBERS', 1000);
const LARGE_SUBSCRIBERS = Math.max(1, Math.round(SUBSCRIBERS / 10));
const ACCOUNTS = int('BENCH_FEEDS_ACCOUNTS', 200);
const LARGE_EVERY = int('BENCH_FEEDS_LARGE_EVERY', 10);
const RESULTS = process.env.BENCH_FEEDS_RESULTS === '-' ? null : resolve(process.env.BENCH_FEEDS_RESULTS ?? join(ROOT, 'bench', 'RESULTS-feeds.md'));
const SECRET = 'bench-feeds-secret-bench-feeds-secret-42';
const LARGE_THRESHOLD = 1_000_000;
const TARGETS = { p99Ms: 100, rateRatio: 0.8 } as const;

const children = new Set<ChildProcess>();
const temp: string[] = [];
const cleanup = () => {
  for (const child of children) child.kill('SIGKILL');
  for (const dir of temp) rmSync(dir, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

const nowMs = () => performance.timeOrigin + performance.now();

async function startLedger(): Promise<{ url: string; child: ChildProcess }> {
  const dir = mkdtempSync(join(tmpdir(), 'ledger-bench-feeds-'));
  temp.push(dir);
  const profile = process.env.BENCH_FEEDS_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${resolve(process.env.BENCH_FEEDS_PROFILE_DIR)}`] : [];
  const child = spawn(process.execPath, [...profile, '--require', './bench/orphan-guard.cjs', '--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      LEDGER_DATA_DIR: dir,
      LEDGER_JWT_SECRET: SECRET,
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      LEDGER_LARGE_TX_THRESHOLD: String(LARGE_THRESHOLD),
      // The embedded stores, as npm run bench measures them, whatever the calling shell has set.
      EVENTSTORE_URL: '',
      MONGODB_URL: '',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const match = /listening on http:\/\/localhost:(\d+)\/graphql/.exec(output);
    if (match) return { url: `http://127.0.0.1:${match[1]}/graphql`, child };
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the ledger did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function gql(url: string, token: string, query: string, variables: Record<string, unknown>): Promise<any> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query, variables }) });
  const body = (await response.json()) as { data?: any; errors?: unknown };
  if (body.errors || !body.data) throw new Error(`request failed: ${JSON.stringify(body.errors ?? body)}`);
  return body.data;
}

const TRANSFER = `mutation($f: ID!, $t: ID!, $m: Amount!) { transfer(input: { fromAccountId: $f, toAccountId: $t, amount: $m }) { __typename ... on TransferSuccess { position } } }`;

/** Single transfers from `connections` loops for `seconds`: acknowledgement time per position. */
async function drive(url: string, token: string, seconds: number, connections: number): Promise<Map<string, number>> {
  const acked = new Map<string, number>();
  const end = Date.now() + seconds * 1000;
  let n = 0;
  await Promise.all(
    Array.from({ length: connections }, async (_, loop) => {
      while (Date.now() < end) {
        n += 1;
        const from = (n * 7 + loop) % ACCOUNTS;
        const to = (from + 1 + (n % (ACCOUNTS - 1))) % ACCOUNTS;
        const amount = n % LARGE_EVERY === 0 ? String(LARGE_THRESHOLD) : '1';
        const data = await gql(url, token, TRANSFER, { f: `feeds-${from}`, t: `feeds-${to}`, m: amount });
        if (data.transfer.__typename !== 'TransferSuccess') throw new Error(`transfer failed: ${JSON.stringify(data)}`);
        acked.set(data.transfer.position, nowMs());
      }
    }),
  );
  return acked;
}

/** CPU seconds of a process so far (all threads; user and system), from /proc; null where there is none. */
function cpuOf(pid: number | undefined): { user: number; system: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(fields[11]) / 100, system: Number(fields[12]) / 100 };
  } catch {
    return null;
  }
}

/** CPU seconds of a process's main thread (its JavaScript event loop), from /proc; null where there is none. */
function mainThreadCpuOf(pid: number | undefined): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}

interface CpuShare {
  /** Server CPU ms per acknowledged transfer: all threads, then user and system. */
  serverMsPerTransfer: number;
  serverUserMsPerTransfer: number;
  serverSystemMsPerTransfer: number;
  /** Cores in use over the run, by process (the server's main thread on its own too). */
  serverCores: number;
  serverMainThreadCores: number;
  subscriberCores: number | null;
  driverCores: number;
}

/** Runs `drive` and measures where the machine's CPU went over it. */
async function driveMeasured(url: string, token: string, pid: number | undefined, subscriberPid?: number): Promise<{ acked: Map<string, number>; cpu: CpuShare | null }> {
  const before = { server: cpuOf(pid), main: mainThreadCpuOf(pid), subscribers: cpuOf(subscriberPid), driver: process.cpuUsage(), at: performance.now() };
  const acked = await drive(url, token, SECONDS, CONNECTIONS);
  const after = { server: cpuOf(pid), main: mainThreadCpuOf(pid), subscribers: cpuOf(subscriberPid), driver: process.cpuUsage(before.driver), at: performance.now() };
  if (!before.server || !after.server || before.main === null || after.main === null) return { acked, cpu: null };
  const seconds = (after.at - before.at) / 1000;
  const user = after.server.user - before.server.user;
  const system = after.server.system - before.server.system;
  const total = (c: { user: number; system: number }) => c.user + c.system;
  return {
    acked,
    cpu: {
      serverMsPerTransfer: ((user + system) * 1000) / acked.size,
      serverUserMsPerTransfer: (user * 1000) / acked.size,
      serverSystemMsPerTransfer: (system * 1000) / acked.size,
      serverCores: (user + system) / seconds,
      serverMainThreadCores: (after.main - before.main) / seconds,
      subscriberCores: before.subscribers && after.subscribers ? (total(after.subscribers) - total(before.subscribers)) / seconds : null,
      driverCores: (after.driver.user + after.driver.system) / 1e6 / seconds,
    },
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const fmtMs = (value: number | null | undefined) => (value === null || value === undefined ? 'n/a' : `${value.toFixed(2)} ms`);
const fmtCores = (value: number | null | undefined) => (value === null || value === undefined ? 'n/a' : value.toFixed(2));

async function main(): Promise<void> {
  const { url, child: ledger } = await startLedger();
  const key = new TextEncoder().encode(SECRET);
  const teller = await mintToken(key, { sub: 'bench', roles: ['teller', 'analyst'] }, '2h');
  const operations = Array.from({ length: ACCOUNTS }, (_, i) => ({ openAccount: { id: `feeds-${i}`, initialBalance: '1000000000000000' } }));
  await gql(url, teller, `mutation($ops: [BatchOperationInput!]!) { executeBatch(input: { operations: $ops }) { __typename } }`, { ops: operations });

  // Warm-up, then the baseline without subscribers.
  await drive(url, teller, Math.min(3, SECONDS), CONNECTIONS);
  const baseline = await driveMeasured(url, teller, ledger.pid);
  const rateWithout = baseline.acked.size / SECONDS;

  const tokens = await Promise.all(Array.from({ length: SUBSCRIBERS }, (_, i) => mintToken(key, { sub: `dashboard-${i}`, roles: ['compliance'] }, '2h')));
  const subscribers = fork(join(__dirname, 'feeds-subscribers.ts'), [], {
    execArgv: ['--require', './bench/orphan-guard.cjs', '--import', 'tsx'],
    cwd: ROOT,
  });
  children.add(subscribers);
  subscribers.send({ type: 'setup', setup: { wsUrl: url.replace(/^http/, 'ws'), tokens, largeCount: LARGE_SUBSCRIBERS, accounts: Array.from({ length: ACCOUNTS }, (_, i) => `feeds-${i}`), seed: 42 } });
  await new Promise<void>((ready, fail) => {
    subscribers.once('exit', (code) => fail(new Error(`the subscriber process exited (${code})`)));
    subscribers.on('message', (m: { type: string }) => m.type === 'ready' && ready());
  });
  // Subscribe messages follow connection_ack; give the server a moment to register them all.
  await new Promise((r) => setTimeout(r, 2_000));
  await drive(url, teller, Math.min(3, SECONDS), CONNECTIONS);
  const withSubscribers = await driveMeasured(url, teller, ledger.pid, subscribers.pid);
  const measured = withSubscribers.acked;
  const rateWith = measured.size / SECONDS;
  await new Promise((r) => setTimeout(r, 1_000));
  const report = await new Promise<{ received: Array<[string, number]>; failures: number }>((done) => {
    subscribers.on('message', (m: { type: string; received?: Array<[string, number]>; failures?: number }) => {
      if (m.type === 'report') done({ received: m.received!, failures: m.failures! });
    });
    subscribers.send({ type: 'report' });
  });

  const latencies: number[] = [];
  const lastByPosition = new Map<string, number>();
  for (const [position, at] of report.received) {
    const ackedAt = measured.get(position);
    if (ackedAt === undefined) continue; // warm-up traffic
    latencies.push(at - ackedAt);
    lastByPosition.set(position, Math.max(lastByPosition.get(position) ?? Number.NEGATIVE_INFINITY, at - ackedAt));
  }
  latencies.sort((a, b) => a - b);
  const perEvent = [...lastByPosition.values()].sort((a, b) => a - b);
  const p50 = percentile(latencies, 50);
  const p99 = percentile(latencies, 99);
  const ratio = rateWith / rateWithout;
  const lines = [
    `# Live feeds: fan-out benchmark`,
    '',
    `Command: \`BENCH_FEEDS_SECONDS=${SECONDS} BENCH_FEEDS_CONNECTIONS=${CONNECTIONS} BENCH_FEEDS_SUBSCRIBERS=${SUBSCRIBERS} npm run bench:feeds\``,
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at the end; Node ${process.version}.`,
    `Server: src/main.ts (NODE_ENV=production), ${ACCOUNTS} accounts; ${CONNECTIONS} HTTP clients send single transfers, one in ${LARGE_EVERY} large.`,
    `Subscribers: ${SUBSCRIBERS} graphql-ws connections in one child process (${LARGE_SUBSCRIBERS} on largeTransaction, ${SUBSCRIBERS - LARGE_SUBSCRIBERS} on transactionPosted for a random account).`,
    '',
    '| figure | value | target |',
    '|---|---|---|',
    `| mutation rate without subscribers | ${rateWithout.toFixed(0)} /s | |`,
    `| mutation rate with ${SUBSCRIBERS} subscribers | ${rateWith.toFixed(0)} /s (${(ratio * 100).toFixed(0)}%) | ≥ ${TARGETS.rateRatio * 100}% ${ratio >= TARGETS.rateRatio ? 'met' : 'NOT met'} |`,
    `| server CPU per transfer without / with subscribers | ${fmtMs(baseline.cpu?.serverMsPerTransfer)} / ${fmtMs(withSubscribers.cpu?.serverMsPerTransfer)} | |`,
    `| of which system (kernel) | ${fmtMs(baseline.cpu?.serverSystemMsPerTransfer)} / ${fmtMs(withSubscribers.cpu?.serverSystemMsPerTransfer)} | |`,
    `| cores used: server (its main thread) without | ${fmtCores(baseline.cpu?.serverCores)} (${fmtCores(baseline.cpu?.serverMainThreadCores)}) | |`,
    `| cores used: server (its main thread) / subscribers / HTTP clients with | ${fmtCores(withSubscribers.cpu?.serverCores)} (${fmtCores(withSubscribers.cpu?.serverMainThreadCores)}) / ${fmtCores(withSubscribers.cpu?.subscriberCores)} / ${fmtCores(withSubscribers.cpu?.driverCores)} | |`,
    `| deliveries measured | ${latencies.length} (${perEvent.length} transactions) | |`,
    `| delivery latency p50 (ack → subscriber) | ${p50.toFixed(1)} ms | |`,
    `| delivery latency p99 | ${p99.toFixed(1)} ms | ≤ ${TARGETS.p99Ms} ms ${p99 <= TARGETS.p99Ms ? 'met' : 'NOT met'} |`,
    `| p99 over transactions of the last subscriber's receipt | ${percentile(perEvent, 99).toFixed(1)} ms | |`,
    `| subscriber errors | ${report.failures} | 0 |`,
    '',
    'Latency can be negative: the event may reach a subscriber before the acknowledgement reaches the',
    "mutation's client. The HTTP clients, the 1,000 subscribers and the server share the machine's cores,",
    'so with subscribers the server also loses CPU to the subscriber process; the server CPU per transfer',
    'is the figure that does not depend on that.',
  ];
  const markdown = `${lines.join('\n')}\n`;
  console.log(markdown);
  if (RESULTS) writeFileSync(RESULTS, markdown);
  subscribers.kill('SIGKILL');
  // A graceful stop, so that a --cpu-prof of the server gets written.
  ledger.kill('SIGTERM');
  await new Promise((r) => ledger.once('exit', r));
  process.exit(0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
