/**
 * What the benchmark sends: the GraphQL documents, the request bodies (transfers spread over the
 * opened accounts) and the check that a response is really a success. Shared by the orchestrator
 * (bench/run.ts) and the load generator (bench/load.ts).
 */

import { seededRandom } from '../test/support/seeded-random';

/** One transfer per request, with variables, selecting what a client of the ledger really reads. */
export const TRANSFER_DOCUMENT = `mutation Transfer($input: TransferInput!) {
  transfer(input: $input) {
    __typename
    ... on TransferSuccess { position transaction { id } }
    ... on LedgerError { code message }
  }
}`;

/** Many transfers in one all-or-nothing batch, with variables. */
export const BATCH_DOCUMENT = `mutation Batch($input: BatchInput!) {
  executeBatch(input: $input) {
    __typename
    ... on BatchSuccess { position transactions { id } }
    ... on LedgerError { code message }
    ... on BatchFailedError { index cause { code message } }
  }
}`;

export const OPEN_ACCOUNTS_DOCUMENT = `mutation Open($input: BatchInput!) {
  executeBatch(input: $input) {
    __typename
    ... on BatchSuccess { position accounts { id } }
    ... on LedgerError { code message }
    ... on BatchFailedError { index cause { code message } }
  }
}`;

export type Workload = { kind: 'transfer' } | { kind: 'batch'; transfersPerBatch: number };

export interface WorkloadSpec {
  workload: Workload;
  accountIdPrefix: string;
  accountCount: number;
  /** How many distinct bodies are pre-built and cycled. */
  bodyCount: number;
  seed: number;
}

export function accountId(prefix: string, index: number): string {
  return `${prefix}${String(index).padStart(5, '0')}`;
}

interface TransferInput {
  fromAccountId: string;
  toAccountId: string;
  amount: string;
}

function randomTransfer(random: () => number, spec: WorkloadSpec): TransferInput {
  const from = Math.floor(random() * spec.accountCount);
  // A different account, uniformly: shift by 1..count-1.
  const to = (from + 1 + Math.floor(random() * (spec.accountCount - 1))) % spec.accountCount;
  // 0.01 to 9.99: far below the opening balances, so no transfer can fail for lack of funds.
  const amount = 1 + Math.floor(random() * 999);
  return { fromAccountId: accountId(spec.accountIdPrefix, from), toAccountId: accountId(spec.accountIdPrefix, to), amount: String(amount) };
}

/** The JSON bodies of the workload, ready to send. */
export function buildBodies(spec: WorkloadSpec): Buffer[] {
  if (spec.accountCount < 2) throw new Error('the workload needs at least two accounts');
  const random = seededRandom(spec.seed);
  const bodies: Buffer[] = [];
  for (let i = 0; i < spec.bodyCount; i++) {
    const { workload } = spec;
    const body =
      workload.kind === 'transfer'
        ? { query: TRANSFER_DOCUMENT, operationName: 'Transfer', variables: { input: randomTransfer(random, spec) } }
        : {
            query: BATCH_DOCUMENT,
            operationName: 'Batch',
            variables: { input: { operations: Array.from({ length: workload.transfersPerBatch }, () => ({ transfer: randomTransfer(random, spec) })) } },
          };
    bodies.push(Buffer.from(JSON.stringify(body)));
  }
  return bodies;
}

export type ResponseVerdict = 'ok' | 'http-error' | 'graphql-error' | 'domain-error' | 'wrong-shape';

/**
 * Classifies a response cheaply (string checks on every response, so that the load generator keeps
 * up); `thorough` also parses it and checks the payload's shape, which the load generator does on a
 * sample of responses.
 */
export function classifyResponse(status: number, body: string, workload: Workload, thorough: boolean): ResponseVerdict {
  if (status < 200 || status > 299) return 'http-error';
  if (body.includes('"errors"')) return 'graphql-error';
  const successName = workload.kind === 'transfer' ? 'TransferSuccess' : 'BatchSuccess';
  if (!body.includes(`"__typename":"${successName}"`)) return body.includes('"code"') ? 'domain-error' : 'wrong-shape';
  if (!thorough) return 'ok';
  try {
    const parsed = JSON.parse(body) as { data?: Record<string, unknown> };
    if (workload.kind === 'transfer') {
      const result = parsed.data?.transfer as { position?: unknown; transaction?: { id?: unknown } } | undefined;
      return typeof result?.position === 'string' && typeof result.transaction?.id === 'string' ? 'ok' : 'wrong-shape';
    }
    const result = parsed.data?.executeBatch as { position?: unknown; transactions?: Array<{ id?: unknown }> } | undefined;
    const transactions = result?.transactions;
    return typeof result?.position === 'string' && Array.isArray(transactions) && transactions.length === workload.transfersPerBatch && transactions.every((t) => typeof t.id === 'string')
      ? 'ok'
      : 'wrong-shape';
  } catch {
    return 'wrong-shape';
  }
}
