/**
 * End to end over HTTP against a real in-process server: every mutation's success payload carries the
 * authoritative post-command state, and the read side (queried with `atLeast`) agrees with it.
 */
import { type TestLedger, startTestLedger, uniqueId } from '../support/ledger-server';

const ACCOUNT = 'id currency balance availableBalance overdraftLimit createdAt lastTransactionAt transactionCount metadata';
const TX = 'id kind status amount currency fromAccountId toAccountId description metadata createdAt updatedAt expiresAt large position';
const ERR = '... on LedgerError { code message }';
const BATCH_ERR = `${ERR} ... on BatchFailedError { index cause { __typename code message } }`;

const OPEN = `mutation($input: OpenAccountInput!) { openAccount(input: $input) { __typename ... on OpenAccountSuccess { position account { ${ACCOUNT} } } ${ERR} } }`;
const DEPOSIT = `mutation($input: DepositInput!) { deposit(input: $input) { __typename ... on DepositSuccess { position account { ${ACCOUNT} } transaction { ${TX} } } ${ERR} } }`;
const WITHDRAW = `mutation($input: WithdrawInput!) { withdraw(input: $input) { __typename ... on WithdrawSuccess { position account { ${ACCOUNT} } transaction { ${TX} } } ${ERR} } }`;
const TRANSFER = `mutation($input: TransferInput!) { transfer(input: $input) { __typename ... on TransferSuccess { position from { ${ACCOUNT} } to { ${ACCOUNT} } transaction { ${TX} } } ${ERR} } }`;
const SETTLE = `mutation($input: TransactionRefInput!) { settleTransaction(input: $input) { __typename ... on SettleSuccess { position transaction { ${TX} } } ${ERR} } }`;
const CANCEL = `mutation($input: TransactionRefInput!) { cancelTransaction(input: $input) { __typename ... on CancelSuccess { position transaction { ${TX} } } ${ERR} } }`;
const BATCH = `mutation($input: BatchInput!) { executeBatch(input: $input) { __typename ... on BatchSuccess { position transactions { ${TX} } accounts { ${ACCOUNT} } } ${BATCH_ERR} } }`;

const ACCOUNT_Q = `query($id: ID!, $at: Position) { account(id: $id, atLeast: $at) { ${ACCOUNT} } }`;
const TX_Q = `query($id: ID!, $at: Position) { transaction(id: $id, atLeast: $at) { ${TX} } }`;
const TXS_Q = `query($filter: TransactionFilter, $first: Int, $after: String, $at: Position) {
  transactions(filter: $filter, first: $first, after: $after, atLeast: $at) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { ${TX} } }
  }
}`;

const POSITION = /^[0-9]{16}-[0-9]{6}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

let ledger: TestLedger;
/** A fresh account id for each use (the server is shared by the tests of this file). */
const uid = uniqueId;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  ledger = await startTestLedger();
});
afterAll(async () => {
  await ledger?.close();
});

/** Runs a request that must not produce GraphQL errors and returns its data. */
const data = <T = any>(query: string, variables?: Record<string, unknown>): Promise<T> => ledger.data<T>(query, variables);

/** Runs a mutation and returns its result, checking its __typename. */
async function mutate(document: string, field: string, input: Record<string, unknown>, typename: string): Promise<any> {
  const result = (await data(document, { input }))[field];
  if (result.__typename !== typename) throw new Error(`expected ${typename}, got ${JSON.stringify(result)}`);
  return result;
}

const open = (input: Record<string, unknown>) => mutate(OPEN, 'openAccount', input, 'OpenAccountSuccess');
const deposit = (input: Record<string, unknown>) => mutate(DEPOSIT, 'deposit', input, 'DepositSuccess');
const withdraw = (input: Record<string, unknown>) => mutate(WITHDRAW, 'withdraw', input, 'WithdrawSuccess');
const transfer = (input: Record<string, unknown>) => mutate(TRANSFER, 'transfer', input, 'TransferSuccess');
const settle = (transactionId: string) => mutate(SETTLE, 'settleTransaction', { transactionId }, 'SettleSuccess');
const cancel = (transactionId: string) => mutate(CANCEL, 'cancelTransaction', { transactionId }, 'CancelSuccess');
const accountAt = async (id: string, at: string) => (await data(ACCOUNT_Q, { id, at })).account;
const transactionAt = async (id: string, at: string) => (await data(TX_Q, { id, at })).transaction;
const transactionsOf = async (filter: Record<string, unknown>, at: string, first?: number, after?: string) =>
  (await data(TXS_Q, { filter, at, first, after })).transactions;

describe('openAccount', () => {
  it('opens with the defaults: USD, zero balances, no overdraft, no metadata', async () => {
    const id = uid('def');
    const before = Date.now();
    const result = await open({ id });
    expect(result.position).toMatch(POSITION);
    expect(result.account).toEqual({
      id,
      currency: 'USD',
      balance: '0',
      availableBalance: '0',
      overdraftLimit: '0',
      createdAt: expect.stringMatching(ISO),
      lastTransactionAt: null,
      transactionCount: 0,
      metadata: null,
    });
    const created = Date.parse(result.account.createdAt);
    expect(created).toBeGreaterThanOrEqual(before - 1000);
    expect(created).toBeLessThanOrEqual(Date.now() + 1000);

    expect(await accountAt(id, result.position)).toEqual(result.account);
    const history = await transactionsOf({ accountId: id }, result.position);
    expect(history.totalCount).toBe(0);
    expect(history.edges).toEqual([]);
  });

  it('opens with currency, initial balance (an opening deposit), overdraft limit and metadata stored as given', async () => {
    const id = uid('full');
    const metadata = { customer: 'c-42', tags: ['vip', 'eu'], nested: { ok: true, n: 1.25, none: null }, text: 'Zürich ✓' };
    const result = await open({ id, currency: 'EUR', initialBalance: '12345', overdraftLimit: 500, metadata });
    expect(result.account).toMatchObject({
      id,
      currency: 'EUR',
      balance: '12345',
      availableBalance: '12345',
      overdraftLimit: '500',
      transactionCount: 1,
      metadata,
    });
    expect(JSON.stringify(result.account.metadata)).toBe(JSON.stringify(metadata));
    expect(result.account.lastTransactionAt).toBe(result.account.createdAt);

    const read = await accountAt(id, result.position);
    expect(read).toEqual(result.account);
    expect(JSON.stringify(read.metadata)).toBe(JSON.stringify(metadata));

    const history = await transactionsOf({ accountId: id }, result.position);
    expect(history.totalCount).toBe(1);
    expect(history.edges[0].node).toMatchObject({
      kind: 'DEPOSIT',
      status: 'SETTLED',
      amount: '12345',
      currency: 'EUR',
      fromAccountId: null,
      toAccountId: id,
      description: 'Opening balance',
      large: false,
    });
  });

  it('accepts a JSON integer amount within the safe range and returns it as a digit string', async () => {
    const id = uid('int');
    const result = await open({ id, initialBalance: 9007199254740991 });
    expect(result.account.balance).toBe('9007199254740991');
  });
});

describe('deposit, withdraw, transfer', () => {
  it('deposit returns the account and transaction as they are right after the command', async () => {
    const id = uid('dep');
    const opened = await open({ id, initialBalance: '1000' });
    const result = await deposit({ accountId: id, amount: '250', description: 'salary', metadata: { invoice: 'INV-1' } });
    expect(result.position).toMatch(POSITION);
    expect(result.position > opened.position).toBe(true);
    expect(result.account).toMatchObject({ id, balance: '1250', availableBalance: '1250', transactionCount: 2 });
    expect(result.transaction).toEqual({
      id: expect.any(String),
      kind: 'DEPOSIT',
      status: 'SETTLED',
      amount: '250',
      currency: 'USD',
      fromAccountId: null,
      toAccountId: id,
      description: 'salary',
      metadata: { invoice: 'INV-1' },
      createdAt: expect.stringMatching(ISO),
      updatedAt: result.transaction.createdAt,
      expiresAt: null,
      large: false,
      position: result.position,
    });
    expect(result.account.lastTransactionAt).toBe(result.transaction.createdAt);

    expect(await accountAt(id, result.position)).toEqual(result.account);
    expect(await transactionAt(result.transaction.id, result.position)).toEqual(result.transaction);
  });

  it('withdraw debits balance and available balance; an overdraft limit bounds how far it may go', async () => {
    const id = uid('wd');
    await open({ id, initialBalance: '50', overdraftLimit: '100' });
    const first = await withdraw({ accountId: id, amount: '120' });
    expect(first.account).toMatchObject({ balance: '-70', availableBalance: '-70', overdraftLimit: '100', transactionCount: 2 });
    expect(first.transaction).toMatchObject({ kind: 'WITHDRAWAL', status: 'SETTLED', amount: '120', fromAccountId: id, toAccountId: null });

    const refused = (await data(WITHDRAW, { input: { accountId: id, amount: '31' } })).withdraw;
    expect(refused).toMatchObject({ __typename: 'InsufficientFundsError', code: 'INSUFFICIENT_FUNDS' });

    const last = await withdraw({ accountId: id, amount: '30' });
    expect(last.account).toMatchObject({ balance: '-100', availableBalance: '-100', transactionCount: 3 });
    expect(await accountAt(id, last.position)).toEqual(last.account);
    expect(await transactionAt(first.transaction.id, last.position)).toEqual(first.transaction);
  });

  it('transfer moves money atomically and returns both accounts; large follows the threshold', async () => {
    const from = uid('tf');
    const to = uid('tt');
    await open({ id: from, initialBalance: '5000000' });
    await open({ id: to });
    const small = await transfer({ fromAccountId: from, toAccountId: to, amount: '999999', description: 'rent' });
    expect(small.from).toMatchObject({ id: from, balance: '4000001', availableBalance: '4000001', transactionCount: 2 });
    expect(small.to).toMatchObject({ id: to, balance: '999999', availableBalance: '999999', transactionCount: 1 });
    expect(small.transaction).toMatchObject({
      kind: 'TRANSFER',
      status: 'SETTLED',
      amount: '999999',
      fromAccountId: from,
      toAccountId: to,
      description: 'rent',
      large: false,
      position: small.position,
    });

    const big = await transfer({ fromAccountId: from, toAccountId: to, amount: 1000000 });
    expect(big.transaction.large).toBe(true);
    expect(big.from.balance).toBe('3000001');
    expect(big.to.balance).toBe('1999999');

    expect(await accountAt(from, big.position)).toEqual(big.from);
    expect(await accountAt(to, big.position)).toEqual(big.to);
    expect(await transactionAt(big.transaction.id, big.position)).toEqual(big.transaction);
  });
});

describe('holds', () => {
  it('a pending withdraw takes from the available balance at once and from the balance on settle', async () => {
    const id = uid('hw');
    await open({ id, initialBalance: '1000' });
    const hold = await withdraw({ accountId: id, amount: '300', pending: true, holdTimeoutSeconds: 3600 });
    expect(hold.transaction).toMatchObject({ status: 'PENDING', kind: 'WITHDRAWAL', amount: '300' });
    expect(Date.parse(hold.transaction.expiresAt) - Date.parse(hold.transaction.createdAt)).toBe(3600 * 1000);
    expect(hold.account).toMatchObject({ balance: '1000', availableBalance: '700', transactionCount: 2 });

    // The hold is checked against the available balance, not the balance.
    const refused = (await data(WITHDRAW, { input: { accountId: id, amount: '701' } })).withdraw;
    expect(refused.__typename).toBe('InsufficientFundsError');

    const settled = await settle(hold.transaction.id);
    expect(settled.position > hold.position).toBe(true);
    expect(settled.transaction).toMatchObject({ id: hold.transaction.id, status: 'SETTLED', amount: '300', createdAt: hold.transaction.createdAt, position: settled.position });
    expect(Date.parse(settled.transaction.updatedAt)).toBeGreaterThanOrEqual(Date.parse(hold.transaction.createdAt));
    expect(await accountAt(id, settled.position)).toMatchObject({ balance: '700', availableBalance: '700', transactionCount: 2 });
    expect(await transactionAt(hold.transaction.id, settled.position)).toEqual(settled.transaction);
  });

  it('cancelling a pending withdraw gives the available balance back and never touches the balance', async () => {
    const id = uid('hc');
    await open({ id, initialBalance: '1000' });
    const hold = await withdraw({ accountId: id, amount: '200', pending: true });
    expect(hold.account).toMatchObject({ balance: '1000', availableBalance: '800' });
    expect(hold.transaction.expiresAt).toBeNull();
    const cancelled = await cancel(hold.transaction.id);
    expect(cancelled.transaction).toMatchObject({ id: hold.transaction.id, status: 'CANCELLED', position: cancelled.position });
    expect(await accountAt(id, cancelled.position)).toMatchObject({ balance: '1000', availableBalance: '1000' });
    expect(await transactionAt(hold.transaction.id, cancelled.position)).toMatchObject({ status: 'CANCELLED' });
  });

  it('a pending deposit changes nothing until settled', async () => {
    const id = uid('hd');
    await open({ id, initialBalance: '100' });
    const hold = await deposit({ accountId: id, amount: '500', pending: true });
    expect(hold.account).toMatchObject({ balance: '100', availableBalance: '100' });
    expect(hold.transaction.status).toBe('PENDING');
    expect(await accountAt(id, hold.position)).toMatchObject({ balance: '100', availableBalance: '100' });
    const settled = await settle(hold.transaction.id);
    expect(settled.transaction.status).toBe('SETTLED');
    expect(await accountAt(id, settled.position)).toMatchObject({ balance: '600', availableBalance: '600' });
  });

  it('a pending transfer holds the payer at once and credits the payee only when settled; cancel releases it', async () => {
    const from = uid('hf');
    const to = uid('ht');
    await open({ id: from, initialBalance: '1000' });
    await open({ id: to, initialBalance: '10' });
    const hold = await transfer({ fromAccountId: from, toAccountId: to, amount: '400', pending: true });
    expect(hold.from).toMatchObject({ balance: '1000', availableBalance: '600' });
    expect(hold.to).toMatchObject({ balance: '10', availableBalance: '10' });
    const settled = await settle(hold.transaction.id);
    expect(await accountAt(from, settled.position)).toMatchObject({ balance: '600', availableBalance: '600' });
    expect(await accountAt(to, settled.position)).toMatchObject({ balance: '410', availableBalance: '410' });

    const second = await transfer({ fromAccountId: from, toAccountId: to, amount: '100', pending: true });
    expect(second.from).toMatchObject({ balance: '600', availableBalance: '500' });
    const cancelled = await cancel(second.transaction.id);
    expect(cancelled.transaction.status).toBe('CANCELLED');
    expect(await accountAt(from, cancelled.position)).toMatchObject({ balance: '600', availableBalance: '600' });
    expect(await accountAt(to, cancelled.position)).toMatchObject({ balance: '410', availableBalance: '410' });
  });
});

describe('executeBatch', () => {
  it('applies operations in order, each seeing the earlier ones, and returns every transaction and account', async () => {
    const a = uid('ba');
    const b = uid('bb');
    await open({ id: b });
    const result = await mutate(
      BATCH,
      'executeBatch',
      {
        operations: [
          { openAccount: { id: a } },
          { deposit: { accountId: a, amount: '100' } },
          { transfer: { fromAccountId: a, toAccountId: b, amount: '60' } },
          { withdraw: { accountId: a, amount: '40' } },
        ],
      },
      'BatchSuccess',
    );
    expect(result.position).toMatch(POSITION);
    expect(result.transactions.map((t: any) => [t.kind, t.amount])).toEqual([
      ['DEPOSIT', '100'],
      ['TRANSFER', '60'],
      ['WITHDRAWAL', '40'],
    ]);
    const positions = result.transactions.map((t: any) => t.position);
    expect([...positions].sort()).toEqual(positions);
    expect(new Set(positions).size).toBe(3);
    expect(positions.at(-1) <= result.position).toBe(true);
    const accounts = Object.fromEntries(result.accounts.map((acc: any) => [acc.id, acc]));
    expect(Object.keys(accounts).sort()).toEqual([a, b].sort());
    expect(accounts[a]).toMatchObject({ balance: '0', availableBalance: '0', transactionCount: 3 });
    expect(accounts[b]).toMatchObject({ balance: '60', availableBalance: '60', transactionCount: 1 });

    expect(await accountAt(a, result.position)).toEqual(accounts[a]);
    expect(await accountAt(b, result.position)).toEqual(accounts[b]);
    const history = await transactionsOf({ accountId: a }, result.position);
    expect(history.totalCount).toBe(3);
    expect(history.edges.map((e: any) => e.node.id)).toEqual(result.transactions.map((t: any) => t.id).reverse());
  });

  it('is all or nothing: a failing third operation leaves the first two unapplied', async () => {
    const a = uid('aa');
    const b = uid('ab');
    const opened = await open({ id: a, initialBalance: '100' });
    await open({ id: b, initialBalance: '5' });
    const before = await accountAt(a, opened.position);
    const failed = (
      await data(BATCH, {
        input: {
          operations: [
            { deposit: { accountId: a, amount: '1000' } },
            { transfer: { fromAccountId: a, toAccountId: b, amount: '1100' } },
            { withdraw: { accountId: b, amount: '2000' } },
          ],
        },
      })
    ).executeBatch;
    expect(failed).toMatchObject({
      __typename: 'BatchFailedError',
      code: 'BATCH_FAILED',
      index: 2,
      cause: { __typename: 'InsufficientFundsError', code: 'INSUFFICIENT_FUNDS' },
    });
    expect(failed.message).toMatch(/operation 2/);
    expect(failed.cause.message).toMatch(new RegExp(b));

    // A later write gives a position after the failed batch; the read side must show nothing of it.
    const marker = await open({ id: uid('mk') });
    expect(await accountAt(a, marker.position)).toEqual(before);
    expect(await accountAt(b, marker.position)).toMatchObject({ balance: '5', availableBalance: '5', transactionCount: 1 });
    expect((await transactionsOf({ accountId: a }, marker.position)).totalCount).toBe(1);
    expect((await transactionsOf({ accountId: b }, marker.position)).totalCount).toBe(1);

    // An account opened by a failed batch does not exist either.
    const ghost = uid('gh');
    const failedOpen = (await data(BATCH, { input: { operations: [{ openAccount: { id: ghost, initialBalance: '7' } }, { withdraw: { accountId: ghost, amount: '8' } }] } })).executeBatch;
    expect(failedOpen).toMatchObject({ code: 'BATCH_FAILED', index: 1, cause: { code: 'INSUFFICIENT_FUNDS' } });
    const marker2 = await open({ id: uid('mk') });
    expect(await accountAt(ghost, marker2.position)).toBeNull();
  });
});

describe('idempotent retries', () => {
  it('same key and same input returns the first result with exactly one effect', async () => {
    const id = uid('idem');
    await open({ id, initialBalance: '1000' });
    const key = `key-${id}`;
    const first = await deposit({ accountId: id, amount: '100', description: 'once', idempotencyKey: key });
    // The same input written differently (integer amount, explicit default) is the same input.
    const retry = await deposit({ accountId: id, amount: 100, description: 'once', pending: false, idempotencyKey: key });
    expect(retry.transaction.id).toBe(first.transaction.id);
    expect(retry.position).toBe(first.position);
    expect(retry).toEqual(first);

    // Concurrent retries of a fresh key: still one effect.
    const key2 = `key2-${id}`;
    const concurrent = await Promise.all([1, 2, 3].map(() => withdraw({ accountId: id, amount: '10', idempotencyKey: key2 })));
    expect(new Set(concurrent.map((r) => r.transaction.id)).size).toBe(1);
    expect(new Set(concurrent.map((r) => r.position)).size).toBe(1);

    const after = await accountAt(id, concurrent[0].position);
    expect(after).toMatchObject({ balance: '1090', availableBalance: '1090', transactionCount: 3 });
    const history = await transactionsOf({ accountId: id }, concurrent[0].position);
    expect(history.totalCount).toBe(3);
  });

  it('same key with another input is IDEMPOTENCY_CONFLICT and changes nothing', async () => {
    const id = uid('conf');
    await open({ id, initialBalance: '1000' });
    const key = `key-${id}`;
    const first = await deposit({ accountId: id, amount: '100', idempotencyKey: key });
    const other = (await data(DEPOSIT, { input: { accountId: id, amount: '101', idempotencyKey: key } })).deposit;
    expect(other).toMatchObject({ __typename: 'IdempotencyConflictError', code: 'IDEMPOTENCY_CONFLICT' });
    expect(other.message).toContain(key);
    const otherKind = (await data(WITHDRAW, { input: { accountId: id, amount: '100', idempotencyKey: key } })).withdraw;
    expect(otherKind).toMatchObject({ __typename: 'IdempotencyConflictError', code: 'IDEMPOTENCY_CONFLICT' });
    const marker = await open({ id: uid('mk') });
    expect(await accountAt(id, marker.position)).toMatchObject({ balance: '1100', transactionCount: 2 });
    expect(first.account.balance).toBe('1100');
  });

  it('a retried openAccount returns the first result, not ACCOUNT_ALREADY_EXISTS, even after the account changed', async () => {
    const id = uid('oidem');
    const input = { id, initialBalance: '10', metadata: { a: 1, b: 2 }, idempotencyKey: `open-${id}` };
    const first = await open(input);
    await deposit({ accountId: id, amount: '5' });
    // Same input, metadata keys in another order.
    const retry = await open({ ...input, metadata: { b: 2, a: 1 } });
    expect(retry).toEqual(first);
    expect(retry.account.balance).toBe('10');
    const other = (await data(OPEN, { input: { ...input, initialBalance: '11' } })).openAccount;
    expect(other).toMatchObject({ __typename: 'IdempotencyConflictError', code: 'IDEMPOTENCY_CONFLICT' });
    const withoutKey = (await data(OPEN, { input: { id } })).openAccount;
    expect(withoutKey).toMatchObject({ __typename: 'AccountAlreadyExistsError', code: 'ACCOUNT_ALREADY_EXISTS' });
    const marker = await open({ id: uid('mk') });
    expect(await accountAt(id, marker.position)).toMatchObject({ balance: '15', transactionCount: 2 });
  });

  it('a retried batch returns the first result and applies once', async () => {
    const id = uid('bidem');
    await open({ id });
    const input = { idempotencyKey: `bk-${id}`, operations: [{ deposit: { accountId: id, amount: '5' } }, { deposit: { accountId: id, amount: '6' } }] };
    const first = await mutate(BATCH, 'executeBatch', input, 'BatchSuccess');
    const again = await mutate(BATCH, 'executeBatch', input, 'BatchSuccess');
    expect(again).toEqual(first);
    expect(await accountAt(id, first.position)).toMatchObject({ balance: '11', transactionCount: 2 });
    const marker = await open({ id: uid('mk') });
    expect(await accountAt(id, marker.position)).toMatchObject({ balance: '11', transactionCount: 2 });
  });
});

describe('queries', () => {
  it('accounts pages by id with first/after, totalCount and hasNextPage', async () => {
    const prefix = uid('pg');
    const ids = [1, 2, 3, 4, 5].map((n) => `${prefix}-${n}`);
    let last = '';
    for (const id of ids) last = (await open({ id })).position;
    await accountAt(ids[4]!, last); // read models now include every account

    const PAGE = `query($first: Int, $after: String) { accounts(first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id balance } } } }`;
    const seen: string[] = [];
    let after: string | undefined;
    let total = -1;
    let pages = 0;
    for (;;) {
      const page = (await data(PAGE, { first: 2, after })).accounts;
      pages += 1;
      if (total === -1) total = page.totalCount;
      expect(page.totalCount).toBe(total);
      expect(page.edges.length).toBeLessThanOrEqual(2);
      seen.push(...page.edges.map((e: any) => e.node.id));
      if (page.edges.length > 0) expect(page.pageInfo.endCursor).toBe(page.edges.at(-1).cursor);
      if (!page.pageInfo.hasNextPage) break;
      expect(page.edges.length).toBe(2);
      after = page.pageInfo.endCursor;
      if (pages > 200) throw new Error('paging does not end');
    }
    expect(seen.length).toBe(total);
    expect(new Set(seen).size).toBe(seen.length);
    expect([...seen].sort()).toEqual(seen);
    expect(seen.filter((s) => s.startsWith(`${prefix}-`))).toEqual(ids);
    expect(total).toBeGreaterThanOrEqual(5);

    // Starting after the second of ours gives the third next.
    const fromMiddle = (await data(PAGE, { first: 1, after: (await data(PAGE, { first: 500 })).accounts.edges.find((e: any) => e.node.id === ids[1]).cursor })).accounts;
    expect(fromMiddle.edges.map((e: any) => e.node.id)).toEqual([ids[2]]);
    expect(fromMiddle.pageInfo.hasNextPage).toBe(true);
  });

  it('Account.transactions is newest first and pages with first/after', async () => {
    const id = uid('hist');
    await open({ id, initialBalance: '1000' });
    const made: string[] = [];
    let position = '';
    for (const amount of ['1', '2', '3', '4']) {
      const r = await deposit({ accountId: id, amount });
      made.push(r.transaction.id);
      position = r.position;
    }
    const Q = `query($id: ID!, $at: Position, $after: String) { account(id: $id, atLeast: $at) {
      all: transactions { totalCount pageInfo { hasNextPage } edges { node { id amount } } }
      page: transactions(first: 2, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id amount } } }
    } }`;
    const first = (await data(Q, { id, at: position })).account;
    expect(first.all.totalCount).toBe(5);
    expect(first.all.pageInfo.hasNextPage).toBe(false);
    expect(first.all.edges.map((e: any) => e.node.amount)).toEqual(['4', '3', '2', '1', '1000']);
    expect(first.all.edges.slice(0, 4).map((e: any) => e.node.id)).toEqual([...made].reverse());
    expect(first.page.edges.map((e: any) => e.node.amount)).toEqual(['4', '3']);
    expect(first.page.pageInfo.hasNextPage).toBe(true);
    const second = (await data(Q, { id, at: position, after: first.page.pageInfo.endCursor })).account;
    expect(second.page.edges.map((e: any) => e.node.amount)).toEqual(['2', '1']);
    expect(second.page.pageInfo.hasNextPage).toBe(true);
    const third = (await data(Q, { id, at: position, after: second.page.pageInfo.endCursor })).account;
    expect(third.page.edges.map((e: any) => e.node.amount)).toEqual(['1000']);
    expect(third.page.pageInfo.hasNextPage).toBe(false);
    expect(third.page.totalCount).toBe(5);
  });

  it('transactions filters by accountId, kinds, statuses, minAmount, from/to and large', async () => {
    const a = uid('fa');
    const b = uid('fb');
    await open({ id: a, initialBalance: '3000000' }); // DEPOSIT 3000000 (large)
    await open({ id: b });
    await sleep(15);
    const t1 = await deposit({ accountId: a, amount: '100' });
    await sleep(15);
    const t2 = await withdraw({ accountId: a, amount: '700', pending: true });
    await sleep(15);
    const t3 = await transfer({ fromAccountId: a, toAccountId: b, amount: '1500000' });
    await sleep(15);
    const t4 = await withdraw({ accountId: b, amount: '5' });
    const at = t4.position;
    const ids = async (filter: Record<string, unknown>) => (await transactionsOf(filter, at, 100)).edges.map((e: any) => e.node.id);
    const opening = (await transactionsOf({ accountId: a, kinds: ['DEPOSIT'], minAmount: '3000000' }, at)).edges[0].node.id;

    expect(await ids({ accountId: a })).toEqual([t3.transaction.id, t2.transaction.id, t1.transaction.id, opening]);
    expect(await ids({ accountId: b })).toEqual([t4.transaction.id, t3.transaction.id]);
    expect(await ids({ accountId: a, kinds: ['WITHDRAWAL'] })).toEqual([t2.transaction.id]);
    expect(await ids({ accountId: a, kinds: ['WITHDRAWAL', 'TRANSFER'] })).toEqual([t3.transaction.id, t2.transaction.id]);
    expect(await ids({ accountId: a, statuses: ['PENDING'] })).toEqual([t2.transaction.id]);
    expect(await ids({ accountId: a, statuses: ['SETTLED'], kinds: ['DEPOSIT'] })).toEqual([t1.transaction.id, opening]);
    expect(await ids({ accountId: a, minAmount: '700' })).toEqual([t3.transaction.id, t2.transaction.id, opening]);
    expect(await ids({ accountId: a, minAmount: 701 })).toEqual([t3.transaction.id, opening]);
    expect(await ids({ accountId: a, large: true })).toEqual([t3.transaction.id, opening]);
    expect(await ids({ accountId: a, large: false })).toEqual([t2.transaction.id, t1.transaction.id]);
    expect(await ids({ accountId: a, from: t2.transaction.createdAt })).toEqual([t3.transaction.id, t2.transaction.id]);
    expect(await ids({ accountId: a, to: t2.transaction.createdAt })).toEqual([t2.transaction.id, t1.transaction.id, opening]);
    expect(await ids({ accountId: a, from: t1.transaction.createdAt, to: t2.transaction.createdAt })).toEqual([t2.transaction.id, t1.transaction.id]);
    expect(await ids({ accountId: b, kinds: ['DEPOSIT'] })).toEqual([]);

    // Without accountId: everything large in the ledger, newest first, ours among it.
    const large = (await transactionsOf({ large: true }, at, 500)).edges.map((e: any) => e.node);
    expect(large.every((t: any) => t.large === true && BigInt(t.amount) >= 1000000n)).toBe(true);
    expect(large.map((t: any) => t.id)).toEqual(expect.arrayContaining([t3.transaction.id, opening]));
    const positions = large.map((t: any) => t.position);
    expect(large.findIndex((t: any) => t.id === t3.transaction.id)).toBeLessThan(large.findIndex((t: any) => t.id === opening));
    expect(positions.length).toBeGreaterThanOrEqual(2);

    // The filter on the connection: totalCount counts all matches, first pages them.
    const paged = await transactionsOf({ accountId: a }, at, 2);
    expect(paged.totalCount).toBe(4);
    expect(paged.pageInfo.hasNextPage).toBe(true);
    const rest = await transactionsOf({ accountId: a }, at, 2, paged.pageInfo.endCursor);
    expect(rest.edges.map((e: any) => e.node.id)).toEqual([t1.transaction.id, opening]);
    expect(rest.pageInfo.hasNextPage).toBe(false);
  });

  it('Account.balanceAt gives the settled balance before and after each change', async () => {
    const id = uid('bal');
    const opened = await open({ id, initialBalance: '1000' });
    await sleep(15);
    const dep = await deposit({ accountId: id, amount: '500' });
    await sleep(15);
    const wd = await withdraw({ accountId: id, amount: '200' });
    await sleep(15);
    const hold = await withdraw({ accountId: id, amount: '100', pending: true });
    await sleep(15);
    const settled = await settle(hold.transaction.id);
    const ms = (iso: string, delta: number) => new Date(Date.parse(iso) + delta).toISOString();
    const Q = `query($id: ID!, $at: Position, $t0: DateTime!, $t1: DateTime!, $t2: DateTime!, $t3: DateTime!, $t4: DateTime!, $t5: DateTime!, $t6: DateTime!, $t7: DateTime!, $t8: DateTime!) {
      account(id: $id, atLeast: $at) {
        b0: balanceAt(at: $t0) b1: balanceAt(at: $t1) b2: balanceAt(at: $t2) b3: balanceAt(at: $t3) b4: balanceAt(at: $t4)
        b5: balanceAt(at: $t5) b6: balanceAt(at: $t6) b7: balanceAt(at: $t7) b8: balanceAt(at: $t8)
      }
    }`;
    const account = (
      await data(Q, {
        id,
        at: settled.position,
        t0: ms(opened.account.createdAt, -1), // before the account existed
        t1: opened.account.createdAt, // opened with its opening deposit
        t2: ms(dep.transaction.createdAt, -1),
        t3: dep.transaction.createdAt,
        t4: ms(wd.transaction.createdAt, -1),
        t5: wd.transaction.createdAt,
        t6: hold.transaction.createdAt, // a pending debit changes no settled balance
        t7: settled.transaction.updatedAt,
        t8: ms(settled.transaction.updatedAt, 3_600_000),
      })
    ).account;
    expect(account).toEqual({ b0: '0', b1: '1000', b2: '1000', b3: '1500', b4: '1500', b5: '1300', b6: '1300', b7: '1200', b8: '1200' });
  });

  it('a missing account or transaction is null', async () => {
    const marker = await open({ id: uid('mk') });
    expect(await accountAt(uid('nobody'), marker.position)).toBeNull();
    expect(await transactionAt('tx-999999999', marker.position)).toBeNull();
  });
});
