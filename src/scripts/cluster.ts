import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { mintToken } from '../api/auth';
import { ConfigError, loadConfig } from '../config';
import { type ReplicaPlan, planCluster, resolveClusterSecrets } from './cluster-plan';

/**
 * npm run cluster [-- --data ./data/cluster]
 * Three replicas of a Raft cluster on this machine, as child processes of this one; Ctrl-C stops them all.
 */

const USAGE = 'usage: npm run cluster [-- --data <folder>]   (default ./data/cluster; one node-N folder per replica)';
const REPO_ROOT = join(__dirname, '..', '..');
const HEALTH_WAIT_MS_MAX = 60_000;
const HEALTH_POLL_MS = 250;
const HEALTH_REQUEST_MS_MAX = 1_000;
/** After SIGTERM, how long a replica gets for its graceful shutdown before SIGKILL. */
const STOP_GRACE_MS = 10_000;

interface Replica {
  plan: ReplicaPlan;
  child: ChildProcess;
  exited: Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));
const running = (replica: Replica) => replica.child.pid !== undefined && replica.child.exitCode === null && replica.child.signalCode === null;

function startReplica(plan: ReplicaPlan): Replica {
  // detached: the replica gets its own process group, so a Ctrl-C in the terminal reaches only this script,
  // which then sends exactly one SIGTERM to each replica (a second signal would start a second shutdown).
  const child = spawn(process.execPath, ['--import', 'tsx', join('src', 'main.ts')], {
    cwd: REPO_ROOT,
    env: plan.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const prefix = `[${plan.nodeId}] `;
  createInterface({ input: child.stdout! }).on('line', (line) => process.stdout.write(`${prefix}${line}\n`));
  createInterface({ input: child.stderr! }).on('line', (line) => process.stderr.write(`${prefix}${line}\n`));
  const exited = new Promise<void>((done) => {
    // 'close', not 'exit': it comes after the last line of output has been read, so this message is the last one.
    child.once('close', (code, signal) => {
      console.log(`cluster: ${plan.nodeId} exited (${signal ?? `code ${code}`})`);
      done();
    });
    child.once('error', (error) => {
      console.error(`cluster: ${plan.nodeId}: ${error.message}`);
      // No pid: the process never started, and no 'exit' will follow.
      if (child.pid === undefined) done();
    });
  });
  return { plan, child, exited };
}

async function waitHealthy(replica: Replica, deadline: number): Promise<void> {
  for (;;) {
    if (!running(replica)) throw new Error(`${replica.plan.nodeId} exited before it answered ${replica.plan.healthUrl}`);
    try {
      const response = await fetch(replica.plan.healthUrl, { signal: AbortSignal.timeout(HEALTH_REQUEST_MS_MAX) });
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`${replica.plan.nodeId} did not answer ${replica.plan.healthUrl} with 200 within ${HEALTH_WAIT_MS_MAX / 1000} s`);
    await sleep(HEALTH_POLL_MS);
  }
}

/** SIGTERM to every replica still running, SIGKILL to those still running STOP_GRACE_MS later. */
async function stopAll(replicas: Replica[]): Promise<void> {
  for (const replica of replicas.filter(running)) replica.child.kill('SIGTERM');
  const allExited = Promise.all(replicas.map((r) => r.exited));
  const timer = sleep(STOP_GRACE_MS).then(() => 'timeout' as const);
  if ((await Promise.race([allExited, timer])) === 'timeout') {
    for (const replica of replicas.filter(running)) {
      console.error(`cluster: ${replica.plan.nodeId} still running after ${STOP_GRACE_MS / 1000} s, sending SIGKILL`);
      replica.child.kill('SIGKILL');
    }
    await allExited;
  }
}

async function main(): Promise<void> {
  let dataRoot: string;
  try {
    const { values } = parseArgs({ options: { data: { type: 'string', default: join('.', 'data', 'cluster') } } });
    dataRoot = resolve(values.data!);
  } catch (error) {
    console.error(`${USAGE}\n${(error as Error).message}`);
    process.exit(2);
  }

  const secrets = resolveClusterSecrets(process.env, randomBytes);
  const { replicas: plans, ignoredEnvNames } = planCluster({ dataRoot, jwtSecret: secrets.jwtSecret, clusterSecret: secrets.clusterSecret, baseEnv: process.env });
  // Check every replica's configuration once, here, rather than as three interleaved failures.
  let tokenLifetimeSeconds = 0;
  try {
    for (const plan of plans) tokenLifetimeSeconds = loadConfig(plan.env).tokenLifetimeMaxSeconds;
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`cluster: ${error.message}`);
      process.exit(2);
    }
    throw error;
  }
  if (secrets.generated.length > 0) {
    console.log(`cluster: ${secrets.generated.join(' and ')} not set: generated for this run only (tokens stop working when the cluster restarts; set them to keep them)`);
  }
  if (ignoredEnvNames.length > 0) {
    console.log(`cluster: ignoring ${ignoredEnvNames.join(' and ')}: each replica keeps embedded stores in its own data folder (docker-compose.yml runs the servers)`);
  }

  const replicas = plans.map(startReplica);
  let stopping = false;
  const stop = async (why: string, exitCode: number) => {
    if (stopping) return;
    stopping = true;
    console.log(`cluster: ${why}, stopping the replicas`);
    await stopAll(replicas);
    process.exit(exitCode);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    // A second Ctrl-C while stopping: no more waiting.
    if (stopping) for (const replica of replicas.filter(running)) replica.child.kill('SIGKILL');
    void stop(`${signal} received`, 0);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // The replicas are in their own process groups, so nothing else stops them if this script dies abruptly.
  process.on('exit', () => {
    for (const replica of replicas.filter(running)) replica.child.kill('SIGKILL');
  });
  // One replica down leaves a working majority; once none is left there is nothing to wait for.
  void Promise.all(replicas.map((r) => r.exited)).then(() => stop('every replica has exited', 1));

  try {
    const deadline = Date.now() + HEALTH_WAIT_MS_MAX;
    await Promise.all(replicas.map((replica) => waitHealthy(replica, deadline)));
  } catch (error) {
    await stop(`startup failed: ${(error as Error).message}`, 1);
    return;
  }

  const adminToken = await mintToken(new TextEncoder().encode(secrets.jwtSecret), { sub: 'admin', roles: ['admin'] }, tokenLifetimeSeconds);
  const first = plans[0]!;
  console.log(
    [
      `cluster: ${plans.length} replicas running (Ctrl-C stops them all)`,
      ...plans.map((p) => `  ${p.nodeId}  ${p.graphqlUrl}   raft ${p.env.HOST}:${p.raftPort}   data ${p.dataDir}`),
      `  admin token (valid ${tokenLifetimeSeconds} s, accepted by every replica): ${adminToken}`,
      '  try it (any replica answers; role and leaderId show who leads):',
      `    curl -s ${first.graphqlUrl} -H 'content-type: application/json' -H "authorization: Bearer ${adminToken}" \\`,
      `      -d '{"query":"{ ledger { nodeId role leaderId term } }"}'`,
    ].join('\n'),
  );
}

main().catch((error) => {
  console.error('cluster: failed:', error instanceof Error ? error.message : error);
  process.exit(1);
});
