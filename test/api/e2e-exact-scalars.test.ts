/**
 * End to end over HTTP: Amount and DateTime are judged by what the client wrote. Variables get the
 * same verdict as inline literals (a JSON number's source text is kept), and impossible dates are
 * refused instead of rolled over.
 */
import { type TestLedger, rawRequest, startTestLedger, uniqueId } from '../support/ledger-server';

let ledger: TestLedger;
beforeAll(async () => {
  ledger = await startTestLedger();
});
afterAll(async () => {
  await ledger?.close();
});

const DEPOSIT_VAR = `mutation($id: ID!, $a: Amount!) { deposit(input: { accountId: $id, amount: $a }) { __typename ... on DepositSuccess { position } } }`;
const ACCOUNT = `query($id: ID!, $at: Position) { account(id: $id, atLeast: $at) { balance transactionCount } }`;

/** POSTs exactly this JSON text (numbers as written), with an admin token. */
async function postText(json: string) {
  const res = await rawRequest(ledger.running.port, {
    headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(json)), authorization: `Bearer ${await ledger.token(['admin'])}` },
    body: json,
  });
  return res;
}
async function open(id: string) {
  const opened = await ledger.data(`mutation($id: ID!) { openAccount(input: { id: $id, initialBalance: "10" }) { ... on OpenAccountSuccess { position } } }`, { id });
  return opened.openAccount.position as string;
}
async function balanceAfterMarker(id: string) {
  const marker = await open(uniqueId('mark'));
  return (await ledger.data(ACCOUNT, { id, at: marker })).account;
}

describe('Amount as a variable', () => {
  it.each(['1e3', '1000.0', '100.000000000000001', '1E3', '-0.0', '1e-2', '12345678901234567890', '9007199254740993'])(
    'refuses %s with a validation error like its inline form, and changes nothing',
    async (written) => {
      const id = uniqueId('exact');
      await open(id);
      const inline = await ledger.gql(`mutation { deposit(input: { accountId: "${id}", amount: ${written} }) { __typename } }`);
      const res = await postText(`{"query": ${JSON.stringify(DEPOSIT_VAR)}, "variables": {"id": ${JSON.stringify(id)}, "a": ${written}}}`);
      expect(res.json.data ?? null).toBeNull();
      const message = res.json.errors?.[0]?.message as string;
      const inlineMessage = inline.body.errors?.[0]?.message as string;
      expect(inlineMessage).toMatch(/^Amount (must be an integer number of minor units \(no fraction or exponent\)|as a JSON integer must be within the safe-integer range)/);
      // Same reason as inline, with the number as written.
      expect(message).toContain(inlineMessage.replace(/^.*?(Amount )/, '$1'));
      expect(message).toContain(written);
      expect(await balanceAfterMarker(id)).toEqual({ balance: '10', transactionCount: 1 });
    },
  );

  it('accepts integers and digit strings as variables, nested in batches too', async () => {
    const id = uniqueId('ok');
    await open(id);
    for (const written of ['7', '"8"', '-0']) {
      const res = await postText(`{"query": ${JSON.stringify(DEPOSIT_VAR)}, "variables": {"id": ${JSON.stringify(id)}, "a": ${written}}}`);
      if (written === '-0') {
        // Zero is refused by the domain (amounts are greater than 0), not by the scalar.
        expect(res.json.data.deposit.__typename).toBe('ValidationError');
      } else expect(res.json.data.deposit.__typename).toBe('DepositSuccess');
    }
    const batch = `mutation($input: BatchInput!) { executeBatch(input: $input) { __typename } }`;
    const refused = await postText(`{"query": ${JSON.stringify(batch)}, "variables": {"input": {"operations": [{"deposit": {"accountId": ${JSON.stringify(id)}, "amount": 5}}, {"deposit": {"accountId": ${JSON.stringify(id)}, "amount": 2.5}}]}}}`);
    expect(refused.json.errors?.[0]?.message).toMatch(/Amount must be an integer number of minor units \(no fraction or exponent\), got 2\.5/);
    expect(await balanceAfterMarker(id)).toEqual({ balance: '25', transactionCount: 3 });
  });

  it('keeps free-form metadata numbers as numbers', async () => {
    const id = uniqueId('meta');
    await open(id);
    const query = `mutation($id: ID!, $m: JSON) { deposit(input: { accountId: $id, amount: "1", metadata: $m }) { ... on DepositSuccess { transaction { metadata } } } }`;
    const res = await postText(`{"query": ${JSON.stringify(query)}, "variables": {"id": ${JSON.stringify(id)}, "m": {"rate": 1.5, "big": 1e3, "list": [0.25, {"x": -2.0}]}}}`);
    expect(res.json.errors).toBeUndefined();
    expect(res.json.data.deposit.transaction.metadata).toEqual({ rate: 1.5, big: 1000, list: [0.25, { x: -2 }] });
  });
});

describe('DateTime', () => {
  const BALANCE_AT = `query($id: ID!, $at: DateTime!) { account(id: $id) { balanceAt(at: $at) } }`;
  const FILTER = `query($from: DateTime, $to: DateTime) { transactions(first: 1, filter: { from: $from, to: $to }) { totalCount } }`;

  it.each(['2026-02-31T00:00:00Z', '2026-02-29T12:00:00Z', '2026-13-01T00:00:00Z', '2026-04-31T00:00:00Z', '2026-01-01T24:00:00Z', '2026-01-01T23:60:00Z', '2026-01-01T23:59:60Z', '2026-01-01T00:00:00+24:00', '2026-01-01T00:00:00+05:60'])(
    'refuses %s in balanceAt and TransactionFilter.from/to, as a variable and inline',
    async (written) => {
      const id = uniqueId('date');
      await open(id);
      const expectRefused = (res: { body: { data?: unknown; errors?: Array<{ message: string }> } }) => {
        expect(res.body.errors?.[0]?.message).toMatch(new RegExp(`DateTime "${written.replace(/[+]/g, '\\+')}" (names no real date and time|has no real zone offset)`));
      };
      expectRefused(await ledger.gql(BALANCE_AT, { id, at: written }));
      expectRefused(await ledger.gql(`{ account(id: "${id}") { balanceAt(at: "${written}") } }`));
      expectRefused(await ledger.gql(FILTER, { from: written }));
      expectRefused(await ledger.gql(FILTER, { to: written }));
      expectRefused(await ledger.gql(`{ transactions(filter: { from: "${written}" }) { totalCount } }`));
    },
  );

  it('accepts real instants, leap days and zone offsets', async () => {
    const id = uniqueId('date-ok');
    await open(id);
    await balanceAfterMarker(id);
    for (const at of ['2028-02-29T12:00:00Z', '2026-01-31T23:59:59.999999999Z', '2026-03-01T01:00:00+01:00', '2026-01-01T00:00Z']) {
      const res = await ledger.gql(BALANCE_AT, { id, at });
      expect(res.body.errors).toBeUndefined();
      expect((res.body.data as any).account.balanceAt).toMatch(/^[0-9]+$/);
    }
    const res = await ledger.gql(FILTER, { from: '2026-02-28T00:00:00-05:00', to: '2999-12-31T23:59:59Z' });
    expect(res.body.errors).toBeUndefined();
  });
});
