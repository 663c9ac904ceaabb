import { mintToken } from './api/auth';
import { startLedgerServer } from './app/start-server';
import { ConfigError, loadConfig } from './config';

/** Starts one ledger node from the environment and serves the API. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`ledger: ${error.message}`);
      process.exit(2);
    }
    throw error;
  }

  const running = await startLedgerServer(config, {
    // Not "retrying": some of these are retried (event store appends, snapshots), others are not (a
    // refused group of proposals, a pipeline that could not start; the failure that follows says so).
    onError: (where, error) => console.error(`ledger: ${where} failed: ${error.message}`),
    onFatal: (error) => {
      console.error('ledger: fatal error, stopping so that nothing doubtful is acknowledged', error);
      process.exit(1);
    },
  });
  const { url, port, secret } = running;

  const lines = [`ledger ${config.nodeId} listening on ${url} (health: http://localhost:${port}/health)`, ...running.ledger.describeStores().map((s) => `  ${s}`)];
  if (secret.source !== 'LEDGER_JWT_SECRET') {
    const adminToken = await mintToken(secret.key, { sub: 'admin', roles: ['admin'] }, '30d');
    lines.push(
      `  JWT secret: ${secret.source === 'generated' ? 'created' : 'read'} at ${secret.path} (set LEDGER_JWT_SECRET to use your own)`,
      `  admin token (30 days): ${adminToken}`,
      `  mint others with: ${process.env.LEDGER_DATA_DIR ? `LEDGER_DATA_DIR=${config.dataDir} ` : ''}npm run token -- --role teller   (roles: teller, analyst, compliance, admin)`,
      '  try it:',
      `    curl -s ${url} -H 'content-type: application/json' -H "authorization: Bearer ${adminToken}" \\`,
      `      -d '{"query":"mutation { openAccount(input: {id: \\"alice\\", initialBalance: \\"10000\\"}) { ... on OpenAccountSuccess { account { id balance } position } ... on LedgerError { code message } } }"}'`,
    );
  } else {
    lines.push('  JWT secret: from LEDGER_JWT_SECRET', '  mint a token with: npm run token -- --role teller');
  }
  if (!config.production) lines.push(`  GraphiQL: open ${url} in a browser`);
  console.log(lines.join('\n'));

  const shutdown = async (signal: string) => {
    console.log(`ledger: ${signal} received, finishing in-flight commands`);
    await running.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
}

main().catch((error) => {
  console.error('ledger: failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
