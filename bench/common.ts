import { type ChildProcess, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoadReport } from './load';
import { OPEN_ACCOUNTS_DOCUMENT, accountId } from './workload';

/** What the benchmark scripts (run.ts, cluster.ts) share: settings, child processes and cleanup, formatting. */

export function intFromEnv(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer of at least ${min}, got "${raw}"`);
  return value;
}

// ---- child processes and cleanup -----------------------------------------------------------

export const children = new Set<ChildProcess>();
export const tempDirs = new Set<string>();

export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Last-resort cleanup, synchronous so that it also runs from process 'exit'. */
export function killEverythingNow(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

process.on('exit', killEverythingNow);

export function makeTempDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `ledger-bench-${label}-`));
  tempDirs.add(dir);
  return dir;
}

export const CLOCK_TICKS_PER_SECOND = (() => {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
})();

export function failures(report: LoadReport): number {
  const { ok: _ok, ...failed } = report.verdicts;
  return Object.values(failed).reduce((a, b) => a + b, 0) + report.socketErrors + report.timeouts;
}

export function fmt(value: number, digits = 0): string {
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
export function pct(ratio: number): string {
  return `${(ratio * 100).toFixed(1)}%`;
}
export function verdict(pass: boolean): string {
  return pass ? 'PASS' : 'MISS';
}

export const OPENING_BALANCE = '1000000000000';
export const ACCOUNT_PREFIX = 'bench-';
/** Accounts are opened in batches of this many (the batch limit). */
export const OPENINGS_PER_BATCH = 1000;

export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolveExit) => {
    const timer = setTimeout(() => resolveExit(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolveExit(true);
    });
  });
}

/** Distinct ports below the ephemeral range (see test/support/free-port.ts). */
export { freePort } from '../test/support/free-port';

/** User plus system CPU seconds a process has used so far (null when unknown). */
export function cpuSecondsOf(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).seconds;
  } catch {
    return null;
  }
}

/**
 * CPU seconds per thread of a process (user plus system), keyed by thread id, with the thread's name
 * (MainThread, V8Worker, libuv-worker, a worker's own name, ...). Empty when unknown.
 */
export function threadCpuSecondsOf(pid: number | undefined): Map<number, { name: string; seconds: number }> {
  const threads = new Map<number, { name: string; seconds: number }>();
  if (pid === undefined) return threads;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        threads.set(Number(tid), parseStat(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')));
      } catch {
        // the thread ended between the listing and the read
      }
    }
  } catch {
    // the process is gone
  }
  return threads;
}

/** The name and the user plus system CPU seconds of a /proc stat line (process or thread). */
function parseStat(stat: string): { name: string; seconds: number } {
  // The name is in parentheses and may contain spaces; the numbered fields follow it.
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ');
  return { name: stat.slice(stat.indexOf('(') + 1, close), seconds: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND };
}

/**
 * Cores used per thread between two samples, grouped by thread name: the main thread, named worker
 * threads (the ledger's ledger-events and ledger-proj), unnamed ones in start order
 * (WorkerThread 1, 2, ...), and the helper pools summed (V8Worker: GC and compilation;
 * libuv-worker: fs calls such as fsync).
 */
export function threadCoresBetween(
  before: Map<number, { name: string; seconds: number }>,
  after: Map<number, { name: string; seconds: number }>,
  seconds: number,
): Record<string, number> {
  const cores: Record<string, number> = {};
  let worker = 0;
  for (const tid of [...after.keys()].sort((a, b) => a - b)) {
    const now = after.get(tid)!;
    const used = now.seconds - (before.get(tid)?.seconds ?? 0);
    const group = now.name === 'WorkerThread' ? `WorkerThread ${++worker}` : now.name;
    cores[group] = (cores[group] ?? 0) + used / seconds;
  }
  return cores;
}

export async function graphql(origin: string, token: string, query: string, variables: Record<string, unknown>): Promise<Record<string, unknown>> {
  const response = await fetch(`${origin}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json;q=0.9', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const text = await response.text();
  const body = JSON.parse(text) as { data?: Record<string, unknown>; errors?: unknown[] };
  if (!response.ok || body.errors || !body.data) throw new Error(`GraphQL request to ${origin} failed with HTTP ${response.status}: ${text.slice(0, 1000)}`);
  return body.data;
}

/** Opens `accounts` bench accounts, each with OPENING_BALANCE, in batches. */
export async function openAccounts(origin: string, token: string, accounts: number): Promise<void> {
  for (let first = 0; first < accounts; first += OPENINGS_PER_BATCH) {
    const count = Math.min(OPENINGS_PER_BATCH, accounts - first);
    const operations = Array.from({ length: count }, (_, i) => ({ openAccount: { id: accountId(ACCOUNT_PREFIX, first + i), initialBalance: OPENING_BALANCE } }));
    const data = await graphql(origin, token, OPEN_ACCOUNTS_DOCUMENT, { input: { operations } });
    const result = data.executeBatch as { __typename: string; accounts?: unknown[] };
    if (result.__typename !== 'BatchSuccess' || result.accounts?.length !== count) throw new Error(`opening accounts failed: ${JSON.stringify(result).slice(0, 1000)}`);
  }
}

/** The median (the mean of the two middle values of an even number). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
