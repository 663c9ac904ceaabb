/**
 * A fuzzer of the HTTP surface, against the real server (started in this process by the caller).
 *
 * Each case is one HTTP request, generated with fast-check from a seed: a document (ledger
 * operations with variable or inline arguments, or broken text), variables written as raw JSON text
 * (numbers of every JSON shape, huge strings, deep objects, wrong types), headers (content types,
 * tokens good and bad, origins) and bodies (JSON, not JSON, not objects, GET query strings, no or a
 * false Content-Length). Properties checked for every case:
 *
 *   - no 5xx and no dropped connection; the server still answers /health;
 *   - a refused request changes nothing: the log's last index and every account are as before;
 *     a domain rejection (LedgerError as data) changes no account;
 *   - an Amount not written as API.md allows (a fraction, an exponent, an unsafe integer, anything
 *     but a string of digits) is never accepted;
 *   - memory stays bounded (resident set growth below RSS_GROWTH_MAX_BYTES over the run).
 *
 * A failure throws fast-check's report (seed, path and the smallest failing request found).
 */
import fc from 'fast-check';
import { SignJWT } from 'jose';
import type { RunningLedger } from '../../src/app/start-server';
import { type RawResponse, rawRequest } from '../support/ledger-server';

export interface HttpFuzzOptions {
  runs: number;
  seed: number;
  /** Stop at the first failure without shrinking (faster; the seed still replays it). */
  endOnFailure?: boolean;
  log?: (line: string) => void;
}

export interface HttpFuzzResult {
  cases: number;
  seed: number;
  statuses: Record<string, number>;
  accepted: number;
  refused: number;
  rssGrowthBytes: number;
}

const RSS_GROWTH_MAX_BYTES = 512 * 1024 * 1024;
const ACCOUNTS = ['fz-a', 'fz-b'] as const;

// ---- generators of JSON text (numbers keep the text they are written with) ---------------------

export const numberText: fc.Arbitrary<string> = fc.oneof(
  fc.integer({ min: 1, max: 5000 }).map(String),
  fc.integer().map(String),
  fc.bigInt({ min: -(10n ** 25n), max: 10n ** 25n }).map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d)),
  fc.tuple(fc.integer({ min: 0, max: 99999 }), fc.constantFrom('e', 'E', 'e+', 'e-'), fc.integer({ min: 0, max: 400 })).map(([m, e, x]) => `${m}${e}${x}`),
  fc.tuple(fc.integer({ min: 0, max: 100000 }), fc.stringMatching(/^[0-9]{1,20}$/)).map(([i, f]) => `${i}.${f}`),
  fc.constantFrom('1e3', '1000.0', '100.000000000000001', '-0', '0', '-0.0', '1E3', '9007199254740993', '1.5', '-1'),
);

const hugeString = fc.tuple(fc.constantFrom('a', '9', '\u00e9', '\\u0000', '"'), fc.integer({ min: 1_000, max: 200_000 })).map(([unit, n]) =>
  unit === '"' ? JSON.stringify('"'.repeat(n)) : `"${unit.repeat(n)}"`,
);
const stringText = fc.oneof(fc.string({ maxLength: 40 }).map((s) => JSON.stringify(s)), fc.string({ unit: 'binary', maxLength: 20 }).map((s) => JSON.stringify(s)), hugeString);
const deepText = fc.tuple(fc.integer({ min: 10, max: 5_000 }), fc.boolean()).map(([depth, arrays]) =>
  arrays ? `${'['.repeat(depth)}1${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`,
);
export const jsonText: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    numberText,
    stringText,
    fc.constantFrom('true', 'false', 'null', '{}', '[]'),
    deepText,
    fc.array(tie('value'), { maxLength: 4 }).map((items) => `[${items.join(',')}]`),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 4 }).map((o) => `{${Object.entries(o).map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`),
  ),
})).value;

/** An amount as a client might write it; `allowed` says whether API.md accepts that form. */
export const amountText = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 5000 }).map(String) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 5000 }).map((n) => `"${n}"`) },
  { weight: 3, arbitrary: numberText },
  { weight: 1, arbitrary: fc.stringMatching(/^-?[0-9]{0,22}$/).map((s) => JSON.stringify(s)) },
  { weight: 1, arbitrary: fc.constantFrom('"1e3"', '"10.50"', '" 10"', '"0x10"', '""', '"-"') },
  { weight: 1, arbitrary: jsonText },
);
const INTEGER_LITERAL = /^-?(0|[1-9][0-9]*)$/;
const DIGITS_STRING = /^"-?[0-9]{1,19}"$/;
/** Whether API.md allows this Amount text: a string of at most 19 digits, or a JSON integer literal within the safe range. */
export function amountFormAllowed(text: string): boolean {
  // null: no amount (an optional Amount takes its default; a required one is refused by GraphQL).
  if (text === 'null' || DIGITS_STRING.test(text)) return true;
  return INTEGER_LITERAL.test(text) && Number.isSafeInteger(Number(text));
}

// ---- requests ---------------------------------------------------------------------------------

interface Case {
  /** What is being sent, for the failure report. */
  label: string;
  method: 'GET' | 'POST' | 'PUT' | 'OPTIONS';
  path: string;
  headers: Record<string, string>;
  body?: string;
  /** Amount texts placed in a mutation: if any is not an allowed form, the request must not succeed. */
  amounts: string[];
}

type Auth = 'admin' | 'analyst' | 'none' | 'garbage' | 'no-exp' | 'huge' | 'basic';

const position = fc.oneof(fc.constantFrom('9999999999999999-000000', '0000000000000001-000000', '', 'x'), fc.stringMatching(/^[0-9]{16}-[0-9]{6}$/), jsonText);
const dateTime = fc.oneof(
  fc.constantFrom('"2026-02-31T00:00:00Z"', '"2026-01-31T12:00:00Z"', '"2028-02-29T00:00:00+01:00"', '"2026-01-01T24:00:00Z"', '"yesterday"', '"2026-01-01T00:00:00+99:00"'),
  fc.date({ noInvalidDate: true }).map((d) => JSON.stringify(d.toISOString())),
  jsonText,
);
const accountId = fc.oneof(fc.constantFrom(...ACCOUNTS).map((id) => JSON.stringify(id)), jsonText);

/** A document and its variables as raw JSON text, plus the amounts a mutation carries. */
const operation: fc.Arbitrary<{ query: string; variables: string | null; amounts: string[] }> = fc.oneof(
  fc.record({ id: accountId, a: amountText }).map(({ id, a }) => ({
    query: `mutation($id: ID!, $a: Amount!) { deposit(input: { accountId: $id, amount: $a }) { __typename ... on DepositSuccess { position } ... on LedgerError { code } } }`,
    variables: `{"id":${id},"a":${a}}`,
    amounts: [a],
  })),
  fc.record({ a: amountText, swap: fc.boolean() }).map(({ a, swap }) => ({
    query: `mutation($f: ID!, $t: ID!, $a: Amount!) { transfer(input: { fromAccountId: $f, toAccountId: $t, amount: $a }) { __typename ... on LedgerError { code } } }`,
    variables: `{"f":"${swap ? ACCOUNTS[1] : ACCOUNTS[0]}","t":"${swap ? ACCOUNTS[0] : ACCOUNTS[1]}","a":${a}}`,
    amounts: [a],
  })),
  fc.array(amountText, { minLength: 1, maxLength: 5 }).map((amounts) => ({
    query: `mutation($input: BatchInput!) { executeBatch(input: $input) { __typename ... on LedgerError { code } } }`,
    variables: `{"input":{"operations":[${amounts.map((a) => `{"deposit":{"accountId":"${ACCOUNTS[0]}","amount":${a}}}`).join(',')}]}}`,
    amounts,
  })),
  // Inline literals: the GraphQL tokenizer judges them.
  numberText.map((a) => ({
    query: `mutation { withdraw(input: { accountId: "${ACCOUNTS[1]}", amount: ${a} }) { __typename ... on LedgerError { code } } }`,
    variables: null,
    amounts: [a],
  })),
  fc.record({ id: jsonText, initial: amountText }).map(({ id, initial }) => ({
    query: `mutation($id: ID!, $i: Amount) { openAccount(input: { id: $id, initialBalance: $i }) { __typename ... on LedgerError { code } } }`,
    variables: `{"id":${id},"i":${initial}}`,
    amounts: [initial],
  })),
  fc.record({ at: dateTime, pos: position }).map(({ at, pos }) => ({
    query: `query($id: ID!, $at: DateTime!, $p: Position) { account(id: $id, atLeast: $p) { balance balanceAt(at: $at) } }`,
    variables: `{"id":"${ACCOUNTS[0]}","at":${at},"p":${pos}}`,
    amounts: [],
  })),
  fc.record({ from: dateTime, to: dateTime, min: amountText, first: numberText, after: jsonText }).map(({ from, to, min, first, after }) => ({
    query: `query($f: DateTime, $t: DateTime, $m: Amount, $n: Int, $after: String) { transactions(filter: { from: $f, to: $t, minAmount: $m }, first: $n, after: $after) { totalCount edges { cursor } } }`,
    variables: `{"f":${from},"t":${to},"m":${min},"n":${first},"after":${after}}`,
    amounts: [],
  })),
  fc.record({ aliases: fc.integer({ min: 1, max: 40 }), pos: position }).map(({ aliases, pos }) => ({
    query: `query($p: Position) { ${Array.from({ length: aliases }, (_, i) => `t${i}: transactions(first: 0, atLeast: $p) { totalCount }`).join(' ')} }`,
    variables: `{"p":${pos}}`,
    amounts: [],
  })),
  // Broken or hostile documents.
  fc.oneof(
    fc.string({ maxLength: 300 }),
    fc.integer({ min: 1, max: 3000 }).map((d) => `{ ${'a { '.repeat(d)}b${' }'.repeat(d)} }`),
    fc.integer({ min: 1, max: 3000 }).map((n) => `{ ${'__typename '.repeat(n)}}`),
    fc.constant('{ __schema { types { name fields { name } } } }'),
    fc.constant('subscription { accountUpdated(accountId: "fz-a") { id } }'),
    fc.tuple(fc.constantFrom('mutation { deposit(input: { accountId: "fz-a", amount: "5" }) { __typename } }', '{ ledger { nodeId } }'), fc.nat(), fc.string({ maxLength: 5 })).map(
      ([doc, at, insert]) => `${doc.slice(0, at % doc.length)}${insert}${doc.slice(at % doc.length)}`,
    ),
  ).map((query) => ({ query, variables: null, amounts: query.includes('deposit') ? ['"5"'] : [] })),
  jsonText.map((variables) => ({ query: `mutation($a: Amount!) { deposit(input: { accountId: "${ACCOUNTS[0]}", amount: $a }) { __typename } }`, variables, amounts: [] })),
);

const contentType = fc.oneof(
  { weight: 12, arbitrary: fc.constant('application/json') },
  { weight: 1, arbitrary: fc.constantFrom('application/graphql+json', 'application/json; charset=utf-8', 'text/plain', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'application/graphql', '', 'application/json, text/html') },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
);
const auth: fc.Arbitrary<Auth> = fc.oneof({ weight: 8, arbitrary: fc.constant<Auth>('admin') }, { weight: 3, arbitrary: fc.constantFrom<Auth>('analyst', 'none', 'garbage', 'no-exp', 'huge', 'basic') });
const bodyMode = fc.oneof(
  { weight: 10, arbitrary: fc.constant('json' as const) },
  { weight: 1, arbitrary: fc.constantFrom('garbage' as const, 'not-object' as const, 'get' as const, 'chunked' as const, 'too-long' as const, 'form' as const, 'wrong-method' as const, 'batch' as const) },
);
const headerNoise = fc.oneof({ weight: 4, arbitrary: fc.constant({} as Record<string, string>) }, { weight: 1, arbitrary: fc.dictionary(
  fc.constantFrom('origin', 'accept', 'x-forwarded-for', 'cookie', 'accept-encoding', 'graphql-preflight'),
  fc.oneof(fc.constantFrom('https://evil.example', 'null', 'application/graphql-response+json', 'text/html', 'gzip', '*/*'), fc.stringMatching(/^[ -~]{0,60}$/)),
  { maxKeys: 3 },
) });

const caseArbitrary = fc.record({ op: operation, contentType, auth, bodyMode, headerNoise, garbage: fc.string({ unit: 'binary', maxLength: 2000 }) });

async function tokenFor(auth: Auth, key: Uint8Array): Promise<string | null> {
  const sign = (roles: string[], exp: boolean) => {
    const jwt = new SignJWT({ roles }).setProtectedHeader({ alg: 'HS256' }).setSubject('fuzz').setIssuedAt();
    if (exp) jwt.setExpirationTime('1h');
    return jwt.sign(key);
  };
  switch (auth) {
    case 'admin':
      return `Bearer ${await sign(['admin'], true)}`;
    case 'analyst':
      return `Bearer ${await sign(['analyst'], true)}`;
    case 'no-exp':
      return `Bearer ${await sign(['admin'], false)}`;
    case 'garbage':
      return 'Bearer abc.def.ghi';
    case 'huge':
      return `Bearer ${'x'.repeat(60_000)}`;
    case 'basic':
      return 'Basic YWRtaW46YWRtaW4=';
    case 'none':
      return null;
  }
}

type CaseInput = typeof caseArbitrary extends fc.Arbitrary<infer T> ? T : never;

async function buildCase(input: CaseInput, key: Uint8Array): Promise<Case> {
  const { op, bodyMode: mode, garbage } = input;
  const headers: Record<string, string> = { ...input.headerNoise };
  const authorization = await tokenFor(input.auth, key);
  if (authorization) headers.authorization = authorization;
  const json = `{"query":${JSON.stringify(op.query)}${op.variables === null ? '' : `,"variables":${op.variables}`}}`;
  let body: string | undefined;
  let method: Case['method'] = 'POST';
  let path = '/graphql';
  switch (mode) {
    case 'json':
      body = json;
      break;
    case 'batch':
      body = `[${json},${json}]`;
      break;
    case 'garbage':
      body = garbage;
      break;
    case 'not-object':
      body = op.variables ?? '1';
      break;
    case 'form':
      body = `query=${encodeURIComponent(op.query)}&variables=${encodeURIComponent(op.variables ?? '')}`;
      break;
    case 'get':
      method = 'GET';
      path = `/graphql?query=${encodeURIComponent(op.query)}${op.variables === null ? '' : `&variables=${encodeURIComponent(op.variables)}`}`.slice(0, 60_000);
      break;
    case 'wrong-method':
      method = garbage.length % 2 === 0 ? 'PUT' : 'OPTIONS';
      body = json;
      break;
    default:
      body = json;
  }
  if (method === 'POST' || method === 'PUT') headers['content-type'] = input.contentType;
  if (body !== undefined && mode !== 'chunked') headers['content-length'] = mode === 'too-long' ? String(7 * 1024 * 1024) : String(Buffer.byteLength(body));
  const label = `${method} ${path.slice(0, 200)} [${mode}, auth ${input.auth}, content-type ${JSON.stringify(input.contentType)}] ${body === undefined ? '' : body.slice(0, 400)}`;
  // A mutation must not succeed with an Amount that API.md refuses; GET never runs mutations at all.
  const amounts = mode === 'json' || mode === 'batch' || mode === 'form' ? op.amounts : [];
  return { label, method, path, headers, body: mode === 'too-long' ? (body ?? '').slice(0, 100) : body, amounts };
}

/** Log index and every account's money, read from the state machine itself (no lag). */
export function ledgerSnapshot(running: RunningLedger): { index: number; accounts: string } {
  const accounts: string[] = [];
  for (const a of running.ledger.node.machine.ledger.view.accounts.values()) accounts.push(`${a.id}:${a.balance}:${a.availableBalance}:${a.transactionCount}`);
  return { index: running.ledger.node.status().commitIndex, accounts: accounts.sort().join('|') };
}

function successful(res: RawResponse): { success: boolean; rejection: boolean } {
  const text = res.text;
  return { success: /"__typename":"[A-Za-z]*Success"/.test(text), rejection: /"code":"(VALIDATION|ACCOUNT_NOT_FOUND|ACCOUNT_ALREADY_EXISTS|INSUFFICIENT_FUNDS|SAME_ACCOUNT|CURRENCY_MISMATCH|AMOUNT_LIMIT_EXCEEDED|IDEMPOTENCY_CONFLICT|BATCH_FAILED)"/.test(text) };
}

const ANSWER_TIMEOUT_MS = 30_000;

/** Sends a case; a request the server never answers is a failure too. */
async function send(port: number, c: Case): Promise<RawResponse> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ANSWER_TIMEOUT_MS} ms to ${c.label}`)), ANSWER_TIMEOUT_MS);
  });
  try {
    return await Promise.race([sendOnce(port, c), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function sendOnce(port: number, c: Case): Promise<RawResponse> {
  if (c.headers['content-length'] === undefined && c.body !== undefined) {
    return rawRequest(port, { method: c.method, path: c.path, headers: c.headers, chunks: [c.body.slice(0, 10), c.body.slice(10)] });
  }
  return rawRequest(port, { method: c.method, path: c.path, headers: c.headers, ...(c.body === undefined ? {} : { body: c.body }) });
}

/** Opens the fuzzer's accounts (once per server), then runs `runs` cases from `seed`. */
export async function runHttpFuzz(running: RunningLedger, options: HttpFuzzOptions): Promise<HttpFuzzResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const key = running.secret.key;
  const admin = await tokenFor('admin', key);
  for (const id of ACCOUNTS) {
    const body = JSON.stringify({ query: `mutation { openAccount(input: { id: "${id}", initialBalance: "1000000" }) { __typename } }` });
    await rawRequest(running.port, { headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), authorization: admin! }, body });
  }
  const statuses: Record<string, number> = {};
  let cases = 0;
  let accepted = 0;
  let refused = 0;
  const rssStart = process.memoryUsage().rss;
  let rssPeak = rssStart;

  const property = fc.asyncProperty(caseArbitrary, async (input) => {
    const c = await buildCase(input, key);
    cases += 1;
    const before = ledgerSnapshot(running);
    const res = await send(running.port, c);
    const after = ledgerSnapshot(running);
    statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    const problem = (what: string) => new Error(`${what}\n  request: ${c.label}\n  response ${res.status}: ${res.text.slice(0, 400)}`);
    if (res.status >= 500 || res.status < 100) throw problem(`status ${res.status}`);
    const { success, rejection } = successful(res);
    if (success) accepted += 1;
    else refused += 1;
    const badAmount = c.amounts.find((a) => !amountFormAllowed(a));
    // API.md: such an Amount is refused with a GraphQL validation error, before the domain sees it.
    if ((success || rejection) && badAmount !== undefined) throw problem(`accepted the Amount ${badAmount.slice(0, 60)}, which API.md refuses`);
    if (!success && !rejection && (after.index !== before.index || after.accounts !== before.accounts)) {
      throw problem(`a refused request changed the ledger: index ${before.index} -> ${after.index}${after.accounts !== before.accounts ? ', accounts changed' : ''}`);
    }
    if (!success && after.accounts !== before.accounts) throw problem('a request rejected by the domain changed an account');
    if (cases % 50 === 0) {
      const health = await rawRequest(running.port, { method: 'GET', path: '/health' });
      if (health.status !== 200) throw problem(`/health answered ${health.status}`);
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
      if (rssPeak - rssStart > RSS_GROWTH_MAX_BYTES) throw problem(`resident memory grew by ${rssPeak - rssStart} bytes`);
    }
  });

  try {
    await fc.assert(property, { numRuns: options.runs, seed: options.seed, endOnFailure: options.endOnFailure ?? false });
  } catch (error) {
    // fast-check keeps the property's own error as the cause; put it in the message for every reader.
    const cause = (error as Error).cause;
    if (error instanceof Error && cause instanceof Error && !error.message.includes(cause.message)) error.message += `\nCause: ${cause.message}`;
    log(`http fuzz FAILED after ${cases} cases (seed ${options.seed}); replay with: npm run fuzz -- --runs ${options.runs} --seed ${options.seed}`);
    throw error;
  }
  const health = await rawRequest(running.port, { method: 'GET', path: '/health' });
  if (health.status !== 200) throw new Error(`/health answered ${health.status} after the run`);
  const rssGrowthBytes = Math.max(rssPeak, process.memoryUsage().rss) - rssStart;
  const statusList = Object.entries(statuses)
    .map(([status, n]) => `${status}: ${n}`)
    .join(', ');
  log(`http fuzz: ${cases} cases passed (seed ${options.seed}; ${accepted} succeeded, ${refused} refused or rejected; statuses ${statusList}; rss +${Math.round(rssGrowthBytes / 2 ** 20)} MiB)`);
  return { cases, seed: options.seed, statuses, accepted, refused, rssGrowthBytes };
}
