/**
 * The analytics counters' helpers (src/projections/read-model-store.ts): bucket starts, memoised,
 * and the sum of a counter's steps past a stored position.
 */
import fc from 'fast-check';
import { bucketStart, counterTotal } from '../../src/projections/read-model-store';

describe('bucketStart', () => {
  it('gives the UTC start of the hour or day, also when asked again and across intervals (memoised)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 4_102_444_800_000 }), fc.constantFrom('HOUR' as const, 'DAY' as const)), { minLength: 1, maxLength: 20 }), (asks) => {
        for (const [ms, interval] of [...asks, ...asks]) {
          const size = interval === 'HOUR' ? 3_600_000 : 86_400_000;
          expect(bucketStart(new Date(ms).toISOString(), interval)).toBe(new Date(Math.floor(ms / size) * size).toISOString());
        }
      }),
    );
  });

  it('refuses what is not an instant, whatever it answered before', () => {
    bucketStart('2026-01-31T12:34:56.000Z', 'HOUR');
    for (const bad of ['', 'not a time', '2026-13-01T00:00:00Z']) {
      expect(() => bucketStart(bad, 'HOUR')).toThrow('is not an ISO 8601 date-time');
      expect(() => bucketStart(bad, 'DAY')).toThrow('is not an ISO 8601 date-time');
    }
  });
});

describe('counterTotal', () => {
  const p = (n: number) => `${String(n).padStart(16, '0')}-000000`;
  it('sums every field of the steps after the stored position, and names the last position', () => {
    const increment = {
      _id: 'USD:DAY:x',
      keys: { currency: 'USD', interval: 'DAY' as const, start: 'x' },
      steps: [1, 2, 3, 4].map((n) => ({ position: p(n), add: { count: 1n, amount: BigInt(n * 10) } })),
    };
    expect(counterTotal(increment, null)).toEqual({ add: { count: 4n, amount: 100n }, position: p(4) });
    expect(counterTotal(increment, p(2))).toEqual({ add: { count: 2n, amount: 70n }, position: p(4) });
    expect(counterTotal(increment, p(4))).toBeNull();
  });
});
