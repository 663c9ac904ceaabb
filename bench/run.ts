/**
 * `npm run bench`: measures the real ledger server against two ceilings and writes bench/RESULTS.md.
 *
 * Every server and every load generator runs in a child process of its own; this process only
 * orchestrates, prints and cleans up (children are stopped and temp folders removed on every exit,
 * errors and Ctrl-C included). See bench/RESULTS.md for the method.
 *
 * Settings (environment):
 *   BENCH_SECONDS            measured seconds per run (default 10)
 *   BENCH_WARMUP_SECONDS     unmeasured warm-up before each run (default min(3, BENCH_SECONDS))
 *   BENCH_CONNECTIONS        connections for single transfers (default 50)
 *   BENCH_BATCH_CONNECTIONS  connections for batches of 100 and 1,000 (default 8 and 4)
 *   BENCH_ACCOUNTS           accounts opened on the ledger (default 1000)
 *   BENCH_ROUNDS             rounds of single transfers, bare, guarded and ledger in turn (default 3); the
 *                            single-transfer ratios are the median of the rounds' ratios, and the median bare
 *                            run is the reference of the batch ratios
 *   BENCH_SUSTAINED_SECONDS  the sustained run: batches of 1,000 for this long (default 60; 0 skips it), with
 *                            acknowledged and projected transfers/s side by side and the read models' lag
 *   BENCH_LAG_SAMPLE_MS      how often the read models' lag is sampled during ledger runs (default 100)
 *   BENCH_PROFILE=1          afterwards, profile the ledger (node --cpu-prof) under single transfers and
 *                            under batches of 1,000, and add the top self-time functions to the results
 *   BENCH_PROFILE_DIR        keep the .cpuprofile files there (default: a temp folder, removed)
 *   BENCH_ERRORS_ALLOWED     failed responses tolerated per run before the run is invalid (default 0)
 *   BENCH_RESULTS            where to write the results (default bench/RESULTS.md; "-" for nowhere)
 *   BENCH_CLUSTER=0          skip the 3-replica cluster section (bench/cluster.ts, also `npm run bench:cluster`; its
 *                            BENCH_FAILOVER_TRIALS, BENCH_FAILOVER_PROBE_MS, BENCH_CLUSTER_PROFILE); run after the
 *                            single-node figures, which its targets are ratios of; skipped with BENCH_LEDGER_ENTRY
 *   BENCH_REBUILD=0          skip the rebuild benchmark run at the end (bench/rebuild.ts; BENCH_REBUILD_EVENTS, default 1,000,000)
 *   BENCH_FEEDS=0            skip the live-feeds benchmark run last (bench/feeds.ts, writes bench/RESULTS-feeds.md;
 *                            BENCH_FEEDS_SECONDS, BENCH_FEEDS_SUBSCRIBERS, BENCH_FEEDS_RESULTS, ...)
 *   BENCH_LEDGER_ENTRY       for experiments: the script that starts the ledger (default src/main.ts),
 *                            e.g. bench/ledger-variant.ts; then results are written only where
 *                            BENCH_RESULTS says
 */
import { type ChildProcess, execFileSync, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, platform, release, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { mintToken } from '../src/api/auth';
import { runClusterBench } from './cluster';
import { ACCOUNT_PREFIX, OPENING_BALANCE, children, cpuSecondsOf, failures, fmt, freePort, graphql, intFromEnv, killEverythingNow, makeTempDir, median, openAccounts, pct, threadCoresBetween, threadCpuSecondsOf, track, verdict, waitForExit } from './common';
import { formatSummary, summarizeCpuProfile, type ProfileSummary } from './cpu-profile-summary';
import type { LoadMessage, LoadReport, LoadRequest } from './load';
import { OPEN_ACCOUNTS_DOCUMENT, TRANSFER_DOCUMENT, type Workload, type WorkloadSpec, accountId } from './workload';

const ROOT = resolve(__dirname, '..');

// ---- settings -----------------------------------------------------------------------------


const SECONDS = intFromEnv('BENCH_SECONDS', 10, 1);
const WARMUP_SECONDS = intFromEnv('BENCH_WARMUP_SECONDS', Math.min(3, SECONDS), 0);
const CONNECTIONS = intFromEnv('BENCH_CONNECTIONS', 50, 1);
const BATCH_CONNECTIONS_OVERRIDE = process.env.BENCH_BATCH_CONNECTIONS ? intFromEnv('BENCH_BATCH_CONNECTIONS', 8, 1) : null;
const ACCOUNTS = intFromEnv('BENCH_ACCOUNTS', 1000, 2);
const SUSTAINED_SECONDS = intFromEnv('BENCH_SUSTAINED_SECONDS', 60, 0);
const ROUNDS = intFromEnv('BENCH_ROUNDS', 3, 1);
const LAG_SAMPLE_MS = intFromEnv('BENCH_LAG_SAMPLE_MS', 100, 10);
const ERRORS_ALLOWED = intFromEnv('BENCH_ERRORS_ALLOWED', 0, 0);
const PROFILE = process.env.BENCH_PROFILE === '1' || process.env.BENCH_PROFILE === 'true';
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR ? resolve(process.env.BENCH_PROFILE_DIR) : null;
const LEDGER_ENTRY = process.env.BENCH_LEDGER_ENTRY || 'src/main.ts';
const RESULTS_PATH =
  process.env.BENCH_RESULTS === '-' || (process.env.BENCH_RESULTS === undefined && LEDGER_ENTRY !== 'src/main.ts')
    ? null
    : resolve(process.env.BENCH_RESULTS ?? join(ROOT, 'bench', 'RESULTS.md'));


/**
 * Ratios to the same run's bare ceiling (absolute rates differ several-fold between these machines
 * from day to day): single transfers against both ceilings; batches of 1,000 acknowledged; batches of
 * 1,000 sustained with the read models current (projected transfers/s of the sustained run), which
 * must also be within 10% of what that run acknowledged; the read models' lag under single transfers.
 */
const TARGETS = {
  singleVsBare: 0.5,
  singleVsGuarded: 0.75,
  batch1000AcknowledgedVsBare: 8,
  sustainedProjectedVsBare: 6,
  sustainedProjectedVsAcknowledged: 0.9,
  singleLagP99Ms: 100,
} as const;

// ---- child processes and cleanup -----------------------------------------------------------




for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    console.error(`\nbench: ${signal}, stopping the servers`);
    killEverythingNow();
    process.exit(130);
  });
}




interface ServerProcess {
  name: string;
  child: ChildProcess;
  origin: string;
  output(): string;
  /** SIGTERM, then SIGKILL if it does not stop in time; resolves true on a clean stop. */
  stop(): Promise<boolean>;
}

const OUTPUT_KEPT_BYTES = 64 * 1024;
/**
 * V8 feature flags the bench itself runs with, passed on to the servers: measuring an older runtime
 * such as Node 20, which has JSON.parse source text access only behind --harmony-json-parse-with-source.
 */
const RUNTIME_FLAGS = process.execArgv.filter((flag) => flag.startsWith('--harmony'));

async function startServer(name: string, script: string, env: NodeJS.ProcessEnv, nodeFlags: string[] = []): Promise<ServerProcess> {
  const port = await freePort();
  const child = track(
    spawn(process.execPath, [...RUNTIME_FLAGS, ...nodeFlags, '--require', './bench/orphan-guard.cjs', '--import', 'tsx', script], {
      cwd: ROOT,
      env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_KEPT_BYTES);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const origin = `http://127.0.0.1:${port}`;
  const server: ServerProcess = {
    name,
    child,
    origin,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return false;
      child.kill('SIGTERM');
      if (await waitForExit(child, 30_000)) return child.exitCode === 0;
      child.kill('SIGKILL');
      await waitForExit(child, 5_000);
      return false;
    },
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${output}`);
    }
    try {
      const response = await fetch(`${origin}/health`);
      if (response.status === 200) return server;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`${name} did not answer GET /health with 200 within 60 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}



interface LoadOutcome {
  report: LoadReport;
  /** CPU the server used per second of the measured load (1 = one core busy), if measurable. */
  serverCores: number | null;
  /** The same by thread (see threadCoresBetween). */
  threadCores: Record<string, number>;
}

interface CpuSample {
  atMs: number;
  cpuSeconds: number | null;
  threads: ReturnType<typeof threadCpuSecondsOf>;
}

function sampleCpu(pid: number | undefined): CpuSample {
  return { atMs: performance.now(), cpuSeconds: cpuSecondsOf(pid), threads: threadCpuSecondsOf(pid) };
}

async function runLoad(request: LoadRequest, serverPid: number | undefined): Promise<LoadOutcome> {
  const child = track(fork(join(ROOT, 'bench', 'load.ts'), [], { cwd: ROOT, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  let started: CpuSample | null = null;
  const answer = new Promise<LoadOutcome>((resolveAnswer, reject) => {
    child.on('message', (message) => {
      const m = message as LoadMessage;
      if (m.type === 'started') {
        started = sampleCpu(serverPid);
      } else if (m.type === 'report') {
        const now = sampleCpu(serverPid);
        const s = started as CpuSample | null;
        const elapsed = s ? (now.atMs - s.atMs) / 1000 : 0;
        const serverCores = s && s.cpuSeconds !== null && now.cpuSeconds !== null ? (now.cpuSeconds - s.cpuSeconds) / elapsed : null;
        resolveAnswer({ report: m.report, serverCores, threadCores: s ? threadCoresBetween(s.threads, now.threads, elapsed) : {} });
      } else {
        reject(new Error(`load generator failed: ${m.error}`));
      }
    });
    child.once('exit', (code, signal) => reject(new Error(`load generator exited (${code ?? signal}) without a report`)));
  });
  child.send(request);
  try {
    return await answer;
  } finally {
    await waitForExit(child, 5_000);
  }
}

// ---- GraphQL over HTTP from this process (setup and checks, not measured) -------------------



/**
 * Waits until the read models have caught up with everything written so far (one more transfer,
 * then a read of it with atLeast), so that one run's projection backlog does not slow the next.
 * Returns how long that took.
 */
async function waitForReadModels(origin: string, token: string): Promise<number> {
  const started = Date.now();
  const data = await graphql(origin, token, TRANSFER_DOCUMENT, {
    input: { fromAccountId: accountId(ACCOUNT_PREFIX, 0), toAccountId: accountId(ACCOUNT_PREFIX, 1), amount: '1' },
  });
  const transfer = data.transfer as { __typename: string; position?: string; transaction?: { id: string } };
  if (transfer.__typename !== 'TransferSuccess') throw new Error(`settling transfer failed: ${JSON.stringify(transfer)}`);
  const deadline = started + 300_000;
  for (;;) {
    try {
      await graphql(origin, token, 'query Caught($id: ID!, $at: Position) { transaction(id: $id, atLeast: $at) { id } }', {
        id: transfer.transaction!.id,
        at: transfer.position,
      });
      return Date.now() - started;
    } catch (error) {
      if (!String(error).includes('POSITION_NOT_REACHED') || Date.now() > deadline) throw error;
    }
  }
}

/** An analyst's token for Query.ledger (the load itself runs as a teller); set in main. */
let lagToken: string | null = null;

interface LagSamples {
  p50: number;
  p99: number;
  max: number;
  samples: number;
  /** The last sample, taken as the load ended. */
  atEnd: number;
  /** Query.ledger.readModelBacklogEvents at the first and the last sample. */
  backlogAtStart: number;
  backlogAtEnd: number;
}

/**
 * Polls Query.ledger { readModelLagMs readModelBacklogEvents } every LAG_SAMPLE_MS on a connection of
 * its own while a run goes on (one small query: it adds nothing measurable to the load).
 */
function startLagSampler(origin: string, token: string): { stop(): Promise<LagSamples> } {
  const lags: number[] = [];
  const backlogs: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const startedAt = performance.now();
      try {
        const data = await graphql(origin, token, '{ ledger { readModelLagMs readModelBacklogEvents } }', {});
        const ledger = data.ledger as { readModelLagMs: number | null; readModelBacklogEvents: number | null };
        if (ledger.readModelLagMs !== null && ledger.readModelBacklogEvents !== null) {
          lags.push(ledger.readModelLagMs);
          backlogs.push(ledger.readModelBacklogEvents);
        }
      } catch {
        // a sample lost to an overloaded server is simply not counted
      }
      await new Promise((r) => setTimeout(r, Math.max(0, LAG_SAMPLE_MS - (performance.now() - startedAt))));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      const sorted = [...lags].sort((a, b) => a - b);
      const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
      return {
        p50: at(0.5),
        p99: at(0.99),
        max: sorted.at(-1) ?? 0,
        samples: sorted.length,
        atEnd: lags.at(-1) ?? 0,
        backlogAtStart: backlogs[0] ?? 0,
        backlogAtEnd: backlogs.at(-1) ?? 0,
      };
    },
  };
}

// ---- runs ---------------------------------------------------------------------------------

interface RunFigures {
  label: string;
  target: 'bare' | 'guarded' | 'ledger';
  workload: Workload;
  connections: number;
  report: LoadReport;
  /** Requests per second that were verified successes. */
  requestsPerSecond: number;
  /** Transfers per second: requests per second times transfers per request. */
  transfersPerSecond: number;
  /** CPU the server process used during the measured run, in cores (1 = one core fully busy). */
  serverCores: number | null;
  /** The same by thread: the main thread, named worker threads, GC/compiler and fs helper pools (see threadCoresBetween). */
  threadCores: Record<string, number>;
  /** Verified requests per CPU-second of the server: less sensitive to other load on the machine. */
  requestsPerServerCpuSecond: number | null;
  /** The machine's 1-minute load average at the end of the run (this bench's own processes included). */
  loadAverage: number;
  /** Ledger only: how long the read models took to catch up after the run. */
  readModelCatchUpMs?: number;
  /** Ledger only: transfers per second counting the read models' catch-up time as part of the run. */
  sustainedTransfersPerSecond?: number;
  /** Ledger only: the read models' lag (Query.ledger.readModelLagMs) sampled every BENCH_LAG_SAMPLE_MS during the measured run. */
  lagMs?: { p50: number; p99: number; max: number; samples: number; atEnd: number };
  /** Ledger only: transfers the read models took in per second during the measured run (acknowledged minus the growth of their backlog). */
  projectedTransfersPerSecond?: number;
}

let seed = 1;

function specFor(workload: Workload): WorkloadSpec {
  const bodyCount = workload.kind === 'transfer' ? 4096 : workload.transfersPerBatch >= 1000 ? 32 : 256;
  return { workload, accountIdPrefix: ACCOUNT_PREFIX, accountCount: ACCOUNTS, bodyCount, seed: seed++ };
}


async function measure(
  label: string,
  target: RunFigures['target'],
  server: ServerProcess,
  token: string | null,
  workload: Workload,
  connections: number,
  seconds = SECONDS,
): Promise<RunFigures> {
  const { origin } = server;
  const pid = server.child.pid;
  const perRequest = workload.kind === 'transfer' ? 1 : workload.transfersPerBatch;
  const thoroughEvery = workload.kind === 'transfer' ? 97 : 7;
  if (WARMUP_SECONDS > 0) {
    process.stdout.write(`  ${label}: warming up ${WARMUP_SECONDS} s ... `);
    const warm = await runLoad({ origin, token, spec: specFor(workload), connections, durationSeconds: WARMUP_SECONDS, thoroughEvery }, pid);
    assertValid(`${label} (warm-up)`, warm.report);
    process.stdout.write(`measuring ${seconds} s ... `);
  } else {
    process.stdout.write(`  ${label}: measuring ${seconds} s ... `);
  }
  const sampler = target === 'ledger' && lagToken ? startLagSampler(origin, lagToken) : null;
  const { report, serverCores, threadCores } = await runLoad({ origin, token, spec: specFor(workload), connections, durationSeconds: seconds, thoroughEvery }, pid);
  const lag = sampler ? await sampler.stop() : null;
  assertValid(label, report);
  const requestsPerSecond = report.successesPerSecond;
  const loadAverage = loadavg()[0] ?? 0;
  const transfersPerSecond = requestsPerSecond * perRequest;
  const projectedTransfersPerSecond = lag ? Math.max(0, transfersPerSecond - (lag.backlogAtEnd - lag.backlogAtStart) / report.durationSeconds) : undefined;
  console.log(
    `${fmt(requestsPerSecond)} req/s, p50 ${report.latencyMs.p50} ms, p99 ${report.latencyMs.p99} ms, server CPU ${serverCores === null ? '?' : serverCores.toFixed(2)} cores, load average ${loadAverage.toFixed(2)}` +
      (lag ? `; read models: ${fmt(projectedTransfersPerSecond ?? 0)} transfers/s taken in, lag p50 ${fmt(lag.p50)} ms, p99 ${fmt(lag.p99)} ms, ${fmt(lag.atEnd)} ms at the end` : '') +
      `\n    server CPU by thread (cores): ${formatThreadCores(threadCores)}`,
  );
  return {
    label,
    target,
    workload,
    connections,
    report,
    requestsPerSecond,
    transfersPerSecond,
    serverCores,
    threadCores,
    ...(lag ? { lagMs: { p50: lag.p50, p99: lag.p99, max: lag.max, samples: lag.samples, atEnd: lag.atEnd }, projectedTransfersPerSecond } : {}),
    requestsPerServerCpuSecond: serverCores ? requestsPerSecond / serverCores : null,
    loadAverage,
  };
}

/** e.g. "MainThread 0.81, V8Worker 0.24, ledger-events 0.11, ledger-proj 0.23, libuv-worker 0.02" (threads under 0.005 left out). */
function formatThreadCores(threadCores: Record<string, number>): string {
  const shown = Object.entries(threadCores).filter(([, cores]) => cores >= 0.005);
  return shown.length === 0 ? '?' : shown.map(([name, cores]) => `${name} ${cores.toFixed(2)}`).join(', ');
}

class InvalidBenchmarkError extends Error {}

function assertValid(label: string, report: LoadReport): void {
  const failed = failures(report);
  if (report.successes === 0 || failed > ERRORS_ALLOWED) {
    throw new InvalidBenchmarkError(
      [
        `INVALID BENCHMARK: ${label} had ${failed} failed responses and ${report.successes} successes (allowed failures: ${ERRORS_ALLOWED})`,
        `  verdicts: ${JSON.stringify(report.verdicts)}, non-2xx: ${report.non2xx}, socket errors: ${report.socketErrors}, timeouts: ${report.timeouts}`,
        ...report.failureSamples.map((s) => `  sample: ${s}`),
      ].join('\n'),
    );
  }
}

function batchConnections(transfersPerBatch: number): number {
  return BATCH_CONNECTIONS_OVERRIDE ?? (transfersPerBatch >= 1000 ? 4 : 8);
}

async function startLedger(label: string, secret: string, nodeFlags: string[] = []): Promise<ServerProcess> {
  const dataDir = makeTempDir(label);
  return startServer(
    label,
    LEDGER_ENTRY,
    {
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      LEDGER_DATA_DIR: join(dataDir, 'data'),
      LEDGER_JWT_SECRET: secret,
      LEDGER_NODE_ID: 'bench-1',
      EVENTSTORE_URL: '',
      MONGODB_URL: '',
    },
    nodeFlags,
  );
}

async function withServer<T>(server: ServerProcess, body: (server: ServerProcess) => Promise<T>): Promise<T> {
  try {
    return await body(server);
  } catch (error) {
    printServerOutput(server);
    throw error;
  } finally {
    await server.stop();
  }
}

/** What a server printed last, for a run that failed. */
function printServerOutput(server: ServerProcess): void {
  const output = server.output().trim();
  if (output) console.error(`\n--- ${server.name} output (last ${OUTPUT_KEPT_BYTES / 1024} KiB) ---\n${output}\n---`);
}

interface ProfileRun {
  label: string;
  /** One summary per thread that did real work. */
  threads: Array<{ thread: string; summary: ProfileSummary }>;
  figures: RunFigures;
}

async function profileLedger(secret: string, token: string, workload: Workload, connections: number, label: string): Promise<ProfileRun> {
  const name = `ledger-${workload.kind === 'transfer' ? 'transfer' : `batch${workload.transfersPerBatch}`}`;
  return profileServer(name, label, (flags) => startLedger(`${name}-profiled`, secret, flags), async (server) => {
    await openAccounts(server.origin, token, ACCOUNTS);
    const figures = await measure(label, 'ledger', server, token, workload, connections);
    await waitForReadModels(server.origin, token);
    return figures;
  });
}

/** The guarded ceiling under the same single-transfer load: what the ledger's own profile is compared with. */
async function profileGuarded(secret: string, token: string): Promise<ProfileRun> {
  const label = 'profiled guarded transfer';
  return profileServer(
    'guarded-transfer',
    label,
    (flags) => startServer('ceiling-guarded-profiled', 'bench/ceiling-guarded.ts', { NODE_ENV: 'production', LEDGER_JWT_SECRET: secret }, flags),
    (server) => measure(label, 'guarded', server, token, { kind: 'transfer' }, CONNECTIONS),
  );
}

async function profileServer(
  name: string,
  label: string,
  start: (nodeFlags: string[]) => Promise<ServerProcess>,
  run: (server: ServerProcess) => Promise<RunFigures>,
): Promise<ProfileRun> {
  // One folder per run: every thread writes a profile (tsx's module loader runs in a thread of its own).
  const profileDir = PROFILE_DIR ? join(PROFILE_DIR, name) : makeTempDir(`profile-${name}`);
  rmSync(profileDir, { recursive: true, force: true });
  mkdirSync(profileDir, { recursive: true });
  const server = await start(['--cpu-prof', `--cpu-prof-dir=${profileDir}`]);
  let figures: RunFigures | undefined;
  await withServer(server, async () => {
    figures = await run(server);
    if (!(await server.stop())) throw new Error(`${server.name} did not stop cleanly, so it wrote no profile:\n${server.output()}`);
  });
  const files = readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) throw new Error(`no profile written to ${profileDir}`);
  // One profile per thread: CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile, thread 0 being the main
  // thread. Keep those that did real work (tsx's module-loader thread is busy for well under 3 s, at start-up).
  const threads = files.map((file) => {
    const summary = summarizeCpuProfile(join(profileDir, file), 20);
    const thread = Number(file.split('.')[4]);
    return { thread: thread === 0 ? 'main thread' : `worker thread ${thread}`, summary, busyMs: summary.totalMs * (1 - summary.idlePercent / 100) };
  });
  const busiestMs = Math.max(...threads.map((t) => t.busyMs));
  const kept = threads.filter((t) => t.busyMs >= Math.min(busiestMs * 0.2, 3000)).sort((a, b) => (a.thread < b.thread ? -1 : 1));
  return { label, threads: kept.map(({ thread, summary }) => ({ thread, summary })), figures: figures! };
}

// ---- report -------------------------------------------------------------------------------


interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  freeMemoryGiB: number;
  node: string;
  os: string;
}

function describeMachine(): Machine {
  const list = cpus();
  return {
    cpus: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    freeMemoryGiB: Math.round((freemem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: `${platform()} ${release()}`,
  };
}

function commandLine(): string {
  const settings = [
    'BENCH_SECONDS',
    'BENCH_WARMUP_SECONDS',
    'BENCH_CONNECTIONS',
    'BENCH_BATCH_CONNECTIONS',
    'BENCH_ACCOUNTS',
    'BENCH_ROUNDS',
    'BENCH_SUSTAINED_SECONDS',
    'BENCH_PROFILE',
    'BENCH_ERRORS_ALLOWED',
    'BENCH_LEDGER_ENTRY',
  ]
    .filter((name) => process.env[name])
    .map((name) => `${name}=${process.env[name]}`);
  return [...settings, 'npm run bench'].join(' ');
}

const GENERATED_BEGIN = '<!-- BEGIN GENERATED by `npm run bench`: everything up to the END marker is overwritten -->';
const GENERATED_END = '<!-- END GENERATED -->';
const DEFAULT_HEADER = `# Benchmark results

Generated by \`npm run bench\` (bench/run.ts); the method is described in bench/run.ts.
`;

function writeResults(markdown: string): void {
  if (!RESULTS_PATH) return;
  const section = `${GENERATED_BEGIN}\n${markdown.trim()}\n${GENERATED_END}`;
  const existing = existsSync(RESULTS_PATH) ? readFileSync(RESULTS_PATH, 'utf8') : `${DEFAULT_HEADER}\n${GENERATED_BEGIN}\n${GENERATED_END}\n`;
  const begin = existing.indexOf(GENERATED_BEGIN);
  const end = existing.indexOf(GENERATED_END);
  const next =
    begin >= 0 && end > begin ? existing.slice(0, begin) + section + existing.slice(end + GENERATED_END.length) : `${existing.trimEnd()}\n\n${section}\n`;
  writeFileSync(RESULTS_PATH, next);
}

// ---- main ---------------------------------------------------------------------------------

interface SingleRound {
  round: number;
  bare: RunFigures;
  guarded: RunFigures;
  single: RunFigures;
}

/** A ledger run, then the wait for its read models to catch up (so that its backlog does not slow the next run). */
async function ledgerRun(server: ServerProcess, token: string, label: string, workload: Workload, connections: number, seconds: number): Promise<RunFigures> {
  const figures = await measure(label, 'ledger', server, token, workload, connections, seconds);
  figures.readModelCatchUpMs = await waitForReadModels(server.origin, token);
  figures.sustainedTransfersPerSecond =
    (figures.transfersPerSecond * figures.report.durationSeconds) / (figures.report.durationSeconds + figures.readModelCatchUpMs / 1000);
  console.log(`    read models caught up ${fmt(figures.readModelCatchUpMs)} ms after the run`);
  return figures;
}

/** The run with the median requests/s (the lower middle one of an even number). */
function medianRun(runs: RunFigures[]): RunFigures {
  const sorted = [...runs].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond);
  return sorted[(sorted.length - 1) >> 1]!;
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const machine = describeMachine();
  const loadAverageBefore = loadavg()[0] ?? 0;
  const secret = randomBytes(32).toString('base64url');
  const token = await mintToken(new TextEncoder().encode(secret), { sub: 'bench', roles: ['teller'] }, '2h');
  lagToken = await mintToken(new TextEncoder().encode(secret), { sub: 'bench-lag', roles: ['analyst'] }, '2h');
  const transfer: Workload = { kind: 'transfer' };
  const batch100: Workload = { kind: 'batch', transfersPerBatch: 100 };
  const batch1000: Workload = { kind: 'batch', transfersPerBatch: 1000 };

  console.log(
    `ledger benchmark (load average ${loadAverageBefore.toFixed(2)}): ${SECONDS} s per run (+${WARMUP_SECONDS} s warm-up), ${CONNECTIONS} connections for single transfers, ` +
      `${ACCOUNTS} accounts; ${machine.cpus} CPUs (${machine.cpuModel}), ${machine.memoryGiB} GiB, Node ${machine.node}`,
  );

  // The three servers run side by side (an idle one costs nothing) and the single-transfer runs take
  // turns, bare, guarded, ledger, ROUNDS times: the machine's speed drifts by more than the effects
  // measured (bare 2,380-3,540 req/s between consecutive runs), so each round's ratios are taken
  // between runs minutes apart, and the verdicts use their median.
  const bareServer = await startServer('ceiling-bare', 'bench/ceiling-bare.ts', { NODE_ENV: 'production' });
  const guardedServer = await startServer('ceiling-guarded', 'bench/ceiling-guarded.ts', { NODE_ENV: 'production', LEDGER_JWT_SECRET: secret });
  const ledgerServer = await startLedger('ledger', secret);
  const rounds: SingleRound[] = [];
  const ledgerBatchRuns: RunFigures[] = [];
  try {
    const opened = Date.now();
    await openAccounts(ledgerServer.origin, token, ACCOUNTS);
    console.log(`ledger (${LEDGER_ENTRY}, NODE_ENV=production, embedded stores in a temp folder): opened ${fmt(ACCOUNTS)} accounts in ${Date.now() - opened} ms`);
    for (let round = 1; round <= ROUNDS; round += 1) {
      console.log(`single transfers, round ${round} of ${ROUNDS}: (a) bare graphql-yoga + Pothos, (b) the same behind the ledger's JWT verification and request limits, the ledger:`);
      const bare = await measure('bare transfer', 'bare', bareServer, null, transfer, CONNECTIONS);
      const guarded = await measure('guarded transfer', 'guarded', guardedServer, token, transfer, CONNECTIONS);
      const single = await ledgerRun(ledgerServer, token, 'ledger transfer', transfer, CONNECTIONS, SECONDS);
      rounds.push({ round, bare, guarded, single });
    }
    // The ceilings are done: stopped now rather than in finally, so they hold nothing during the batches.
    await Promise.all([bareServer.stop(), guardedServer.stop()]);
    console.log('batches on the ledger:');
    const plan: Array<[string, Workload, number, number]> = [
      ['ledger batch of 100', batch100, batchConnections(100), SECONDS],
      ['ledger batch of 1,000', batch1000, batchConnections(1000), SECONDS],
      ...(SUSTAINED_SECONDS > 0 ? [['ledger batch of 1,000, sustained', batch1000, batchConnections(1000), SUSTAINED_SECONDS] as [string, Workload, number, number]] : []),
    ];
    for (const [label, workload, connections, seconds] of plan) ledgerBatchRuns.push(await ledgerRun(ledgerServer, token, label, workload, connections, seconds));
  } catch (error) {
    for (const server of [bareServer, guardedServer, ledgerServer]) printServerOutput(server);
    throw error;
  } finally {
    await Promise.all([bareServer.stop(), guardedServer.stop(), ledgerServer.stop()]);
  }
  // The rows reported for bare, guarded and single are real runs: the median of each across rounds.
  const bare = medianRun(rounds.map((r) => r.bare));
  const guarded = medianRun(rounds.map((r) => r.guarded));
  const single = medianRun(rounds.map((r) => r.single));
  const [b100, b1000, sustained] = ledgerBatchRuns as [RunFigures, RunFigures, RunFigures | undefined];

  const profiles: ProfileRun[] = [];
  if (PROFILE) {
    console.log('profiling the ledger (node --cpu-prof; figures of profiled runs are not the results):');
    profiles.push(await profileGuarded(secret, token));
    profiles.push(await profileLedger(secret, token, transfer, CONNECTIONS, 'profiled ledger transfer'));
    profiles.push(await profileLedger(secret, token, batch1000, batchConnections(1000), 'profiled ledger batch of 1,000'));
  }

  // ---- figures, targets, report ----
  // Per round, then the median: each ratio between runs of the same few minutes.
  const vsBare = median(rounds.map((r) => r.single.requestsPerSecond / r.bare.requestsPerSecond));
  const vsGuarded = median(rounds.map((r) => r.single.requestsPerSecond / r.guarded.requestsPerSecond));
  // The same ratios per CPU-second of each server: what the ratio would be with a core to itself.
  const perCpu = (a: RunFigures, b: RunFigures) =>
    a.requestsPerServerCpuSecond !== null && b.requestsPerServerCpuSecond !== null ? a.requestsPerServerCpuSecond / b.requestsPerServerCpuSecond : null;
  const medianOrNull = (values: Array<number | null>) => (values.every((v) => v !== null) ? median(values as number[]) : null);
  const vsBarePerCpu = medianOrNull(rounds.map((r) => perCpu(r.single, r.bare)));
  const vsGuardedPerCpu = medianOrNull(rounds.map((r) => perCpu(r.single, r.guarded)));
  const ratiosLine =
    `ledger/bare ${pct(vsBare)}, ledger/guarded ${pct(vsGuarded)}${rounds.length > 1 ? ` (medians of ${rounds.length} rounds)` : ''}` +
    (vsBarePerCpu !== null && vsGuardedPerCpu !== null ? ` (per server CPU-second: ${pct(vsBarePerCpu)} and ${pct(vsGuardedPerCpu)})` : '');
  const b1000VsBare = b1000.transfersPerSecond / bare.requestsPerSecond;
  const sustainedProjected = sustained?.projectedTransfersPerSecond ?? null;
  const sustainedVsBare = sustainedProjected === null ? null : sustainedProjected / bare.requestsPerSecond;
  const sustainedVsAcknowledged = sustainedProjected === null || !sustained ? null : sustainedProjected / sustained.transfersPerSecond;
  const targets = [
    { name: `ledger single transfer ≥ ${pct(TARGETS.singleVsBare)} of bare ceiling`, value: pct(vsBare), pass: vsBare >= TARGETS.singleVsBare },
    { name: `ledger single transfer ≥ ${pct(TARGETS.singleVsGuarded)} of guarded ceiling`, value: pct(vsGuarded), pass: vsGuarded >= TARGETS.singleVsGuarded },
    {
      name: `ledger batches of 1,000 acknowledged ≥ ${TARGETS.batch1000AcknowledgedVsBare}× the bare ceiling's requests/s (${SECONDS} s run)`,
      value: `${fmt(b1000.transfersPerSecond)} transfers/s = ${b1000VsBare.toFixed(2)}×`,
      pass: b1000VsBare >= TARGETS.batch1000AcknowledgedVsBare,
    },
    ...(sustained && sustainedVsBare !== null && sustainedVsAcknowledged !== null
      ? [
          {
            name: `sustained batches of 1,000 (${SUSTAINED_SECONDS} s) with the read models current ≥ ${TARGETS.sustainedProjectedVsBare}× bare (projected transfers/s)`,
            value: `${fmt(sustainedProjected!)} transfers/s = ${sustainedVsBare.toFixed(2)}×`,
            pass: sustainedVsBare >= TARGETS.sustainedProjectedVsBare,
          },
          {
            name: `sustained: projected within 10% of acknowledged`,
            value: `${fmt(sustainedProjected!)} of ${fmt(sustained.transfersPerSecond)} = ${pct(sustainedVsAcknowledged)}; lag p50 ${fmt(sustained.lagMs?.p50 ?? 0)} ms, p99 ${fmt(sustained.lagMs?.p99 ?? 0)} ms, ${fmt(sustained.lagMs?.atEnd ?? 0)} ms at the end`,
            pass: sustainedVsAcknowledged >= TARGETS.sustainedProjectedVsAcknowledged,
          },
        ]
      : []),
    {
      name: `read-model lag p99 ≤ ${TARGETS.singleLagP99Ms} ms under single transfers`,
      value: `p99 ${fmt(single.lagMs?.p99 ?? NaN)} ms (p50 ${fmt(single.lagMs?.p50 ?? NaN)} ms, ${single.lagMs?.samples ?? 0} samples)`,
      pass: (single.lagMs?.p99 ?? Infinity) <= TARGETS.singleLagP99Ms,
    },
  ];

  const all = [bare, guarded, single, b100, b1000, ...(sustained ? [sustained] : [])];
  const tableRows = all.map((r) => {
    const perRequest = r.workload.kind === 'transfer' ? 1 : r.workload.transfersPerBatch;
    const cells = [
      r.label,
      String(perRequest),
      String(r.connections),
      fmt(r.requestsPerSecond),
      fmt(r.transfersPerSecond),
      fmt(r.report.latencyMs.p50),
      fmt(r.report.latencyMs.p99),
      fmt(r.report.successes),
      String(failures(r.report)),
      r.serverCores === null ? '?' : r.serverCores.toFixed(2),
      r.requestsPerServerCpuSecond === null ? '?' : fmt(r.requestsPerServerCpuSecond * perRequest),
      r.loadAverage.toFixed(2),
      r.readModelCatchUpMs === undefined ? '–' : fmt(r.readModelCatchUpMs),
      r.sustainedTransfersPerSecond === undefined ? '–' : fmt(r.sustainedTransfersPerSecond),
      r.projectedTransfersPerSecond === undefined ? '–' : fmt(r.projectedTransfersPerSecond),
      r.lagMs === undefined ? '–' : `${fmt(r.lagMs.p50)} / ${fmt(r.lagMs.p99)} / ${fmt(r.lagMs.atEnd)}`,
    ];
    return `| ${cells.join(' | ')} |`;
  });
  const table = [
    '| run | transfers per request | connections | requests/s | transfers/s | p50 ms | p99 ms | verified successes | failed | server CPU (cores) | transfers per server CPU-s | load avg (1 min) | read models caught up after (ms) | transfers/s incl. catch-up | projected transfers/s during the run | read-model lag ms p50 / p99 / at the end |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...tableRows,
  ].join('\n');

  console.log('\nresults (requests/s count verified successes only):');
  console.log(table);
  const roundsTable = [
    '| round | bare req/s | guarded req/s | ledger single transfers/s | ledger / bare | ledger / guarded | ledger p50 / p99 ms |',
    '|---:|---:|---:|---:|---:|---:|---:|',
    ...rounds.map(
      (r) =>
        `| ${r.round} | ${fmt(r.bare.requestsPerSecond)} | ${fmt(r.guarded.requestsPerSecond)} | ${fmt(r.single.requestsPerSecond)} | ` +
        `${pct(r.single.requestsPerSecond / r.bare.requestsPerSecond)} | ${pct(r.single.requestsPerSecond / r.guarded.requestsPerSecond)} | ` +
        `${fmt(r.single.report.latencyMs.p50)} / ${fmt(r.single.report.latencyMs.p99)} |`,
    ),
  ].join('\n');
  console.log(`\nsingle transfers by round (the table above shows the median run of each):\n${roundsTable}`);
  console.log(`\nratios: ${ratiosLine}`);
  console.log('targets:');
  for (const t of targets) console.log(`  ${verdict(t.pass)}  ${t.name}: ${t.value}`);
  for (const p of profiles) {
    for (const t of p.threads) console.log(`\nprofile: ${p.label}, ${t.thread} (${fmt(p.figures.requestsPerSecond)} req/s while profiled)\n${formatSummary(t.summary)}`);
  }

  const finishedAt = new Date();
  const markdown = [
    `## Latest run: ${startedAt.toISOString()}`,
    '',
    `- Command: \`${commandLine()}\``,
    `- Machine: ${machine.cpus} CPUs (nproc; ${machine.cpuModel}), ${machine.memoryGiB} GiB memory, Node ${machine.node}, ${machine.os}`,
    `- Settings: ${SECONDS} s measured per run after ${WARMUP_SECONDS} s warm-up; ${ACCOUNTS} accounts opened with ${OPENING_BALANCE} minor units each; ` +
      `transfers of 1 to 999 minor units between random distinct accounts; batch runs use ${batchConnections(100)} connections (100 per batch) and ${batchConnections(1000)} (1,000 per batch)`,
    `- Took ${fmt((finishedAt.getTime() - startedAt.getTime()) / 1000)} s`,
    '',
    table,
    '',
    `Ratios: ${ratiosLine}.`,
    '',
    `Single transfers by round (bare, guarded and ledger measured in turn; the table above shows the median run of each, the ratios are the medians of the rounds' ratios, and the batch targets are ratios to the median bare run):`,
    '',
    roundsTable,
    '',
    'Server CPU by thread during each run (cores, from /proc/<pid>/task: the ledger\'s event-store and projection stages are ledger-events and ledger-proj, the WAL checkpoints ledger-ckpt; V8Worker is GC and compilation, libuv-worker fs calls):',
    '',
    ...all.map((r) => `- ${r.label}: ${formatThreadCores(r.threadCores)}`),
    '',
    `Load average (1 min) before the run: ${loadAverageBefore.toFixed(2)} on ${machine.cpus} CPUs` +
      (loadAverageBefore > machine.cpus / 2 ? ' — the machine was busy with other work, so absolute figures are low and noisy; the per-CPU-second figures are the steadier ones.' : '.'),
    '',
    '| target | measured | verdict |',
    '|---|---:|---|',
    ...targets.map((t) => `| ${t.name} | ${t.value} | **${verdict(t.pass)}** |`),
    ...profiles.flatMap((p) =>
      p.threads.flatMap((t) => [
        '',
        `### Profile: ${p.label}, ${t.thread} (${fmt(p.figures.requestsPerSecond)} req/s while profiled; the run, then the read models' catch-up, until the server stopped)`,
        '',
        '```',
        formatSummary(t.summary),
        '```',
      ]),
    ),
  ].join('\n');
  writeResults(markdown);
  if (RESULTS_PATH) console.log(`\nwrote ${RESULTS_PATH}`);

  const json = {
    date: startedAt.toISOString(),
    command: commandLine(),
    machine,
    settings: { seconds: SECONDS, warmupSeconds: WARMUP_SECONDS, connections: CONNECTIONS, accounts: ACCOUNTS },
    runs: Object.fromEntries(
      all.map((r) => [
        r.label,
        {
          connections: r.connections,
          transfersPerRequest: r.workload.kind === 'transfer' ? 1 : r.workload.transfersPerBatch,
          requestsPerSecond: Math.round(r.requestsPerSecond),
          transfersPerSecond: Math.round(r.transfersPerSecond),
          p50Ms: r.report.latencyMs.p50,
          p99Ms: r.report.latencyMs.p99,
          successes: r.report.successes,
          failed: failures(r.report),
          serverCores: r.serverCores === null ? null : Number(r.serverCores.toFixed(3)),
          loadAverage: Number(r.loadAverage.toFixed(2)),
          ...(r.readModelCatchUpMs === undefined ? {} : { readModelCatchUpMs: r.readModelCatchUpMs }),
          ...(r.sustainedTransfersPerSecond === undefined ? {} : { sustainedTransfersPerSecond: Math.round(r.sustainedTransfersPerSecond) }),
          ...(r.projectedTransfersPerSecond === undefined ? {} : { projectedTransfersPerSecond: Math.round(r.projectedTransfersPerSecond) }),
          ...(r.lagMs === undefined ? {} : { readModelLagMs: r.lagMs }),
        },
      ]),
    ),
    ratios: {
      ledgerVsBare: Number(vsBare.toFixed(4)),
      ledgerVsGuarded: Number(vsGuarded.toFixed(4)),
      ledgerVsBarePerServerCpu: vsBarePerCpu === null ? null : Number(vsBarePerCpu.toFixed(4)),
      ledgerVsGuardedPerServerCpu: vsGuardedPerCpu === null ? null : Number(vsGuardedPerCpu.toFixed(4)),
    },
    loadAverageBefore: Number(loadAverageBefore.toFixed(2)),
    targets: targets.map((t) => ({ name: t.name, value: t.value, pass: t.pass })),
  };
  console.log(JSON.stringify(json));

  // The 3-replica cluster (bench/cluster.ts, also `npm run bench:cluster`): its targets are ratios of this run's figures.
  if (process.env.BENCH_CLUSTER !== '0' && LEDGER_ENTRY === 'src/main.ts') {
    await runClusterBench({ bareRequestsPerSecond: bare.requestsPerSecond, singleNodeTransfersPerSecond: single.transfersPerSecond, command: commandLine() });
  }

  // The rebuild rate of the embedded read models (bench/rebuild.ts, also `npm run bench:rebuild`).
  if (process.env.BENCH_REBUILD !== '0') execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'rebuild.ts')], { cwd: ROOT, stdio: 'inherit' });
  // The live feeds' fan-out (bench/feeds.ts, also `npm run bench:feeds`; its BENCH_FEEDS_* settings pass through).
  if (process.env.BENCH_FEEDS !== '0') execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'feeds.ts')], { cwd: ROOT, stdio: 'inherit' });
}

main().then(
  () => {
    killEverythingNow();
    process.exit(0);
  },
  (error: unknown) => {
    console.error(`\nbench: ${error instanceof InvalidBenchmarkError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    killEverythingNow();
    process.exit(1);
  },
);
