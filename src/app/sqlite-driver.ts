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
  new Database(':memory:').close();
}

/** Duck-typed: an error from process.dlopen may come from another realm (a vm context), where instanceof Error is false. */
function isNativeLoadFailure(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (code === 'ERR_DLOPEN_FAILED') return true;
  // The `bindings` loader's own message when no build of the addon is there at all.
  return typeof message === 'string' && /Could not locate the bindings file|NODE_MODULE_VERSION/.test(message);
}
