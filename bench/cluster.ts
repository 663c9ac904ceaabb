/**
 * The 3-replica cluster section of the benchmark: `npm run bench:cluster` on its own, or the last
 * ledger section of `npm run bench` (bench/run.ts calls runClusterBench with its own figures;
 * BENCH_CLUSTER=0 skips it there).
 *
 * Three Raft replicas run as child processes, started as `npm run cluster` starts them
 * (`node --import tsx src/main.ts`, environment from planCluster) but on free ports, with generated
 * secrets and fresh data folders in a temp folder. Measured:
 *   - single transfers, load on the leader, then spread evenly over the three replicas (the followers
 *     forward to the leader);
 *   - executeBatch of 1,000 transfers on the leader;
 *   - failover: SIGKILL the leader; an open-loop probe sends one transfer every BENCH_FAILOVER_PROBE_MS
 *     to the survivors in turn (each request with its own timeout, never waiting for the previous);
 *     the failover time is from the kill to the first TransferSuccess of a request sent after the
 *     kill. The killed replica is restarted on its data and the next trial waits for it to answer
 *     /health with 200 (caught up, leader known) and for all three to agree on the leader.
 * Targets are ratios to figures of the same run: batched transfers/s ≥ 6× the bare ceiling's
 * requests/s; single transfers/s ≥ 40% of the single-node ledger's; failover p99 ≤ 1.5 s.
 *
 * Settings (environment), besides run.ts's BENCH_SECONDS, BENCH_WARMUP_SECONDS, BENCH_CONNECTIONS,
 * BENCH_ACCOUNTS, BENCH_ERRORS_ALLOWED and BENCH_RESULTS:
 *   BENCH_FAILOVER_TRIALS     leader kills (default 20; 0 skips failover)
 *   BENCH_FAILOVER_PROBE_MS   the probe's interval between transfers (default 10)
 *   BENCH_CLUSTER_PROFILE=1   (or BENCH_PROFILE=1) afterwards, a fresh cluster with `node --cpu-prof` on every replica
 *                             under single transfers to the leader; the leader's busy threads are summarized.
 *                             BENCH_CLUSTER_PROFILE=spread: the load spread over the three, and a follower's
 *                             busy threads summarized too
 */
import { type ChildProcess, execFileSync, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { mintToken } from '../src/api/auth';
import { CLUSTER_HOST, type ReplicaPlan, planCluster } from '../src/scripts/cluster-plan';
import { seededRandom } from '../test/support/seeded-random';
import { ACCOUNT_PREFIX, cpuSecondsOf, failures, fmt, freePort, graphql, intFromEnv, killEverythingNow, makeTempDir, openAccounts, pct, track, verdict, waitForExit } from './common';
import { formatSummary, summarizeCpuProfile, type ProfileSummary } from './cpu-profile-summary';
import type { LoadMessage, LoadReport, LoadRequest } from './load';
import { OPEN_ACCOUNTS_DOCUMENT, TRANSFER_DOCUMENT, type Workload, type WorkloadSpec, accountId } from './workload';

const ROOT = resolve(__dirname, '..');


const SECONDS = intFromEnv('BENCH_SECONDS', 10, 1);
const WARMUP_SECONDS = intFromEnv('BENCH_WARMUP_SECONDS', Math.min(3, SECONDS), 0);
const CONNECTIONS = intFromEnv('BENCH_CONNECTIONS', 50, 3);
const BATCH_CONNECTIONS = 4;
const ACCOUNTS = intFromEnv('BENCH_ACCOUNTS', 1000, 2);
const ERRORS_ALLOWED = intFromEnv('BENCH_ERRORS_ALLOWED', 0, 0);
const FAILOVER_TRIALS = intFromEnv('BENCH_FAILOVER_TRIALS', 20, 0);
const PROBE_INTERVAL_MS = intFromEnv('BENCH_FAILOVER_PROBE_MS', 10, 1);
const PROFILE_SETTING = process.env.BENCH_CLUSTER_PROFILE ?? process.env.BENCH_PROFILE ?? '';
const PROFILE = ['1', 'true', 'spread'].includes(PROFILE_SETTING);
const PROFILE_SPREAD = PROFILE_SETTING === 'spread';
const RESULTS_PATH = process.env.BENCH_RESULTS === '-' ? null : resolve(process.env.BENCH_RESULTS ?? join(ROOT, 'bench', 'RESULTS.md'));

export const CLUSTER_TARGETS = { batchedVsBare: 6, singleVsSingleNode: 0.4, failoverP99Ms: 1500 } as const;

/** A probe request's own timeout: a follower holds a proposal forwarded to a dead leader up to 10 s. */
const PROBE_REQUEST_TIMEOUT_MS = 5_000;
/** A trial with no acknowledged write this long after the kill is a failed trial. */
const FAILOVER_WAIT_MS_MAX = 30_000;
const HEALTH_WAIT_MS_MAX = 120_000;
const PROBES_IN_FLIGHT_MAX = 1_000;
const OUTPUT_KEPT_BYTES = 64 * 1024;

// ---- child processes and cleanup -----------------------------------------------------------





const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));
const isRunning = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;



/** Free ports, never handed out twice (see test/support/free-port.ts). */
async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) ports.push(await freePort());
  return ports;
}

interface ServerProcess {
  name: string;
  child: ChildProcess;
  origin: string;
  output(): string;
  stop(): Promise<boolean>;
}

const RUNTIME_FLAGS = process.execArgv.filter((flag) => flag.startsWith('--harmony'));

function spawnServer(name: string, script: string, env: NodeJS.ProcessEnv, origin: string, nodeFlags: string[] = []): ServerProcess {
  const child = track(
    spawn(process.execPath, [...RUNTIME_FLAGS, ...nodeFlags, '--require', './bench/orphan-guard.cjs', '--import', 'tsx', script], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_KEPT_BYTES);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return {
    name,
    child,
    origin,
    output: () => output,
    async stop() {
      if (!isRunning(child)) return false;
      child.kill('SIGTERM');
      if (await waitForExit(child, 30_000)) return child.exitCode === 0;
      child.kill('SIGKILL');
      await waitForExit(child, 5_000);
      return false;
    },
  };
}

interface Health {
  ready: boolean;
  nodeId: string;
  role: string;
  leaderId: string | null;
  term: number;
  appliedIndex: number;
  commitIndex: number;
}

async function health(origin: string): Promise<{ status: number; body: Health } | null> {
  try {
    const response = await fetch(`${origin}/health`, { signal: AbortSignal.timeout(1_000) });
    const text = await response.text();
    // The ceilings answer /health with no JSON body.
    let body: Health;
    try {
      body = JSON.parse(text) as Health;
    } catch {
      body = { ready: response.ok, nodeId: '', role: '', leaderId: null, term: 0, appliedIndex: 0, commitIndex: 0 };
    }
    return { status: response.status, body };
  } catch {
    return null;
  }
}

async function waitHealthy(server: ServerProcess, deadlineMs: number): Promise<void> {
  for (;;) {
    if (!isRunning(server.child)) throw new Error(`${server.name} exited (${server.child.exitCode ?? server.child.signalCode}) before it was ready:\n${server.output()}`);
    if ((await health(server.origin))?.status === 200) return;
    if (Date.now() > deadlineMs) throw new Error(`${server.name} did not answer GET /health with 200 in time:\n${server.output()}`);
    await sleep(50);
  }
}



// ---- the cluster --------------------------------------------------------------------------

/**
 * planCluster's plan (node-1..3, one data folder each, secrets, inherited environment) moved to the
 * given ports, so that the bench never collides with an `npm run cluster` on 4001-4003 / 7101-7103.
 */
export function onPorts(plans: ReplicaPlan[], httpPorts: number[], raftPorts: number[]): ReplicaPlan[] {
  if (httpPorts.length !== plans.length || raftPorts.length !== plans.length) throw new Error('one HTTP and one Raft port per replica');
  const peers = plans.map((p, i) => `${p.nodeId}=${CLUSTER_HOST}:${raftPorts[i]}`).join(',');
  return plans.map((p, i) => ({
    ...p,
    httpPort: httpPorts[i]!,
    raftPort: raftPorts[i]!,
    graphqlUrl: `http://${CLUSTER_HOST}:${httpPorts[i]}/graphql`,
    healthUrl: `http://${CLUSTER_HOST}:${httpPorts[i]}/health`,
    env: { ...p.env, PORT: String(httpPorts[i]), LEDGER_RAFT_PORT: String(raftPorts[i]), LEDGER_PEERS: peers },
  }));
}

interface Replica {
  plan: ReplicaPlan;
  origin: string;
  server: ServerProcess;
  /** Node flags of every start (e.g. --cpu-prof). */
  nodeFlags: string[];
}

interface Cluster {
  replicas: Replica[];
  jwtSecret: string;
  start(replica: Replica): void;
  stop(): Promise<void>;
}

async function startCluster(label: string, nodeFlagsOf: (nodeId: string) => string[] = () => []): Promise<Cluster> {
  const dataRoot = join(makeTempDir(label), 'cluster');
  const jwtSecret = randomBytes(48).toString('base64url');
  const clusterSecret = randomBytes(48).toString('base64url');
  const base = planCluster({
    dataRoot,
    jwtSecret,
    clusterSecret,
    baseEnv: { ...process.env, NODE_ENV: 'production', LOG_LEVEL: 'warn' },
  });
  const ports = await freePorts(base.replicas.length * 2);
  const plans = onPorts(base.replicas, ports.slice(0, base.replicas.length), ports.slice(base.replicas.length));
  const replicas: Replica[] = plans.map((plan) => ({
    plan,
    origin: `http://${CLUSTER_HOST}:${plan.httpPort}`,
    nodeFlags: nodeFlagsOf(plan.nodeId),
    server: undefined as unknown as ServerProcess,
  }));
  const start = (replica: Replica) => {
    replica.server = spawnServer(replica.plan.nodeId, 'src/main.ts', replica.plan.env, replica.origin, replica.nodeFlags);
  };
  replicas.forEach(start);
  const cluster: Cluster = {
    replicas,
    jwtSecret,
    start,
    async stop() {
      await Promise.all(replicas.map((r) => r.server.stop()));
    },
  };
  try {
    const deadline = Date.now() + HEALTH_WAIT_MS_MAX;
    await Promise.all(replicas.map((r) => waitHealthy(r.server, deadline)));
  } catch (error) {
    dumpOutputs(cluster);
    await cluster.stop();
    throw error;
  }
  return cluster;
}

function dumpOutputs(cluster: Cluster): void {
  for (const r of cluster.replicas) {
    const output = r.server.output().trim();
    if (output) console.error(`\n--- ${r.plan.nodeId} output (last ${OUTPUT_KEPT_BYTES / 1024} KiB) ---\n${output}\n---`);
  }
}

/** The leader all the given replicas agree on (each ready, the same leaderId, that one LEADER). */
async function waitForAgreedLeader(replicas: Replica[], deadlineMs: number): Promise<{ leader: Replica; term: number }> {
  let last = '';
  for (;;) {
    const healths = await Promise.all(replicas.map((r) => health(r.origin)));
    last = JSON.stringify(healths.map((h) => h && { status: h.status, role: h.body.role, leaderId: h.body.leaderId, term: h.body.term }));
    const leaderIds = new Set(healths.map((h) => (h?.status === 200 ? h.body.leaderId : null)));
    if (leaderIds.size === 1) {
      const leaderId = [...leaderIds][0];
      const index = replicas.findIndex((r) => r.plan.nodeId === leaderId);
      if (leaderId && index >= 0 && healths[index]!.body.role.toUpperCase() === 'LEADER') return { leader: replicas[index]!, term: healths[index]!.body.term };
    }
    if (Date.now() > deadlineMs) throw new Error(`the replicas did not agree on a leader in time; last /health: ${last}`);
    await sleep(50);
  }
}

// ---- GraphQL from this process --------------------------------------------------------------



/**
 * One more transfer (through the first origin), then a read of it with atLeast on every origin:
 * returns when every given server's read models have caught up, so that one run's projection backlog
 * does not slow the next.
 */
async function waitForReadModels(origins: string[], token: string): Promise<number> {
  const started = Date.now();
  const data = await graphql(origins[0]!, token, TRANSFER_DOCUMENT, {
    input: { fromAccountId: accountId(ACCOUNT_PREFIX, 0), toAccountId: accountId(ACCOUNT_PREFIX, 1), amount: '1' },
  });
  const transfer = data.transfer as { __typename: string; position?: string; transaction?: { id: string } };
  if (transfer.__typename !== 'TransferSuccess') throw new Error(`settling transfer failed: ${JSON.stringify(transfer)}`);
  const deadline = started + 300_000;
  for (const origin of origins) {
    for (;;) {
      try {
        await graphql(origin, token, 'query Caught($id: ID!, $at: Position) { transaction(id: $id, atLeast: $at) { id } }', {
          id: transfer.transaction!.id,
          at: transfer.position,
        });
        break;
      } catch (error) {
        if (!String(error).includes('POSITION_NOT_REACHED') || Date.now() > deadline) throw error;
      }
    }
  }
  return Date.now() - started;
}

// ---- load runs ------------------------------------------------------------------------------

let seed = 4242;

function specFor(workload: Workload): WorkloadSpec {
  const bodyCount = workload.kind === 'transfer' ? 4096 : 32;
  return { workload, accountIdPrefix: ACCOUNT_PREFIX, accountCount: ACCOUNTS, bodyCount, seed: seed++ };
}


async function runLoad(request: LoadRequest, pids: Array<number | undefined>): Promise<{ report: LoadReport; cores: Array<number | null> }> {
  const child = track(fork(join(ROOT, 'bench', 'load.ts'), [], { cwd: ROOT, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  let started: { atMs: number; cpu: Array<number | null> } | null = null;
  const answer = new Promise<{ report: LoadReport; cores: Array<number | null> }>((done, reject) => {
    child.on('message', (message) => {
      const m = message as LoadMessage;
      if (m.type === 'started') {
        started = { atMs: performance.now(), cpu: pids.map(cpuSecondsOf) };
      } else if (m.type === 'report') {
        const s = started as { atMs: number; cpu: Array<number | null> } | null;
        const seconds = s ? (performance.now() - s.atMs) / 1000 : 0;
        const cores = pids.map((pid, i) => {
          const now = cpuSecondsOf(pid);
          const before = s?.cpu[i] ?? null;
          return now !== null && before !== null && seconds > 0 ? (now - before) / seconds : null;
        });
        done({ report: m.report, cores });
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

export interface ClusterRun {
  label: string;
  workload: Workload;
  connections: number;
  report: LoadReport;
  requestsPerSecond: number;
  transfersPerSecond: number;
  /** CPU of each replica during the run, in cores, in node-1..3 order. */
  replicaCores: Array<number | null>;
  loadAverage: number;
  /** Failed responses over the allowance: the figures are not valid. */
  invalid: string | null;
  readModelCatchUpMs?: number;
  /** Cluster runs: every leader (term) the replicas' /health named during the run, polled every 250 ms. */
  leadersSeen?: string[];
}

/** Polls every replica's /health until stopped: which leaders and terms the run saw (an election under load shows here). */
function watchLeadership(origins: string[]): () => Promise<string[]> {
  const seen = new Set<string>();
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const healths = await Promise.all(origins.map(health));
      for (const h of healths) if (h && h.body.nodeId) seen.add(`${h.body.leaderId ?? 'none'} (term ${h.body.term})`);
      await sleep(250);
    }
  })();
  return async () => {
    stopped = true;
    await loop;
    return [...seen].sort();
  };
}

async function measure(label: string, origins: string[], pids: Array<number | undefined>, token: string | null, workload: Workload, connections: number): Promise<ClusterRun> {
  const perRequest = workload.kind === 'transfer' ? 1 : workload.transfersPerBatch;
  const thoroughEvery = workload.kind === 'transfer' ? 97 : 7;
  const request = (durationSeconds: number): LoadRequest => ({ origin: origins[0]!, origins, token, spec: specFor(workload), connections, durationSeconds, thoroughEvery });
  if (WARMUP_SECONDS > 0) {
    process.stdout.write(`  ${label}: warming up ${WARMUP_SECONDS} s ... `);
    await runLoad(request(WARMUP_SECONDS), pids);
    process.stdout.write(`measuring ${SECONDS} s ... `);
  } else {
    process.stdout.write(`  ${label}: measuring ${SECONDS} s ... `);
  }
  const { report, cores } = await runLoad(request(SECONDS), pids);
  const failed = failures(report);
  const invalid =
    report.successes === 0 || failed > ERRORS_ALLOWED
      ? [
          `INVALID: ${failed} failed responses and ${report.successes} successes (allowed failures: ${ERRORS_ALLOWED})`,
          `verdicts ${JSON.stringify(report.verdicts)}, non-2xx ${report.non2xx}, socket errors ${report.socketErrors}, timeouts ${report.timeouts}`,
          ...report.failureSamples.map((s) => `sample: ${s}`),
        ].join('; ')
      : null;
  const loadAverage = loadavg()[0] ?? 0;
  const rps = report.successesPerSecond;
  console.log(
    `${fmt(rps * perRequest)} transfers/s (${fmt(rps)} req/s), p50 ${fmt(report.latencyMs.p50)} ms, p99 ${fmt(report.latencyMs.p99)} ms, ` +
      `replica CPU ${cores.map((c) => (c === null ? '?' : c.toFixed(2))).join('/')} cores, load average ${loadAverage.toFixed(2)}`,
  );
  if (invalid) console.log(`    ${invalid}`);
  return { label, workload, connections, report, requestsPerSecond: rps, transfersPerSecond: rps * perRequest, replicaCores: cores, loadAverage, invalid };
}

// ---- failover -------------------------------------------------------------------------------

export interface FailoverTrial {
  trial: number;
  killedNodeId: string;
  oldTerm: number;
  /** From SIGKILL to the first acknowledged transfer sent after it; null if none came in time. */
  failoverMs: number | null;
  /** From SIGKILL to the first /health (polled every 20 ms on each survivor) naming itself leader in a newer term. */
  electedMs: number | null;
  newLeaderId: string | null;
  newTerm: number | null;
  /** Probe requests that failed (errors, timeouts) before the first success, by kind. */
  errorsBeforeAck: Record<string, number>;
  /** From the restart of the killed replica to its /health 200. */
  rejoinMs: number | null;
  note?: string;
}

function transferBody(random: () => number): string {
  const from = Math.floor(random() * ACCOUNTS);
  const to = (from + 1 + Math.floor(random() * (ACCOUNTS - 1))) % ACCOUNTS;
  return JSON.stringify({
    query: TRANSFER_DOCUMENT,
    operationName: 'Transfer',
    variables: { input: { fromAccountId: accountId(ACCOUNT_PREFIX, from), toAccountId: accountId(ACCOUNT_PREFIX, to), amount: String(1 + Math.floor(random() * 999)) } },
  });
}

/** One probe transfer: 'ok', or why it failed ('NO_LEADER', 'OUTCOME_UNKNOWN', 'timeout', 'refused', 'HTTP 503'…). */
async function probeTransfer(origin: string, token: string, body: string, signal: AbortSignal): Promise<string> {
  try {
    const response = await fetch(`${origin}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json;q=0.9', authorization: `Bearer ${token}` },
      body,
      signal: AbortSignal.any([signal, AbortSignal.timeout(PROBE_REQUEST_TIMEOUT_MS)]),
    });
    const text = await response.text();
    if (text.includes('"__typename":"TransferSuccess"')) return 'ok';
    const code = /"code":"([A-Z_]+)"/.exec(text)?.[1];
    return code ?? `HTTP ${response.status}`;
  } catch (error) {
    const name = (error as Error).name;
    if (name === 'TimeoutError') return 'timeout';
    if (name === 'AbortError') return 'aborted';
    return 'refused';
  }
}

async function failoverTrial(cluster: Cluster, token: string, trial: number, random: () => number): Promise<FailoverTrial> {
  const { leader, term: oldTerm } = await waitForAgreedLeader(cluster.replicas, Date.now() + HEALTH_WAIT_MS_MAX);
  const survivors = cluster.replicas.filter((r) => r !== leader);
  // Open the probe's connections to the survivors first, so that the trial measures the cluster, not a TCP handshake.
  for (const s of survivors) await probeTransfer(s.origin, token, transferBody(random), new AbortController().signal);

  const stopProbe = new AbortController();
  const errorsBeforeAck: Record<string, number> = {};
  let inFlight = 0;
  let sent = 0;
  const killedAt = performance.now();
  leader.server.child.kill('SIGKILL');
  // Beside the probe, when a survivor first says it leads: splits the failover into the election and the rest.
  let electedMs: number | null = null;
  const watchElection = (async () => {
    while (electedMs === null && !stopProbe.signal.aborted) {
      const healths = await Promise.all(survivors.map((r) => health(r.origin)));
      if (healths.some((h) => h?.body.role.toUpperCase() === 'LEADER' && h.body.term > oldTerm)) electedMs = performance.now() - killedAt;
      else await sleep(20);
    }
  })();
  const acked = await new Promise<number | null>((done) => {
    let finished = false;
    const finish = (value: number | null) => {
      if (finished) return;
      finished = true;
      clearInterval(timer);
      clearTimeout(giveUp);
      done(value);
    };
    const send = () => {
      if (inFlight >= PROBES_IN_FLIGHT_MAX) return;
      const target = survivors[sent++ % survivors.length]!;
      inFlight += 1;
      void probeTransfer(target.origin, token, transferBody(random), stopProbe.signal).then((outcome) => {
        inFlight -= 1;
        if (finished) return;
        if (outcome === 'ok') finish(performance.now() - killedAt);
        else errorsBeforeAck[outcome] = (errorsBeforeAck[outcome] ?? 0) + 1;
      });
    };
    const timer = setInterval(send, PROBE_INTERVAL_MS);
    const giveUp = setTimeout(() => finish(null), FAILOVER_WAIT_MS_MAX);
    send();
  });
  // The election is over before the first acknowledged write; give the watch its last poll.
  await Promise.race([watchElection, sleep(2_000)]);
  stopProbe.abort();

  let newLeaderId: string | null = null;
  let newTerm: number | null = null;
  let note: string | undefined;
  try {
    const agreed = await waitForAgreedLeader(survivors, Date.now() + 30_000);
    newLeaderId = agreed.leader.plan.nodeId;
    newTerm = agreed.term;
  } catch (error) {
    note = (error as Error).message;
  }
  await waitForExit(leader.server.child, 5_000);
  const restartedAt = performance.now();
  cluster.start(leader);
  let rejoinMs: number | null = null;
  try {
    await waitHealthy(leader.server, Date.now() + HEALTH_WAIT_MS_MAX);
    rejoinMs = performance.now() - restartedAt;
  } catch (error) {
    note = `${note ? `${note}; ` : ''}${(error as Error).message.split('\n')[0]}`;
  }
  return { trial, killedNodeId: leader.plan.nodeId, oldTerm, failoverMs: acked, electedMs, newLeaderId, newTerm, errorsBeforeAck, rejoinMs, note };
}

// ---- profile --------------------------------------------------------------------------------

interface ClusterProfile {
  leaderId: string;
  /** What the load went to: "the leader" or "the 3 replicas". */
  loadOn: string;
  figures: ClusterRun;
  /** `replica` is "leader node-2" or "follower node-1". */
  threads: Array<{ replica: string; thread: string; summary: ProfileSummary }>;
}

async function profileCluster(spread: boolean): Promise<ClusterProfile> {
  const profileRoot = makeTempDir('cluster-profile');
  const dirOf = (nodeId: string) => join(profileRoot, nodeId);
  const cluster = await startCluster('cluster-profiled', (nodeId) => {
    mkdirSync(dirOf(nodeId), { recursive: true });
    return ['--cpu-prof', `--cpu-prof-dir=${dirOf(nodeId)}`];
  });
  const token = await mintToken(new TextEncoder().encode(cluster.jwtSecret), { sub: 'bench', roles: ['teller'] }, '2h');
  let figures: ClusterRun;
  let leaderId: string;
  try {
    const { leader } = await waitForAgreedLeader(cluster.replicas, Date.now() + HEALTH_WAIT_MS_MAX);
    leaderId = leader.plan.nodeId;
    await openAccounts(leader.origin, token, ACCOUNTS);
    const origins = spread ? cluster.replicas.map((r) => r.origin) : [leader.origin];
    figures = await measure(`profiled: transfer, load on ${spread ? 'the 3 replicas' : 'the leader'}`, origins, cluster.replicas.map((r) => r.server.child.pid), token, { kind: 'transfer' }, CONNECTIONS);
    await waitForReadModels(cluster.replicas.map((r) => r.origin), token);
  } catch (error) {
    dumpOutputs(cluster);
    throw error;
  } finally {
    await cluster.stop();
  }
  const followerId = cluster.replicas.map((r) => r.plan.nodeId).find((id) => id !== leaderId)!;
  const summarized = [`leader ${leaderId}`, ...(spread ? [`follower ${followerId}`] : [])].flatMap((replica) => {
    const nodeId = replica.split(' ')[1]!;
    const files = readdirSync(dirOf(nodeId)).filter((f) => f.endsWith('.cpuprofile'));
    if (files.length === 0) throw new Error(`${replica} wrote no profile to ${dirOf(nodeId)}`);
    const threads = files.map((file) => {
      const summary = summarizeCpuProfile(join(dirOf(nodeId), file), 20);
      const thread = Number(file.split('.')[4]);
      return { replica, thread: thread === 0 ? 'main thread' : `worker thread ${thread}`, summary, busyMs: summary.totalMs * (1 - summary.idlePercent / 100) };
    });
    const busiestMs = Math.max(...threads.map((t) => t.busyMs));
    return threads.filter((t) => t.busyMs >= Math.min(busiestMs * 0.2, 3000)).sort((a, b) => (a.thread < b.thread ? -1 : 1));
  });
  return { leaderId, loadOn: spread ? 'the 3 replicas' : 'the leader', figures, threads: summarized.map(({ replica, thread, summary }) => ({ replica, thread, summary })) };
}

// ---- reference figures when run alone ----------------------------------------------------------

async function startSingleServer(name: string, script: string, env: NodeJS.ProcessEnv): Promise<ServerProcess> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const server = spawnServer(name, script, { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1' }, origin);
  try {
    await waitHealthy(server, Date.now() + 60_000);
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}

/** The bare ceiling's requests/s and the single-node ledger's single transfers/s, as bench/run.ts measures them. */
async function measureReferences(): Promise<{ bareRequestsPerSecond: number; singleNodeTransfersPerSecond: number }> {
  const transfer: Workload = { kind: 'transfer' };
  console.log('references (as npm run bench measures them):');
  const bare = await startSingleServer('ceiling-bare', 'bench/ceiling-bare.ts', { NODE_ENV: 'production' });
  let bareRun: ClusterRun;
  try {
    bareRun = await measure('bare ceiling transfer', [bare.origin], [bare.child.pid], null, transfer, CONNECTIONS);
  } finally {
    await bare.stop();
  }
  const secret = randomBytes(32).toString('base64url');
  const token = await mintToken(new TextEncoder().encode(secret), { sub: 'bench', roles: ['teller'] }, '2h');
  const ledger = await startSingleServer('ledger', 'src/main.ts', {
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    LEDGER_DATA_DIR: join(makeTempDir('ledger'), 'data'),
    LEDGER_JWT_SECRET: secret,
    LEDGER_NODE_ID: 'bench-1',
    EVENTSTORE_URL: '',
    MONGODB_URL: '',
  });
  let singleRun: ClusterRun;
  try {
    await openAccounts(ledger.origin, token, ACCOUNTS);
    singleRun = await measure('single-node ledger transfer', [ledger.origin], [ledger.child.pid], token, transfer, CONNECTIONS);
  } catch (error) {
    console.error(ledger.output());
    throw error;
  } finally {
    await ledger.stop();
  }
  if (bareRun.invalid || singleRun.invalid) throw new Error(`a reference run was invalid: ${bareRun.invalid ?? singleRun.invalid}`);
  return { bareRequestsPerSecond: bareRun.requestsPerSecond, singleNodeTransfersPerSecond: singleRun.transfersPerSecond };
}

// ---- report ---------------------------------------------------------------------------------


/** The value at quantile q of the sorted values (nearest rank). */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const SECTION_BEGIN = '<!-- BEGIN GENERATED by bench/cluster.ts (npm run bench:cluster, or npm run bench): everything up to the END marker is overwritten -->';
const SECTION_END = '<!-- END GENERATED cluster -->';
const SECTION_HEADING = '## 3-replica cluster';

function writeSection(markdown: string): void {
  if (!RESULTS_PATH) return;
  const section = `${SECTION_BEGIN}\n${markdown.trim()}\n${SECTION_END}`;
  const existing = existsSync(RESULTS_PATH) ? readFileSync(RESULTS_PATH, 'utf8') : '# Benchmark results\n';
  const begin = existing.indexOf(SECTION_BEGIN);
  const end = existing.indexOf(SECTION_END);
  let next: string;
  if (begin >= 0 && end > begin) next = existing.slice(0, begin) + section + existing.slice(end + SECTION_END.length);
  else if (existing.includes(`${SECTION_HEADING}\n`)) {
    const at = existing.indexOf(`${SECTION_HEADING}\n`) + SECTION_HEADING.length + 1;
    next = `${existing.slice(0, at)}\n${section}\n${existing.slice(at)}`;
  } else next = `${existing.trimEnd()}\n\n${SECTION_HEADING}\n\n${section}\n`;
  writeFileSync(RESULTS_PATH, next);
}

export interface ClusterBenchInput {
  /** From the same run of bench/run.ts; measured here when absent. */
  bareRequestsPerSecond?: number;
  singleNodeTransfersPerSecond?: number;
  /** The command that ran this, for the report. */
  command?: string;
}

export interface ClusterBenchResult {
  runs: ClusterRun[];
  failover: FailoverTrial[];
  targets: Array<{ name: string; value: string; pass: boolean }>;
}

export async function runClusterBench(input: ClusterBenchInput = {}): Promise<ClusterBenchResult> {
  const startedAt = new Date();
  const loadAverageBefore = loadavg()[0] ?? 0;
  console.log(
    `\n3-replica cluster benchmark (load average ${loadAverageBefore.toFixed(2)}, ${cpus().length} CPUs): ${SECONDS} s per run (+${WARMUP_SECONDS} s warm-up), ` +
      `${CONNECTIONS} connections for single transfers, ${BATCH_CONNECTIONS} for batches of 1,000, ${FAILOVER_TRIALS} failover trials`,
  );
  const references =
    input.bareRequestsPerSecond !== undefined && input.singleNodeTransfersPerSecond !== undefined
      ? { bareRequestsPerSecond: input.bareRequestsPerSecond, singleNodeTransfersPerSecond: input.singleNodeTransfersPerSecond, measuredHere: false }
      : { ...(await measureReferences()), measuredHere: true };

  console.log('cluster (3 replicas: node --import tsx src/main.ts, env from planCluster on free ports, NODE_ENV=production, embedded stores in a temp folder):');
  const cluster = await startCluster('cluster');
  const token = await mintToken(new TextEncoder().encode(cluster.jwtSecret), { sub: 'bench', roles: ['teller'] }, '2h');
  const runs: ClusterRun[] = [];
  const failover: FailoverTrial[] = [];
  let leaderId = '';
  try {
    const { leader, term } = await waitForAgreedLeader(cluster.replicas, Date.now() + HEALTH_WAIT_MS_MAX);
    leaderId = leader.plan.nodeId;
    console.log(`  leader ${leaderId} (term ${term}); opening ${fmt(ACCOUNTS)} accounts through it`);
    await openAccounts(leader.origin, token, ACCOUNTS);
    const all = cluster.replicas.map((r) => r.origin);
    const pids = () => cluster.replicas.map((r) => r.server.child.pid);
    const plan: Array<[string, string[], Workload, number]> = [
      ['cluster transfer, load on the leader', [leader.origin], { kind: 'transfer' }, CONNECTIONS],
      ['cluster transfer, load spread over the 3 replicas', all, { kind: 'transfer' }, CONNECTIONS],
      ['cluster batch of 1,000, load on the leader', [leader.origin], { kind: 'batch', transfersPerBatch: 1000 }, BATCH_CONNECTIONS],
    ];
    for (const [label, origins, workload, connections] of plan) {
      const stopWatching = watchLeadership(all);
      const run = await measure(label, origins, pids(), token, workload, connections);
      run.leadersSeen = await stopWatching();
      console.log(`    leader (term) named by the replicas during the run: ${run.leadersSeen.join(', ')}`);
      run.readModelCatchUpMs = await waitForReadModels([leader.origin, ...all.filter((o) => o !== leader.origin)], token);
      console.log(`    read models of all 3 replicas caught up ${fmt(run.readModelCatchUpMs)} ms after the run`);
      runs.push(run);
    }

    if (FAILOVER_TRIALS > 0) {
      console.log(`  failover: ${FAILOVER_TRIALS} trials (SIGKILL the leader, probe a transfer every ${PROBE_INTERVAL_MS} ms to the survivors, restart, wait for /health 200)`);
      const random = seededRandom(777);
      for (let trial = 1; trial <= FAILOVER_TRIALS; trial++) {
        const t = await failoverTrial(cluster, token, trial, random);
        failover.push(t);
        const errors = Object.entries(t.errorsBeforeAck).map(([k, v]) => `${k}×${v}`).join(' ') || 'none';
        console.log(
          `    trial ${String(trial).padStart(2)}: killed ${t.killedNodeId} (term ${t.oldTerm}) → ` +
            `${t.failoverMs === null ? 'NO ACKNOWLEDGED WRITE' : `first ack after ${fmt(t.failoverMs)} ms`} (a leader after ${t.electedMs === null ? '?' : fmt(t.electedMs)} ms), new leader ${t.newLeaderId ?? '?'} (term ${t.newTerm ?? '?'}); ` +
            `probe errors before: ${errors}; rejoined (/health 200) ${t.rejoinMs === null ? 'NOT' : `after ${fmt(t.rejoinMs)} ms`}${t.note ? `; ${t.note}` : ''}`,
        );
      }
    }
  } catch (error) {
    dumpOutputs(cluster);
    throw error;
  } finally {
    await cluster.stop();
  }

  const profile = PROFILE ? await profileCluster(PROFILE_SPREAD) : null;

  // ---- targets and report ----
  const [onLeader, spread, batch] = runs as [ClusterRun, ClusterRun, ClusterRun];
  const batchedRatio = batch.transfersPerSecond / references.bareRequestsPerSecond;
  const singleRatio = onLeader.transfersPerSecond / references.singleNodeTransfersPerSecond;
  const spreadRatio = spread.transfersPerSecond / references.singleNodeTransfersPerSecond;
  const failoverTimes = failover.map((t) => t.failoverMs).filter((ms): ms is number => ms !== null).sort((a, b) => a - b);
  const failedTrials = failover.filter((t) => t.failoverMs === null).length;
  const p50 = quantile(failoverTimes, 0.5);
  // A trial without an acknowledged write counts as infinitely slow.
  const p99 = failedTrials > 0 ? Number.POSITIVE_INFINITY : quantile(failoverTimes, 0.99);
  const invalidNote = (r: ClusterRun) => (r.invalid ? ' (INVALID run: failed responses)' : '');
  const targets = [
    {
      name: `cluster batches of 1,000 ≥ ${CLUSTER_TARGETS.batchedVsBare}× the bare ceiling's requests/s (${fmt(references.bareRequestsPerSecond)} → ${fmt(references.bareRequestsPerSecond * CLUSTER_TARGETS.batchedVsBare)} transfers/s)`,
      value: `${fmt(batch.transfersPerSecond)} transfers/s = ${batchedRatio.toFixed(2)}×${invalidNote(batch)}`,
      pass: !batch.invalid && batchedRatio >= CLUSTER_TARGETS.batchedVsBare,
    },
    {
      name: `cluster single transfer (load on the leader) ≥ ${pct(CLUSTER_TARGETS.singleVsSingleNode)} of the single node's (${fmt(references.singleNodeTransfersPerSecond)} transfers/s)`,
      value: `${fmt(onLeader.transfersPerSecond)} transfers/s = ${pct(singleRatio)}${invalidNote(onLeader)}`,
      pass: !onLeader.invalid && singleRatio >= CLUSTER_TARGETS.singleVsSingleNode,
    },
    {
      name: `cluster single transfer (load spread over 3) ≥ ${pct(CLUSTER_TARGETS.singleVsSingleNode)} of the single node's (second figure)`,
      value: `${fmt(spread.transfersPerSecond)} transfers/s = ${pct(spreadRatio)}${invalidNote(spread)}`,
      pass: !spread.invalid && spreadRatio >= CLUSTER_TARGETS.singleVsSingleNode,
    },
    ...(failover.length > 0
      ? [
          {
            name: `failover p99 ≤ ${fmt(CLUSTER_TARGETS.failoverP99Ms)} ms (${failover.length} trials)`,
            value: `p99 ${Number.isFinite(p99) ? fmt(p99) : '∞'} ms, p50 ${fmt(p50)} ms${failedTrials ? `, ${failedTrials} trials without an acknowledged write in ${FAILOVER_WAIT_MS_MAX / 1000} s` : ''}`,
            pass: p99 <= CLUSTER_TARGETS.failoverP99Ms,
          },
        ]
      : []),
  ];

  const table = [
    '| run | transfers per request | connections | requests/s | transfers/s | p50 ms | p99 ms | verified successes | failed | replica CPU node-1/2/3 (cores) | load avg (1 min) | read models of all 3 caught up after (ms) | leader (term) during the run, warm-up included |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ...runs.map((r) =>
      `| ${[
        r.label + (r.invalid ? ' **(INVALID)**' : ''),
        r.workload.kind === 'transfer' ? '1' : String(r.workload.transfersPerBatch),
        String(r.connections),
        fmt(r.requestsPerSecond),
        fmt(r.transfersPerSecond),
        fmt(r.report.latencyMs.p50),
        fmt(r.report.latencyMs.p99),
        fmt(r.report.successes),
        String(failures(r.report)),
        r.replicaCores.map((c) => (c === null ? '?' : c.toFixed(2))).join(' / '),
        r.loadAverage.toFixed(2),
        r.readModelCatchUpMs === undefined ? '–' : fmt(r.readModelCatchUpMs),
        r.leadersSeen?.join(', ') ?? '–',
      ].join(' | ')} |`,
    ),
  ].join('\n');
  const failoverTable = [
    '| trial | killed leader (term) | first acknowledged write after kill (ms) | a survivor names itself leader after (ms) | new leader (term) | probe failures before it | killed replica back at /health 200 after restart (ms) |',
    '|---:|---|---:|---:|---|---|---:|',
    ...failover.map(
      (t) =>
        `| ${t.trial} | ${t.killedNodeId} (${t.oldTerm}) | ${t.failoverMs === null ? 'none' : fmt(t.failoverMs)} | ${t.electedMs === null ? '?' : fmt(t.electedMs)} | ${t.newLeaderId ?? '?'} (${t.newTerm ?? '?'}) | ${
          Object.entries(t.errorsBeforeAck).map(([k, v]) => `${k} ×${v}`).join(', ') || '–'
        } | ${t.rejoinMs === null ? 'not' : fmt(t.rejoinMs)}${t.note ? ` (${t.note.replace(/\|/g, '/')})` : ''} |`,
    ),
  ].join('\n');

  console.log('\ncluster results (verified successes only):');
  console.log(table);
  if (failover.length) {
    console.log(`\nfailover over ${failover.length} trials: p50 ${fmt(p50)} ms, p99 ${Number.isFinite(p99) ? fmt(p99) : '∞'} ms, min ${fmt(failoverTimes[0] ?? NaN)} ms, max ${fmt(failoverTimes.at(-1) ?? NaN)} ms`);
  }
  console.log('cluster targets:');
  for (const t of targets) console.log(`  ${verdict(t.pass)}  ${t.name}: ${t.value}`);
  for (const t of profile?.threads ?? []) {
    console.log(`\nprofile: ${t.replica}, ${t.thread}, load on ${profile!.loadOn} (${fmt(profile!.figures.transfersPerSecond)} transfers/s while profiled)\n${formatSummary(t.summary)}`);
  }

  const finishedAt = new Date();
  const settingNames = ['BENCH_SECONDS', 'BENCH_WARMUP_SECONDS', 'BENCH_CONNECTIONS', 'BENCH_ACCOUNTS', 'BENCH_ERRORS_ALLOWED', 'BENCH_FAILOVER_TRIALS', 'BENCH_FAILOVER_PROBE_MS', 'BENCH_CLUSTER_PROFILE', 'BENCH_PROFILE'];
  const command = input.command ?? [...settingNames.filter((n) => process.env[n]).map((n) => `${n}=${process.env[n]}`), 'npm run bench:cluster'].join(' ');
  const markdown = [
    `### Latest cluster run: ${startedAt.toISOString()}`,
    '',
    `- Command: \`${command}\``,
    `- Machine: ${cpus().length} CPUs (${cpus()[0]?.model.trim() ?? '?'}), Node ${process.version}; load average (1 min) before: ${loadAverageBefore.toFixed(2)}. ` +
      'The three replicas, the load generator and this orchestrator all share these CPUs.',
    `- Settings: ${SECONDS} s measured per run after ${WARMUP_SECONDS} s warm-up; ${fmt(ACCOUNTS)} accounts; leader at the start: ${leaderId}; ` +
      `failover probe: one transfer every ${PROBE_INTERVAL_MS} ms to the two survivors in turn, ${PROBE_REQUEST_TIMEOUT_MS / 1000} s timeout per request`,
    `- References (${references.measuredHere ? 'measured by this script just before the cluster, as npm run bench measures them' : 'from the same npm run bench'}): ` +
      `bare ceiling ${fmt(references.bareRequestsPerSecond)} requests/s, single-node ledger ${fmt(references.singleNodeTransfersPerSecond)} single transfers/s`,
    `- Took ${fmt((finishedAt.getTime() - startedAt.getTime()) / 1000)} s`,
    '',
    table,
    '',
    ...(failover.length
      ? [
          `Failover over ${failover.length} trials: **p50 ${fmt(p50)} ms, p99 ${Number.isFinite(p99) ? fmt(p99) : '∞'} ms** (min ${fmt(failoverTimes[0] ?? NaN)}, max ${fmt(failoverTimes.at(-1) ?? NaN)}).`,
          '',
          '<details><summary>Every trial</summary>',
          '',
          failoverTable,
          '',
          '</details>',
          '',
        ]
      : []),
    '| target | measured | verdict |',
    '|---|---:|---|',
    ...targets.map((t) => `| ${t.name} | ${t.value} | **${verdict(t.pass)}** |`),
    ...(profile
      ? profile.threads.flatMap((t) => [
          '',
          `#### Profile: ${t.replica}, ${t.thread}, under single transfers to ${profile.loadOn} (${fmt(profile.figures.transfersPerSecond)} transfers/s while profiled; the run, then the read models' catch-up)`,
          '',
          '```',
          formatSummary(t.summary),
          '```',
        ])
      : []),
  ].join('\n');
  writeSection(markdown);
  if (RESULTS_PATH) console.log(`\nwrote the cluster section of ${RESULTS_PATH}`);
  return { runs, failover, targets };
}

if (require.main === module) {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      console.error(`\nbench:cluster: ${signal}, stopping the servers`);
      killEverythingNow();
      process.exit(130);
    });
  }
  runClusterBench().then(
    () => {
      killEverythingNow();
      process.exit(0);
    },
    (error: unknown) => {
      console.error(`\nbench:cluster: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      killEverythingNow();
      process.exit(1);
    },
  );
}
