import fs from 'node:fs';
import { join, resolve } from 'node:path';
import { LogStorage, makeDurableDir } from '../../src/consensus/log-storage';
import { removeDir, tempDir } from './log-test-support';

/** Directory entries survive a power loss only once the directory itself is fsync'd. */
describe('durable directories', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('ledger-dirs-');
  });
  afterEach(() => {
    jest.restoreAllMocks();
    removeDir(dir);
  });

  /** Paths of the directories fsync'd (opened read-only, then fsync'd) while `run` runs. */
  async function syncedDirs(run: () => unknown): Promise<string[]> {
    const opened = new Map<number, string>();
    const synced: string[] = [];
    const realOpen = fs.openSync;
    const realFsync = fs.fsyncSync;
    jest.spyOn(fs, 'openSync').mockImplementation((path, flags, mode) => {
      const fd = realOpen(path, flags, mode);
      if (flags === 'r') opened.set(fd, resolve(String(path)));
      return fd;
    });
    jest.spyOn(fs, 'fsyncSync').mockImplementation((fd) => {
      const path = opened.get(fd);
      if (path !== undefined && fs.statSync(path).isDirectory()) synced.push(path);
      return realFsync(fd);
    });
    await run();
    jest.restoreAllMocks();
    return synced;
  }

  it('makeDurableDir syncs every directory it created and the parent of the topmost', async () => {
    const leaf = join(dir, 'data', 'node', 'log');
    const synced = await syncedDirs(() => makeDurableDir(leaf));
    expect(synced).toEqual([resolve(leaf), resolve(dir, 'data', 'node'), resolve(dir, 'data'), resolve(dir)]);
    // Already there: the directory itself is synced again (a previous run may have died before it did).
    expect(await syncedDirs(() => makeDurableDir(leaf))).toEqual([resolve(leaf)]);
  });

  it('opening the log syncs its directory even when the tail segment already exists (its creator may have died before syncing)', async () => {
    const logDir = join(dir, 'log');
    const first = await LogStorage.open(logDir, 0);
    await first.storage.close();
    const synced = await syncedDirs(async () => (await LogStorage.open(logDir, 0)).storage.close());
    expect(synced).toContain(resolve(logDir));
  });
});
