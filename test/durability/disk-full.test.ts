import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ComposedLedger } from '../../src/app/compose';
import { OutcomeUnknownError, StorageWriteError } from '../../src/consensus/storage-errors';
import { openAccount, openLedgerOn, settle } from '../support/ledger-on-disk';

/**
 * Disk full for real: the data folder on a 1 MiB tmpfs. Transfers are sent until the disk refuses
 * ten of them; reads go on being served; once space returns (the tmpfs grows) writes resume; after a
 * restart every acknowledged transfer is there and no refused one took effect.
 * Needs `mount` (root); where it is not permitted the test says so and is skipped.
 */

jest.setTimeout(120_000);

const mountPoint = mkdtempSync(join(tmpdir(), 'ledger-tmpfs-'));
let mounted = false;
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint], { stdio: 'pipe' });
  mounted = true;
} catch (error) {
  // eslint-disable-next-line no-console
  console.log(`disk-full test SKIPPED: cannot mount a tmpfs here (${(error as Error).message.split('\n')[0]}); run as root to include it`);
}

const describeMounted = mounted ? describe : describe.skip;

describeMounted('disk full (1 MiB tmpfs)', () => {
  afterAll(() => {
    if (mounted) execFileSync('umount', ['-l', mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
  });

  it('refuses with a retryable error, leaves nothing behind, serves reads, and resumes when space returns', async () => {
    const dir = join(mountPoint, 'data');
    const errors: Array<[string, Error]> = [];
    let ledger: ComposedLedger = await openLedgerOn(dir, errors, { pipelineInThread: true });
    const OPENING = 10_000_000n;
    await ledger.api.execute(openAccount('a', OPENING, 'open-a'));
    await ledger.api.execute(openAccount('b', 0n, 'open-b'));
    // The read models hold both accounts before the disk fills (afterwards projections may fail too).
    for (let tries = 0; (await ledger.readModels.getAccounts(['a', 'b'])).some((doc) => !doc); tries += 1) {
      if (tries > 600) throw new Error(`the read models never projected the opened accounts: ${errors.map(([w, e]) => w + ': ' + e.message).join('; ')}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // Metadata makes each entry big, so the disk fills in a few dozen transfers.
    const metadata = { pad: 'x'.repeat(1500) };
    const amountOf = (n: number) => BigInt(1 + (n % 7));
    const send = (n: number) =>
      ledger.api.execute({ type: 'Transfer', input: { fromAccountId: 'a', toAccountId: 'b', amount: String(amountOf(n)), metadata }, idempotencyKey: `t-${n}` });
    let acknowledged = 0n;
    const refused: number[] = [];
    let unknown = 0;
    for (let n = 1; n <= 5000 && refused.length < 10; n += 1) {
      try {
        const outcome = await send(n);
        if (!outcome.ok) throw new Error(`rejected: ${JSON.stringify(outcome.rejection)}`);
        acknowledged += amountOf(n);
      } catch (error) {
        if (error instanceof StorageWriteError) refused.push(n);
        else if (error instanceof OutcomeUnknownError) unknown += 1;
        else throw error;
      }
    }
    expect(refused.length).toBe(10);
    expect(unknown).toBe(0);
    expect(errors.some(([where, e]) => where === 'command log append' && /ENOSPC/.test(e.message))).toBe(true);
    expect(errors.filter(([where]) => where === 'fatal')).toEqual([]);
    // Reads are served from the state while the disk is full.
    expect(ledger.node.machine.ledger.account('b')?.balance).toBe(String(acknowledged));
    expect((await ledger.readModels.getAccounts(['a']))[0]?.id).toBe('a');

    // Space returns.
    execFileSync('mount', ['-o', 'remount,size=16m', mountPoint]);
    const after = await send(100_000);
    expect(after.ok).toBe(true);
    acknowledged += amountOf(100_000);
    await settle(ledger);
    await ledger.close();

    ledger = await openLedgerOn(dir, errors, { pipelineInThread: true });
    try {
      expect(ledger.node.machine.ledger.account('b')?.balance).toBe(String(acknowledged));
      expect(ledger.node.machine.ledger.account('a')?.balance).toBe(String(OPENING - acknowledged));
      await settle(ledger);
      expect((await ledger.readModels.getAccounts(['b']))[0]?.balance).toBe(String(acknowledged));
      // A refused command never took effect: retried with its key, it applies now, once.
      const retried = await send(refused[0]!);
      expect(retried.ok && !retried.replayed).toBe(true);
    } finally {
      await ledger.close();
    }
  });
});
