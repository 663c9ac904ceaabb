/**
 * `npm run bench:sqlite`: better-sqlite3 beside Node's built-in node:sqlite, on the statement shapes
 * the embedded stores use (src/eventstore/sqlite-event-store.ts, src/projections/sqlite-read-model-store.ts):
 *
 *   append      one IMMEDIATE transaction per batch: read the stream's last revision, insert the
 *               batch's events (WAL, synchronous=FULL: one fsync per commit, as the event store)
 *   readAll     page through every event by sequence, 1,024 rows a page, 64-bit integers as bigint
 *   project     one transaction per batch of read-model upserts (ON CONFLICT … WHERE position >),
 *               named parameters, synchronous=NORMAL (as the read models)
 *   getById     point reads of documents by id
 *
 * Each driver runs in a fresh temp folder; the figures are the median of SQLITE_BENCH_ROUNDS rounds.
 * Settings: SQLITE_BENCH_EVENTS (default 50,000), SQLITE_BENCH_BATCH (default 100), SQLITE_BENCH_ROUNDS (default 3).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';

const EVENTS = Number(process.env.SQLITE_BENCH_EVENTS ?? 50_000);
const BATCH = Number(process.env.SQLITE_BENCH_BATCH ?? 100);
const ROUNDS = Number(process.env.SQLITE_BENCH_ROUNDS ?? 3);
const PAGE = 1024;

const EVENTS_SCHEMA = `CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, stream_id TEXT NOT NULL, revision INTEGER NOT NULL,
  type TEXT NOT NULL, data TEXT NOT NULL, metadata TEXT NOT NULL, created_at_ms INTEGER NOT NULL, UNIQUE (stream_id, revision))`;
const DOCS_SCHEMA = `CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY, position TEXT NOT NULL, doc TEXT NOT NULL) WITHOUT ROWID`;
const LAST_REVISION = 'SELECT revision FROM events WHERE stream_id = ? ORDER BY revision DESC LIMIT 1';
const INSERT_EVENT = 'INSERT INTO events (id, stream_id, revision, type, data, metadata, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)';
const READ_ALL = 'SELECT seq, id, stream_id, revision, type, data, metadata, created_at_ms FROM events WHERE seq > ? ORDER BY seq ASC LIMIT ?';
const UPSERT_DOC = `INSERT INTO accounts (id, position, doc) VALUES (@id, @position, @doc)
  ON CONFLICT (id) DO UPDATE SET position = excluded.position, doc = excluded.doc WHERE excluded.position > accounts.position`;
const GET_DOC = 'SELECT doc FROM accounts WHERE id = ?';
const ACCOUNTS = 2_000;

interface Driver {
  name: string;
  version: string;
  open(file: string, synchronous: 'FULL' | 'NORMAL'): Connection;
}
interface Statement {
  run(...params: unknown[]): void;
  get(...params: unknown[]): Record<string, unknown> | undefined;
  all(...params: unknown[]): Array<Record<string, unknown>>;
}
interface Connection {
  exec(sql: string): void;
  /** Prepared with 64-bit integers read as bigint, as the event store does. */
  prepare(sql: string): Statement;
  immediate<T>(work: () => T): T;
  close(): void;
}

const betterSqlite3: Driver = {
  name: 'better-sqlite3',
  version: (require('better-sqlite3/package.json') as { version: string }).version,
  open(file, synchronous) {
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${synchronous}`);
    db.pragma('cache_size = -65536');
    return {
      exec: (sql) => void db.exec(sql),
      prepare: (sql) => {
        const statement = db.prepare(sql).safeIntegers(true);
        return {
          run: (...p) => void statement.run(...p),
          get: (...p) => statement.get(...p) as Record<string, unknown> | undefined,
          all: (...p) => statement.all(...p) as Array<Record<string, unknown>>,
        };
      },
      immediate: (work) => db.transaction(work).immediate(),
      close: () => db.close(),
    };
  },
};

function nodeSqlite(): Driver | null {
  let sqlite: typeof import('node:sqlite');
  try {
    sqlite = require('node:sqlite');
  } catch {
    return null;
  }
  return {
    name: 'node:sqlite',
    version: `Node ${process.version}, SQLite ${process.versions.sqlite ?? '?'}`,
    open(file, synchronous) {
      const db = new sqlite.DatabaseSync(file);
      db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = ${synchronous}; PRAGMA cache_size = -65536;`);
      return {
        exec: (sql) => db.exec(sql),
        prepare: (sql) => {
          const statement = db.prepare(sql);
          statement.setReadBigInts(true);
          // better-sqlite3 takes `@name` keys without the prefix; node:sqlite does too (allowBareNamedParameters).
          return {
            run: (...p) => void statement.run(...(p as never[])),
            get: (...p) => statement.get(...(p as never[])) as Record<string, unknown> | undefined,
            all: (...p) => statement.all(...(p as never[])) as Array<Record<string, unknown>>,
          };
        },
        immediate: (work) => {
          db.exec('BEGIN IMMEDIATE');
          try {
            const result = work();
            db.exec('COMMIT');
            return result;
          } catch (error) {
            db.exec('ROLLBACK');
            throw error;
          }
        },
        close: () => db.close(),
      };
    },
  };
}

interface Figures {
  appendEventsPerSecond: number;
  readAllEventsPerSecond: number;
  projectDocsPerSecond: number;
  getByIdPerSecond: number;
}

function round(driver: Driver): Figures {
  const dir = mkdtempSync(join(tmpdir(), 'sqlite-drivers-'));
  try {
    const events = driver.open(join(dir, 'events.sqlite'), 'FULL');
    events.exec(EVENTS_SCHEMA);
    const lastRevision = events.prepare(LAST_REVISION);
    const insert = events.prepare(INSERT_EVENT);
    const data = JSON.stringify({ accountId: 'acct-000123', amount: '2500', transactionId: 'tx-1', description: null });
    const metadata = JSON.stringify({ position: '0000000000000042-000001', timestampMs: 1_767_225_600_000 });
    let started = performance.now();
    for (let n = 0; n < EVENTS; n += BATCH) {
      events.immediate(() => {
        const row = lastRevision.get('ledger');
        let revision = row ? (row.revision as bigint) + 1n : 0n;
        for (let i = n; i < Math.min(EVENTS, n + BATCH); i += 1) {
          insert.run(`e-${i}`, 'ledger', revision, 'MoneyDeposited', data, metadata, 1_767_225_600_000n + BigInt(i));
          revision += 1n;
        }
      });
    }
    const appendMs = performance.now() - started;

    const readAll = events.prepare(READ_ALL);
    started = performance.now();
    let after = 0n;
    let read = 0;
    for (;;) {
      const rows = readAll.all(after, PAGE);
      if (rows.length === 0) break;
      for (const row of rows) JSON.parse(row.data as string);
      read += rows.length;
      after = rows.at(-1)!.seq as bigint;
    }
    const readMs = performance.now() - started;
    if (read !== EVENTS) throw new Error(`${driver.name}: read ${read} events, wrote ${EVENTS}`);
    events.close();

    const docs = driver.open(join(dir, 'read-models.sqlite'), 'NORMAL');
    docs.exec(DOCS_SCHEMA);
    const upsert = docs.prepare(UPSERT_DOC);
    const get = docs.prepare(GET_DOC);
    started = performance.now();
    for (let n = 0; n < EVENTS; n += BATCH) {
      docs.immediate(() => {
        for (let i = n; i < Math.min(EVENTS, n + BATCH); i += 1) {
          const id = `acct-${String(i % ACCOUNTS).padStart(6, '0')}`;
          const position = `${String(i + 1).padStart(16, '0')}-000000`;
          upsert.run({ id, position, doc: JSON.stringify({ _id: id, balance: String(i), position }) });
        }
      });
    }
    const projectMs = performance.now() - started;
    started = performance.now();
    for (let i = 0; i < EVENTS; i += 1) {
      const row = get.get(`acct-${String(i % ACCOUNTS).padStart(6, '0')}`);
      if (!row) throw new Error(`${driver.name}: document ${i % ACCOUNTS} missing`);
    }
    const getMs = performance.now() - started;
    docs.close();
    const perSecond = (count: number, ms: number) => Math.round((count / ms) * 1000);
    return {
      appendEventsPerSecond: perSecond(EVENTS, appendMs),
      readAllEventsPerSecond: perSecond(EVENTS, readMs),
      projectDocsPerSecond: perSecond(EVENTS, projectMs),
      getByIdPerSecond: perSecond(EVENTS, getMs),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function main(): void {
  const drivers = [betterSqlite3, nodeSqlite()].filter((d): d is Driver => d !== null);
  console.log(`Node ${process.version}; ${EVENTS} events in batches of ${BATCH}; median of ${ROUNDS} rounds (per second, higher is better)`);
  const results: Array<{ driver: Driver; figures: Figures }> = [];
  for (const driver of drivers) {
    const rounds: Figures[] = [];
    // Alternate nothing: each driver gets its rounds back to back, after one unmeasured warm-up round.
    round(driver);
    for (let r = 0; r < ROUNDS; r += 1) rounds.push(round(driver));
    const figures = Object.fromEntries(
      (Object.keys(rounds[0]!) as Array<keyof Figures>).map((key) => [key, median(rounds.map((f) => f[key]))]),
    ) as unknown as Figures;
    results.push({ driver, figures });
  }
  const keys = Object.keys(results[0]!.figures) as Array<keyof Figures>;
  console.log(['measure', ...results.map((r) => `${r.driver.name} (${r.driver.version})`)].join(' | '));
  for (const key of keys) console.log([key, ...results.map((r) => r.figures[key].toLocaleString('en-US'))].join(' | '));
  if (results.length < 2) console.log('node:sqlite is not available on this Node');
}

main();
