/**
 * End to end over HTTP: `atLeast` cannot be used to hold the server's waits. A position the log never
 * assigned is refused at once; waits are bounded per request and in total (a retryable error past
 * the bound); fields naming the same position share one wait.
 */
import { formatPosition } from '../../src/domain/position';
import { type TestLedger, startTestLedger, uniqueId } from '../support/ledger-server';

const WAITS_MAX = 3;
let ledger: TestLedger;

beforeAll(async () => {
  ledger = await startTestLedger({ LEDGER_AT_LEAST_WAITS_MAX: String(WAITS_MAX), LEDGER_AT_LEAST_WAITS_PER_REQUEST_MAX: '2' });
});
afterAll(async () => {
  await ledger?.close();
});

const TXS = `query($at: Position) { transactions(first: 0, atLeast: $at) { totalCount } }`;
const lastIndex = () => ledger.running.ledger.node.status().commitIndex;
/** Waits pending in the server (white box: the count is not part of the API). */
const pendingWaits = () => (ledger.running.ledger.node.pipeline as unknown as { waiters: { size: number } }).waiters.size;
/** A position inside the last assigned entry that the read models have not reached: pending until the next write. */
const pendingPosition = () => formatPosition(lastIndex(), 999_999);
async function write() {
  const result = await ledger.data(`mutation($id: ID!) { openAccount(input: { id: $id }) { __typename ... on OpenAccountSuccess { position } } }`, { id: uniqueId('w') });
  expect(result.openAccount.__typename).toBe('OpenAccountSuccess');
  return result.openAccount.position as string;
}
async function until(condition: () => boolean) {
  for (let i = 0; i < 500 && !condition(); i += 1) await new Promise((r) => setTimeout(r, 10));
  expect(condition()).toBe(true);
}

it('refuses at once a position beyond the log\'s last assigned index, naming that index', async () => {
  await write();
  const far = '9999999999999999-000000';
  const startedMs = Date.now();
  const res = await ledger.gql(TXS, { at: far });
  const last = lastIndex();
  expect(res.body.errors?.[0]?.message).toBe(`atLeast ${far} is beyond the log's last assigned index ${last}: pass a position returned by this ledger`);
  expect(res.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  // "At once": no wait was registered (the old code waited the full 10 s timeout).
  expect(pendingWaits()).toBe(0);
  expect(Date.now() - startedMs).toBeLessThan(9_000);
  // The next index is not assigned yet either.
  const next = formatPosition(last + 1, 0);
  expect((await ledger.gql(TXS, { at: next })).body.errors?.[0]?.message).toMatch(new RegExp(`beyond the log's last assigned index ${last}`));
  // A position the ledger returned is fine.
  const position = await write();
  expect((await ledger.gql(TXS, { at: position })).body.errors).toBeUndefined();
});

it('bounds pending waits in total: past the bound a retryable OVERLOADED error, and waits are taken again once they end', async () => {
  await write();
  const at = pendingPosition();
  const waiting = Array.from({ length: WAITS_MAX }, () => ledger.gql(TXS, { at }));
  await until(() => pendingWaits() === WAITS_MAX);
  const refused = await ledger.gql(TXS, { at });
  expect(refused.status).toBe(200);
  expect(refused.body.errors?.[0]?.message).toBe(`too many reads are waiting for positions (${WAITS_MAX}); retry shortly`);
  expect(refused.body.errors?.[0]?.extensions).toMatchObject({ code: 'OVERLOADED', retryable: true });
  // The next write's projection releases them all, with data.
  await write();
  for (const res of await Promise.all(waiting)) {
    expect(res.body.errors).toBeUndefined();
    expect(typeof (res.body.data as any).transactions.totalCount).toBe('number');
  }
  expect(pendingWaits()).toBe(0);
  expect((await ledger.gql(TXS, { at })).body.errors).toBeUndefined();
});

it('bounds distinct positions per request, and fields naming one position share one wait', async () => {
  await write();
  const at = pendingPosition();
  const earlier = formatPosition(lastIndex(), 999_998);
  const even = formatPosition(lastIndex(), 999_997);
  const three = `query($a: Position, $b: Position, $c: Position) {
    a: transactions(first: 0, atLeast: $a) { totalCount } b: transactions(first: 0, atLeast: $b) { totalCount } c: transactions(first: 0, atLeast: $c) { totalCount } }`;
  const refusing = ledger.gql(three, { a: at, b: earlier, c: even });
  // Twenty aliased fields with one position: a single wait (the total bound is 3).
  const aliases = Array.from({ length: 20 }, (_, i) => `t${i}: transactions(first: 0, atLeast: $at) { totalCount }`).join(' ');
  const shared = ledger.gql(`query($at: Position) { ${aliases} }`, { at });
  await until(() => pendingWaits() === 3);
  await write();
  const [refused, sharedRes] = await Promise.all([refusing, shared]);
  expect(sharedRes.body.errors).toBeUndefined();
  expect(Object.keys(sharedRes.body.data as object)).toHaveLength(20);
  const messages = (refused.body.errors ?? []).map((e) => e.message);
  expect(messages).toContain('a request may wait for at most 2 distinct atLeast positions; pass the newest position once per field');
  expect(refused.body.errors?.find((e) => /at most 2 distinct/.test(e.message))?.extensions?.code).toBe('BAD_USER_INPUT');
});
