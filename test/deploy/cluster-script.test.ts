import { join } from 'node:path';
import { loadConfig } from '../../src/config';
import { CLUSTER_SIZE, SHARED_STORE_ENV_NAMES, planCluster, resolveClusterSecrets } from '../../src/scripts/cluster-plan';

const JWT_SECRET = 'jwt-secret-for-the-cluster-plan-test-0123456789';
const CLUSTER_SECRET = 'cluster-secret-for-the-cluster-plan-test-0123456789';
const DATA_ROOT = join('/tmp', 'ledger-cluster-plan-test');

const plan = (baseEnv: NodeJS.ProcessEnv = { PATH: '/usr/bin', LOG_LEVEL: 'debug' }) =>
  planCluster({ dataRoot: DATA_ROOT, jwtSecret: JWT_SECRET, clusterSecret: CLUSTER_SECRET, baseEnv });

describe('planCluster (npm run cluster)', () => {
  const { replicas } = plan();

  test('plans the cluster size, each replica with a configuration loadConfig accepts as a cluster member', () => {
    expect(replicas).toHaveLength(CLUSTER_SIZE);
    for (const replica of replicas) {
      const config = loadConfig(replica.env);
      expect(config.nodeId).toBe(replica.nodeId);
      expect(config.cluster?.peers).toHaveLength(CLUSTER_SIZE);
    }
  });

  test('gives every replica the same LEDGER_PEERS, listing each replica at its own Raft port', () => {
    expect(new Set(replicas.map((r) => r.env.LEDGER_PEERS)).size).toBe(1);
    const peers = loadConfig(replicas[0]!.env).cluster!.peers;
    expect(peers.map((p) => ({ id: p.id, port: p.port }))).toEqual(replicas.map((r) => ({ id: r.nodeId, port: r.raftPort })));
    for (const replica of replicas) expect(loadConfig(replica.env).cluster!.raftPort).toBe(replica.raftPort);
  });

  test('node ids, HTTP ports, Raft ports and data folders are distinct; HTTP and Raft ports do not collide', () => {
    for (const key of ['nodeId', 'httpPort', 'raftPort', 'dataDir'] as const) expect(new Set(replicas.map((r) => r[key])).size).toBe(replicas.length);
    const allPorts = replicas.flatMap((r) => [r.httpPort, r.raftPort]);
    expect(new Set(allPorts).size).toBe(allPorts.length);
  });

  test('serves HTTP at the planned port and keeps data in its own folder under the data root', () => {
    for (const replica of replicas) {
      const config = loadConfig(replica.env);
      expect(config.port).toBe(replica.httpPort);
      expect(replica.graphqlUrl).toContain(`:${replica.httpPort}/graphql`);
      expect(replica.healthUrl).toContain(`:${replica.httpPort}/health`);
      expect(config.dataDir).toBe(replica.dataDir);
      expect(replica.dataDir.startsWith(DATA_ROOT + '/')).toBe(true);
    }
  });

  test('passes both secrets to every replica', () => {
    for (const replica of replicas) {
      const config = loadConfig(replica.env);
      expect(config.jwtSecret).toBe(JWT_SECRET);
      expect(config.cluster!.secret).toBe(CLUSTER_SECRET);
    }
  });

  test('passes the rest of the environment on, except the shared-store URLs and the per-replica settings', () => {
    const base = { PATH: '/usr/bin', LOG_LEVEL: 'debug', EVENTSTORE_URL: 'esdb://localhost:2113?tls=false', MONGODB_URL: 'mongodb://localhost/ledger', PORT: '9999', LEDGER_NODE_ID: 'elsewhere' };
    const { replicas: planned, ignoredEnvNames } = plan(base);
    expect([...ignoredEnvNames].sort()).toEqual([...SHARED_STORE_ENV_NAMES].sort());
    for (const replica of planned) {
      expect(replica.env.PATH).toBe(base.PATH);
      const config = loadConfig(replica.env);
      expect(config.logLevel).toBe(base.LOG_LEVEL);
      expect(config.eventStoreUrl).toBeNull();
      expect(config.mongoDbUrl).toBeNull();
      expect(config.port).not.toBe(Number(base.PORT));
      expect(config.nodeId).not.toBe(base.LEDGER_NODE_ID);
    }
  });
});

describe('resolveClusterSecrets', () => {
  // A deterministic stand-in for crypto.randomBytes: distinct bytes per call.
  const counter = () => {
    let calls = 0;
    return (size: number) => Buffer.alloc(size, ++calls);
  };

  test('keeps secrets set in the environment and generates nothing', () => {
    const secrets = resolveClusterSecrets({ LEDGER_JWT_SECRET: JWT_SECRET, LEDGER_CLUSTER_SECRET: CLUSTER_SECRET }, counter());
    expect(secrets).toEqual({ jwtSecret: JWT_SECRET, clusterSecret: CLUSTER_SECRET, generated: [] });
  });

  test('generates the missing ones, distinct and long enough for the configuration, and says which', () => {
    const secrets = resolveClusterSecrets({ LEDGER_JWT_SECRET: '' }, counter());
    expect(secrets.generated).toEqual(['LEDGER_JWT_SECRET', 'LEDGER_CLUSTER_SECRET']);
    expect(secrets.jwtSecret).not.toBe(secrets.clusterSecret);
    const { replicas } = planCluster({ dataRoot: DATA_ROOT, jwtSecret: secrets.jwtSecret, clusterSecret: secrets.clusterSecret, baseEnv: {} });
    expect(loadConfig(replicas[0]!.env).jwtSecret).toBe(secrets.jwtSecret);
  });
});
