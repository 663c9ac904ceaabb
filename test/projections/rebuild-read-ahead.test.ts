/**
 * A rebuild from the embedded event store reads and projects on a worker thread (rebuild-worker.ts)
 * while this thread writes: the rows it writes must be those of the rebuild on one thread, row for
 * row, also when stopped and resumed; a corrupt event must stop it with the event store's own error.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteEventStore } from '../../src/eventstore/sqlite-event-store';
import { LEDGER_PROJECTORS } from '../../src/projections/projectors';
import type { TransactionDoc } from '../../src/projections/read-model-store';
import { rebuildProjections } from '../../src/projections/rebuild';
import { SqliteReadModelStore, prepareWrites } from '../../src/projections/sqlite-read-model-store';
import { publishHistory, sampleHistory } from '../support/ledger-history';

jest.setTimeout(120_000);

const TABLES: Record<string, string> = {
  accounts: 'id',
  transactions: 'created_seq',
  transaction_accounts: 'account_id, created_seq',
  balance_history: 'account_id, at_ms, seq',
  currency_totals: 'currency',
  volume_buckets: 'currency, interval, start',
};

/** Every row of every read-model table, and the checkpoints without their wall-clock time. */
function rows(file: string): Record<string, unknown[]> {
  const db = new Database(file, { readonly: true });
  try {
    const all: Record<string, unknown[]> = {};
    for (const [table, order] of Object.entries(TABLES)) all[table] = db.prepare(`SELECT * FROM ${table} ORDER BY ${order}`).all();
    all.checkpoints = db.prepare('SELECT projection, position, store_position FROM checkpoints ORDER BY projection').all();
    return all;
  } finally {
    db.close();
  }
}

describe('rebuild with read-ahead (eventStoreFile)', () => {
  let dir: string;
  let eventsFile: string;
  let events: SqliteEventStore;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ledger-rebuild-ahead-'));
    eventsFile = join(dir, 'events.sqlite');
    events = SqliteEventStore.open(eventsFile);
    await publishHistory(events, sampleHistory(2_500, 11));
  });
  afterAll(async () => {
    await events.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function rebuild(file: string, options: Parameters<typeof rebuildProjections>[3]): Promise<boolean> {
    const store = SqliteReadModelStore.open(file);
    try {
      return await rebuildProjections(events, store, LEDGER_PROJECTORS, options);
    } finally {
      await store.close();
    }
  }

  it('writes the rows of a rebuild on one thread, row for row, also when stopped and resumed', async () => {
    const oneThread = join(dir, 'one-thread.sqlite');
    await expect(rebuild(oneThread, { batchSizeMax: 97 })).resolves.toBe(true);
    const expected = rows(oneThread);
    expect((expected.transactions as unknown[]).length).toBeGreaterThan(500);

    const ahead = join(dir, 'ahead.sqlite');
    await expect(rebuild(ahead, { batchSizeMax: 97, eventStoreFile: eventsFile })).resolves.toBe(true);
    expect(rows(ahead)).toEqual(expected);

    // Stopped after a few chunks (the worker has read ahead of what was written), then resumed.
    const resumed = join(dir, 'resumed.sqlite');
    let chunks = 0;
    await expect(rebuild(resumed, { batchSizeMax: 97, eventStoreFile: eventsFile, onProgress: () => (chunks += 1), shouldStop: () => chunks >= 5 })).resolves.toBe(false);
    const partial = rows(resumed);
    expect((partial.transactions as unknown[]).length).toBeGreaterThan(0);
    expect((partial.transactions as unknown[]).length).toBeLessThan((expected.transactions as unknown[]).length);
    await expect(rebuild(resumed, { batchSizeMax: 97, eventStoreFile: eventsFile })).resolves.toBe(true);
    expect(rows(resumed)).toEqual(expected);
  });

  it('stops with the event store\'s own error when an event fails its checksum on the reading thread, writing nothing of it', async () => {
    const corruptFile = join(dir, 'corrupt-events.sqlite');
    const corrupt = SqliteEventStore.open(corruptFile);
    try {
      await publishHistory(corrupt, sampleHistory(1_500, 12));
      // One event's data altered behind the store's back, mid-history: its row no longer matches its crc.
      const raw = new Database(corruptFile);
      const withAmount = "FROM events WHERE data LIKE '%\"amount\":\"%'";
      const { n } = raw.prepare(`SELECT COUNT(*) AS n ${withAmount}`).get() as { n: number };
      expect(n).toBeGreaterThan(200);
      const { seq } = raw.prepare(`SELECT seq ${withAmount} ORDER BY seq LIMIT 1 OFFSET ?`).get(Math.floor(n / 2)) as { seq: number };
      raw.prepare("UPDATE events SET data = replace(data, '\"amount\":\"', '\"amount\":\"9') WHERE seq = ?").run(seq);
      raw.close();
      const store = SqliteReadModelStore.open(join(dir, 'from-corrupt.sqlite'));
      try {
        const failure = rebuildProjections(corrupt, store, LEDGER_PROJECTORS, { batchSizeMax: 64, eventStoreFile: corruptFile });
        await expect(failure).rejects.toThrow(/the embedded event store is corrupt: event at store position 0*\d+ fails its checksum/);
        await expect(failure).rejects.toMatchObject({ name: 'EventStoreCorruptionError' });
        // The chunks before the corrupt event were written; the corrupt one and the rest were not.
        const checkpoint = await store.loadCheckpoint('transactions');
        expect(checkpoint).not.toBeNull();
        expect(Number(checkpoint!.storePosition)).toBeLessThan(seq);
      } finally {
        await store.close();
      }
    } finally {
      await corrupt.close();
    }
  });

  it('finishes when the chunk that met the end is written, even if asked to stop just then (both paths)', async () => {
    for (const eventStoreFile of [undefined, eventsFile]) {
      let stop = false;
      const file = join(dir, `stop-at-end-${eventStoreFile ? 'ahead' : 'one-thread'}.sqlite`);
      const finished = await rebuild(file, {
        batchSizeMax: 97,
        eventStoreFile,
        onProgress: ({ doneEvents, totalEvents }) => (stop = doneEvents === totalEvents),
        shouldStop: () => stop,
      });
      expect({ eventStoreFile, finished }).toEqual({ eventStoreFile, finished: true });
      expect(stop).toBe(true);
    }
  });

  it('fails clearly when the event store file it is given does not exist, writing nothing', async () => {
    const file = join(dir, 'from-nowhere.sqlite');
    await expect(rebuild(file, { eventStoreFile: join(dir, 'no-such-events.sqlite') })).rejects.toThrow(/no embedded event store at .*no-such-events\.sqlite/);
    expect(rows(file).transactions).toEqual([]);
  });

  it('refuses a transaction document with more than two accounts before writing anything', async () => {
    const position = '0000000000000001-000000';
    const doc = { _id: 't1', id: 't1', position, createdPosition: position, accountIds: ['a', 'b', 'c'] } as unknown as TransactionDoc;
    expect(() => prepareWrites([{ collection: 'transactions', doc }])).toThrow(/expected at most two account ids/);
  });
});
