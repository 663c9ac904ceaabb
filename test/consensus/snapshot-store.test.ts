import { readFileSync, readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SnapshotStore } from '../../src/consensus/snapshot-store';
import { listSnapshots, removeDir, snapshotFileName, tempDir, flipBits } from './log-test-support';

describe('SnapshotStore', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('ledger-snapshot-test-');
  });
  afterEach(() => removeDir(dir));

  it('has nothing to load at first', () => {
    expect(new SnapshotStore(dir).loadLatest()).toBeNull();
  });

  it('loads the newest snapshot and keeps only the two newest files', () => {
    const store = new SnapshotStore(dir);
    store.save(10, JSON.stringify({ at: 10 }));
    store.save(20, JSON.stringify({ at: 20 }));
    store.save(30, JSON.stringify({ at: 30, nested: { list: [1, 2, 3] } }));
    expect(listSnapshots(dir)).toEqual([snapshotFileName(20), snapshotFileName(30)]);
    expect(new SnapshotStore(dir).loadLatest()).toEqual({ index: 30, state: { at: 30, nested: { list: [1, 2, 3] } } });
  });

  it('leaves no temporary file behind, and ignores one left by a crash', () => {
    const store = new SnapshotStore(dir);
    store.save(5, '{"at":5}');
    expect(readdirSync(dir)).toEqual([snapshotFileName(5)]);
    writeFileSync(join(dir, `${snapshotFileName(9)}.tmp`), 'half a snapsh');
    expect(new SnapshotStore(dir).loadLatest()).toEqual({ index: 5, state: { at: 5 } });
    // Opening the store again cleans the leftover up.
    expect(readdirSync(dir)).toEqual([snapshotFileName(5)]);
  });

  const corruptions: Array<[string, (path: string) => void]> = [
    ['a flipped bit in the body', (path) => {
      const bytes = readFileSync(path);
      flipBits(bytes, bytes.length - 3, 0x04);
      writeFileSync(path, bytes);
    }],
    ['a truncated body', (path) => truncateSync(path, readFileSync(path).length - 5)],
    ['a header that is not JSON', (path) => writeFileSync(path, Buffer.concat([Buffer.from('{oops\n'), readFileSync(path).subarray(readFileSync(path).indexOf(0x0a) + 1)]))],
    ['an empty file', (path) => writeFileSync(path, '')],
    ['a header naming another index', (path) => {
      const text = readFileSync(path, 'utf8');
      writeFileSync(path, text.replace('"index":20', '"index":21'));
    }],
  ];
  it.each(corruptions)('falls back to the previous snapshot when the newest has %s', (_name, corrupt) => {
    const store = new SnapshotStore(dir);
    store.save(10, JSON.stringify({ at: 10 }));
    store.save(20, JSON.stringify({ at: 20, padding: 'x'.repeat(100) }));
    corrupt(join(dir, snapshotFileName(20)));
    expect(new SnapshotStore(dir).loadLatest()).toEqual({ index: 10, state: { at: 10 } });
  });

  it('loads nothing when every snapshot is corrupt', () => {
    const store = new SnapshotStore(dir);
    store.save(10, '{"at":10}');
    store.save(20, '{"at":20}');
    for (const name of listSnapshots(dir)) writeFileSync(join(dir, name), 'garbage\ngarbage');
    expect(new SnapshotStore(dir).loadLatest()).toBeNull();
  });

  it('streams a large state: no JSON string longer than one element, and it reads back exactly', async () => {
    const store = new SnapshotStore(dir);
    const state = {
      version: 1,
      nested: { accounts: Array.from({ length: 20_000 }, (_, i) => ({ id: `acc-${i}`, balance: String(i * 7), metadata: { note: 'n'.repeat(50) } })) },
      keys: Array.from({ length: 5_000 }, (_, i) => ({ key: `k-${i}`, at: i })),
    };
    const stringify = jest.spyOn(JSON, 'stringify');
    await store.write(42, state);
    const longest = Math.max(...stringify.mock.results.map((r) => (typeof r.value === 'string' ? r.value.length : 0)));
    stringify.mockRestore();
    const whole = JSON.stringify(state).length;
    expect(whole).toBeGreaterThan(1_000_000);
    expect(longest).toBeLessThan(200);
    expect(new SnapshotStore(dir).loadLatest()).toEqual({ index: 42, state });
  });

  it('a failed streamed write leaves neither a snapshot nor a temporary file', async () => {
    const store = new SnapshotStore(dir, { bytesMax: 1000 });
    await expect(store.write(7, { list: Array.from({ length: 500 }, (_, i) => i) })).rejects.toThrow(/snapshot body exceeds 1000 bytes/);
    expect(readdirSync(dir)).toEqual([]);
    expect(store.loadLatest()).toBeNull();
  });
});
