import { runHarness } from './storage-fault-harness';

/**
 * npm run storage-faults -- --trials N --from S [--planted-bug]
 * Runs N seeded storage-fault trials from seed S; prints every violation with its replay command,
 * trials/s and what each fault class did. Exits 1 when the property broke.
 */
async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const value = (name: string, fallback: number) => {
    const at = args.indexOf(name);
    if (at < 0) return fallback;
    const n = Number(args[at + 1]);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} needs a whole number`);
    return n;
  };
  const trials = value('--trials', 1000);
  const from = value('--from', 1);
  const plantedBug = args.includes('--planted-bug');
  const run = await runHarness(trials, from, { plantedBug }, (line) => console.log(line));
  const violations = run.results.filter((r) => r.violation).length;
  console.log(`${trials} trials from seed ${from}${plantedBug ? ' (planted bug on)' : ''}: ${violations} violations, ${run.trialsPerSecond.toFixed(1)} trials/s`);
  for (const [key, outcomes] of Object.entries(run.summary).sort()) console.log(`  ${key.padEnd(36)} ${JSON.stringify(outcomes)}`);
  if (trials === 1) for (const r of run.results) console.log(`  seed ${r.seed}: ${r.target}/${r.fault}: ${r.detail} -> ${r.outcome}${r.message ? ` (${r.message})` : ''}`);
  process.exitCode = violations > 0 ? 1 : 0;
}

main().catch((error) => {
  console.error(error);
  process.exit(2);
});
