import { readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { ComposedLedger } from '../../src/app/compose';
import { StoresDisagreeError } from '../../src/consensus/storage-errors';
import { expectOk, freshDataDir, openAccount, openLedgerOn, settle, transfer } from '../support/ledger-on-disk';

/**
 * At start the log, the newest snapshot, the event store and the read models are checked against
 * each other: a store ahead of the log (or an event store behind the snapshot) refuses to start; a
 * read model that is corrupt or ahead is dropped and re-projected.
 */

jest.setTimeout(60_000);

const SEGMENT = join('node', 'log', '00000000000000000001.log');

describe('stores checked against each other at start', () => {
  const dirs: string[] = [];
  const open: ComposedLedger[] = [];
  afterEach(async () => {
    for (const ledger of open.splice(0)) await ledger.close().catch(() => undefined);
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  async function start(dir: string): Promise<ComposedLedger> {
    const ledger = await openLedgerOn(dir, [], { pipelineInThread: true });
    open.push(ledger);
    return ledger;
  }

  async function stop(ledger: ComposedLedger): Promise<void> {
    open.splice(open.indexOf(ledger), 1);
    await ledger.close();
  }

  /** Two accounts and `transfers` transfers of 1 from a to b, all in the event store and read models. */
  async function ledgerWith(transfers: number): Promise<{ dir: string; ledger: ComposedLedger }> {
    const dir = freshDataDir();
    dirs.push(dir);
    const ledger = await start(dir);
    expectOk(await ledger.api.execute(openAccount('a', 1000n)));
    expectOk(await ledger.api.execute(openAccount('b', 0n)));
    for (let i = 0; i < transfers; i += 1) expectOk(await ledger.api.execute(transfer('a', 'b', 1n)));
    await settle(ledger);
    return { dir, ledger };
  }

  const balance = async (ledger: ComposedLedger, id: string) => (await ledger.readModels.getAccounts([id]))[0]?.balance;

  it('an event store ahead of the log (the log lost its last entries) refuses to start, saying so', async () => {
    const { dir, ledger } = await ledgerWith(10);
    await stop(ledger);
    // Cut the last three whole records: a clean cut, which the log alone cannot tell from a shorter log.
    const segment = join(dir, SEGMENT);
    const bytes = readFileSync(segment);
    const offsets: number[] = [];
    for (let at = 0; at < bytes.length; at += 8 + bytes.readUInt32LE(at)) offsets.push(at);
    truncateSync(segment, offsets.at(-3)!);
    // And the snapshot taken at the clean stop (it would cover them).
    rmSync(join(dir, 'node', 'snapshots'), { recursive: true, force: true });
    const failure = openLedgerOn(dir);
    await expect(failure).rejects.toBeInstanceOf(StoresDisagreeError);
    await expect(failure).rejects.toThrow(/the event store holds events up to position 0000000000000012-\d+ \(log index 12\), but the command log ends at index 9.*the log lost acknowledged entries.*restore the data folder from a backup/);
  });

  it('a snapshot ahead of the log refuses to start', async () => {
    const { dir, ledger } = await ledgerWith(5);
    await stop(ledger);
    const segment = join(dir, SEGMENT);
    truncateSync(segment, 0);
    await expect(openLedgerOn(dir)).rejects.toThrow(/the newest snapshot covers up to index 7 but the log ends at 0: the log lost entries/);
  });

  it('an event store behind the snapshot (it lost events the log no longer replays) refuses to start', async () => {
    const { dir, ledger } = await ledgerWith(5);
    await stop(ledger);
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(dir, `events.sqlite${suffix}`), { force: true });
    await expect(openLedgerOn(dir)).rejects.toThrow(/the snapshot at index 7 covers events up to position 0000000000000007-\d+, but the event store ends at nothing/);
  });

  it('read models ahead of the event store are dropped and re-projected', async () => {
    const { dir, ledger } = await ledgerWith(6);
    await stop(ledger);
    const db = new Database(join(dir, 'read-models.sqlite'));
    db.prepare('UPDATE checkpoints SET position = ?').run('0000000000009999-000000');
    db.prepare("UPDATE accounts SET doc = json_set(doc, '$.balance', '424242')").run();
    db.close();
    const again = await start(dir);
    expect(again.describeStores().join('\n')).toMatch(/read models were ahead of the event store \(projection "\w+" is at position 0000000000009999-000000 but the event store ends at 0000000000000008-\d+\): dropped, re-projecting/);
    await settle(again);
    expect(await balance(again, 'a')).toBe('994');
    expect(await balance(again, 'b')).toBe('6');
  });

  it('read models of an older schema version are dropped and re-projected in the current layout', async () => {
    const { dir, ledger } = await ledgerWith(3);
    await stop(ledger);
    const db = new Database(join(dir, 'read-models.sqlite'));
    db.pragma('user_version = 3');
    db.close();
    const again = await start(dir);
    expect(again.describeStores().join('\n')).toMatch(/read models at .* were unreadable \(read-model database .* has schema version 3, expected \d+: delete it to rebuild\): dropped, re-projecting/);
    await settle(again);
    expect(await balance(again, 'a')).toBe('997');
    const history = await again.readModels.findTransactions({ accountId: 'b' }, null, 10);
    expect(history.docs.map((t) => t.amount)).toEqual(['1', '1', '1']);
  });

  it('a corrupt read-model file is dropped and re-projected', async () => {
    const { dir, ledger } = await ledgerWith(4);
    await stop(ledger);
    const file = join(dir, 'read-models.sqlite');
    const bytes = readFileSync(file);
    bytes.fill(0x5a, 0, 100);
    writeFileSync(file, bytes);
    const again = await start(dir);
    expect(again.describeStores().join('\n')).toMatch(/read models at .* were unreadable .*: dropped, re-projecting from the event store/);
    await settle(again);
    expect(await balance(again, 'a')).toBe('996');
    expect(await balance(again, 'b')).toBe('4');
    expectOk(await again.api.execute(transfer('a', 'b', 1n)));
  });
});
