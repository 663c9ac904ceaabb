/**
 * The HTTP fuzzer with a fixed budget and seed (more: `npm run fuzz -- --runs N --seed S`), and proof
 * that it finds a planted bug: an Amount that accepts floats again.
 */
import { plantedBugsForTests } from '../../src/api/scalars';
import { amountFormAllowed, runHttpFuzz } from '../fuzz/http-fuzz';
import { type TestLedger, startTestLedger } from '../support/ledger-server';

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const SEED = Number(process.env.FUZZ_SEED ?? 1313);

let ledger: TestLedger;
beforeAll(async () => {
  ledger = await startTestLedger();
});
afterAll(async () => {
  plantedBugsForTests.amountAcceptsFloats = false;
  await ledger?.close();
});

it('knows which Amount forms API.md allows', () => {
  for (const allowed of ['7', '-3', '0', '9007199254740991', '"123"', '"1234567890123456789"', 'null']) expect(amountFormAllowed(allowed)).toBe(true);
  for (const refused of ['1.5', '1e3', '1000.0', '9007199254740993', '"1e3"', '""', '"12345678901234567890"', '01', '[1]', '{}', 'true', '"1.0"']) {
    expect(amountFormAllowed(refused)).toBe(false);
  }
});

it(`survives ${RUNS} hostile requests (seed ${SEED}): no 5xx, no crash, bounded memory, refusals change nothing`, async () => {
  const lines: string[] = [];
  const result = await runHttpFuzz(ledger.running, { runs: RUNS, seed: SEED, log: (line) => lines.push(line) });
  console.log(lines.join('\n'));
  expect(result.cases).toBe(RUNS);
  expect(lines.at(-1)).toMatch(new RegExp(`^http fuzz: ${RUNS} cases passed \\(seed ${SEED};`));
  // The run exercised both sides: some requests succeeded, many were refused.
  expect(result.accepted).toBeGreaterThan(0);
  expect(result.refused).toBeGreaterThan(RUNS / 4);
}, 300_000);

it('fails, naming its seed, when Amount accepts floats again', async () => {
  plantedBugsForTests.amountAcceptsFloats = true;
  const lines: string[] = [];
  let failure: Error | undefined;
  try {
    await runHttpFuzz(ledger.running, { runs: RUNS, seed: SEED, endOnFailure: true, log: (line) => lines.push(line) });
  } catch (error) {
    failure = error as Error;
  } finally {
    plantedBugsForTests.amountAcceptsFloats = false;
  }
  expect(failure).toBeDefined();
  expect(failure!.message).toMatch(/accepted the Amount .*, which API\.md refuses/);
  expect(failure!.message).toMatch(new RegExp(`seed: ${SEED}`));
  expect(lines.join('\n')).toMatch(new RegExp(`http fuzz FAILED after \\d+ cases \\(seed ${SEED}\\); replay with: npm run fuzz -- --runs ${RUNS} --seed ${SEED}`));
}, 300_000);
