/**
 * End to end over graphql-ws against the real server: subscribe frames are parsed with the exact
 * JSON reviver (an Amount variable written 1e3, 1000.0 or 100.000000000000001 is refused as over
 * HTTP), and connection_init holds tokens to the same lifetime rules as HTTP.
 */
import { SignJWT } from 'jose';
import { FEED_CLOSE } from '../../src/api/subscriptions/feed-server';
import { Collected, feedClient } from '../support/feed-client';
import { type TestLedger, rawRequest, startTestLedger, uniqueId } from '../support/ledger-server';
import { RawFeedSocket } from '../support/raw-feed-socket';

const LIFETIME_MAX_SECONDS = 7200;
const LARGE = 'subscription($m: Amount) { largeTransaction(minAmount: $m) { amount position } }';

let ledger: TestLedger;
const sockets: RawFeedSocket[] = [];
beforeAll(async () => {
  ledger = await startTestLedger({ LEDGER_TOKEN_LIFETIME_MAX_SECONDS: String(LIFETIME_MAX_SECONDS) });
});
afterEach(async () => {
  for (const s of sockets.splice(0)) await s.close();
});
afterAll(async () => {
  await ledger?.close();
});

async function connected(): Promise<RawFeedSocket> {
  const socket = await RawFeedSocket.open(ledger.url);
  sockets.push(socket);
  await socket.init(`Bearer ${await ledger.token(['compliance'], uniqueId('exact'))}`);
  expect(socket.messages.map((m) => m.type)).toEqual(['connection_ack']);
  return socket;
}

/** A subscribe frame written as text, so the number reaches the server as written. */
const subscribeFrame = (id: string, minAmountText: string) => `{"type":"subscribe","id":"${id}","payload":{"query":${JSON.stringify(LARGE)},"variables":{"m":${minAmountText}}}}`;

describe('Amount variables in subscribe frames', () => {
  it.each(['1e3', '1000.0', '100.000000000000001', '1E3', '9007199254740993'])('refuses minAmount: %s with a validation error, as over HTTP, keeping the connection', async (written) => {
    const socket = await connected();
    socket.send(subscribeFrame('bad', written));
    await socket.until(() => socket.forId('bad').length > 0, 'the refusal');
    const [answer] = socket.forId('bad');
    const errors = (answer.type === 'error' ? answer.payload : answer.payload.errors) as Array<{ message: string }>;
    expect(answer.payload.data ?? null).toBeNull();
    expect(errors[0]!.message).toMatch(/^Variable "\$m" got invalid value .*Amount (must be an integer number of minor units \(no fraction or exponent\)|as a JSON integer must be within the safe-integer range)/);
    expect(errors[0]!.message).toContain(written);

    // The same refusal over HTTP, for the same text.
    const body = `{"query":${JSON.stringify('mutation($m: Amount!) { deposit(input: { accountId: "none", amount: $m }) { __typename } }')},"variables":{"m":${written}}}`;
    const http = await rawRequest(ledger.running.port, {
      headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), authorization: `Bearer ${await ledger.token(['admin'])}` },
      body,
    });
    expect(http.json.errors?.[0]?.message).toBe(errors[0]!.message);
    // The connection is still usable: a ping is answered.
    socket.send('{"type":"ping"}');
    await socket.until(() => socket.messages.some((m) => m.type === 'pong'), 'the pong');
    expect(socket.closed).toBeNull();
  });

  it.each(['1000', '"1000"'])('accepts minAmount: %s and delivers transactions of at least 1000', async (written) => {
    const socket = await connected();
    const a = uniqueId('ex-a');
    const b = uniqueId('ex-b');
    await ledger.data(`mutation($id: ID!) { openAccount(input: { id: $id, initialBalance: "1000000" }) { __typename } }`, { id: a });
    await ledger.data(`mutation($id: ID!) { openAccount(input: { id: $id }) { __typename } }`, { id: b });
    const transfer = async (amount: string) =>
      (await ledger.data(`mutation($f: ID!, $t: ID!, $m: Amount!) { transfer(input: { fromAccountId: $f, toAccountId: $t, amount: $m }) { ... on TransferSuccess { position } } }`, { f: a, t: b, m: amount })).transfer
        .position as string;
    socket.send(subscribeFrame('ok', written));
    // Nothing says the subscription is registered but a delivered event.
    const deadline = Date.now() + 20_000;
    while (socket.forId('ok').length === 0 && Date.now() < deadline) {
      await transfer('1000');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await socket.until(() => socket.forId('ok').length > 0, 'the first event');
    const start = socket.forId('ok').length;
    await transfer('999');
    const big = await transfer('1000');
    await socket.until(() => socket.forId('ok').length > start, 'the event of 1000');
    // Give the 999 (posted first) no chance to arrive late: positions are delivered in order.
    const delivered = socket.forId('ok').slice(start);
    expect(delivered[0]).toMatchObject({ type: 'next', payload: { data: { largeTransaction: { amount: '1000', position: big } } } });
    expect(socket.forId('ok').every((m) => m.type === 'next' && !m.payload.errors && m.payload.data.largeTransaction.amount === '1000')).toBe(true);
  });
});

describe('token lifetime in connection_init', () => {
  const sign = (exp: number | null, iatOffsetSeconds = 0) => {
    const now = Math.floor(Date.now() / 1000);
    const jwt = new SignJWT({ roles: ['compliance'] }).setProtectedHeader({ alg: 'HS256' }).setSubject(uniqueId('life')).setIssuedAt(now + iatOffsetSeconds);
    if (exp !== null) jwt.setExpirationTime(now + exp);
    return jwt.sign(ledger.running.secret.key);
  };

  it.each([
    ['without exp', () => sign(null), /exp/],
    ['valid for longer than LEDGER_TOKEN_LIFETIME_MAX_SECONDS', () => sign(LIFETIME_MAX_SECONDS + 600), new RegExp(`longer than the longest allowed, ${LIFETIME_MAX_SECONDS} s`)],
    ['issued long ago with an exp far from its iat', () => sign(600, -(LIFETIME_MAX_SECONDS + 60)), new RegExp(`longer than the longest allowed, ${LIFETIME_MAX_SECONDS} s`)],
  ] as const)('refuses a token %s with the forbidden close code and the reason', async (_what, token, reason) => {
    const c = feedClient(ledger.url, await token());
    const feed = new Collected(c.client, `subscription { transactionPosted { id } }`);
    await feed.until((s) => s.errors.length > 0, 'the close');
    expect(c.closes[0]?.code).toBe(FEED_CLOSE.forbidden);
    expect(c.closes[0]?.reason).toMatch(reason);
    expect(c.connects).toBe(0);
    await c.client.dispose();
  });

  it('accepts a token within the lifetime limit', async () => {
    const c = feedClient(ledger.url, await sign(LIFETIME_MAX_SECONDS - 60));
    const feed = new Collected(c.client, `subscription { transactionPosted { id } }`);
    const deadline = Date.now() + 20_000;
    while (c.connects === 0 && c.closes.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
    expect(c.connects).toBe(1);
    expect(c.closes).toEqual([]);
    feed.dispose();
    await c.client.dispose();
  });
});
