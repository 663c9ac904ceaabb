import { assertSqliteDriverLoads, SqliteDriverError, sqliteVersionProblem } from '../../src/app/sqlite-driver';

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

describe('the embedded stores refuse a SQLite with the WAL-reset bug (older than 3.51.3)', () => {
  it('accepts 3.51.3 and anything newer, the bundled one included', () => {
    for (const version of ['3.51.3', '3.51.10', '3.52.0', '3.53.2', '4.0.0']) expect(sqliteVersionProblem(version)).toBeNull();
    expect(() => assertSqliteDriverLoads()).not.toThrow();
  });

  it('refuses older ones, naming the version and what to do', () => {
    for (const version of ['3.51.2', '3.51.0', '3.48.0', '3.7.17', '2.8.17']) {
      expect(sqliteVersionProblem(version)).toMatch(new RegExp(`SQLite ${version.replace(/\./g, '\\.')}, older than 3\\.51\\.3.*npm ci`));
    }
  });

  it('refuses a version it cannot read', () => {
    expect(sqliteVersionProblem('x.y')).toMatch(/unreadable version "x\.y"/);
    expect(sqliteVersionProblem('3')).toMatch(/unreadable version/);
  });
});
