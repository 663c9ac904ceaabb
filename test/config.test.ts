import { ConfigError, loadConfig } from '../src/config';

describe('configuration', () => {
  it('has defaults for a fresh clone', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ port: 4000, dataDir: './data', eventStoreUrl: null, mongoDbUrl: null, mongoBulkChunk: 40, jwtSecret: null, production: false });
    expect(config.rules.amountMaxMinor).toBe(1_000_000_000n);
    expect(config.rules.largeTransactionThresholdMinor).toBe(1_000_000n);
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
