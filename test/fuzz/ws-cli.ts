/**
 * npm run fuzz:ws -- [--runs 1000] [--seed 42]: the graphql-ws frame fuzzer (test/fuzz/ws-fuzz.ts)
 * with a bigger budget than the test suite's, against a real server in this process on a fresh data
 * folder. Without --seed, a random seed is drawn and printed; a failure prints the seed to replay.
 */
import { startTestLedger } from '../support/ledger-server';
import { parseFuzzArgs } from './fuzz-cli-args';
import { WS_FUZZ_SERVER_ENV, runWsFuzz, wsFuzzLimits } from './ws-fuzz';

async function main(): Promise<void> {
  const { runs, seed } = parseFuzzArgs('fuzz:ws', 1000);
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
