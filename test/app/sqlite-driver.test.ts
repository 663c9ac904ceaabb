import { assertSqliteDriverLoads, SqliteDriverError } from '../../src/app/sqlite-driver';

describe('the embedded stores refuse to start on a SQLite driver built for another Node', () => {
  it('loads the installed driver without complaint', () => {
    expect(() => assertSqliteDriverLoads()).not.toThrow();
  });

  it('names a native addon that does not load, says how to fix it and that no data was touched', () => {
    // A real dlopen failure (a text file is no shared object), the kind a Node upgrade without a rebuild gives.
    const load = () => process.dlopen({ exports: {} }, __filename);
    let caught: unknown;
    try {
      assertSqliteDriverLoads(load);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SqliteDriverError);
    const message = (caught as Error).message;
    expect(message).toContain('better-sqlite3');
    expect(message).toContain(process.version);
    expect(message).toContain('npm rebuild better-sqlite3');
    expect(message).toContain('No data file was opened or changed');
    expect(message).not.toMatch(/backup/);
  });

  it('recognises the version-mismatch message of an addon built for another ABI', () => {
    const mismatch = new Error(
      "The module '/x/better_sqlite3.node'\nwas compiled against a different Node.js version using\nNODE_MODULE_VERSION 137. This version of Node.js requires\nNODE_MODULE_VERSION 127.",
    );
    expect(() =>
      assertSqliteDriverLoads(() => {
        throw mismatch;
      }),
    ).toThrow(/NODE_MODULE_VERSION 137.*npm rebuild better-sqlite3/);
  });

  it('lets any other failure through unchanged', () => {
    const other = new Error('disk I/O error');
    expect(() =>
      assertSqliteDriverLoads(() => {
        throw other;
      }),
    ).toThrow(other);
  });
});
