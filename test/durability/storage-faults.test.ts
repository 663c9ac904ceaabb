import { replayCommand, runHarness } from '../support/storage-fault-harness';

/**
 * The storage-fault harness in CI: 200 seeded trials (seeds 1..200), each a fault in one store of a
 * data folder whose writes were all acknowledged, then a restart. The property: every acknowledged
 * transfer held with every store in agreement, or a refusal to start with a clear message. A failing
 * seed prints the command that replays it. `npm run storage-faults -- --trials N --from S` runs more.
 */

jest.setTimeout(180_000);

const TRIALS = 200;

describe('storage-fault harness', () => {
  it(`${TRIALS} seeded trials: never starts with less than was acknowledged`, async () => {
    const lines: string[] = [];
    const run = await runHarness(TRIALS, 1, {}, (line) => lines.push(line));
    // eslint-disable-next-line no-console
    console.log(
      `storage faults: ${TRIALS} trials, ${run.trialsPerSecond.toFixed(1)} trials/s\n` +
        Object.entries(run.summary)
          .sort()
          .map(([key, outcomes]) => `  ${key.padEnd(36)} ${JSON.stringify(outcomes)}`)
          .join('\n'),
    );
    expect(run.results).toHaveLength(TRIALS);
    if (lines.length > 0) throw new Error(`the property broke:\n${lines.join('\n')}`);
    // The harness exercised every store and both kinds of ending.
    const outcomes = new Set(run.results.map((r) => `${r.target}:${r.outcome}`));
    for (const expected of ['log:refused', 'eventStore:refused', 'eventStore:held', 'readModels:held', 'snapshot:held']) expect(outcomes).toContain(expected);
  });

  it('catches the planted bug (the old "cut anything bad in the last segment" rule switched back on)', async () => {
    const lines: string[] = [];
    const run = await runHarness(TRIALS, 1, { plantedBug: true }, (line) => lines.push(line));
    const caught = run.results.filter((r) => r.violation);
    expect(caught.length).toBeGreaterThan(0);
    expect(caught.every((r) => r.target === 'log')).toBe(true);
    expect(caught[0]!.violation).toMatch(/started with other balances than acknowledged/);
    expect(lines[0]).toContain(`replay: ${replayCommand(caught[0]!.seed, { plantedBug: true })}`);
  });
});
