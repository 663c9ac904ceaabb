/**
 * The graphql-ws frame fuzzer with a fixed budget and seed (more: `npm run fuzz:ws -- --runs N --seed S`),
 * proof that it finds planted bugs (frames parsed with plain JSON.parse again, so that 1e3 passes as an
 * Amount; the per-connection subscription limit skipped), and the two bugs it found, pinned.
 */
import { plantedFeedBugsForTests } from '../../src/api/subscriptions/feed-server';
import { WS_FUZZ_SERVER_ENV, runWsFuzz, wsFuzzLimits } from '../fuzz/ws-fuzz';
import { type TestLedger, startTestLedger } from '../support/ledger-server';
import { RawFeedSocket } from '../support/raw-feed-socket';

const RUNS = Number(process.env.FUZZ_WS_RUNS ?? 100);
const SEED = Number(process.env.FUZZ_WS_SEED ?? 1313);

let ledger: TestLedger;
beforeAll(async () => {
  ledger = await startTestLedger(WS_FUZZ_SERVER_ENV);
});
afterEach(() => {
  plantedFeedBugsForTests.plainJsonFrames = false;
  plantedFeedBugsForTests.noSubscriptionLimit = false;
});
afterAll(async () => {
  await ledger?.close();
});

it(`survives ${RUNS} cases of hostile frames (seed ${SEED}): no crash, no hang, client-error closes, refusals change nothing`, async () => {
  const lines: string[] = [];
  const result = await runWsFuzz(ledger.running, { runs: RUNS, seed: SEED, ...wsFuzzLimits, log: (line) => lines.push(line) });
  console.log(lines.join('\n'));
  expect(result.cases).toBe(RUNS);
  expect(lines.at(-1)).toMatch(new RegExp(`^ws fuzz: ${RUNS} cases passed \\(seed ${SEED};`));
  // The run reached both sides: connections kept open to the end, and refusals of every kind.
  expect(result.closes.open).toBeGreaterThan(0);
  for (const code of ['4400', '4401', '4429', '1003', '1009']) expect(result.closes[code]).toBeGreaterThan(0);
  expect(result.refusalsChecked).toBeGreaterThan(RUNS / 10);
}, 300_000);

it.each([
  ['frames are parsed with plain JSON.parse (1e3 passes as an Amount)', 'plainJsonFrames', /a subscribe that must be refused was not \(subscription\(\$m: Amount\)/],
  ['the per-connection subscription limit is skipped', 'noSubscriptionLimit', /a subscribe that must be refused was not \(a subscription beyond 3 on one connection/],
] as const)('fails, naming its seed, when %s', async (_what, bug, message) => {
  plantedFeedBugsForTests[bug] = true;
  const lines: string[] = [];
  let failure: Error | undefined;
  try {
    await runWsFuzz(ledger.running, { runs: RUNS, seed: SEED, ...wsFuzzLimits, endOnFailure: true, log: (line) => lines.push(line) });
  } catch (error) {
    failure = error as Error;
  } finally {
    plantedFeedBugsForTests[bug] = false;
  }
  expect(failure).toBeDefined();
  expect(failure!.message).toMatch(message);
  expect(failure!.message).toMatch(new RegExp(`seed: ${SEED}`));
  expect(lines.join('\n')).toMatch(new RegExp(`ws fuzz FAILED after \\d+ cases \\(seed ${SEED}\\); replay with: npm run fuzz:ws -- --runs ${RUNS} --seed ${SEED}`));
}, 300_000);

describe('what the fuzzer found', () => {
  const connected = async () => {
    const socket = await RawFeedSocket.open(ledger.url);
    await socket.init(`Bearer ${await ledger.token(['compliance'])}`);
    expect(socket.messages.map((m) => m.type)).toEqual(['connection_ack']);
    return socket;
  };

  it.each(['next', 'connection_ack'])('a client sending %s is closed with 4400 (a bad request), not 4500 (an internal error)', async (type) => {
    const socket = await connected();
    socket.send(`{"type":"${type}","id":"1","payload":{}}`);
    await socket.until(() => socket.closed !== null, 'the close');
    expect(socket.closed).toEqual({ code: 4400, reason: `Unexpected message of type ${type} received` });
  });

  it('a binary frame is closed with 1003, not decoded as text and answered', async () => {
    const socket = await connected();
    socket.send(Buffer.from('{"type":"ping"}'));
    await socket.until(() => socket.closed !== null, 'the close');
    expect(socket.closed).toEqual({ code: 1003, reason: 'graphql-ws messages are JSON text frames, not binary' });
    expect(socket.messages.some((m) => m?.type === 'pong')).toBe(false);
  });
});
