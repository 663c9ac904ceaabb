import { parseArgs } from 'node:util';

/**
 * `--runs N --seed S` for the fuzz scripts. Without --seed a random seed is drawn (and printed by
 * the caller) so that a failure can be replayed; bad values exit with the usage line.
 */
export function parseFuzzArgs(script: string, defaultRuns: number): { runs: number; seed: number } {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: String(defaultRuns) }, seed: { type: 'string' } } });
  const runs = Number(values.runs);
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
  if (!Number.isSafeInteger(runs) || runs < 1 || !Number.isSafeInteger(seed)) {
    console.error(`usage: npm run ${script} -- [--runs N] [--seed S] (whole numbers)`);
    process.exit(2);
  }
  return { runs, seed };
}
