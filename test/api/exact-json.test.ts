/**
 * parseJsonExact parses without its reviver when the text holds no number (src/api/exact-json.ts):
 * the result must be what the reviver gives, for any JSON.
 */
import fc from 'fast-check';
import { InexactJsonNumber, exactJsonReviver, parseJsonExact } from '../../src/api/exact-json';

const withReviver = (text: string) => JSON.parse(text, exactJsonReviver as (key: string, value: unknown) => unknown) as unknown;

describe('parseJsonExact', () => {
  it('gives what the exact-number reviver gives, for any JSON text', () => {
    fc.assert(
      fc.property(fc.oneof(fc.json(), fc.json().map((text) => `{"a":[${text},"1.5"],"n":{"m":[1e3]}}`)), (text) => {
        expect(parseJsonExact(text)).toStrictEqual(withReviver(text));
      }),
      { numRuns: 1000 },
    );
  });

  it('keeps a number not written as an integer apart, however deep it sits among strings', () => {
    const parsed = parseJsonExact('{"variables":{"input":{"operations":[{"deposit":{"accountId":"a","amount":"1"}},{"deposit":{"accountId":"a","amount":1.0}}]}}}') as any;
    expect(parsed.variables.input.operations[0].deposit.amount).toBe('1');
    expect(parsed.variables.input.operations[1].deposit.amount).toEqual(new InexactJsonNumber(1, '1.0'));
    expect(parseJsonExact('[[[[["x"]]]], 7]')).toEqual([[[[['x']]]], 7]);
  });

  it('answers deep nesting as the reviver does: the same value, or the same refusal', () => {
    for (const depth of [100, 511, 512, 513, 2000, 100_000]) {
      const text = `${'['.repeat(depth)}"x"${']'.repeat(depth)}`;
      const refusal = (() => {
        try {
          withReviver(text);
          return null;
        } catch (error) {
          return error as Error;
        }
      })();
      if (refusal) {
        expect(() => parseJsonExact(text)).toThrow(refusal.constructor as ErrorConstructor);
        continue;
      }
      let value = parseJsonExact(text);
      let levels = 0;
      while (Array.isArray(value)) {
        value = value[0];
        levels += 1;
      }
      expect([levels, value]).toEqual([depth, 'x']);
    }
  });
});
