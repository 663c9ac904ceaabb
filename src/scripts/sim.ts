import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import { PLANTED_BUGS, type PlantedBug } from '../consensus/raft/types';
import { replayCommand, runSeedPool } from './sim-pool';

/**
 * npm run sim -- --seeds N --from S [--workers W] [--trace-lines L]
 * Runs N deterministic simulation seeds from S (default: 1,000 from a random start) on every core,
 * prints progress and a summary, and for a failing seed the command that replays it exactly.
 * With --seeds 1 the seed's trace is printed too. SIM_BUG=<name> plants a known bug (test-only).
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seeds: { type: 'string', default: '1000' },
      from: { type: 'string' },
      workers: { type: 'string' },
      'trace-lines': { type: 'string', default: '200' },
    },
  });
  const seeds = Number(values.seeds);
  const from = values.from === undefined ? randomInt(0, 2 ** 31) : Number(values.from);
  if (!Number.isSafeInteger(seeds) || seeds < 1 || !Number.isSafeInteger(from) || from < 0) {
    throw new Error('--seeds must be a positive integer and --from a non-negative integer');
  }
  const bugName = process.env.SIM_BUG;
  if (bugName && !PLANTED_BUGS.includes(bugName as PlantedBug)) throw new Error(`SIM_BUG must be one of ${PLANTED_BUGS.join(', ')}`);
  const plantedBug = (bugName as PlantedBug | undefined) ?? null;
  const single = seeds === 1;
  console.log(`simulating seeds ${from}..${from + seeds - 1}${plantedBug ? ` with planted bug ${plantedBug}` : ''}`);
  const step = Math.max(1, Math.floor(seeds / 10));
  const summary = await runSeedPool({
    from,
    seeds,
    plantedBug,
    workers: values.workers === undefined ? undefined : Number(values.workers),
    traceLines: Number(values['trace-lines']),
    keepTrace: single,
    onResult: (result, done) => {
      if (!result.ok) console.log(`seed ${result.seed} FAILED (${result.replicas} replicas): ${result.failure}`);
      if (done % step === 0 || done === seeds) console.log(`  ${done}/${seeds} seeds`);
    },
  });
  for (const result of single ? summary.results : summary.failures) {
    if (single || result.trace.length > 0) {
      console.log(`--- trace of seed ${result.seed} (last ${result.trace.length} events: time ms, event, replica, details)`);
      console.log(result.trace.join('\n'));
    }
    console.log(`seed ${result.seed}: ${result.ok ? 'ok' : `FAILED ${result.failure}`}; trace hash ${result.traceHash}; ${result.events} events, ${result.simulatedMs.toFixed(0)} simulated ms; ${JSON.stringify(result.stats)}`);
  }
  const three = summary.results.filter((r) => r.replicas === 3).length;
  const seconds = summary.wallMs / 1000;
  console.log(
    `${summary.results.length} seeds (${three} with 3 replicas, ${summary.results.length - three} with 5), ${summary.failures.length} failed, ` +
      `${seconds.toFixed(1)} s on ${summary.workers} workers: ${(summary.results.length / seconds).toFixed(1)} seeds/s, ` +
      `simulated/real time ${(summary.simulatedMs / summary.wallMs).toFixed(1)}× (${(summary.simulatedMs / summary.wallMs / summary.workers).toFixed(1)}× per worker)`,
  );
  for (const failure of summary.failures) console.log(`replay: ${replayCommand(failure.seed, plantedBug)}   # ${failure.invariant}`);
  if (summary.failures.length > 0) process.exitCode = 1;
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 2;
});
