import Database from 'better-sqlite3';

/**
 * The embedded stores' driver, better-sqlite3, is a native addon built for one Node ABI. Run by
 * another Node (an upgrade without `npm rebuild`), every open fails with a dlopen error, which the
 * stores' own checks would take for a damaged file: the event store's check would send the operator
 * to their backups and the read models' would drop their file. So the driver is loaded once, on an
 * in-memory database, before any file is opened, and a driver that does not load is named as such.
 */
export class SqliteDriverError extends Error {
  override readonly name = 'SqliteDriverError';
}

/** Throws SqliteDriverError when the native driver does not load; other failures pass through unchanged. */
export function assertSqliteDriverLoads(load: () => void = openInMemory): void {
  try {
    load();
  } catch (error) {
    if (!isNativeLoadFailure(error)) throw error;
    const why = String((error as { message: string }).message).replace(/\s*\n\s*/g, ' ').replace(/\.$/, '');
    throw new SqliteDriverError(
      `the SQLite driver of the embedded stores (better-sqlite3) does not load in Node ${process.version}: ${why}. ` +
        'It was built for another Node version: run `npm rebuild better-sqlite3` (or `npm install`) with this Node. No data file was opened or changed.',
    );
  }
}

function openInMemory(): void {
  const db = new Database(':memory:');
  try {
    const problem = sqliteVersionProblem((db.prepare('SELECT sqlite_version() AS version').get() as { version: string }).version);
    if (problem) throw new SqliteDriverError(problem);
  } finally {
    db.close();
  }
}

/**
 * The oldest SQLite the embedded stores run on: 3.51.3 fixed the "WAL-reset bug" (3.7.0 to 3.51.2),
 * a race that can corrupt a WAL-mode file when two connections to it checkpoint and write at once.
 * That is what the stores do by design: a WalCheckpointer thread checkpoints beside each writer, and
 * the writer finishes what it leaves (https://www.sqlite.org/wal.html#walresetbug).
 */
export const SQLITE_VERSION_MIN = '3.51.3';

/** Why the embedded stores must not run on SQLite `version`, or null when they may. */
export function sqliteVersionProblem(version: string): string | null {
  const parts = (text: string) => text.split('.').map((part) => Number.parseInt(part, 10));
  const found = parts(version);
  if (found.length < 2 || found.some((part) => !Number.isInteger(part))) return `the SQLite driver reports an unreadable version "${version}"`;
  const least = parts(SQLITE_VERSION_MIN);
  for (let i = 0; i < least.length; i++) {
    const have = found[i] ?? 0;
    if (have !== least[i]) {
      if (have > least[i]!) return null;
      return (
        `the SQLite driver bundles SQLite ${version}, older than ${SQLITE_VERSION_MIN}, which fixed a WAL-mode corruption bug that the embedded ` +
        'stores could trigger (two connections checkpointing one file). Install the locked dependencies again (`npm ci`). No data file was opened or changed.'
      );
    }
  }
  return null;
}

/** Duck-typed: an error from process.dlopen may come from another realm (a vm context), where instanceof Error is false. */
function isNativeLoadFailure(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (code === 'ERR_DLOPEN_FAILED') return true;
  // The `bindings` loader's own message when no build of the addon is there at all.
  return typeof message === 'string' && /Could not locate the bindings file|NODE_MODULE_VERSION/.test(message);
}
