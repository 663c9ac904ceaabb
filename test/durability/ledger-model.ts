import { seededRandom } from '../support/seeded-random';
import type { ChildLedger } from './child-ledger';

/**
 * What a client knows about the mutations it sent: acknowledged (a success payload came back),
 * rejected (a typed ledger error came back: acknowledged, with no effect) or unknown (in flight when
 * the server died, or refused without an answer from the ledger). After a crash, the ledger must hold
 * every acknowledged change, no rejected one, any subset of the unknown ones, and nothing twice.
 */

export type RequestKind = 'deposit' | 'transfer' | 'openAccount';
export type RequestStatus = 'new' | 'sent' | 'acked' | 'rejected' | 'unknown';

export interface ModelRequest {
  n: number;
  kind: RequestKind;
  /** The GraphQL input, idempotency key included; resent unchanged on retry. */
  input: Record<string, unknown>;
  amount: bigint;
  from: string | null;
  to: string | null;
  status: RequestStatus;
  transactionId?: string;
  position?: string;
  /** The account balance in a deposit's or new account's success payload. */
  payloadBalance?: bigint;
  /** What came back when it was not an answer of the ledger (for failure messages). */
  failure?: string;
}

export interface TransactionNode {
  id: string;
  kind: 'DEPOSIT' | 'WITHDRAWAL' | 'TRANSFER';
  status: string;
  amount: string;
  fromAccountId: string | null;
  toAccountId: string | null;
  description: string | null;
  position: string;
}

export interface AccountNode {
  id: string;
  balance: string;
  transactionCount: number;
}

const ERROR_SELECTION = '... on LedgerError { code message }';
const MUTATIONS: Record<RequestKind, string> = {
  deposit: `mutation Deposit($input: DepositInput!) {
    result: deposit(input: $input) { __typename ... on DepositSuccess { position transaction { id } account { id balance } } ${ERROR_SELECTION} }
  }`,
  transfer: `mutation Transfer($input: TransferInput!) {
    result: transfer(input: $input) { __typename ... on TransferSuccess { position transaction { id } } ${ERROR_SELECTION} }
  }`,
  openAccount: `mutation Open($input: OpenAccountInput!) {
    result: openAccount(input: $input) { __typename ... on OpenAccountSuccess { position account { id balance } } ${ERROR_SELECTION} }
  }`,
};

interface MutationResult {
  result: {
    __typename: string;
    position?: string;
    transaction?: { id: string };
    account?: { id: string; balance: string };
    code?: string;
    message?: string;
  };
}

export const OPENING_BALANCE = 100_000_000n;

export class LedgerModel {
  readonly requests: ModelRequest[] = [];
  private readonly random: () => number;

  constructor(
    readonly baseAccounts: string[],
    seed: number,
  ) {
    this.random = seededRandom(seed);
  }

  get acked(): ModelRequest[] {
    return this.requests.filter((r) => r.status === 'acked');
  }

  get unknown(): ModelRequest[] {
    return this.requests.filter((r) => r.status === 'unknown' || r.status === 'sent');
  }

  /** The newest position any acknowledgement carried. */
  get lastAckedPosition(): string {
    return this.acked.reduce((max, r) => (r.position && r.position > max ? r.position : max), '0000000000000000-000000');
  }

  byN(n: number): ModelRequest | undefined {
    return this.requests[n];
  }

  openAccount(id: string, initialBalance: bigint): ModelRequest {
    const n = this.requests.length;
    return this.add({ n, kind: 'openAccount', input: { id, initialBalance: String(initialBalance), idempotencyKey: `key-${n}` }, amount: initialBalance, from: null, to: id, status: 'new' });
  }

  deposit(accountId: string, amount: bigint): ModelRequest {
    const n = this.requests.length;
    return this.add({ n, kind: 'deposit', input: { accountId, amount: String(amount), description: `req-${n}`, idempotencyKey: `key-${n}` }, amount, from: null, to: accountId, status: 'new' });
  }

  transfer(fromAccountId: string, toAccountId: string, amount: bigint): ModelRequest {
    const n = this.requests.length;
    return this.add({
      n,
      kind: 'transfer',
      input: { fromAccountId, toAccountId, amount: String(amount), description: `req-${n}`, idempotencyKey: `key-${n}` },
      amount,
      from: fromAccountId,
      to: toAccountId,
      status: 'new',
    });
  }

  /** A random deposit, transfer between base accounts, or new account. */
  randomRequest(): ModelRequest {
    const r = this.random();
    const amount = BigInt(1 + Math.floor(this.random() * 1000));
    const pick = () => this.baseAccounts[Math.floor(this.random() * this.baseAccounts.length)]!;
    if (r < 0.45) return this.deposit(pick(), amount);
    if (r < 0.9) {
      const from = pick();
      let to = pick();
      while (to === from) to = pick();
      return this.transfer(from, to, amount);
    }
    const n = this.requests.length;
    return this.openAccount(`new-${n}`, BigInt(n % 5) * 100n);
  }

  private add(request: ModelRequest): ModelRequest {
    this.requests.push(request);
    return request;
  }

  /** Sends a request and records what came back; never throws. */
  async send(ledger: ChildLedger, request: ModelRequest): Promise<ModelRequest> {
    request.status = 'sent';
    try {
      const { status, body } = await ledger.gql<MutationResult>(MUTATIONS[request.kind], { input: request.input });
      const result = status === 200 ? body.data?.result : undefined;
      if (result && result.__typename.endsWith('Success')) {
        request.status = 'acked';
        request.position = result.position;
        if (result.transaction) request.transactionId = result.transaction.id;
        if (result.account) request.payloadBalance = BigInt(result.account.balance);
      } else if (result && result.code) {
        request.status = 'rejected';
      } else {
        request.status = 'unknown';
        request.failure = `${status} ${JSON.stringify(body).slice(0, 500)}`;
      }
    } catch (error) {
      request.status = 'unknown';
      request.failure = String((error as Error).cause ?? error);
    }
    return request;
  }

  /** Sends and insists on an acknowledgement (for setup and checks, with the server up). */
  async sendAcked(ledger: ChildLedger, request: ModelRequest): Promise<ModelRequest> {
    await this.send(ledger, request);
    if (request.status !== 'acked') throw new Error(`request ${request.n} (${request.kind}) was not acknowledged: ${request.status} ${request.failure ?? ''}\n${ledger.output.slice(-4000)}`);
    return request;
  }

  /**
   * Keeps `workers` random requests in flight and SIGKILLs the server, synchronously, as soon as
   * `killAfterAcks` acknowledgements arrived in this run (requests still in flight become unknown).
   * With killAfterAcks = Infinity, sends `requestsMax` requests and returns with the server up.
   */
  async runWorkload(ledger: ChildLedger, options: { workers: number; killAfterAcks: number; requestsMax: number }): Promise<{ acked: number; killed: boolean }> {
    let acked = 0;
    let sent = 0;
    let killed = false;
    const worker = async () => {
      while (!killed && sent < options.requestsMax) {
        sent += 1;
        const request = await this.send(ledger, this.randomRequest());
        if (request.status === 'acked') {
          acked += 1;
          if (acked >= options.killAfterAcks && !killed) {
            killed = true;
            ledger.killNow();
          }
        }
      }
    };
    await Promise.all(Array.from({ length: options.workers }, worker));
    return { acked, killed };
  }
}

const TRANSACTIONS_PAGE = `query Page($after: String, $atLeast: Position) {
  transactions(first: 400, after: $after, atLeast: $atLeast) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id kind status amount fromAccountId toAccountId description position } }
  }
}`;

const ACCOUNTS_PAGE = `query Accounts($after: String) {
  accounts(first: 400, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { id balance transactionCount } }
  }
}`;

/** Every transaction in the read models, once they include `atLeast`. */
export async function allTransactions(ledger: ChildLedger, atLeast: string): Promise<TransactionNode[]> {
  const out: TransactionNode[] = [];
  let after: string | null = null;
  for (;;) {
    const data: any = await ledger.query(TRANSACTIONS_PAGE, { after, atLeast });
    const page = data.transactions;
    for (const edge of page.edges) out.push(edge.node as TransactionNode);
    if (!page.pageInfo.hasNextPage) {
      if (out.length !== page.totalCount) throw new Error(`listed ${out.length} transactions of ${page.totalCount}`);
      return out;
    }
    after = page.pageInfo.endCursor;
  }
}

export async function allAccounts(ledger: ChildLedger): Promise<Map<string, AccountNode>> {
  const out = new Map<string, AccountNode>();
  let after: string | null = null;
  for (;;) {
    const data: any = await ledger.query(ACCOUNTS_PAGE, { after });
    for (const edge of data.accounts.edges) out.set(edge.node.id, edge.node as AccountNode);
    if (!data.accounts.pageInfo.hasNextPage) return out;
    after = data.accounts.pageInfo.endCursor;
  }
}

/** Balances and transaction counts implied by a set of settled transactions. */
export function balancesOf(transactions: TransactionNode[]): { balances: Map<string, bigint>; counts: Map<string, number> } {
  const balances = new Map<string, bigint>();
  const counts = new Map<string, number>();
  const add = (id: string, delta: bigint) => {
    balances.set(id, (balances.get(id) ?? 0n) + delta);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  };
  for (const t of transactions) {
    if (t.status !== 'SETTLED') throw new Error(`transaction ${t.id} is ${t.status}; the crash tests only make settled ones`);
    if (t.fromAccountId) add(t.fromAccountId, -BigInt(t.amount));
    if (t.toAccountId) add(t.toAccountId, BigInt(t.amount));
  }
  return { balances, counts };
}

export interface VerifyOptions {
  /** Every request has an answer (after retries): the ledger must hold exactly the acknowledged ones. */
  exact?: boolean;
}

/**
 * Checks the restarted ledger against the model; returns a list of problems (empty when consistent).
 * Sends one acknowledged sentinel (a new account) first, so that the read models are waited for up
 * to everything the log holds, and one deposit of 1 per base account afterwards, whose payload is
 * the state machine's own balance.
 */
export async function verifyLedger(ledger: ChildLedger, model: LedgerModel, options: VerifyOptions = {}): Promise<string[]> {
  const problems: string[] = [];
  const problem = (text: string) => {
    if (problems.length < 50) problems.push(text);
  };

  // 1. Reads that ask for the last acknowledged position succeed right after the restart.
  const lastAcked = model.lastAckedPosition;
  await ledger.query(`query($id: ID!, $atLeast: Position) { account(id: $id, atLeast: $atLeast) { id } }`, { id: model.baseAccounts[0], atLeast: lastAcked });
  const status = await ledger.query(`{ ledger { appliedIndex commitIndex } }`);
  if (BigInt(status.ledger.appliedIndex) < BigInt(Number(lastAcked.slice(0, 16)))) problem(`appliedIndex ${status.ledger.appliedIndex} is before the last acknowledged position ${lastAcked}`);

  // 2. Everything the log holds, as the read models show it.
  const sentinel = await model.sendAcked(ledger, model.openAccount(`sentinel-${model.requests.length}`, 0n));
  const transactions = await allTransactions(ledger, sentinel.position!);
  const accounts = await allAccounts(ledger);

  const ids = new Set<string>();
  const byRequest = new Map<number, TransactionNode>();
  const openings = new Map<string, TransactionNode>();
  for (const t of transactions) {
    if (ids.has(t.id)) problem(`transaction ${t.id} appears twice`);
    ids.add(t.id);
    const match = /^req-(\d+)$/.exec(t.description ?? '');
    if (match) {
      const n = Number(match[1]);
      if (byRequest.has(n)) problem(`request ${n} was applied twice (${byRequest.get(n)!.id} and ${t.id})`);
      byRequest.set(n, t);
    } else if (t.description === 'Opening balance' && t.toAccountId) {
      if (openings.has(t.toAccountId)) problem(`account ${t.toAccountId} has two opening balances`);
      openings.set(t.toAccountId, t);
    } else {
      problem(`transaction ${t.id} was not sent by the test: ${JSON.stringify(t)}`);
    }
  }

  // 3. Each request: acknowledged → there, with the acknowledged id; rejected → absent; unknown → either.
  for (const request of model.requests) {
    if (request.n === sentinel.n) continue;
    if (request.kind === 'openAccount') {
      const id = request.input.id as string;
      const account = accounts.get(id);
      const opening = openings.get(id);
      if (request.status === 'acked' && !account) problem(`acknowledged account ${id} is missing`);
      if ((request.status === 'rejected' || request.status === 'new') && account) problem(`account ${id} exists but was ${request.status}`);
      if (options.exact && request.status !== 'acked' && account) problem(`account ${id} exists after every request was answered, status ${request.status}`);
      if (account && request.amount > 0n && (!opening || BigInt(opening.amount) !== request.amount)) problem(`account ${id} lacks its opening balance of ${request.amount}`);
      if (!account && opening) problem(`opening balance ${opening.id} for the missing account ${id}`);
      continue;
    }
    const t = byRequest.get(request.n);
    if (request.status === 'acked') {
      if (!t) problem(`acknowledged ${request.kind} ${request.n} (${request.transactionId}) is missing`);
      else if (t.id !== request.transactionId) problem(`acknowledged ${request.kind} ${request.n} was ${request.transactionId} but is now ${t.id}`);
    } else if (t && (request.status === 'rejected' || request.status === 'new' || options.exact)) {
      problem(`${request.kind} ${request.n} was ${request.status} but is applied as ${t.id}`);
    }
    if (t) {
      const kind = request.kind === 'deposit' ? 'DEPOSIT' : 'TRANSFER';
      if (t.kind !== kind || BigInt(t.amount) !== request.amount || t.fromAccountId !== request.from || t.toAccountId !== request.to) {
        problem(`${request.kind} ${request.n} is applied as something else: ${JSON.stringify(t)}`);
      }
    }
  }
  for (const n of byRequest.keys()) if (!model.byN(n)) problem(`transaction for request ${n}, which was never sent`);
  const baseAccounts = new Set(model.baseAccounts);
  for (const id of accounts.keys()) {
    const known = baseAccounts.has(id) || model.requests.some((r) => r.kind === 'openAccount' && r.input.id === id);
    if (!known) problem(`account ${id} was never opened by the test`);
  }

  // 4. Balances follow from the transactions; money is conserved.
  const { balances, counts } = balancesOf(transactions);
  let total = 0n;
  let deposited = 0n;
  for (const t of transactions) if (t.kind === 'DEPOSIT') deposited += BigInt(t.amount);
  for (const [id, account] of accounts) {
    total += BigInt(account.balance);
    if (BigInt(account.balance) !== (balances.get(id) ?? 0n)) problem(`account ${id} balance ${account.balance}, its transactions give ${balances.get(id) ?? 0n}`);
    if (account.transactionCount !== (counts.get(id) ?? 0)) problem(`account ${id} transactionCount ${account.transactionCount}, listed ${counts.get(id) ?? 0}`);
  }
  if (total !== deposited) problem(`money is not conserved: balances total ${total}, deposits total ${deposited}`);

  // 4b. The analytics counters, maintained incrementally through the kill, equal the documents' figures:
  // a replay after the crash counted nothing twice (every account of this workload is in USD).
  const { analytics } = await ledger.query(`query($at: Position) { analytics(atLeast: $at) { totalBalance accountCount transactionCount } }`, { at: sentinel.position });
  if (BigInt(analytics.totalBalance) !== total) problem(`analytics totalBalance ${analytics.totalBalance}, the accounts hold ${total}`);
  if (analytics.accountCount !== accounts.size) problem(`analytics accountCount ${analytics.accountCount}, ${accounts.size} accounts listed`);
  if (analytics.transactionCount !== transactions.length) problem(`analytics transactionCount ${analytics.transactionCount}, ${transactions.length} transactions listed`);

  // 5. The state machine agrees with the read models: a deposit's payload carries its own balance.
  for (const id of model.baseAccounts) {
    const check = await model.sendAcked(ledger, model.deposit(id, 1n));
    const expected = (balances.get(id) ?? 0n) + 1n;
    if (check.payloadBalance !== expected) problem(`account ${id}: the state machine says ${check.payloadBalance} after +1, the read models ${expected - 1n}`);
  }
  return problems;
}

/** Resends every unanswered request with its idempotency key until it is answered. */
export async function retryUnknown(ledger: ChildLedger, model: LedgerModel): Promise<void> {
  for (const request of model.unknown) {
    await model.send(ledger, request);
    if (request.status === 'unknown' || request.status === 'sent') throw new Error(`retry of request ${request.n} still has no answer\n${ledger.output.slice(-4000)}`);
  }
}
