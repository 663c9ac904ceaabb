/**
 * `npm run bench:at-least`: what pending `atLeast` waits cost a concurrent mutation.
 *
 * Starts the real ledger server in this process (temp data folder), then measures the latency of
 * sequential deposits over HTTP three ways: with no waits pending (the reference, same run), with
 * AT_LEAST_BENCH_WAITS waits pending on the server's waiters (default 40,000), and, with
 * AT_LEAST_BENCH_LEGACY=1, with the waiters of the code before issue 13 (an array filtered on every
 * update and every expiry) swapped in for contrast: at 40,000 waits those took more than 8 minutes
 * for 4 deposits here, so they run with a tenth of the waits by default. The waits are registered on the pipeline directly, at a position no write
 * reaches, as if they had come in steadily over the last 10 s with the API's 10 s timeout: the first
 * ones expire at once, and each is renewed for 10 s when it expires, so that throughout the
 * measurement that many are pending and 1/10 of them expire every second; every deposit's
 * projection also reports a new position to them.
 *
 * The target (issue 13): median and p95 deposit latency with the waits pending exceed the reference
 * by less than 10 ms. Prints the figures and PASS or MISS.
 *
 * Settings: AT_LEAST_BENCH_WAITS (default 40000), AT_LEAST_BENCH_DEPOSITS (per phase, default 300),
 * AT_LEAST_BENCH_LEGACY=1 to add the old waiters, AT_LEAST_BENCH_LEGACY_WAITS (default a tenth of the
 * waits) and AT_LEAST_BENCH_LEGACY_DEPOSITS (default 5) for them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AT_LEAST_WAIT_MS } from '../src/api/at-least';
import { mintToken } from '../src/api/auth';
import { startLedgerServer } from '../src/app/start-server';
import { loadConfig } from '../src/config';
import { PositionWaiters } from '../src/projections/position-waiters';
import { seededRandom } from '../test/support/seeded-random';

const WAITS = Number(process.env.AT_LEAST_BENCH_WAITS ?? 40_000);
const DEPOSITS = Number(process.env.AT_LEAST_BENCH_DEPOSITS ?? 300);
const LEGACY = process.env.AT_LEAST_BENCH_LEGACY === '1';
const LEGACY_DEPOSITS = Number(process.env.AT_LEAST_BENCH_LEGACY_DEPOSITS ?? 5);
/** The old waiters spend minutes per deposit at 40,000 (their cost grows with the square): a tenth shows it. */
const LEGACY_WAITS = Number(process.env.AT_LEAST_BENCH_LEGACY_WAITS ?? Math.ceil(WAITS / 10));
const EXTRA_MS_MAX = 10;
const NEVER_REACHED = '9999999999999999-000000';

/** The waiters as they were before issue 13, for contrast only. */
class ArrayWaiters {
  private waiters: Array<{ position: string; resolve: (reached: boolean) => void; timer: NodeJS.Timeout }> = [];
  get size(): number {
    return this.waiters.length;
  }
  wait(position: string, current: string | null, timeoutMs: number): Promise<boolean> {
    if (current !== null && current >= position) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = {
        position,
        resolve,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          resolve(false);
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }
  reached(reached: string | null): void {
    if (reached === null || this.waiters.length === 0) return;
    this.waiters = this.waiters.filter((waiter) => {
      if (waiter.position > reached) return true;
      clearTimeout(waiter.timer);
      waiter.resolve(true);
      return false;
    });
  }
  cancelAll(): void {
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(false);
    }
    this.waiters = [];
  }
}

type Waiters = Pick<PositionWaiters, 'wait' | 'reached' | 'cancelAll' | 'size'>;

interface Latency {
  medianMs: number;
  p95Ms: number;
  expired: number;
}

function signed(ms: number): string {
  return `${ms >= 0 ? '+' : ''}${ms.toFixed(2)}`;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ledger-bench-at-least-'));
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    LEDGER_DATA_DIR: dataDir,
    LEDGER_JWT_SECRET: 'bench-secret-bench-secret-bench-secret',
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    LEDGER_AT_LEAST_WAITS_MAX: String(WAITS * 2),
  });
  const running = await startLedgerServer(config);
  const pipeline = running.ledger.node.pipeline as unknown as { waiters: Waiters };
  const current = pipeline.waiters;
  const token = await mintToken(running.secret.key, { sub: 'bench', roles: ['teller'] }, '1h');
  const url = `http://127.0.0.1:${running.port}/graphql`;
  const post = async (query: string, variables: Record<string, unknown>) => {
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query, variables }) });
    const body = (await response.json()) as { data?: Record<string, { __typename: string }>; errors?: unknown[] };
    if (body.errors || !body.data) throw new Error(`request failed: ${JSON.stringify(body).slice(0, 300)}`);
    return body.data;
  };
  try {
    await post(`mutation { openAccount(input: { id: "bench-a", initialBalance: "0" }) { __typename } }`, {});
    const deposit = `mutation($n: Amount!) { deposit(input: { accountId: "bench-a", amount: $n }) { __typename ... on DepositSuccess { position } } }`;

    const measure = async (waiters: Waiters | null, deposits = DEPOSITS, waits = WAITS): Promise<Latency> => {
      let renewing = waiters !== null;
      let expired = 0;
      const random = seededRandom(13);
      const hold = (timeoutMs: number): void => {
        if (!renewing || !waiters) return;
        void waiters.wait(NEVER_REACHED, null, timeoutMs).then(() => {
          expired += 1;
          hold(AT_LEAST_WAIT_MS);
        });
      };
      if (waiters) {
        pipeline.waiters = waiters;
        for (let i = 0; i < waits; i += 1) hold(Math.floor(random() * AT_LEAST_WAIT_MS));
        if (waiters.size !== waits) throw new Error(`${waiters.size} waits pending, wanted ${waits}`);
      }
      for (let i = 0; i < Math.min(20, deposits); i += 1) await post(deposit, { n: '1' });
      const samples: number[] = [];
      for (let i = 0; i < deposits; i += 1) {
        const startedMs = performance.now();
        const data = await post(deposit, { n: '1' });
        samples.push(performance.now() - startedMs);
        if (data.deposit!.__typename !== 'DepositSuccess') throw new Error(`deposit refused: ${JSON.stringify(data)}`);
      }
      const expiredDuring = expired;
      if (waiters) {
        renewing = false;
        waiters.cancelAll();
        pipeline.waiters = current;
      }
      samples.sort((a, b) => a - b);
      return { medianMs: quantile(samples, 0.5), p95Ms: quantile(samples, 0.95), expired: expiredDuring };
    };

    console.log(`Node ${process.version}; ${DEPOSITS} sequential deposits over HTTP per phase; ${WAITS.toLocaleString('en-US')} waits pending, renewed as they expire`);
    const reference = await measure(null);
    const heap = await measure(new PositionWaiters({ waitersMax: WAITS * 2 }));
    const legacy = LEGACY ? await measure(new ArrayWaiters(), LEGACY_DEPOSITS, LEGACY_WAITS) : null;
    const row = (name: string, l: Latency) =>
      console.log(
        `${name.padEnd(50)} median ${l.medianMs.toFixed(2).padStart(8)} ms  p95 ${l.p95Ms.toFixed(2).padStart(8)} ms` +
          (l === reference ? '' : `  (${signed(l.medianMs - reference.medianMs)} / ${signed(l.p95Ms - reference.p95Ms)} ms; ${l.expired} waits expired)`),
      );
    row('no waits (reference)', reference);
    row('ordered-set waiters (this code)', heap);
    if (legacy) row(`array waiters (before issue 13), ${LEGACY_WAITS.toLocaleString('en-US')} waits`, legacy);
    const pass = heap.medianMs - reference.medianMs < EXTRA_MS_MAX && heap.p95Ms - reference.p95Ms < EXTRA_MS_MAX;
    console.log(`${pass ? 'PASS' : 'MISS'}: ${WAITS.toLocaleString('en-US')} pending waits cost a deposit ${signed(heap.medianMs - reference.medianMs)} ms median, ${signed(heap.p95Ms - reference.p95Ms)} ms p95 (target < ${EXTRA_MS_MAX} ms extra)`);
    process.exitCode = pass ? 0 : 1;
  } finally {
    await running.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
