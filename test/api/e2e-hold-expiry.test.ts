/**
 * End to end over HTTP: a pending hold with a timeout expires by itself. Nothing else writes while
 * the test waits: the node proposes a tick when the hold falls due.
 */
import { type TestLedger, startTestLedger } from '../support/ledger-server';

const ACCOUNT = 'id balance availableBalance transactionCount';
const TX = 'id status amount createdAt updatedAt expiresAt position';
const ERR = '__typename ... on LedgerError { code message }';

let ledger: TestLedger;

beforeAll(async () => {
  ledger = await startTestLedger();
});
afterAll(async () => {
  await ledger?.close();
});

const data = <T = any>(query: string, variables?: Record<string, unknown>): Promise<T> => ledger.data<T>(query, variables);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

it('a pending withdraw and a pending transfer with holdTimeoutSeconds: 1 expire and give the available balance back', async () => {
  const open = `mutation($id: ID!, $initial: Amount) { openAccount(input: { id: $id, initialBalance: $initial }) { ${ERR} ... on OpenAccountSuccess { position } } }`;
  await data(open, { id: 'exp-payer', initial: '1000' });
  await data(open, { id: 'exp-payee', initial: '5' });
  const hold = (
    await data(`mutation { withdraw(input: { accountId: "exp-payer", amount: "300", pending: true, holdTimeoutSeconds: 1 }) { ${ERR} ... on WithdrawSuccess { position account { ${ACCOUNT} } transaction { ${TX} } } } }`)
  ).withdraw;
  expect(hold.account).toMatchObject({ balance: '1000', availableBalance: '700' });
  expect(Date.parse(hold.transaction.expiresAt) - Date.parse(hold.transaction.createdAt)).toBe(1000);
  const held = (
    await data(`mutation { transfer(input: { fromAccountId: "exp-payer", toAccountId: "exp-payee", amount: "200", pending: true, holdTimeoutSeconds: 1 }) { ${ERR} ... on TransferSuccess { position from { ${ACCOUNT} } to { ${ACCOUNT} } transaction { ${TX} } } } }`)
  ).transfer;
  expect(held.from).toMatchObject({ balance: '1000', availableBalance: '500' });
  const appliedBefore = BigInt((await data('{ ledger { appliedIndex } }')).ledger.appliedIndex);

  // Only reads from here on: the expiry must come from the node's own tick.
  const TXQ = `query($id: ID!, $at: Position) { transaction(id: $id, atLeast: $at) { ${TX} } }`;
  const deadline = Date.now() + 5000;
  let withdrawTx: any;
  let transferTx: any;
  for (;;) {
    withdrawTx = (await data(TXQ, { id: hold.transaction.id, at: held.position })).transaction;
    transferTx = (await data(TXQ, { id: held.transaction.id, at: held.position })).transaction;
    if (withdrawTx.status !== 'PENDING' && transferTx.status !== 'PENDING') break;
    if (Date.now() > deadline) throw new Error(`the holds did not expire within 5 s: ${withdrawTx.status}, ${transferTx.status}`);
    await sleep(100);
  }
  expect(withdrawTx.status).toBe('EXPIRED');
  expect(transferTx.status).toBe('EXPIRED');
  expect(Date.parse(withdrawTx.updatedAt)).toBeGreaterThanOrEqual(Date.parse(hold.transaction.expiresAt));
  expect(Date.parse(transferTx.updatedAt)).toBeGreaterThanOrEqual(Date.parse(held.transaction.expiresAt));
  expect(withdrawTx.position > held.position).toBe(true);
  const last = withdrawTx.position > transferTx.position ? withdrawTx.position : transferTx.position;

  const ACCOUNT_Q = `query($id: ID!, $at: Position) { account(id: $id, atLeast: $at) { ${ACCOUNT} } }`;
  expect((await data(ACCOUNT_Q, { id: 'exp-payer', at: last })).account).toMatchObject({ balance: '1000', availableBalance: '1000', transactionCount: 3 });
  expect((await data(ACCOUNT_Q, { id: 'exp-payee', at: last })).account).toMatchObject({ balance: '5', availableBalance: '5' });
  const expired = (await data(`query($at: Position) { transactions(filter: { accountId: "exp-payer", statuses: [EXPIRED] }, atLeast: $at) { totalCount } }`, { at: last })).transactions;
  expect(expired.totalCount).toBe(2);
  // The node wrote the expiry itself: the log moved on although no client wrote.
  expect(BigInt((await data('{ ledger { appliedIndex } }')).ledger.appliedIndex)).toBeGreaterThan(appliedBefore);

  // An expired hold can be neither settled nor cancelled.
  const settle = (await data(`mutation($id: ID!) { settleTransaction(input: { transactionId: $id }) { ${ERR} } }`, { id: hold.transaction.id })).settleTransaction;
  expect(settle).toMatchObject({ __typename: 'TransactionNotPendingError', code: 'TRANSACTION_NOT_PENDING' });
  const cancel = (await data(`mutation($id: ID!) { cancelTransaction(input: { transactionId: $id }) { ${ERR} } }`, { id: held.transaction.id })).cancelTransaction;
  expect(cancel).toMatchObject({ __typename: 'TransactionNotPendingError', code: 'TRANSACTION_NOT_PENDING' });
});

it('a hold that runs the longest allowed (30 days, beyond what one Node timer waits) makes the node write nothing until it is due', async () => {
  const open = `mutation($id: ID!, $initial: Amount) { openAccount(input: { id: $id, initialBalance: $initial }) { ${ERR} } }`;
  await data(open, { id: 'long-payer', initial: '1000' });
  const hold = (
    await data(`mutation { withdraw(input: { accountId: "long-payer", amount: "10", pending: true, holdTimeoutSeconds: 2592000 }) { ${ERR} ... on WithdrawSuccess { position transaction { ${TX} } } } }`)
  ).withdraw;
  expect(Date.parse(hold.transaction.expiresAt) - Date.parse(hold.transaction.createdAt)).toBe(2_592_000_000);
  const applied = async () => BigInt((await data('{ ledger { appliedIndex } }')).ledger.appliedIndex);
  const before = await applied();
  // A timer of 30 days would fire after 1 ms; the node then wrote a tick entry every millisecond or so.
  await sleep(500);
  expect(await applied()).toBe(before);
  const TXQ = `query($id: ID!, $at: Position) { transaction(id: $id, atLeast: $at) { status } }`;
  expect((await data(TXQ, { id: hold.transaction.id, at: hold.position })).transaction.status).toBe('PENDING');
});
