import { ConfigError, loadConfig } from '../src/config';

describe('configuration', () => {
  it('has defaults for a fresh clone', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ port: 4000, dataDir: './data', eventStoreUrl: null, mongoDbUrl: null, jwtSecret: null, production: false });
    expect(config.rules.amountMaxMinor).toBe(1_000_000_000n);
    expect(config.rules.largeTransactionThresholdMinor).toBe(1_000_000n);
  });

  it('reads every setting', () => {
    const config = loadConfig({
      PORT: '5000',
      LEDGER_DATA_DIR: '/var/ledger',
      EVENTSTORE_URL: 'esdb://localhost:2113?tls=false',
      LEDGER_JWT_SECRET: 'x'.repeat(32),
      LEDGER_LARGE_TX_THRESHOLD: '500',
      LEDGER_MAX_AMOUNT: '9000000000000000000',
      NODE_ENV: 'production',
    });
    expect(config).toMatchObject({ port: 5000, dataDir: '/var/ledger', eventStoreUrl: 'esdb://localhost:2113?tls=false', production: true });
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
