/**
 * A fuzzer of the graphql-ws surface, against the real server (started in this process by the caller).
 *
 * Each case opens one to three connections at once and sends each a generated script of frames:
 * connection_init with good and bad tokens (or none, or twice), subscribe with valid and refused
 * documents (mutations, queries, broken text, deep nesting) and variables carrying numbers of every
 * JSON shape, subscribe before connection_init, duplicate ids, complete with unknown ids, pings and
 * pongs, server-only and unknown message types, text that is not JSON or not a message, missing and
 * extra fields, frames over the size limit, deep JSON, binary frames and invalid UTF-8. A small model
 * of the protocol says what the server must do. Properties checked for every case:
 *
 *   - every connection ends: it answers a final ping or is closed, never hangs; a close carries a
 *     4xxx client-error code or 1002/1003/1007/1009, never 4500/1011 (the server's fault) nor 1006;
 *   - a frame the protocol refuses (not JSON, unknown or server-only type, a second connection_init,
 *     a subscribe before connection_ack or with an active id, binary, too big) closes the connection;
 *   - a subscribe that must be refused (an Amount not written as API.md allows, a mutation or query,
 *     a document nested too deep, one subscription beyond the per-connection maximum) gets an error;
 *   - no frame changes anything: the log's last index and every account are as before;
 *   - meanwhile HTTP answers 200 (a query and /health); a well-behaved subscriber on its own
 *     connection keeps receiving its events; memory stays bounded; no connection or subscription
 *     outlives its socket; a connection that never sends connection_init is closed (4408).
 *
 * A failure throws fast-check's report (seed, path and the smallest failing case found).
 */
import fc from 'fast-check';
import { SignJWT } from 'jose';
import { documentNesting } from '../../src/api/nesting';
import type { RunningLedger } from '../../src/app/start-server';
import { Collected, feedClient } from '../support/feed-client';
import { rawRequest } from '../support/ledger-server';
import { RawFeedSocket } from '../support/raw-feed-socket';
import { amountFormAllowed, amountText, jsonText, ledgerSnapshot, numberText } from './http-fuzz';

export interface WsFuzzOptions {
  runs: number;
  seed: number;
  /** The server's LEDGER_FEED_SUBSCRIPTIONS_PER_CONNECTION_MAX (the model expects refusals beyond it). */
  subscriptionsPerConnectionMax: number;
  /** The server's LEDGER_TOKEN_LIFETIME_MAX_SECONDS (tokens beyond it must be refused). */
  tokenLifetimeMaxSeconds: number;
  /** Stop at the first failure without shrinking (faster; the seed still replays it). */
  endOnFailure?: boolean;
  log?: (line: string) => void;
}

export interface WsFuzzResult {
  cases: number;
  seed: number;
  connections: number;
  frames: number;
  /** Close codes seen, by code ("open" for connections that answered the final ping). */
  closes: Record<string, number>;
  refusalsChecked: number;
  rssGrowthBytes: number;
}

const RSS_GROWTH_MAX_BYTES = 512 * 1024 * 1024;
const ACCOUNT = 'wf-a';
/** Close codes that say the client was wrong (graphql-ws 44xx; RFC 6455 protocol error, unsupported data, invalid UTF-8, too big). */
const CLIENT_ERROR_CLOSES = new Set([4400, 4401, 4403, 4406, 4408, 4409, 4429, 1002, 1003, 1007, 1009]);
/** How long the server has to answer, close, or refuse (generous: the machine is shared). */
const ANSWER_TIMEOUT_MS = 15_000;
/** How long a refusal may take: an accepted subscription says nothing, so this is paid once per missed refusal. */
const REFUSAL_WAIT_MS = 8_000;
/** Variables nested deeper than this make the model stop predicting (see 'wild' frames). */
const WILD_NESTING = 100;
/** The server's largest message (feed-server MESSAGE_BYTES_MAX). */
const MESSAGE_BYTES_MAX = 64 * 1024;

// ---- frames ------------------------------------------------------------------------------------

type InitAuth = 'good' | 'no-exp' | 'too-long' | 'garbage' | 'none' | 'payload-not-object' | 'no-payload';

/** What the model says about a subscribe on an acknowledged connection. */
type Verdict = 'active' | 'refused' | 'unknown';

type Frame =
  | { kind: 'init'; auth: InitAuth }
  | { kind: 'subscribe'; id: string; query: string; variables: string; verdict: Verdict; extra: string }
  | { kind: 'fatal'; text: string | Buffer; binary: boolean; why: string }
  | { kind: 'benign'; text: string; why: string }
  | { kind: 'complete'; id: string }
  /** A frame whose outcome the model does not predict (deep JSON): later predictions are off. */
  | { kind: 'wild'; text: string; why: string };

const ids = fc.constantFrom('1', '2', '3', '4', '5', 'x'.repeat(200));
const extraFields = fc.oneof({ weight: 4, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom(',"extra":1', ',"extensions":{"a":[1e3]}', ',"operationName":null', ',"payload2":{}') });

/** Numbers that JSON.parse makes whole and safe (1e3, 1000.0, 100.000000000000001): only their source text shows they are no Amount. */
const integralInexact = fc
  .tuple(fc.integer({ min: 0, max: 5000 }), fc.constantFrom('.0', '.00', 'e0', 'E0', 'e+0', 'e1', 'E2', '.000000000000001', '.0000000000000001e0'))
  .map(([m, tail]) => `${m}${tail}`);
const minAmountText = fc.oneof({ weight: 2, arbitrary: amountText }, { weight: 1, arbitrary: integralInexact });

const LARGE = 'subscription($m: Amount) { largeTransaction(minAmount: $m) { id amount } }';
const POSTED = 'subscription($a: ID) { transactionPosted(accountId: $a) { id position } }';
const UPDATED = 'subscription($a: ID!) { accountUpdated(accountId: $a) { id balance } }';

const subscribe: fc.Arbitrary<Frame> = fc.oneof(
  // largeTransaction with an Amount of every shape: a form API.md refuses must be refused.
  fc.tuple(ids, minAmountText, extraFields).map(([id, m, extra]) => {
    const verdict: Verdict = !amountFormAllowed(m) ? 'refused' : m === 'null' || /^"?[0-9]{1,15}"?$/.test(m) ? 'active' : 'unknown';
    return { kind: 'subscribe' as const, id, query: LARGE, variables: `{"m":${m}}`, verdict, extra };
  }),
  fc.tuple(ids, fc.oneof(fc.constant(`"${ACCOUNT}"`), jsonText), extraFields).map(([id, a, extra]) => ({
    kind: 'subscribe' as const,
    id,
    query: POSTED,
    variables: `{"a":${a}}`,
    verdict: (a === `"${ACCOUNT}"` || a === 'null' ? 'active' : 'unknown') as Verdict,
    extra,
  })),
  fc.tuple(ids, fc.oneof(fc.constant(`"${ACCOUNT}"`), numberText, jsonText)).map(([id, a]) => ({
    kind: 'subscribe' as const,
    id,
    query: UPDATED,
    variables: `{"a":${a}}`,
    verdict: (a === `"${ACCOUNT}"` ? 'active' : 'unknown') as Verdict,
    extra: '',
  })),
  // Documents the feed server must refuse: mutations (which would change the ledger), queries,
  // documents nested too deep (the cost limit recursing over them overflowed the stack over HTTP).
  fc.tuple(ids, numberText).map(([id, a]) => ({
    kind: 'subscribe' as const,
    id,
    query: `mutation($a: Amount!) { deposit(input: { accountId: "${ACCOUNT}", amount: $a }) { __typename } }`,
    variables: `{"a":${a}}`,
    verdict: 'refused' as Verdict,
    extra: '',
  })),
  fc.tuple(ids, fc.constantFrom('{ ledger { nodeId } }', `mutation { deposit(input: { accountId: "${ACCOUNT}", amount: "5" }) { __typename } }`)).map(([id, query]) => ({
    kind: 'subscribe' as const,
    id,
    query,
    variables: '{}',
    verdict: 'refused' as Verdict,
    extra: '',
  })),
  fc.tuple(ids, fc.integer({ min: 65, max: 3_000 }), fc.boolean()).map(([id, depth, brackets]) => ({
    kind: 'subscribe' as const,
    id,
    query: brackets
      ? `subscription { transactionPosted(accountId: ${'['.repeat(depth)}"a"${']'.repeat(depth)}) { id } }`
      : `subscription { transactionPosted { ${'a { '.repeat(depth)}b${' }'.repeat(depth)} } }`,
    variables: '{}',
    verdict: 'refused' as Verdict,
    extra: '',
  })),
  fc.tuple(ids, fc.string({ maxLength: 200 })).map(([id, query]) => ({ kind: 'subscribe' as const, id, query, variables: '{}', verdict: 'unknown' as Verdict, extra: '' })),
  fc.tuple(ids, fc.integer({ min: 21, max: 2_000 })).map(([id, n]) => ({
    kind: 'subscribe' as const,
    id,
    query: `subscription { transactionPosted { ${Array.from({ length: n }, (_, i) => `a${i}: id`).join(' ')} } }`,
    variables: '{}',
    verdict: 'refused' as Verdict,
    extra: '',
  })),
);

const fatal: fc.Arbitrary<Frame> = fc.oneof(
  fc.string({ maxLength: 100 }).filter((s) => !isJson(s)).map((text) => ({ kind: 'fatal' as const, text, binary: false, why: 'not JSON' })),
  fc.constantFrom('1', '"ping"', '[]', 'null', '{}', '{"type":""}', '{"type":7}', '{"id":"1"}').map((text) => ({ kind: 'fatal' as const, text, binary: false, why: 'not a message' })),
  fc.constantFrom(
    '{"type":"subscribe","id":"1"}',
    '{"type":"subscribe","id":"","payload":{"query":"subscription { transactionPosted { id } }"}}',
    '{"type":"subscribe","id":1,"payload":{"query":"subscription { transactionPosted { id } }"}}',
    '{"type":"subscribe","id":"1","payload":{"query":7}}',
    '{"type":"subscribe","id":"1","payload":{"query":"subscription { transactionPosted { id } }","variables":[1e3]}}',
    '{"type":"subscribe","id":"1","payload":{"query":"subscription { transactionPosted { id } }","operationName":5}}',
    '{"type":"complete"}',
    '{"type":"ping","payload":"x"}',
    '{"type":"pong","payload":[1]}',
  ).map((text) => ({ kind: 'fatal' as const, text, binary: false, why: 'missing or wrong fields' })),
  fc.integer({ min: MESSAGE_BYTES_MAX + 1, max: 4 * MESSAGE_BYTES_MAX }).map((n) => ({
    kind: 'fatal' as const,
    text: `{"type":"subscribe","id":"big","payload":{"query":"subscription { transactionPosted { id } }","variables":{"s":"${'a'.repeat(n)}"}}}`,
    binary: false,
    why: 'over the size limit',
  })),
  fc.oneof(fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)), fc.constant(Buffer.from('{"type":"ping"}'))).map((bytes) => ({ kind: 'fatal' as const, text: bytes, binary: true, why: 'a binary frame' })),
  fc.constant({ kind: 'fatal' as const, text: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), binary: false, why: 'invalid UTF-8 in a text frame' }),
);

/** Types only a server sends, and types of other protocols (subscriptions-transport-ws). */
const foreignType: fc.Arbitrary<Frame> = fc.constantFrom('next', 'connection_ack', 'error', 'start', 'connection_terminate', 'stop', 'subscription', 'PING').map((type) => ({
  kind: 'fatal' as const,
  text: `{"type":"${type}","id":"1","payload":{}}`,
  binary: false,
  why: `a client may not send ${type}`,
}));

const benign: fc.Arbitrary<Frame> = fc.oneof(
  fc.constantFrom('{"type":"ping"}', '{"type":"ping","payload":{"a":1e400}}', '{"type":"pong"}', '{"type":"pong","payload":{"n":1.5}}', '{"type":"ping","payload":null}').map((text) => ({ kind: 'benign' as const, text, why: 'ping or pong' })),
);

const wild: fc.Arbitrary<Frame> = fc.oneof(
  fc.tuple(ids, fc.integer({ min: 100, max: 30_000 }), fc.boolean()).map(([id, depth, arrays]) => ({
    kind: 'wild' as const,
    text: `{"type":"subscribe","id":"${id}","payload":{"query":${JSON.stringify(POSTED)},"variables":{"a":${arrays ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`}}}}`.slice(0, MESSAGE_BYTES_MAX),
    why: 'deep JSON in variables',
  })),
  jsonText.map((payload) => ({ kind: 'wild' as const, text: `{"type":"connection_init","payload":${payload}}`, why: 'connection_init with any payload' })),
);

const frame: fc.Arbitrary<Frame> = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom<InitAuth>('good', 'good', 'good', 'no-exp', 'too-long', 'garbage', 'none', 'payload-not-object', 'no-payload').map((auth) => ({ kind: 'init' as const, auth })) },
  { weight: 6, arbitrary: subscribe },
  { weight: 2, arbitrary: ids.map((id) => ({ kind: 'complete' as const, id })) },
  { weight: 2, arbitrary: fatal },
  { weight: 1, arbitrary: foreignType },
  { weight: 1, arbitrary: benign },
  { weight: 1, arbitrary: wild },
);

/** A connection's script: usually a good connection_init first, then frames. */
const script = fc.record({
  protocol: fc.oneof({ weight: 19, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  initFirst: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  /** Well-formed subscriptions with fresh ids after the first frame: enough to reach the per-connection maximum. */
  burst: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 6 }) }),
  frames: fc.array(frame, { minLength: 0, maxLength: 8 }),
});
const caseArbitrary = fc.array(script, { minLength: 1, maxLength: 3 });
type Script = typeof script extends fc.Arbitrary<infer T> ? T : never;

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

// ---- running a script --------------------------------------------------------------------------

let subSeq = 0;
async function authorization(auth: InitAuth, key: Uint8Array, lifetimeMaxSeconds: number): Promise<string | null> {
  subSeq += 1;
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ roles: ['compliance'] }).setProtectedHeader({ alg: 'HS256' }).setSubject(`ws-fuzz-${subSeq}`).setIssuedAt(now);
  switch (auth) {
    case 'good':
      return `Bearer ${await jwt.setExpirationTime(now + 600).sign(key)}`;
    case 'no-exp':
      return `Bearer ${await jwt.sign(key)}`;
    case 'too-long':
      return `Bearer ${await jwt.setExpirationTime(now + lifetimeMaxSeconds + 3600).sign(key)}`;
    case 'garbage':
      return 'Bearer abc.def.ghi';
    default:
      return null;
  }
}

interface Outcome {
  label: string;
  close: string;
  frames: number;
  refusalsChecked: number;
}

class Failure extends Error {}

/** Sends one script on its own connection; throws a Failure when the server breaks a property. */
async function runScript(running: RunningLedger, url: string, s: Script, options: WsFuzzOptions, lifetimeMaxSeconds: number): Promise<Outcome> {
  const socket = await RawFeedSocket.open(url, s.protocol ? undefined : null);
  const key = running.secret.key;
  const sent: string[] = [];
  const label = () => `connection [protocol ${s.protocol}] frames:\n    ${sent.map((f) => f.slice(0, 300)).join('\n    ')}`;
  const fail = (what: string) => new Failure(`${what}\n  ${label()}\n  received: ${JSON.stringify(socket.messages).slice(0, 600)}\n  close: ${JSON.stringify(socket.closed)}`);
  // The model.
  let fatalWhy: string | null = s.protocol ? null : 'no subprotocol';
  let uncertain = false;
  let initReceived = false;
  let acked = false;
  const active = new Set<string>();
  const unknownIds = new Set<string>();
  let refusalsChecked = 0;
  /** Refusal answers per id already accounted for (ids are reused). */
  const answeredBefore = new Map<string, number>();
  const refusedAnswers = (id: string) =>
    socket.forId(id).filter((m) => m.type === 'error' || (m.type === 'next' && Array.isArray(m.payload?.errors) && m.payload.data == null)).length - (answeredBefore.get(id) ?? 0);
  let frames = 0;
  const sendText = (text: string | Buffer, binary = false) => {
    frames += 1;
    sent.push(typeof text === 'string' ? text : `<${binary ? 'binary' : 'text'} ${text.toString('hex').slice(0, 80)}>`);
    socket.send(text, { binary });
  };

  const burst = Array.from({ length: s.burst }, (_, i): Frame => ({ kind: 'subscribe', id: `b${i}`, query: POSTED, variables: `{"a":"${ACCOUNT}"}`, verdict: 'active', extra: '' }));
  const all: Frame[] = s.initFirst ? [{ kind: 'init', auth: 'good' }, ...burst, ...s.frames] : [...burst, ...s.frames];
  try {
    for (const f of all) {
      if (socket.closed) break;
      switch (f.kind) {
        case 'init': {
          const header = await authorization(f.auth, key, lifetimeMaxSeconds);
          const text =
            f.auth === 'payload-not-object' ? '{"type":"connection_init","payload":"Bearer x"}' : f.auth === 'no-payload' ? '{"type":"connection_init"}' : JSON.stringify({ type: 'connection_init', payload: header === null ? {} : { authorization: header } });
          if (initReceived) fatalWhy ??= 'a second connection_init';
          else if (f.auth !== 'good') fatalWhy ??= `connection_init with ${f.auth}`;
          const first = !initReceived;
          initReceived = true;
          sendText(text);
          if (first && f.auth === 'good' && fatalWhy === null && !uncertain) {
            await socket.until(() => socket.closed !== null || socket.messages.some((m) => m?.type === 'connection_ack'), 'connection_ack', ANSWER_TIMEOUT_MS).catch(() => {
              throw fail('no connection_ack and no close after a good connection_init');
            });
            if (socket.closed) throw fail('a good connection_init was refused');
            acked = true;
          }
          break;
        }
        case 'subscribe': {
          const text = `{"type":"subscribe","id":${JSON.stringify(f.id)},"payload":{"query":${JSON.stringify(f.query)},"variables":${f.variables}${f.extra}}}`;
          sendText(text);
          if (Buffer.byteLength(text) > MESSAGE_BYTES_MAX) fatalWhy ??= 'a subscribe over the size limit';
          // Deep JSON may be refused as an invalid message (4400) while parsing: no prediction after it.
          if (documentNesting(f.variables) > WILD_NESTING) uncertain = true;
          if (fatalWhy !== null || uncertain) break;
          if (!acked) {
            fatalWhy = 'subscribe before connection_ack';
            break;
          }
          if (active.has(f.id)) {
            fatalWhy = `subscribe with the active id ${f.id}`;
            break;
          }
          if (unknownIds.has(f.id)) {
            uncertain = true;
            break;
          }
          let refusal: string | null = null;
          if (f.verdict === 'refused') refusal = `${f.query.slice(0, 80)} with ${f.variables.slice(0, 80)}`;
          else if (active.size >= options.subscriptionsPerConnectionMax) refusal = `a subscription beyond ${options.subscriptionsPerConnectionMax} on one connection`;
          if (refusal !== null) {
            // Waited for here, before anything else is sent: a later frame's close must not pass for the answer.
            await socket.until(() => refusedAnswers(f.id) > 0 || socket.closed !== null, 'the refusal', REFUSAL_WAIT_MS).catch(() => undefined);
            if (refusedAnswers(f.id) === 0) throw fail(`a subscribe that must be refused was not (${refusal}; id ${f.id})`);
            refusalsChecked += 1;
            answeredBefore.set(f.id, refusedAnswers(f.id));
          }
          // Refused and unknown subscriptions may hold a place in the server's count for a while.
          if (f.verdict === 'active' && active.size + unknownIds.size < options.subscriptionsPerConnectionMax) active.add(f.id);
          else unknownIds.add(f.id);
          break;
        }
        case 'complete':
          sendText(`{"type":"complete","id":${JSON.stringify(f.id)}}`);
          if (active.delete(f.id)) unknownIds.add(f.id);
          break;
        case 'fatal':
          sendText(f.text, f.binary);
          fatalWhy ??= f.why;
          break;
        case 'benign':
          sendText(f.text);
          break;
        case 'wild':
          sendText(f.text);
          uncertain = true;
          break;
      }
    }
    const finalMark = frames;
    sendText(`{"type":"ping","payload":{"final":${finalMark}}}`);
    const answered = () => socket.messages.some((m) => m?.type === 'pong' && m.payload?.final === finalMark);
    if (fatalWhy !== null && !uncertain) {
      await socket.until(() => socket.closed !== null, 'the close', ANSWER_TIMEOUT_MS).catch(() => {
        throw fail(`not closed within ${ANSWER_TIMEOUT_MS} ms after ${fatalWhy}`);
      });
    } else {
      await socket.until(() => socket.closed !== null || answered(), 'the pong or a close', ANSWER_TIMEOUT_MS).catch(() => {
        throw fail(`neither answered the final ping nor closed within ${ANSWER_TIMEOUT_MS} ms (hanging)`);
      });
    }
    if (socket.closed && !CLIENT_ERROR_CLOSES.has(socket.closed.code)) throw fail(`closed with ${socket.closed.code}, not a client-error code`);
    return { label: label(), close: socket.closed ? String(socket.closed.code) : 'open', frames, refusalsChecked };
  } finally {
    await socket.close();
  }
}

// ---- the run -----------------------------------------------------------------------------------

async function httpProbe(running: RunningLedger, authorization: string): Promise<void> {
  const body = JSON.stringify({ query: `{ account(id: "${ACCOUNT}") { balance } }` });
  const [query, health] = await Promise.all([
    rawRequest(running.port, { headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), authorization }, body }),
    rawRequest(running.port, { method: 'GET', path: '/health' }),
  ]);
  if (query.status !== 200 || !query.text.includes('"balance"')) throw new Failure(`HTTP answered ${query.status} meanwhile: ${query.text.slice(0, 300)}`);
  if (health.status !== 200) throw new Failure(`/health answered ${health.status} meanwhile`);
}

async function waitFor(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return true;
}

/** Opens the fuzzer's account and its well-behaved subscriber, then runs `runs` cases from `seed`. */
export async function runWsFuzz(running: RunningLedger, options: WsFuzzOptions): Promise<WsFuzzResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const url = `http://127.0.0.1:${running.port}/graphql`;
  const key = running.secret.key;
  const lifetimeMaxSeconds = options.tokenLifetimeMaxSeconds;
  const adminToken = `Bearer ${await new SignJWT({ roles: ['admin'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('ws-fuzz-admin').setIssuedAt().setExpirationTime('1h').sign(key)}`;
  const post = (query: string) => {
    const body = JSON.stringify({ query });
    return rawRequest(running.port, { headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), authorization: adminToken }, body });
  };
  await post(`mutation { openAccount(input: { id: "${ACCOUNT}", initialBalance: "1000000" }) { __typename } }`);

  // The well-behaved subscriber, on its own connection, for the whole run.
  const good = feedClient(url, (await authorization('good', key, lifetimeMaxSeconds))!.replace(/^Bearer /, ''));
  const goodFeed = new Collected(good.client, `subscription { transactionPosted(accountId: "${ACCOUNT}") { id position } }`);
  let deposits = 0;
  const deposit = async () => {
    const res = await post(`mutation { deposit(input: { accountId: "${ACCOUNT}", amount: "1" }) { __typename ... on DepositSuccess { position } } }`);
    if (!res.text.includes('DepositSuccess')) throw new Failure(`the subscriber's deposit failed: ${res.text.slice(0, 300)}`);
    deposits += 1;
  };
  // Nothing says the subscription is registered but a delivered event.
  const started = Date.now();
  while (goodFeed.items.length === 0 && Date.now() - started < ANSWER_TIMEOUT_MS) {
    await deposit();
    await waitFor(() => goodFeed.items.length > 0, 100);
  }
  if (goodFeed.items.length === 0) throw new Error('the well-behaved subscriber never started');
  const subscriberStillServed = async (what: string) => {
    const seen = goodFeed.items.length;
    await deposit();
    if (!(await waitFor(() => goodFeed.items.length > seen, ANSWER_TIMEOUT_MS))) throw new Failure(`the well-behaved subscriber got no event ${what} (errors ${JSON.stringify(goodFeed.errors).slice(0, 300)}, closes ${JSON.stringify(good.closes)})`);
    if (good.closes.length > 0 || goodFeed.errors.length > 0) throw new Failure(`the well-behaved subscriber was disturbed: ${JSON.stringify(good.closes)} ${JSON.stringify(goodFeed.errors).slice(0, 300)}`);
  };

  // A connection that never sends connection_init must be closed, not kept.
  const idle = await RawFeedSocket.open(url);

  let cases = 0;
  let connections = 0;
  let frames = 0;
  let refusalsChecked = 0;
  const closes: Record<string, number> = {};
  const rssStart = process.memoryUsage().rss;
  let rssPeak = rssStart;

  const property = fc.asyncProperty(caseArbitrary, async (scripts) => {
    cases += 1;
    const before = ledgerSnapshot(running);
    const [outcomes] = await Promise.all([Promise.all(scripts.map((s) => runScript(running, url, s, options, lifetimeMaxSeconds))), httpProbe(running, adminToken)]);
    const after = ledgerSnapshot(running);
    for (const o of outcomes) {
      connections += 1;
      frames += o.frames;
      refusalsChecked += o.refusalsChecked;
      closes[o.close] = (closes[o.close] ?? 0) + 1;
    }
    if (after.index !== before.index || after.accounts !== before.accounts) {
      throw new Failure(`frames changed the ledger: index ${before.index} -> ${after.index}${after.accounts !== before.accounts ? ', accounts changed' : ''}\n  ${outcomes.map((o) => o.label).join('\n  ')}`);
    }
    if (cases % 25 === 0) {
      await subscriberStillServed(`after case ${cases}`);
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
      if (rssPeak - rssStart > RSS_GROWTH_MAX_BYTES) throw new Failure(`resident memory grew by ${rssPeak - rssStart} bytes`);
    }
  });

  try {
    try {
      await fc.assert(property, { numRuns: options.runs, seed: options.seed, endOnFailure: options.endOnFailure ?? false });
    } catch (error) {
      const cause = (error as Error).cause;
      if (error instanceof Error && cause instanceof Error && !error.message.includes(cause.message)) error.message += `\nCause: ${cause.message}`;
      log(`ws fuzz FAILED after ${cases} cases (seed ${options.seed}); replay with: npm run fuzz:ws -- --runs ${options.runs} --seed ${options.seed}`);
      throw error;
    }
    await subscriberStillServed('after the run');
    if (!(await waitFor(() => idle.closed !== null, ANSWER_TIMEOUT_MS))) throw new Error('a connection without connection_init was never closed');
    if (idle.closed!.code !== 4408) throw new Error(`a connection without connection_init was closed with ${idle.closed!.code}, not 4408`);
    // Only the well-behaved subscriber is left: nothing outlives its socket.
    const stats = () => running.feeds.stats();
    if (!(await waitFor(() => stats().connections === 1 && stats().subscriptions === 1, ANSWER_TIMEOUT_MS))) throw new Error(`connections or subscriptions outlived their sockets: ${JSON.stringify(stats())}`);
    const health = await rawRequest(running.port, { method: 'GET', path: '/health' });
    if (health.status !== 200) throw new Error(`/health answered ${health.status} after the run`);
  } finally {
    goodFeed.dispose();
    await good.client.dispose();
    await idle.close();
  }
  const rssGrowthBytes = Math.max(rssPeak, process.memoryUsage().rss) - rssStart;
  const closeList = Object.entries(closes)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([code, n]) => `${code}: ${n}`)
    .join(', ');
  log(
    `ws fuzz: ${cases} cases passed (seed ${options.seed}; ${connections} connections, ${frames} frames, ${refusalsChecked} refusals checked, ${deposits} events to the well-behaved subscriber; closes ${closeList}; rss +${Math.round(rssGrowthBytes / 2 ** 20)} MiB)`,
  );
  return { cases, seed: options.seed, connections, frames, closes, refusalsChecked, rssGrowthBytes };
}

/** The server settings the fuzzer is run against (small limits, so that it reaches them). */
export const wsFuzzLimits = { subscriptionsPerConnectionMax: 3, tokenLifetimeMaxSeconds: 3600 } as const;
export const WS_FUZZ_SERVER_ENV: Record<string, string> = {
  LEDGER_FEED_SUBSCRIPTIONS_PER_CONNECTION_MAX: String(wsFuzzLimits.subscriptionsPerConnectionMax),
  LEDGER_TOKEN_LIFETIME_MAX_SECONDS: String(wsFuzzLimits.tokenLifetimeMaxSeconds),
};
