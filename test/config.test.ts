import { ConfigError, loadConfig } from '../src/config';

describe('configuration', () => {
  it('has defaults for a fresh clone', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ port: 4000, dataDir: './data', eventStoreUrl: null, mongoDbUrl: null, mongoBulkChunk: 40, jwtSecret: null, production: false });
    expect(config.rules.amountMaxMinor).toBe(1_000_000_000n);
    expect(config.rules.largeTransactionThresholdMinor).toBe(1_000_000n);
    expect(config.projectionBacklogEventsMax).toBe(10_000);
  });

  it('reads the read models\' backpressure bound, 0 turning it off', () => {
    expect(loadConfig({ LEDGER_PROJECTION_BACKLOG_EVENTS_MAX: '250000' }).projectionBacklogEventsMax).toBe(250_000);
    expect(loadConfig({ LEDGER_PROJECTION_BACKLOG_EVENTS_MAX: '0' }).projectionBacklogEventsMax).toBe(0);
  });

  it('reads the event store\'s group-commit interval, 5 ms by default and 0 turning it off', () => {
    expect(loadConfig({}).eventStoreAppendIntervalMs).toBe(5);
    expect(loadConfig({ EVENTSTORE_APPEND_INTERVAL_MS: '0' }).eventStoreAppendIntervalMs).toBe(0);
    expect(loadConfig({ EVENTSTORE_APPEND_INTERVAL_MS: '20' }).eventStoreAppendIntervalMs).toBe(20);
  });

  it('reads every setting', () => {
    const config = loadConfig({
      PORT: '5000',
      LEDGER_DATA_DIR: '/var/ledger',
      EVENTSTORE_URL: 'esdb://localhost:2113?tls=false',
      MONGODB_URL: 'mongodb://reader:pw@db1:27017,db2:27017/ledger_prod?replicaSet=rs0',
      LEDGER_MONGODB_BULK_CHUNK: '1000',
      LEDGER_JWT_SECRET: 'x'.repeat(32),
      LEDGER_LARGE_TX_THRESHOLD: '500',
      LEDGER_MAX_AMOUNT: '9000000000000000000',
      NODE_ENV: 'production',
    });
    expect(config).toMatchObject({ port: 5000, dataDir: '/var/ledger', eventStoreUrl: 'esdb://localhost:2113?tls=false', production: true });
    expect(config).toMatchObject({ mongoDbUrl: 'mongodb://reader:pw@db1:27017,db2:27017/ledger_prod?replicaSet=rs0', mongoBulkChunk: 1000 });
    expect(config.rules.largeTransactionThresholdMinor).toBe(500n);
    expect(config.rules.amountMaxMinor).toBe(9_000_000_000_000_000_000n);
  });

  it.each([
    [{ PORT: 'abc' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ LEDGER_MAX_AMOUNT: '1.5' }, 'LEDGER_MAX_AMOUNT'],
    [{ LEDGER_MAX_AMOUNT: '0' }, 'LEDGER_MAX_AMOUNT'],
    [{ LEDGER_LARGE_TX_THRESHOLD: '-3' }, 'LEDGER_LARGE_TX_THRESHOLD'],
    [{ LEDGER_JWT_SECRET: 'short' }, 'LEDGER_JWT_SECRET'],
    [{ EVENTSTORE_URL: 'http://x' }, 'EVENTSTORE_URL'],
    [{ MONGODB_URL: 'postgres://x' }, 'MONGODB_URL'],
    [{ LEDGER_MONGODB_BULK_CHUNK: '0' }, 'LEDGER_MONGODB_BULK_CHUNK'],
    [{ LEDGER_MONGODB_BULK_CHUNK: '100001' }, 'LEDGER_MONGODB_BULK_CHUNK'],
    [{ LEDGER_MONGODB_BULK_CHUNK: '2.5' }, 'LEDGER_MONGODB_BULK_CHUNK'],
    [{ LEDGER_MONGODB_BULK_CHUNK: 'forty' }, 'LEDGER_MONGODB_BULK_CHUNK'],
    [{ NODE_ENV: 'staging' }, 'NODE_ENV'],
    [{ EVENTSTORE_APPEND_INTERVAL_MS: '-1' }, 'EVENTSTORE_APPEND_INTERVAL_MS'],
    [{ EVENTSTORE_APPEND_INTERVAL_MS: '2.5' }, 'EVENTSTORE_APPEND_INTERVAL_MS'],
    [{ EVENTSTORE_APPEND_INTERVAL_MS: '1001' }, 'EVENTSTORE_APPEND_INTERVAL_MS'],
    [{ EVENTSTORE_APPEND_INTERVAL_MS: 'soon' }, 'EVENTSTORE_APPEND_INTERVAL_MS'],
    [{ LEDGER_PROJECTION_BACKLOG_EVENTS_MAX: '-1' }, 'LEDGER_PROJECTION_BACKLOG_EVENTS_MAX'],
    [{ LEDGER_PROJECTION_BACKLOG_EVENTS_MAX: '1.5' }, 'LEDGER_PROJECTION_BACKLOG_EVENTS_MAX'],
    [{ LEDGER_PROJECTION_BACKLOG_EVENTS_MAX: 'many' }, 'LEDGER_PROJECTION_BACKLOG_EVENTS_MAX'],
  ])('refuses %j, naming %s', (env, name) => {
    let error: unknown;
    try {
      loadConfig(env as NodeJS.ProcessEnv);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain(name);
  });
});

describe('cluster configuration', () => {
  const secret = 'a-cluster-secret-of-at-least-32-characters';
  const peers = 'n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=[::1]:7003';
  const jwt = 'a-jwt-secret-of-at-least-32-characters-long';

  it('is null without LEDGER_PEERS: the single-node log', () => {
    expect(loadConfig({}).cluster).toBeNull();
  });

  it('reads the members, this node among them, and defaults the Raft port to its own entry', () => {
    const config = loadConfig({ LEDGER_NODE_ID: 'n2', LEDGER_PEERS: peers, LEDGER_CLUSTER_SECRET: secret, LEDGER_JWT_SECRET: jwt });
    expect(config.cluster).toEqual({
      peers: [
        { id: 'n1', host: '127.0.0.1', port: 7001 },
        { id: 'n2', host: '127.0.0.1', port: 7002 },
        { id: 'n3', host: '::1', port: 7003 },
      ],
      raftPort: 7002,
      secret,
    });
    expect(loadConfig({ LEDGER_NODE_ID: 'n2', LEDGER_PEERS: peers, LEDGER_CLUSTER_SECRET: secret, LEDGER_RAFT_PORT: '9002', LEDGER_JWT_SECRET: jwt }).cluster?.raftPort).toBe(9002);
  });

  it.each([
    [{ LEDGER_NODE_ID: 'n1', LEDGER_PEERS: peers }, /LEDGER_CLUSTER_SECRET is required with LEDGER_PEERS/],
    [{ LEDGER_NODE_ID: 'n1', LEDGER_PEERS: peers, LEDGER_CLUSTER_SECRET: 'short' }, /LEDGER_CLUSTER_SECRET must be at least 32 characters/],
    [{ LEDGER_NODE_ID: 'n9', LEDGER_PEERS: peers, LEDGER_CLUSTER_SECRET: secret }, /LEDGER_NODE_ID=n9 is not among the members \(n1, n2, n3\)/],
    [{ LEDGER_NODE_ID: 'n1', LEDGER_PEERS: 'n1=a:1,n2=b:2', LEDGER_CLUSTER_SECRET: secret }, /at least 3 members \(got 2\)/],
    [{ LEDGER_NODE_ID: 'n1', LEDGER_PEERS: 'n1=a:1,n1=b:2,n3=c:3', LEDGER_CLUSTER_SECRET: secret }, /node id n1 is listed twice/],
    [{ LEDGER_NODE_ID: 'n1', LEDGER_PEERS: 'n1=a:1,n2=b,n3=c:3', LEDGER_CLUSTER_SECRET: secret }, /"n2=b" is not id=host:port/],
    [{ LEDGER_NODE_ID: 'n1', LEDGER_PEERS: 'n1=a:1,n2=b:70000,n3=c:3', LEDGER_CLUSTER_SECRET: secret }, /"n2=b:70000" is not id=host:port/],
    [{ LEDGER_NODE_ID: 'n1', LEDGER_PEERS: peers, LEDGER_CLUSTER_SECRET: secret }, /LEDGER_JWT_SECRET is required with LEDGER_PEERS/],
    [{ LEDGER_RAFT_PORT: '7001' }, /LEDGER_RAFT_PORT set without LEDGER_PEERS/],
    [{ LEDGER_CLUSTER_SECRET: secret }, /LEDGER_CLUSTER_SECRET set without LEDGER_PEERS/],
  ])('refuses %j with a message naming the setting', (env, message) => {
    expect(() => loadConfig(env as NodeJS.ProcessEnv)).toThrow(message);
  });
});
