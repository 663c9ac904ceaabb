/**
 * For experiments only, never for the published figures: starts the real ledger (src/main.ts) after
 * patching an adapter, to measure what a change would buy before anyone makes it in src/.
 *
 *   BENCH_LEDGER_ENTRY=bench/ledger-variant.ts VARIANT=noop-readmodels BENCH_RESULTS=- npm run bench
 *
 * VARIANT is a comma-separated list of:
 *   noop-readmodels    the projections run but the SQLite read-model writes are skipped (an upper
 *                      bound for moving them off the request thread)
 *   tuned-readmodels   read-model SQLite with a 256 MiB page cache and rarer WAL checkpoints
 *   normal-eventstore  event-store SQLite with synchronous = NORMAL instead of FULL (not durable)
 */
import type Database from 'better-sqlite3';
import { SqliteEventStore } from '../src/eventstore/sqlite-event-store';
import { SqliteReadModelStore } from '../src/projections/sqlite-read-model-store';

const variants = new Set((process.env.VARIANT ?? '').split(',').filter(Boolean));
const KNOWN = ['noop-readmodels', 'tuned-readmodels', 'normal-eventstore'];
for (const v of variants) {
  if (!KNOWN.includes(v)) {
    console.error(`ledger-variant: unknown VARIANT "${v}" (known: ${KNOWN.join(', ')})`);
    process.exit(2);
  }
}
const dbOf = (store: object) => (store as unknown as { db: Database.Database }).db;

if (variants.has('noop-readmodels')) {
  SqliteReadModelStore.prototype.applyBatch = async () => {};
}
if (variants.has('tuned-readmodels')) {
  const open = SqliteReadModelStore.open.bind(SqliteReadModelStore);
  SqliteReadModelStore.open = (path: string) => {
    const store = open(path);
    dbOf(store).pragma('cache_size = -262144');
    dbOf(store).pragma('wal_autocheckpoint = 10000');
    return store;
  };
}
if (variants.has('normal-eventstore')) {
  const open = SqliteEventStore.open.bind(SqliteEventStore);
  SqliteEventStore.open = (path: string) => {
    const store = open(path);
    dbOf(store).pragma('synchronous = NORMAL');
    return store;
  };
}
console.log(`ledger-variant: ${[...variants].join(', ') || 'none'}`);
// After the patches: main starts the ledger as soon as it is loaded.
require('../src/main');
