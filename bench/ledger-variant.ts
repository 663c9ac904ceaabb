/**
 * For experiments only, never for the published figures: starts the real ledger (src/main.ts) after
 * patching an adapter, to measure what a change would buy before anyone makes it in src/.
 *
 *   BENCH_LEDGER_ENTRY=bench/ledger-variant.ts VARIANT=noop-readmodels BENCH_RESULTS=- npm run bench
 *
 * VARIANT is a comma-separated list of:
 *   noop-readmodels    the projections run but the SQLite read-model writes are skipped (an upper
 *                      bound for cheaper read models)
 *   tuned-readmodels   read-model SQLite with a 256 MiB page cache and rarer WAL checkpoints
 *   normal-eventstore  event-store SQLite with synchronous = NORMAL instead of FULL (not durable)
 *   gc-stats           no change; every thread appends its garbage collections (count and ms by kind)
 *                      and heap size at exit to $GC_STATS_FILE (default /tmp/ledger-gc-stats.jsonl)
 *   stalls             no change; every event-store append and read-model write that takes more than
 *                      $STALL_MS (default 20) appends a line (what, when, how long, how many events
 *                      or writes) to $STALLS_FILE (default /tmp/ledger-stalls.jsonl)
 *
 * The stores are opened on the event-pipeline worker thread too, so every worker thread the ledger
 * starts is started through bench/ledger-variant-worker.cjs, which applies the same patches first.
 */
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { SqliteEventStore } from '../src/eventstore/sqlite-event-store';
import { SqliteReadModelStore } from '../src/projections/sqlite-read-model-store';

const KNOWN = ['noop-readmodels', 'tuned-readmodels', 'normal-eventstore', 'gc-stats', 'stalls'];

const dbOf = (store: object) => (store as unknown as { db: Database.Database }).db;

/** Applies the patches VARIANT asks for, in this thread. */
export function applyVariantPatches(): string[] {
  const variants = (process.env.VARIANT ?? '').split(',').filter(Boolean);
  for (const v of variants) {
    if (!KNOWN.includes(v)) throw new Error(`ledger-variant: unknown VARIANT "${v}" (known: ${KNOWN.join(', ')})`);
  }
  if (variants.includes('noop-readmodels')) {
    SqliteReadModelStore.prototype.applyBatch = async () => {};
  }
  if (variants.includes('tuned-readmodels')) {
    const open = SqliteReadModelStore.open.bind(SqliteReadModelStore);
    SqliteReadModelStore.open = (path: string, options?: Parameters<typeof open>[1]) => {
      const store = open(path, options);
      dbOf(store).pragma('cache_size = -262144');
      dbOf(store).pragma('wal_autocheckpoint = 100000');
      return store;
    };
  }
  if (variants.includes('gc-stats')) recordGcStats();
  if (variants.includes('stalls')) recordStalls();
  if (variants.includes('normal-eventstore')) {
    const open = SqliteEventStore.open.bind(SqliteEventStore);
    SqliteEventStore.open = (path: string, options?: Parameters<typeof open>[1]) => {
      const store = open(path, options);
      dbOf(store).pragma('synchronous = NORMAL');
      return store;
    };
  }
  return variants;
}

/** Times the pipeline's store calls in this thread and writes down the slow ones (see `stalls`). */
function recordStalls(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { appendFileSync } = require('node:fs') as typeof import('node:fs');
  const thresholdMs = Number(process.env.STALL_MS ?? 20);
  const file = process.env.STALLS_FILE ?? '/tmp/ledger-stalls.jsonl';
  const note = (what: string, startedMs: number, detail: Record<string, unknown> = {}): void => {
    const ms = performance.now() - startedMs;
    if (ms >= thresholdMs) appendFileSync(file, `${JSON.stringify({ what, atMs: Date.now(), ms: Math.round(ms * 10) / 10, ...detail })}\n`);
  };
  /** Replaces an async method of `prototype` by one that notes the calls over the threshold. */
  const timed = <A extends unknown[], R>(prototype: { [key: string]: unknown }, method: string, what: string, detail: (args: A) => Record<string, unknown>) => {
    const original = prototype[method] as (...args: A) => Promise<R>;
    prototype[method] = async function (this: unknown, ...args: A): Promise<R> {
      const started = performance.now();
      try {
        return await original.apply(this, args);
      } finally {
        note(what, started, detail(args));
      }
    };
  };
  timed<Parameters<SqliteEventStore['append']>, unknown>(SqliteEventStore.prototype as never, 'append', 'event-store append', (args) => ({ events: args[1].length }));
  timed<Parameters<SqliteReadModelStore['applyBatch']>, unknown>(SqliteReadModelStore.prototype as never, 'applyBatch', 'read-model write', (args) => ({ writes: args[0].length }));
}

/** Sums this thread's GC pauses by kind and appends them, with the heap's size, to GC_STATS_FILE at exit. */
function recordGcStats(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { PerformanceObserver, constants } = require('node:perf_hooks') as typeof import('node:perf_hooks');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { appendFileSync } = require('node:fs') as typeof import('node:fs');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { threadId } = require('node:worker_threads') as typeof import('node:worker_threads');
  const names: Record<number, string> = {
    [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
    [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
  };
  const totals: Record<string, { count: number; ms: number }> = {};
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = names[(entry as unknown as { detail: { kind: number } }).detail.kind] ?? 'other';
      const t = (totals[kind] ??= { count: 0, ms: 0 });
      t.count += 1;
      t.ms += entry.duration;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  const write = (): void => {
    const memory = process.memoryUsage();
    const line = { at: new Date().toISOString(), pid: process.pid, threadId, totals, heapUsedMiB: Math.round(memory.heapUsed / 2 ** 20), heapTotalMiB: Math.round(memory.heapTotal / 2 ** 20) };
    appendFileSync(process.env.GC_STATS_FILE ?? '/tmp/ledger-gc-stats.jsonl', `${JSON.stringify(line)}\n`);
  };
  process.once('exit', write);
  setInterval(write, 2000).unref();
}

if (require.main === module) {
  const variants = applyVariantPatches();
  // The module object itself (not an ES namespace copy), so that src/ sees the replacement.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const threads = require('node:worker_threads') as typeof import('node:worker_threads');
  const OriginalWorker = threads.Worker;
  const wrapper = join(__dirname, 'ledger-variant-worker.cjs');
  threads.Worker = class VariantWorker extends OriginalWorker {
    constructor(filename: string | URL, options: import('node:worker_threads').WorkerOptions = {}) {
      super(wrapper, { ...options, argv: [...(options.argv ?? []), String(filename)] });
    }
  } as typeof OriginalWorker;
  console.log(`ledger-variant: ${variants.join(', ') || 'none'}`);
  // After the patches: main starts the ledger as soon as it is loaded.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('../src/main');
}
