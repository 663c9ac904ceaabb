/**
 * A client that stops reading: its connection is closed with 1013 (which the standard graphql-ws
 * client retries) once its bounded buffer is full; the server's queues stay within the limits
 * meanwhile; another subscriber and the mutations carry on; and after it reconnects with `after`
 * it has lost nothing and got nothing twice.
 */
import WebSocket from 'ws';
import { ResumingFeed, eventually } from '../support/feed-client';
import { type TestLedger, startTestLedger, uniqueId } from '../support/ledger-server';

const EVENTS_MAX = 200;
const BYTES_MAX = 256 * 1024;
const ERR = '__typename ... on LedgerError { code message }';
const QUERY = `subscription($a: ID, $after: Position) { transactionPosted(accountId: $a, after: $after) { id amount metadata position } }`;

/** The `ws` client, with every instance kept so the test can stop one from reading. */
class TrackedWebSocket extends WebSocket {
  static instances: TrackedWebSocket[] = [];
  constructor(...args: ConstructorParameters<typeof WebSocket>) {
    super(...args);
    TrackedWebSocket.instances.push(this);
  }
  /** Stops reading from the TCP socket: the kernel buffers fill, then the server's. */
  pauseReading(): void {
    (this as unknown as { _socket: { pause(): void } })._socket.pause();
  }
  resumeReading(): void {
    (this as unknown as { _socket: { resume(): void } })._socket.resume();
  }
}

let ledger: TestLedger;

beforeAll(async () => {
  ledger = await startTestLedger({ LEDGER_FEED_BUFFER_EVENTS_MAX: String(EVENTS_MAX), LEDGER_FEED_BUFFER_BYTES_MAX: String(BYTES_MAX) });
});
afterAll(async () => {
  await ledger?.close();
});

it('closes a stalled consumer with 1013, keeps memory bounded and others unaffected, and it resumes without loss', async () => {
  const a = uniqueId('slow-a');
  const b = uniqueId('slow-b');
  let opened = '';
  for (const id of [a, b]) {
    opened = (await ledger.data(`mutation($id: ID!) { openAccount(input: { id: $id, initialBalance: "1000000000" }) { ${ERR} ... on OpenAccountSuccess { position } } }`, { id })).openAccount.position;
  }
  const token = await ledger.token(['compliance'], uniqueId('slow'));
  const slow = new ResumingFeed(ledger.url, token, QUERY, { after: opened, variables: { a }, webSocketImpl: TrackedWebSocket });
  const steady = new ResumingFeed(ledger.url, await ledger.token(['compliance'], uniqueId('steady')), QUERY, { after: opened, variables: { a } });
  const pad = 'x'.repeat(3_800);
  const acked: string[] = [];
  const batch = async (size: number) => {
    const operations = Array.from({ length: size }, (_, i) => ({ transfer: { fromAccountId: i % 2 ? a : b, toAccountId: i % 2 ? b : a, amount: '1', metadata: { pad } } }));
    const result = await ledger.data(`mutation($ops: [BatchOperationInput!]!) { executeBatch(input: { operations: $ops }) { ${ERR} ... on BatchSuccess { transactions { position } } } }`, { ops: operations });
    if (!result.executeBatch.transactions) throw new Error(`batch failed: ${JSON.stringify(result)}`);
    acked.push(...result.executeBatch.transactions.map((t: { position: string }) => t.position));
  };

  await batch(5);
  await eventually(() => slow.items.length === 5 && steady.items.length === 5, 'both feeds to start');
  const slowSocket = TrackedWebSocket.instances.at(-1)!;
  slowSocket.pauseReading();

  let queuedEventsPeak = 0;
  let queuedBytesPeak = 0;
  const sample = setInterval(() => {
    const stats = ledger.running.feeds.stats();
    queuedEventsPeak = Math.max(queuedEventsPeak, stats.queuedEvents);
    queuedBytesPeak = Math.max(queuedBytesPeak, stats.queuedBytes);
  }, 5);
  try {
    // Each event is about 4 KB: enough to fill the loopback buffers of both ends, then the budget.
    for (let i = 0; i < 40 && !closedByServer(); i += 1) await batch(200);
  } finally {
    clearInterval(sample);
  }
  expect(closedByServer()).toBe(true);
  expect(queuedEventsPeak).toBeLessThanOrEqual(EVENTS_MAX);
  expect(queuedBytesPeak).toBeLessThanOrEqual(BYTES_MAX);
  // The steady subscriber got everything while the slow one was stuck; mutations all went through.
  await eventually(() => steady.items.length === acked.length, `the steady feed to get all ${acked.length}`, 60_000);
  expect(steady.positions()).toEqual(acked);

  slowSocket.resumeReading();
  await eventually(() => slow.closes.length > 0, 'the slow client to see the close', 60_000);
  expect(slow.closes[0]!.code).toBe(1013);
  expect(slow.closes[0]!.reason).toMatch(/^slow consumer: more than .* waiting; reconnect and resume with after$/);
  await batch(3);
  await eventually(() => slow.items.length === acked.length, `the slow feed to catch up to ${acked.length}`, 60_000);
  expect(slow.connects).toBeGreaterThanOrEqual(2);
  expect(slow.positions()).toEqual(acked);
  await eventually(() => steady.items.length === acked.length, 'the steady feed');
  expect(steady.positions()).toEqual(acked);
  await slow.dispose();
  await steady.dispose();
}, 180_000);

/** The server has started the close handshake (its close frame is queued behind the data). */
function closedByServer(): boolean {
  return ledger.running.feeds.stats().closedTryAgainLater > 0;
}
