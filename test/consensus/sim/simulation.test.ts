import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { runSimulation } from '../../../src/consensus/sim/simulation';
import { runSeedPool } from '../../../src/scripts/sim-pool';

describe('deterministic simulation', () => {
  test('replaying a seed gives the same trace hash, in this thread and in a worker', async () => {
    const first = runSimulation({ seed: 7 });
    const second = runSimulation({ seed: 7 });
    expect(first.ok).toBe(true);
    expect(second.traceHash).toBe(first.traceHash);
    expect(second.events).toBe(first.events);
    expect(second.simulatedMs).toBe(first.simulatedMs);
    const inWorker = await runSeedPool({ from: 7, seeds: 1, workers: 1 });
    expect(inWorker.results[0]!.traceHash).toBe(first.traceHash);
    // The hash does depend on the seed.
    expect(runSimulation({ seed: 8 }).traceHash).not.toBe(first.traceHash);
  });

  test('a seed exercises elections, crashes, snapshots and clients, and commits the workload', () => {
    // Seeds 3 and 4 have crashes and partitions (3 with 5 replicas, 4 with 3).
    for (const seed of [3, 4]) {
      const result = runSimulation({ seed });
      expect(result).toEqual(expect.objectContaining({ ok: true, replicas: seed % 2 === 0 ? 3 : 5 }));
      expect(result.stats.committed).toBeGreaterThan(10);
      expect(result.stats.opsAcked).toBeGreaterThan(5);
      expect(result.stats.crashes + result.stats.partitions).toBeGreaterThan(0);
    }
  });

  test('a failing seed reports the invariant and keeps a trace', () => {
    const result = runSimulation({ seed: 1, plantedBug: 'truncate-without-conflict', traceLines: 50 });
    expect(result.ok).toBe(false);
    expect(result.invariant).toBe('committed-is-durable');
    expect(result.trace.length).toBe(50);
    expect(result.failure).toMatch(/erased committed entry/);
  });
});

describe('no clock, timers or randomness in the Raft core and the simulator', () => {
  const banned = [/\bDate\b/, /Math\.random/, /\bsetTimeout\b/, /\bsetInterval\b/, /\bsetImmediate\b/, /\bperformance\b/, /process\.hrtime/, /crypto/, /\bqueueMicrotask\b/];
  const root = join(__dirname, '../../../src/consensus');
  for (const folder of ['raft', 'sim']) {
    test(`src/consensus/${folder}`, () => {
      const files = readdirSync(join(root, folder)).filter((f) => f.endsWith('.ts'));
      expect(files.length).toBeGreaterThan(2);
      const hits: string[] = [];
      for (const file of files) {
        readFileSync(join(root, folder, file), 'utf8')
          .split('\n')
          .forEach((line, i) => {
            for (const pattern of banned) if (pattern.test(line)) hits.push(`${folder}/${file}:${i + 1}: ${line.trim()}`);
          });
      }
      expect(hits).toEqual([]);
    });
  }
});
