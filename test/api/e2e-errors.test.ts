/**
 * End to end over HTTP: every domain failure comes back as data of the right error type with a clear
 * message and changes nothing; malformed scalars are GraphQL validation errors and change nothing.
 */
import { type TestLedger, startTestLedger, uniqueId } from '../support/ledger-server';

const ACCOUNT = 'id currency balance availableBalance overdraftLimit transactionCount metadata';
const TX = 'id status amount position';
const ERR = '__typename ... on LedgerError { code message }';

const OPEN = `mutation($input: OpenAccountInput!) { openAccount(input: $input) { ${ERR} ... on OpenAccountSuccess { position account { ${ACCOUNT} } } } }`;
const DEPOSIT = `mutation($input: DepositInput!) { deposit(input: $input) { ${ERR} ... on DepositSuccess { position account { ${ACCOUNT} } transaction { ${TX} } } } }`;
const WITHDRAW = `mutation($input: WithdrawInput!) { withdraw(input: $input) { ${ERR} ... on WithdrawSuccess { position account { ${ACCOUNT} } transaction { ${TX} } } } }`;
const TRANSFER = `mutation($input: TransferInput!) { transfer(input: $input) { ${ERR} ... on TransferSuccess { position transaction { ${TX} } } } }`;
const SETTLE = `mutation($input: TransactionRefInput!) { settleTransaction(input: $input) { ${ERR} ... on SettleSuccess { position transaction { ${TX} } } } }`;
const CANCEL = `mutation($input: TransactionRefInput!) { cancelTransaction(input: $input) { ${ERR} ... on CancelSuccess { position transaction { ${TX} } } } }`;
const BATCH = `mutation($input: BatchInput!) { executeBatch(input: $input) { ${ERR}
  ... on BatchFailedError { index cause { __typename code message } }
  ... on BatchSuccess { position transactions { ${TX} } } } }`;
const ACCOUNT_Q = `query($id: ID!, $at: Position) { account(id: $id, atLeast: $at) { ${ACCOUNT} } }`;
const COUNT_Q = `query($id: ID!, $at: Position) { transactions(filter: { accountId: $id }, atLeast: $at) { totalCount } }`;

let ledger: TestLedger;
const uid = uniqueId;

beforeAll(async () => {
  ledger = await startTestLedger();
});
afterAll(async () => {
  await ledger?.close();
});

async function data<T = any>(query: string, variables?: Record<string, unknown>): Promise<T> {
  const res = await ledger.gql<T>(query, variables);
  if (res.body.errors) throw new Error(`unexpected GraphQL errors: ${JSON.stringify(res.body.errors)}`);
  return res.body.data as T;
}
const run = async (document: string, field: string, input: Record<string, unknown>) => (await data(document, { input }))[field];

async function open(input: Record<string, unknown>) {
  const result = await run(OPEN, 'openAccount', input);
  if (result.__typename !== 'OpenAccountSuccess') throw new Error(JSON.stringify(result));
  return result;
}

/** The state of accounts after every earlier write: a fresh write gives a position to wait for. */
async function stateOf(...ids: string[]) {
  const marker = await open({ id: uid('mk') });
  return Promise.all(
    ids.map(async (id) => ({
      account: (await data(ACCOUNT_Q, { id, at: marker.position })).account,
      transactions: (await data(COUNT_Q, { id, at: marker.position })).transactions.totalCount,
    })),
  );
}

function expectError(result: any, typename: string, code: string, message: RegExp) {
  expect(result).toMatchObject({ __typename: typename, code });
  expect(result.message).toMatch(message);
}

describe('domain failures are typed data and change nothing', () => {
  it('VALIDATION for malformed ids, currencies, amounts, timeouts, descriptions, keys and batches', async () => {
    const id = uid('val');
    await open({ id, initialBalance: '1000' });
    const before = await stateOf(id);

    expectError(await run(OPEN, 'openAccount', { id: 'has space' }), 'ValidationError', 'VALIDATION', /id must be 1 to 50 characters/);
    expectError(await run(OPEN, 'openAccount', { id: 'x'.repeat(51) }), 'ValidationError', 'VALIDATION', /1 to 50 characters/);
    expectError(await run(OPEN, 'openAccount', { id: uid('v'), currency: 'usd' }), 'ValidationError', 'VALIDATION', /currency must be 3 upper-case letters/);
    expectError(await run(OPEN, 'openAccount', { id: uid('v'), initialBalance: '-1' }), 'ValidationError', 'VALIDATION', /initialBalance must be at least 0/);
    expectError(await run(OPEN, 'openAccount', { id: uid('v'), overdraftLimit: '-5' }), 'ValidationError', 'VALIDATION', /overdraftLimit must be at least 0/);
    expectError(await run(DEPOSIT, 'deposit', { accountId: id, amount: '-5' }), 'ValidationError', 'VALIDATION', /amount must be greater than 0, got -5/);
    expectError(await run(DEPOSIT, 'deposit', { accountId: id, amount: '0' }), 'ValidationError', 'VALIDATION', /amount must be greater than 0/);
    expectError(await run(WITHDRAW, 'withdraw', { accountId: id, amount: -1 }), 'ValidationError', 'VALIDATION', /greater than 0/);
    expectError(await run(TRANSFER, 'transfer', { fromAccountId: id, toAccountId: uid('x'), amount: '0' }), 'ValidationError', 'VALIDATION', /greater than 0/);
    expectError(await run(DEPOSIT, 'deposit', { accountId: 'bad id', amount: '5' }), 'ValidationError', 'VALIDATION', /accountId must be/);
    expectError(await run(WITHDRAW, 'withdraw', { accountId: id, amount: '5', holdTimeoutSeconds: 10 }), 'ValidationError', 'VALIDATION', /holdTimeoutSeconds applies only to a pending/);
    expectError(await run(WITHDRAW, 'withdraw', { accountId: id, amount: '5', pending: true, holdTimeoutSeconds: 0 }), 'ValidationError', 'VALIDATION', /holdTimeoutSeconds must be an integer from 1/);
    expectError(await run(DEPOSIT, 'deposit', { accountId: id, amount: '5', description: 'd'.repeat(501) }), 'ValidationError', 'VALIDATION', /description must be at most 500/);
    expectError(await run(DEPOSIT, 'deposit', { accountId: id, amount: '5', idempotencyKey: '' }), 'ValidationError', 'VALIDATION', /idempotencyKey must be 1 to 200/);
    expectError(await run(BATCH, 'executeBatch', { operations: [] }), 'ValidationError', 'VALIDATION', /at least one operation/);

    expect(await stateOf(id)).toEqual(before);
  });

  it('ACCOUNT_NOT_FOUND and ACCOUNT_ALREADY_EXISTS', async () => {
    const id = uid('nf');
    const missing = uid('missing');
    await open({ id, initialBalance: '100', metadata: { v: 1 } });
    const before = await stateOf(id);
    expectError(await run(DEPOSIT, 'deposit', { accountId: missing, amount: '5' }), 'AccountNotFoundError', 'ACCOUNT_NOT_FOUND', new RegExp(`account "${missing}" does not exist`));
    expectError(await run(WITHDRAW, 'withdraw', { accountId: missing, amount: '5' }), 'AccountNotFoundError', 'ACCOUNT_NOT_FOUND', new RegExp(missing));
    expectError(await run(TRANSFER, 'transfer', { fromAccountId: id, toAccountId: missing, amount: '5' }), 'AccountNotFoundError', 'ACCOUNT_NOT_FOUND', new RegExp(missing));
    expectError(await run(TRANSFER, 'transfer', { fromAccountId: missing, toAccountId: id, amount: '5' }), 'AccountNotFoundError', 'ACCOUNT_NOT_FOUND', new RegExp(missing));
    expectError(await run(OPEN, 'openAccount', { id, initialBalance: '999', metadata: { v: 2 } }), 'AccountAlreadyExistsError', 'ACCOUNT_ALREADY_EXISTS', new RegExp(`account "${id}" already exists`));
    const after = await stateOf(id, missing);
    expect(after[0]).toEqual(before[0]);
    expect(after[1]).toEqual({ account: null, transactions: 0 });
  });

  it('INSUFFICIENT_FUNDS, SAME_ACCOUNT and CURRENCY_MISMATCH', async () => {
    const a = uid('if');
    const b = uid('ib');
    const eur = uid('ie');
    await open({ id: a, initialBalance: '100' });
    await open({ id: b, initialBalance: '100' });
    await open({ id: eur, currency: 'EUR', initialBalance: '100' });
    const before = await stateOf(a, b, eur);
    expectError(await run(WITHDRAW, 'withdraw', { accountId: a, amount: '101' }), 'InsufficientFundsError', 'INSUFFICIENT_FUNDS', /available balance of 100/);
    expectError(await run(WITHDRAW, 'withdraw', { accountId: a, amount: '101', pending: true }), 'InsufficientFundsError', 'INSUFFICIENT_FUNDS', new RegExp(a));
    expectError(await run(TRANSFER, 'transfer', { fromAccountId: a, toAccountId: b, amount: '101' }), 'InsufficientFundsError', 'INSUFFICIENT_FUNDS', new RegExp(a));
    expectError(await run(TRANSFER, 'transfer', { fromAccountId: a, toAccountId: a, amount: '1' }), 'SameAccountError', 'SAME_ACCOUNT', /two different accounts/);
    expectError(await run(TRANSFER, 'transfer', { fromAccountId: a, toAccountId: eur, amount: '1' }), 'CurrencyMismatchError', 'CURRENCY_MISMATCH', /holds USD but .* holds EUR/);
    expect(await stateOf(a, b, eur)).toEqual(before);
  });

  it('TRANSACTION_NOT_FOUND and TRANSACTION_NOT_PENDING', async () => {
    const id = uid('tn');
    await open({ id, initialBalance: '1000' });
    const settledTx = (await run(DEPOSIT, 'deposit', { accountId: id, amount: '5' })).transaction;
    const hold = await run(WITHDRAW, 'withdraw', { accountId: id, amount: '10', pending: true });
    const cancelled = await run(CANCEL, 'cancelTransaction', { transactionId: hold.transaction.id });
    expect(cancelled.__typename).toBe('CancelSuccess');
    const before = await stateOf(id);

    expectError(await run(SETTLE, 'settleTransaction', { transactionId: 'tx-999999999' }), 'TransactionNotFoundError', 'TRANSACTION_NOT_FOUND', /"tx-999999999" does not exist/);
    expectError(await run(CANCEL, 'cancelTransaction', { transactionId: 'no-such-thing' }), 'TransactionNotFoundError', 'TRANSACTION_NOT_FOUND', /does not exist/);
    expectError(await run(SETTLE, 'settleTransaction', { transactionId: settledTx.id }), 'TransactionNotPendingError', 'TRANSACTION_NOT_PENDING', /is not pending and cannot be settled/);
    expectError(await run(CANCEL, 'cancelTransaction', { transactionId: settledTx.id }), 'TransactionNotPendingError', 'TRANSACTION_NOT_PENDING', /cannot be cancelled/);
    expectError(await run(SETTLE, 'settleTransaction', { transactionId: hold.transaction.id }), 'TransactionNotPendingError', 'TRANSACTION_NOT_PENDING', /not pending/);
    expectError(await run(CANCEL, 'cancelTransaction', { transactionId: hold.transaction.id }), 'TransactionNotPendingError', 'TRANSACTION_NOT_PENDING', /not pending/);

    expect(await stateOf(id)).toEqual(before);
    const tx = (await data(`query($id: ID!) { transaction(id: $id) { status } }`, { id: hold.transaction.id })).transaction;
    expect(tx.status).toBe('CANCELLED');
  });

  it('AMOUNT_LIMIT_EXCEEDED above 1,000,000,000 minor units and beyond 64 bits; the limit itself is accepted', async () => {
    const id = uid('al');
    const other = uid('al2');
    await open({ id, initialBalance: '2000000000' });
    await open({ id: other });
    const before = await stateOf(id, other);
    expectError(await run(DEPOSIT, 'deposit', { accountId: id, amount: '1000000001' }), 'AmountLimitExceededError', 'AMOUNT_LIMIT_EXCEEDED', /exceeds the limit of 1000000000/);
    expectError(await run(WITHDRAW, 'withdraw', { accountId: id, amount: '9999999999999999999' }), 'AmountLimitExceededError', 'AMOUNT_LIMIT_EXCEEDED', /exceeds the limit/);
    expectError(await run(TRANSFER, 'transfer', { fromAccountId: id, toAccountId: other, amount: 1000000001 }), 'AmountLimitExceededError', 'AMOUNT_LIMIT_EXCEEDED', /limit/);
    expectError(await run(OPEN, 'openAccount', { id: uid('big'), initialBalance: '9999999999999999999' }), 'AmountLimitExceededError', 'AMOUNT_LIMIT_EXCEEDED', /initialBalance exceeds 9223372036854775807/);
    expect(await stateOf(id, other)).toEqual(before);

    const atLimit = await run(DEPOSIT, 'deposit', { accountId: id, amount: '1000000000' });
    expect(atLimit.__typename).toBe('DepositSuccess');
    expect(atLimit.account.balance).toBe('3000000000');

    // A balance near the 64-bit edge cannot be pushed past it.
    const edge = uid('edge');
    await open({ id: edge, initialBalance: '9223372036854775000' });
    expectError(await run(DEPOSIT, 'deposit', { accountId: edge, amount: '1000' }), 'AmountLimitExceededError', 'AMOUNT_LIMIT_EXCEEDED', /would exceed 9223372036854775807/);
    expect((await stateOf(edge))[0]!.account.balance).toBe('9223372036854775000');
  });

  it('IDEMPOTENCY_CONFLICT on settle, and on a batch', async () => {
    const id = uid('ic');
    await open({ id, initialBalance: '1000' });
    const h1 = await run(WITHDRAW, 'withdraw', { accountId: id, amount: '10', pending: true });
    const h2 = await run(WITHDRAW, 'withdraw', { accountId: id, amount: '20', pending: true });
    const key = `settle-${id}`;
    const first = await run(SETTLE, 'settleTransaction', { transactionId: h1.transaction.id, idempotencyKey: key });
    expect(first.__typename).toBe('SettleSuccess');
    const retried = await run(SETTLE, 'settleTransaction', { transactionId: h1.transaction.id, idempotencyKey: key });
    expect(retried).toEqual(first);
    expectError(await run(SETTLE, 'settleTransaction', { transactionId: h2.transaction.id, idempotencyKey: key }), 'IdempotencyConflictError', 'IDEMPOTENCY_CONFLICT', /already used with a different input/);
    const bkey = `batch-${id}`;
    expect((await run(BATCH, 'executeBatch', { idempotencyKey: bkey, operations: [{ deposit: { accountId: id, amount: '1' } }] })).__typename).toBe('BatchSuccess');
    expectError(await run(BATCH, 'executeBatch', { idempotencyKey: bkey, operations: [{ deposit: { accountId: id, amount: '2' } }] }), 'IdempotencyConflictError', 'IDEMPOTENCY_CONFLICT', new RegExp(bkey));
    const [state] = await stateOf(id);
    expect(state!.account).toMatchObject({ balance: '991', availableBalance: '971' });
    expect((await data(`query($id: ID!) { transaction(id: $id) { status } }`, { id: h2.transaction.id })).transaction.status).toBe('PENDING');
  });

  it('BATCH_FAILED names the failing operation and its cause, for every kind of cause', async () => {
    const id = uid('bf');
    await open({ id, initialBalance: '100' });
    const before = await stateOf(id);
    const cases: Array<[unknown[], number, string, string]> = [
      [[{ deposit: { accountId: id, amount: '1' } }, { deposit: { accountId: uid('nope'), amount: '1' } }], 1, 'AccountNotFoundError', 'ACCOUNT_NOT_FOUND'],
      [[{ openAccount: { id } }], 0, 'AccountAlreadyExistsError', 'ACCOUNT_ALREADY_EXISTS'],
      [[{ deposit: { accountId: id, amount: '1' } }, { deposit: { accountId: id, amount: '1' } }, { transfer: { fromAccountId: id, toAccountId: id, amount: '1' } }], 2, 'SameAccountError', 'SAME_ACCOUNT'],
      [[{ deposit: { accountId: id, amount: '2000000000' } }], 0, 'AmountLimitExceededError', 'AMOUNT_LIMIT_EXCEEDED'],
      [[{ deposit: { accountId: id, amount: '1', idempotencyKey: 'inner' } }], 0, 'ValidationError', 'VALIDATION'],
      [[{ withdraw: { accountId: id, amount: '60' } }, { withdraw: { accountId: id, amount: '60' } }], 1, 'InsufficientFundsError', 'INSUFFICIENT_FUNDS'],
    ];
    for (const [operations, index, causeType, causeCode] of cases) {
      const result = await run(BATCH, 'executeBatch', { operations });
      expect(result).toMatchObject({ __typename: 'BatchFailedError', code: 'BATCH_FAILED', index, cause: { __typename: causeType, code: causeCode } });
      expect(result.message).toContain(`operation ${index} failed`);
      expect(result.message).toContain(result.cause.message);
    }
    expect(await stateOf(id)).toEqual(before);
  });
});

describe('malformed scalars are GraphQL validation errors and change nothing', () => {
  let id: string;
  let before: Awaited<ReturnType<typeof stateOf>>;
  beforeAll(async () => {
    id = uid('sc');
    await open({ id, initialBalance: '1000' });
    before = await stateOf(id);
  });

  async function expectRejected(query: string, variables: Record<string, unknown> | undefined, message: RegExp) {
    const res = await ledger.gql(query, variables);
    expect(res.body.data ?? null).toBeNull();
    expect(res.body.errors?.length).toBeGreaterThan(0);
    expect(res.body.errors![0]!.message).toMatch(message);
    expect([200, 400]).toContain(res.status);
  }
  const depositLiteral = (amount: string) => `mutation { deposit(input: { accountId: "${id}", amount: ${amount} }) { __typename } }`;
  const DEPOSIT_VAR = `mutation($amount: Amount!, $id: ID!) { deposit(input: { accountId: $id, amount: $amount }) { __typename } }`;

  it('Amount: floats, exponents, 20 digits, empty strings and unsafe integers', async () => {
    await expectRejected(depositLiteral('1.5'), undefined, /Amount must be an integer number of minor units \(no fraction or exponent\), got 1\.5/);
    await expectRejected(depositLiteral('1e3'), undefined, /no fraction or exponent\), got 1e3/);
    await expectRejected(depositLiteral('"1e3"'), undefined, /Amount must be an integer number of minor units written as digits/);
    await expectRejected(depositLiteral('"12345678901234567890"'), undefined, /at most 19 digits, got 20/);
    await expectRejected(depositLiteral('""'), undefined, /Amount must not be empty/);
    await expectRejected(depositLiteral('"10.50"'), undefined, /written as digits/);
    await expectRejected(depositLiteral('" 10"'), undefined, /written as digits/);
    await expectRejected(depositLiteral('9007199254740993'), undefined, /safe-integer range/);
    await expectRejected(depositLiteral('true'), undefined, /Amount/);
    await expectRejected(DEPOSIT_VAR, { id, amount: 1.5 }, /Variable "\$amount" got invalid value 1\.5; Amount must be an integer/);
    await expectRejected(DEPOSIT_VAR, { id, amount: '1e3' }, /Variable "\$amount" got invalid value "1e3"; Amount must be an integer/);
    // JSON.stringify writes 1e21 as 1e+21: an exponent, refused as written.
    await expectRejected(DEPOSIT_VAR, { id, amount: 1e21 }, /Amount must be an integer number of minor units \(no fraction or exponent\), got 1e\+21/);
    await expectRejected(DEPOSIT_VAR, { id, amount: '12345678901234567890' }, /at most 19 digits, got 20/);
    await expectRejected(DEPOSIT_VAR, { id, amount: '' }, /must not be empty/);
    await expectRejected(DEPOSIT_VAR, { id, amount: 9007199254740992 }, /safe-integer range; write larger amounts as a string, got 9007199254740992/);
    await expectRejected(DEPOSIT_VAR, { id, amount: '0x10' }, /written as digits/);
    // The raw text of an unsafe JSON integer never reaches the ledger rounded.
    const raw = await fetch(ledger.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await ledger.token(['admin'])}` },
      body: `{"query":${JSON.stringify(DEPOSIT_VAR)},"variables":{"id":"${id}","amount":12345678901234567891}}`,
    });
    const body = (await raw.json()) as any;
    expect(body.data ?? null).toBeNull();
    expect(body.errors[0].message).toMatch(/safe-integer range/);
    // A negative amount is a well-formed Amount: the domain refuses it, as data.
    const negative = (await data(DEPOSIT_VAR, { id, amount: '-5' })).deposit;
    expect(negative.__typename).toBe('ValidationError');
  });

  it('DateTime: malformed and impossible instants', async () => {
    const BAL = `query($id: ID!, $at: DateTime!) { account(id: $id) { balanceAt(at: $at) } }`;
    await expectRejected(BAL, { id, at: 'yesterday' }, /DateTime must be an ISO 8601 date and time with a zone/);
    await expectRejected(BAL, { id, at: '2026-01-31' }, /DateTime must be an ISO 8601 date and time/);
    await expectRejected(BAL, { id, at: '2026-01-31T12:00:00' }, /with a zone/);
    await expectRejected(BAL, { id, at: '2026-13-45T00:00:00Z' }, /names no real date and time/);
    await expectRejected(BAL, { id, at: 1700000000000 }, /DateTime must be an ISO 8601/);
    await expectRejected(`{ account(id: "${id}") { balanceAt(at: "31/01/2026") } }`, undefined, /DateTime must be an ISO 8601/);
    await expectRejected(`{ transactions(filter: { from: "soon" }) { totalCount } }`, undefined, /DateTime must be an ISO 8601/);
    await expectRejected(`{ transactions(filter: { to: 5 }) { totalCount } }`, undefined, /DateTime must be a string/);
    // An offset is accepted and read as the same instant in UTC.
    const ok = await data(BAL, { id, at: '2100-01-01T01:00:00+01:00' });
    expect(ok.account.balanceAt).toBe('1000');
  });

  it('Position: anything but a position returned by the ledger', async () => {
    await expectRejected(`{ account(id: "${id}", atLeast: "12") { id } }`, undefined, /Position must be a position returned by the ledger, got "12"/);
    await expectRejected(`{ account(id: "${id}", atLeast: 12) { id } }`, undefined, /Position must be a string/);
    await expectRejected(`query($p: Position) { transaction(id: "tx-1", atLeast: $p) { id } }`, { p: '0000000000000001' }, /Position must be a position returned by the ledger/);
    await expectRejected(`query($p: Position) { transactions(atLeast: $p) { totalCount } }`, { p: '1-1' }, /Position must be/);
  });

  it('JSON metadata: not an object, or over 4 KiB serialized', async () => {
    const OPEN_META = `mutation($id: ID!, $m: JSON) { openAccount(input: { id: $id, metadata: $m }) { __typename } }`;
    const DEP_META = `mutation($id: ID!, $m: JSON) { deposit(input: { accountId: $id, amount: "1", metadata: $m }) { __typename } }`;
    const ghost = uid('meta');
    for (const m of [[1, 2], 'text', 5, true]) {
      await expectRejected(OPEN_META, { id: ghost, m }, /JSON metadata must be a JSON object/);
      await expectRejected(DEP_META, { id, m }, /JSON metadata must be a JSON object/);
    }
    await expectRejected(`mutation { openAccount(input: { id: "${ghost}", metadata: [1, 2] }) { __typename } }`, undefined, /JSON metadata must be a JSON object/);
    await expectRejected(`mutation { deposit(input: { accountId: "${id}", amount: "1", metadata: "x" }) { __typename } }`, undefined, /JSON metadata must be a JSON object/);

    // {"k":"…"} is 8 bytes plus the string.
    const exactly4096 = { k: 'x'.repeat(4088) };
    const over = { k: 'x'.repeat(4089) };
    expect(Buffer.byteLength(JSON.stringify(exactly4096))).toBe(4096);
    await expectRejected(OPEN_META, { id: ghost, m: over }, /JSON metadata must be at most 4096 bytes serialized, got 4097/);
    await expectRejected(DEP_META, { id, m: { k: 'é'.repeat(2100) } }, /at most 4096 bytes serialized/);
    await expectRejected(`mutation { openAccount(input: { id: "${ghost}", metadata: { k: ${JSON.stringify(over.k)} } }) { __typename } }`, undefined, /at most 4096 bytes/);
    expect((await stateOf(ghost))[0]).toEqual({ account: null, transactions: 0 });

    // The limit itself is accepted, and the metadata comes back as given.
    const accepted = await open({ id: ghost, metadata: exactly4096 });
    expect(accepted.account.metadata).toEqual(exactly4096);
  });

  it('left the account they were aimed at unchanged', async () => {
    expect(await stateOf(id)).toEqual(before);
  });
});
