import { PositionWaiters, WaitersFullError } from '../../src/projections/position-waiters';
import { formatPosition } from '../../src/domain/position';

const at = (index: number) => formatPosition(index, 0);

describe('PositionWaiters', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('wakes exactly the waits at or before the reached position, whatever order they came in', async () => {
    const waiters = new PositionWaiters();
    const order = [7, 3, 9, 1, 5, 3];
    const settled: Array<[number, boolean]> = [];
    const waits = order.map((index) => waiters.wait(at(index), null, 60_000).then((reached) => settled.push([index, reached])));
    waiters.reached(at(4));
    await Promise.resolve();
    await Promise.resolve();
    expect(settled.map(([i]) => i).sort()).toEqual([1, 3, 3]);
    expect(waiters.size).toBe(3);
    waiters.reached(at(9));
    await Promise.all(waits);
    expect(settled.every(([, reached]) => reached)).toBe(true);
    expect(waiters.size).toBe(0);
  });

  it('answers at once when the position is already reached', async () => {
    const waiters = new PositionWaiters({ waitersMax: 1 });
    await expect(waiters.wait(at(3), at(5), 10)).resolves.toBe(true);
    expect(waiters.size).toBe(0);
  });

  it('expires each wait at its own deadline and leaves the others waiting', async () => {
    const waiters = new PositionWaiters();
    const outcome = new Map<number, boolean>();
    for (const [index, timeoutMs] of [
      [1, 300],
      [2, 100],
      [3, 200],
      [4, 10_000],
    ] as const) {
      void waiters.wait(at(100 + index), null, timeoutMs).then((reached) => outcome.set(index, reached));
    }
    await jest.advanceTimersByTimeAsync(150);
    expect([...outcome]).toEqual([[2, false]]);
    await jest.advanceTimersByTimeAsync(100);
    expect(outcome.get(3)).toBe(false);
    expect(outcome.has(1)).toBe(false);
    await jest.advanceTimersByTimeAsync(100);
    expect(outcome.get(1)).toBe(false);
    expect(waiters.size).toBe(1);
    waiters.reached(at(104));
    await jest.advanceTimersByTimeAsync(0);
    expect(outcome.get(4)).toBe(true);
    expect(waiters.size).toBe(0);
  });

  it('refuses a wait past waitersMax with a retryable error, and takes new ones once slots free up', async () => {
    const waiters = new PositionWaiters({ waitersMax: 3 });
    const pending = [1, 2, 3].map((i) => waiters.wait(at(i), null, 1_000));
    await expect(waiters.wait(at(4), null, 1_000)).rejects.toThrow(WaitersFullError);
    await expect(waiters.wait(at(4), null, 1_000)).rejects.toThrow(/3 reads are already waiting for positions; retry shortly/);
    waiters.reached(at(1));
    await expect(pending[0]).resolves.toBe(true);
    const fourth = waiters.wait(at(4), null, 1_000);
    await jest.advanceTimersByTimeAsync(1_000);
    await expect(Promise.all([...pending.slice(1), fourth])).resolves.toEqual([false, false, false]);
    expect(waiters.size).toBe(0);
  });

  it('holds no trace of a wait once it was reached or expired', async () => {
    const waiters = new PositionWaiters();
    const long = waiters.wait(at(1_000_000), null, 60_000);
    for (let round = 0; round < 5; round += 1) {
      for (let i = 0; i < 1_000; i += 1) void waiters.wait(at(round * 1_000 + i + 1), null, i % 2 === 0 ? 100 : 60_000);
      await jest.advanceTimersByTimeAsync(100);
      waiters.reached(at(round * 1_000 + 1_000));
    }
    const sets = waiters as unknown as { byPosition: { size(): number }; byDeadline: { size(): number } };
    expect([waiters.size, sets.byPosition.size(), sets.byDeadline.size()]).toEqual([1, 1, 1]);
    waiters.cancelAll();
    await expect(long).resolves.toBe(false);
    expect(waiters.size).toBe(0);
  });
});
