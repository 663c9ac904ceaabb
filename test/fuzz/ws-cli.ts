/**
 * npm run fuzz:ws -- [--runs 1000] [--seed 42]: the graphql-ws frame fuzzer (test/fuzz/ws-fuzz.ts)
 * with a bigger budget than the test suite's, against a real server in this process on a fresh data
 * folder. Without --seed, a random seed is drawn and printed; a failure prints the seed to replay.
 */
import { parseArgs } from 'node:util';
import { startTestLedger } from '../support/ledger-server';
import { WS_FUZZ_SERVER_ENV, runWsFuzz, wsFuzzLimits } from './ws-fuzz';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '1000' }, seed: { type: 'string' } } });
  const runs = Number(values.runs);
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
  if (!Number.isSafeInteger(runs) || runs < 1 || !Number.isSafeInteger(seed)) {
    console.error('usage: npm run fuzz:ws -- [--runs N] [--seed S] (whole numbers)');
    process.exit(2);
  }
  console.log(`ws fuzz: ${runs} cases from seed ${seed}`);
  const ledger = await startTestLedger({ LOG_LEVEL: 'silent', ...WS_FUZZ_SERVER_ENV });
  try {
    await runWsFuzz(ledger.running, { runs, seed, ...wsFuzzLimits });
  } finally {
    await ledger.close();
  }
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
