/**
 * npm run fuzz -- [--runs 2000] [--seed 42]: the HTTP fuzzer (test/fuzz/http-fuzz.ts) with a bigger
 * budget than the test suite's, against a real server in this process on a fresh data folder.
 * Without --seed, a random seed is drawn and printed; a failure prints the seed to replay.
 */
import { startTestLedger } from '../support/ledger-server';
import { parseFuzzArgs } from './fuzz-cli-args';
import { runHttpFuzz } from './http-fuzz';

async function main(): Promise<void> {
  const { runs, seed } = parseFuzzArgs('fuzz', 2000);
  console.log(`http fuzz: ${runs} cases from seed ${seed}`);
  const ledger = await startTestLedger({ LOG_LEVEL: 'silent' });
  try {
    await runHttpFuzz(ledger.running, { runs, seed });
  } finally {
    await ledger.close();
  }
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
