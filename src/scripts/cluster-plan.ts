import { join } from 'node:path';

/**
 * The pure part of `npm run cluster`: what each of the replicas on this machine is started with.
 * src/scripts/cluster.ts spawns the processes; everything decided about them is decided here.
 */

export const CLUSTER_SIZE = 3;
export const CLUSTER_HOST = '127.0.0.1';
export const HTTP_PORT_FIRST = 4001;
export const RAFT_PORT_FIRST = 7101;

/** Random bytes per generated secret: 48 bytes are 64 base64url characters, over the 32-character minimum. */
const SECRET_BYTES = 48;

/**
 * Settings that would be shared by all replicas if passed on: with one EventStoreDB or MongoDB database
 * behind three replicas on one machine they would write over each other's projections. Here each replica
 * keeps its embedded stores in its own data folder (docker-compose.yml is the topology with servers).
 */
export const SHARED_STORE_ENV_NAMES = ['EVENTSTORE_URL', 'MONGODB_URL'] as const;

export interface ClusterSecrets {
  jwtSecret: string;
  clusterSecret: string;
  /** The variables that were not set, so were generated for this run only. */
  generated: Array<'LEDGER_JWT_SECRET' | 'LEDGER_CLUSTER_SECRET'>;
}

/** Secrets from the environment when set (non-empty), else from `randomBytes` (crypto's, in the script). */
export function resolveClusterSecrets(env: NodeJS.ProcessEnv, randomBytes: (size: number) => Buffer): ClusterSecrets {
  const generated: ClusterSecrets['generated'] = [];
  const pick = (name: 'LEDGER_JWT_SECRET' | 'LEDGER_CLUSTER_SECRET'): string => {
    const configured = env[name];
    if (configured) return configured;
    generated.push(name);
    return randomBytes(SECRET_BYTES).toString('base64url');
  };
  return { jwtSecret: pick('LEDGER_JWT_SECRET'), clusterSecret: pick('LEDGER_CLUSTER_SECRET'), generated };
}

export interface ClusterPlanOptions {
  /** Holds one data folder per replica (`<dataRoot>/node-N`). */
  dataRoot: string;
  jwtSecret: string;
  clusterSecret: string;
  /** The script's own environment: passed on to every replica (PATH, LOG_LEVEL, limits…) minus the per-replica settings. */
  baseEnv: NodeJS.ProcessEnv;
}

export interface ReplicaPlan {
  nodeId: string;
  httpPort: number;
  raftPort: number;
  dataDir: string;
  /** GraphQL endpoint and health check, as a client on this machine reaches them. */
  graphqlUrl: string;
  healthUrl: string;
  /** The complete environment of the replica's process. */
  env: Record<string, string>;
}

export interface ClusterPlan {
  replicas: ReplicaPlan[];
  /** Variables of the base environment that were not passed on (see SHARED_STORE_ENV_NAMES). */
  ignoredEnvNames: string[];
}

/** node-1…node-3 on HTTP 4001…4003 and Raft 7101…7103 of 127.0.0.1, each with its own data folder. */
export function planCluster(options: ClusterPlanOptions): ClusterPlan {
  const members = Array.from({ length: CLUSTER_SIZE }, (_, i) => ({
    nodeId: `node-${i + 1}`,
    httpPort: HTTP_PORT_FIRST + i,
    raftPort: RAFT_PORT_FIRST + i,
  }));
  // One string for all: every member lists every member, itself included, in the same order.
  const peers = members.map((m) => `${m.nodeId}=${CLUSTER_HOST}:${m.raftPort}`).join(',');

  const inherited: Record<string, string> = {};
  const ignoredEnvNames: string[] = [];
  for (const [name, value] of Object.entries(options.baseEnv)) {
    if (value === undefined) continue;
    if ((SHARED_STORE_ENV_NAMES as readonly string[]).includes(name)) {
      if (value !== '') ignoredEnvNames.push(name);
      continue;
    }
    inherited[name] = value;
  }

  const replicas = members.map((m): ReplicaPlan => {
    const dataDir = join(options.dataRoot, m.nodeId);
    return {
      ...m,
      dataDir,
      graphqlUrl: `http://${CLUSTER_HOST}:${m.httpPort}/graphql`,
      healthUrl: `http://${CLUSTER_HOST}:${m.httpPort}/health`,
      env: {
        ...inherited,
        PORT: String(m.httpPort),
        HOST: CLUSTER_HOST,
        LEDGER_NODE_ID: m.nodeId,
        LEDGER_DATA_DIR: dataDir,
        LEDGER_PEERS: peers,
        LEDGER_RAFT_PORT: String(m.raftPort),
        LEDGER_CLUSTER_SECRET: options.clusterSecret,
        // The same key on every replica, so that one token is accepted by all of them.
        LEDGER_JWT_SECRET: options.jwtSecret,
      },
    };
  });
  return { replicas, ignoredEnvNames };
}
