import { replayCommand, runSeedPool } from '../../../src/scripts/sim-pool';

/**
 * CI's simulation budget: seeds 1..1000 (even seeds 3 replicas, odd seeds 5), on every core. Any
 * failing seed fails the test with the command that replays it exactly.
 */
const SEEDS = Number(process.env.SIM_SEEDS ?? 1000);

test(`${SEEDS} simulation seeds keep every invariant`, async () => {
  const summary = await runSeedPool({ from: 1, seeds: SEEDS, traceLines: 0, niceness: 19 });
  const three = summary.results.filter((r) => r.replicas === 3).length;
  console.log(
    `simulation: ${summary.results.length} seeds (${three} × 3 replicas, ${summary.results.length - three} × 5) in ${(summary.wallMs / 1000).toFixed(1)} s on ${summary.workers} workers, ` +
      `${((summary.results.length * 1000) / summary.wallMs).toFixed(1)} seeds/s, simulated/real ${(summary.simulatedMs / summary.wallMs).toFixed(1)}×`,
  );
  expect(summary.results.length).toBe(SEEDS);
  expect(three).toBeGreaterThan(0);
  expect(three).toBeLessThan(SEEDS);
  const failures = summary.failures.map((f) => `seed ${f.seed}: ${f.failure}\n  replay: ${replayCommand(f.seed, null)}`);
  expect(failures).toEqual([]);
}, 20 * 60_000);
