/**
 * npm run fuzz -- [--runs 2000] [--seed 42]: the HTTP fuzzer (test/fuzz/http-fuzz.ts) with a bigger
 * budget than the test suite's, against a real server in this process on a fresh data folder.
 * Without --seed, a random seed is drawn and printed; a failure prints the seed to replay.
 */
import { parseArgs } from 'node:util';
import { startTestLedger } from '../support/ledger-server';
import { runHttpFuzz } from './http-fuzz';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '2000' }, seed: { type: 'string' } } });
  const runs = Number(values.runs);
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
  if (!Number.isSafeInteger(runs) || runs < 1 || !Number.isSafeInteger(seed)) {
    console.error('usage: npm run fuzz -- [--runs N] [--seed S] (whole numbers)');
    process.exit(2);
  }
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
