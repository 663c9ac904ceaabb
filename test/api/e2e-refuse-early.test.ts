/**
 * Issue 8: what the decider refuses on a command's own content is refused at the API, with the
 * decider's code and message, and never reaches the command log: its last index does not move.
 * The messages are the decider's own (src/domain/validate-command.ts), written out here so that a
 * change of wording is a visible change of the contract.
 */
import { type TestLedger, startTestLedger, uniqueId } from '../support/ledger-server';

let ledger: TestLedger;
let account: string;
let euros: string;
beforeAll(async () => {
  ledger = await startTestLedger();
  account = uniqueId('acc');
  euros = uniqueId('eur');
  await ledger.data(`mutation { a: openAccount(input: { id: "${account}", initialBalance: "1000" }) { __typename } b: openAccount(input: { id: "${euros}", currency: "EUR" }) { __typename } }`);
});
afterAll(async () => {
  await ledger?.close();
});

const ERROR_FIELDS = '__typename ... on LedgerError { code message }';
const BATCH_ERROR_FIELDS = `${ERROR_FIELDS} ... on BatchFailedError { index cause { code message } }`;
const BATCH = `mutation ($input: BatchInput!) { executeBatch(input: $input) { ${BATCH_ERROR_FIELDS} } }`;
const BATCH_OPERATIONS = `mutation ($ops: [BatchOperationInput!]!, $key: String) { executeBatch(input: { operations: $ops, idempotencyKey: $key }) { ${BATCH_ERROR_FIELDS} } }`;
const DEPOSIT = `mutation ($input: DepositInput!) { deposit(input: $input) { ${ERROR_FIELDS} } }`;
const WITHDRAW = `mutation ($input: WithdrawInput!) { withdraw(input: $input) { ${ERROR_FIELDS} } }`;
const TRANSFER = `mutation ($input: TransferInput!) { transfer(input: $input) { ${ERROR_FIELDS} } }`;
const OPEN = `mutation ($input: OpenAccountInput!) { openAccount(input: $input) { ${ERROR_FIELDS} } }`;
const SETTLE = `mutation ($input: TransactionRefInput!) { settleTransaction(input: $input) { ${ERROR_FIELDS} } }`;
const CANCEL = `mutation ($input: TransactionRefInput!) { cancelTransaction(input: $input) { ${ERROR_FIELDS} } }`;

function logIndexes(): { commitIndex: number; appliedIndex: number } {
  const { commitIndex, appliedIndex } = ledger.running.ledger.node.status();
  return { commitIndex, appliedIndex };
}

/** Sends the request and checks that the log did not move; returns the mutation's payload. */
async function refusedWithoutLogEntry(query: string, variables: Record<string, unknown>): Promise<any> {
  const before = logIndexes();
  const res = await ledger.gql(query, variables, ['teller']);
  expect(res.status).toBe(200);
  expect(res.body.errors).toBeUndefined();
  expect(logIndexes()).toEqual(before);
  return Object.values(res.body.data as Record<string, unknown>)[0];
}

const deposits = (count: number, amount: unknown = '1') => Array.from({ length: count }, () => ({ deposit: { accountId: account, amount } }));

describe('a batch over the size limit', () => {
  it.each([1001, 10_000, 100_000])('of %i operations is VALIDATION and writes nothing', async (count) => {
    const result = await refusedWithoutLogEntry(BATCH, { input: { operations: deposits(count) } });
    expect(result).toEqual({ __typename: 'ValidationError', code: 'VALIDATION', message: `a batch takes at most 1000 operations, got ${count}` });
  });

  it('is refused the same way when only its operations are a variable, with or without a fresh key', async () => {
    for (const key of [null, uniqueId('key')]) {
      const result = await refusedWithoutLogEntry(BATCH_OPERATIONS, { ops: deposits(100_000), key });
      expect(result).toMatchObject({ code: 'VALIDATION', message: 'a batch takes at most 1000 operations, got 100000' });
    }
  });

  it('is refused on its size before its operations are coerced (an operation coercion refuses does not change the answer)', async () => {
    // Coercing every operation would find the last one's amount invalid and answer a GraphQL error instead.
    const operations = [...deposits(100_000 - 1), { deposit: { accountId: account, amount: '1.5' } }];
    const result = await refusedWithoutLogEntry(BATCH, { input: { operations } });
    expect(result).toMatchObject({ code: 'VALIDATION', message: 'a batch takes at most 1000 operations, got 100000' });
  });

  it('is refused in every field it reaches, through aliases and fragments', async () => {
    const query = `mutation ($input: BatchInput!) { a: executeBatch(input: $input) { ${BATCH_ERROR_FIELDS} } ...B }
      fragment B on Mutation { b: executeBatch(input: $input) { ${BATCH_ERROR_FIELDS} } }`;
    const before = logIndexes();
    const res = await ledger.gql(query, { input: { operations: deposits(100_000) } }, ['teller']);
    const refusal = { __typename: 'ValidationError', code: 'VALIDATION', message: 'a batch takes at most 1000 operations, got 100000' };
    expect(res.body).toEqual({ data: { a: refusal, b: refusal } });
    expect(logIndexes()).toEqual(before);
  });

  it('is still refused to a role that may not write, as before', async () => {
    const res = await ledger.gql(BATCH, { input: { operations: deposits(1001) } }, ['analyst']);
    expect(res.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it('of exactly 1000 valid operations is still written and applied', async () => {
    const before = logIndexes().commitIndex;
    const res = await ledger.gql(BATCH, { input: { operations: deposits(1000) } }, ['teller']);
    expect(res.body.data.executeBatch.__typename).toBe('BatchSuccess');
    expect(logIndexes().commitIndex).toBe(before + 1);
  });

  it('with a key already used is IDEMPOTENCY_CONFLICT, as before: the key is read first', async () => {
    const key = uniqueId('key');
    await ledger.data(DEPOSIT, { input: { accountId: account, amount: '1', idempotencyKey: key } });
    const res = await ledger.gql(BATCH, { input: { operations: deposits(1001), idempotencyKey: key } }, ['teller']);
    expect(res.body.data.executeBatch).toMatchObject({ code: 'IDEMPOTENCY_CONFLICT' });
  });
});

describe('a command whose own content breaks a rule is refused with the decider’s answer and writes nothing', () => {
  // Variables and answers are made when the test runs: the account ids exist only then.
  const cases: Array<[string, string, () => Record<string, unknown>, () => Record<string, unknown>]> = [
    ['an empty batch', BATCH, () => ({ input: { operations: [] } }), () => ({ code: 'VALIDATION', message: 'a batch needs at least one operation' })],
    ['an amount of 0', DEPOSIT, () => ({ input: { accountId: account, amount: '0' } }), () => ({ code: 'VALIDATION', message: 'amount must be greater than 0, got 0' })],
    ['a negative amount', WITHDRAW, () => ({ input: { accountId: account, amount: '-5' } }), () => ({ code: 'VALIDATION', message: 'amount must be greater than 0, got -5' })],
    [
      'an amount over the limit',
      DEPOSIT,
      () => ({ input: { accountId: account, amount: '1000000001' } }),
      () => ({ code: 'AMOUNT_LIMIT_EXCEEDED', message: 'amount 1000000001 exceeds the limit of 1000000000 minor units' }),
    ],
    ['a negative initial balance', OPEN, () => ({ input: { id: uniqueId('o'), initialBalance: '-1' } }), () => ({ code: 'VALIDATION', message: 'initialBalance must be at least 0, got -1' })],
    [
      'an overdraft limit beyond 64 bits',
      OPEN,
      () => ({ input: { id: uniqueId('o'), overdraftLimit: '9223372036854775808' } }),
      () => ({ code: 'AMOUNT_LIMIT_EXCEEDED', message: 'overdraftLimit exceeds 9223372036854775807' }),
    ],
    ['a bad account id', OPEN, () => ({ input: { id: 'no spaces!' } }), () => ({ code: 'VALIDATION', message: 'id must be 1 to 50 characters of A-Z a-z 0-9 _ -, got "no spaces!"' })],
    [
      'an account id too long',
      DEPOSIT,
      () => ({ input: { accountId: 'x'.repeat(51), amount: '1' } }),
      () => ({ code: 'VALIDATION', message: `accountId must be 1 to 50 characters of A-Z a-z 0-9 _ -, got "${'x'.repeat(51)}"` }),
    ],
    ['a lower-case currency', OPEN, () => ({ input: { id: uniqueId('o'), currency: 'usd' } }), () => ({ code: 'VALIDATION', message: 'currency must be 3 upper-case letters, got "usd"' })],
    ['a currency of 4 letters', OPEN, () => ({ input: { id: uniqueId('o'), currency: 'EURO' } }), () => ({ code: 'VALIDATION', message: 'currency must be 3 upper-case letters, got "EURO"' })],
    ['an empty idempotency key', DEPOSIT, () => ({ input: { accountId: account, amount: '1', idempotencyKey: '' } }), () => ({ code: 'VALIDATION', message: 'idempotencyKey must be 1 to 200 characters' })],
    [
      'an idempotency key too long',
      BATCH,
      () => ({ input: { operations: deposits(1), idempotencyKey: 'k'.repeat(201) } }),
      () => ({ code: 'VALIDATION', message: 'idempotencyKey must be 1 to 200 characters' }),
    ],
    [
      'a hold timeout on a settled movement',
      DEPOSIT,
      () => ({ input: { accountId: account, amount: '1', holdTimeoutSeconds: 60 } }),
      () => ({ code: 'VALIDATION', message: 'holdTimeoutSeconds applies only to a pending transaction' }),
    ],
    [
      'a hold timeout over the limit',
      WITHDRAW,
      () => ({ input: { accountId: account, amount: '1', pending: true, holdTimeoutSeconds: 30 * 24 * 3600 + 1 } }),
      () => ({ code: 'VALIDATION', message: 'holdTimeoutSeconds must be an integer from 1 to 2592000' }),
    ],
    ['a description too long', DEPOSIT, () => ({ input: { accountId: account, amount: '1', description: 'd'.repeat(501) } }), () => ({ code: 'VALIDATION', message: 'description must be at most 500 characters' })],
    [
      'a transfer to the same account',
      TRANSFER,
      () => ({ input: { fromAccountId: account, toAccountId: account, amount: '1' } }),
      () => ({ code: 'SAME_ACCOUNT', message: `a transfer needs two different accounts, got "${account}" twice` }),
    ],
    ['a transaction id of no transaction’s form (settle)', SETTLE, () => ({ input: { transactionId: 'nope' } }), () => ({ code: 'TRANSACTION_NOT_FOUND', message: 'transaction "nope" does not exist' })],
    ['a transaction id of no transaction’s form (cancel)', CANCEL, () => ({ input: { transactionId: 'tx-0' } }), () => ({ code: 'TRANSACTION_NOT_FOUND', message: 'transaction "tx-0" does not exist' })],
    [
      'a key on a batch operation',
      BATCH,
      () => ({ input: { operations: [{ deposit: { accountId: account, amount: '1', idempotencyKey: 'k' } }] } }),
      () => ({ code: 'BATCH_FAILED', index: 0, cause: { code: 'VALIDATION', message: 'idempotencyKey belongs on the batch, not on its operations' } }),
    ],
    [
      'a batch whose first operation has a bad amount',
      BATCH,
      () => ({ input: { operations: [{ withdraw: { accountId: account, amount: '0' } }, ...deposits(2)] } }),
      () => ({ code: 'BATCH_FAILED', message: 'operation 0 failed: amount must be greater than 0, got 0', index: 0, cause: { code: 'VALIDATION' } }),
    ],
    [
      'a batch whose third operation opens an account in an unknown currency (the first two would succeed)',
      BATCH,
      () => ({ input: { operations: [...deposits(2), { openAccount: { id: uniqueId('o'), currency: 'us$' } }] } }),
      () => ({ code: 'BATCH_FAILED', index: 2, cause: { code: 'VALIDATION', message: 'currency must be 3 upper-case letters, got "us$"' } }),
    ],
  ];

  it.each(cases)('%s', async (_name, query, variables, expected) => {
    expect(await refusedWithoutLogEntry(query, variables())).toMatchObject(expected());
  });

  it('a keyed command with a fresh key is refused the same way', async () => {
    const result = await refusedWithoutLogEntry(DEPOSIT, { input: { accountId: account, amount: '0', idempotencyKey: uniqueId('key') } });
    expect(result).toMatchObject({ code: 'VALIDATION', message: 'amount must be greater than 0, got 0' });
  });

  it('an amount, id or metadata the GraphQL types refuse is a GraphQL error, as before, and writes nothing', async () => {
    for (const input of [
      { accountId: account, amount: '1.5' },
      { accountId: account, amount: '1'.repeat(20) },
      { accountId: account, amount: '1', metadata: { blob: 'x'.repeat(5000) } },
    ]) {
      const before = logIndexes();
      const res = await ledger.gql(DEPOSIT, { input }, ['teller']);
      expect(res.status).toBe(400);
      expect(res.body.errors?.[0]?.message).toMatch(/^Variable "\$input" got invalid value/);
      expect(logIndexes()).toEqual(before);
    }
  });
});

describe('where the state decides first, the log still answers', () => {
  it('a batch whose earlier operation fails on the state names that one, as before', async () => {
    const missing = uniqueId('missing');
    const res = await ledger.gql(BATCH, { input: { operations: [{ deposit: { accountId: missing, amount: '1' } }, { deposit: { accountId: account, amount: '0' } }] } }, ['teller']);
    expect(res.body.data.executeBatch).toMatchObject({ code: 'BATCH_FAILED', index: 0, cause: { code: 'ACCOUNT_NOT_FOUND', message: `account "${missing}" does not exist` } });
  });

  it('a transfer between currencies with a bad amount is VALIDATION (own rules first), one with a good amount CURRENCY_MISMATCH', async () => {
    expect(await refusedWithoutLogEntry(TRANSFER, { input: { fromAccountId: account, toAccountId: euros, amount: '0' } })).toMatchObject({ code: 'VALIDATION' });
    const res = await ledger.gql(TRANSFER, { input: { fromAccountId: account, toAccountId: euros, amount: '1' } }, ['teller']);
    expect(res.body.data.transfer).toMatchObject({ code: 'CURRENCY_MISMATCH' });
  });

  it('a valid command is written', async () => {
    const before = logIndexes().commitIndex;
    const res = await ledger.gql(DEPOSIT, { input: { accountId: account, amount: '1' } }, ['teller']);
    expect(res.body.data.deposit.__typename).toBe('DepositSuccess');
    expect(logIndexes().commitIndex).toBe(before + 1);
  });
});

describe('a batch whose operations the API coerces before GraphQL (src/api/batch-coercion.ts)', () => {
  const SELECTION = '__typename ... on BatchSuccess { transactions { kind status amount description metadata fromAccountId toAccountId } }';

  it('records what the same operations written inline (coerced by graphql-js) record', async () => {
    const other = uniqueId('acc');
    await ledger.data(`mutation { openAccount(input: { id: "${other}" }) { __typename } }`);
    const viaVariable = await ledger.gql(`mutation ($input: BatchInput!) { executeBatch(input: $input) { ${SELECTION} } }`, {
      input: {
        operations: [
          { deposit: { accountId: account, amount: '7', description: 'd', metadata: { a: 1 } } },
          { withdraw: { accountId: account, amount: 3, pending: true, holdTimeoutSeconds: 60 } },
          { transfer: { fromAccountId: account, toAccountId: other, amount: '2', description: null } },
        ],
      },
    }, ['teller']);
    const inline = await ledger.gql(
      `mutation { executeBatch(input: { operations: [
        { deposit: { accountId: "${account}", amount: "7", description: "d", metadata: { a: 1 } } },
        { withdraw: { accountId: "${account}", amount: 3, pending: true, holdTimeoutSeconds: 60 } },
        { transfer: { fromAccountId: "${account}", toAccountId: "${other}", amount: "2", description: null } }
      ] }) { ${SELECTION} } }`,
      {},
      ['teller'],
    );
    expect(viaVariable.body.errors).toBeUndefined();
    expect(viaVariable.body.data.executeBatch.__typename).toBe('BatchSuccess');
    expect(viaVariable.body.data.executeBatch.transactions).toHaveLength(3);
    expect(viaVariable.body).toEqual(inline.body);
  });

  it('answers an operation graphql-js refuses with its own error, at its path, and logs nothing', async () => {
    const before = logIndexes();
    const operations = [...deposits(5), { deposit: { accountId: account, amount: '1.5' } }];
    const res = await ledger.gql(BATCH, { input: { operations } }, ['teller']);
    expect(res.status).toBe(400);
    expect(res.body.errors?.[0]?.message).toMatch(/^Variable "\$input" got invalid value "1\.5" at "input\.operations\[5\]\.deposit\.amount"; Amount/);
    expect(logIndexes()).toEqual(before);
  });
});
