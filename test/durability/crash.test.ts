import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChildLedger } from './child-ledger';
import { LedgerModel, OPENING_BALANCE, allAccounts, allTransactions, retryUnknown, verifyLedger } from './ledger-model';

/**
 * The real server as a child process, SIGKILLed while mutations are in flight and restarted on the
 * same data folder: every acknowledged change survives, nothing is applied twice, and the read models
 * catch up from the log.
 */

// Real processes on a shared 2-core machine: generous, as the working rules ask (no timing is asserted).
jest.setTimeout(300_000);

const BASE_ACCOUNTS = Array.from({ length: 8 }, (_, i) => `acc-${i}`);

describe('crash safety (SIGKILL of the real server)', () => {
  const children: ChildLedger[] = [];
  const dirs: string[] = [];

  function dataDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'ledger-crash-'));
    dirs.push(dir);
    return dir;
  }
  async function start(dir: string): Promise<ChildLedger> {
    const ledger = ChildLedger.spawn(dir);
    children.push(ledger);
    await ledger.ready();
    return ledger;
  }

  afterEach(async () => {
    for (const child of children.splice(0)) await child.kill();
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  async function openBaseAccounts(ledger: ChildLedger, model: LedgerModel): Promise<void> {
    await Promise.all(model.baseAccounts.map((id) => model.sendAcked(ledger, model.openAccount(id, OPENING_BALANCE))));
  }

  function expectConsistent(problems: string[], ledger: ChildLedger): void {
    if (problems.length > 0) throw new Error(`${problems.join('\n')}\n--- server output ---\n${ledger.output.slice(-3000)}`);
  }

  it('keeps every acknowledged mutation after a SIGKILL with requests in flight, and applies retries exactly once', async () => {
    const dir = dataDir();
    const model = new LedgerModel(BASE_ACCOUNTS, 0xc0ffee);
    const first = await start(dir);
    await openBaseAccounts(first, model);

    const run = await model.runWorkload(first, { workers: 32, killAfterAcks: 400, requestsMax: 5_000 });
    expect(run.killed).toBe(true);
    await first.kill();
    expect(model.acked.length).toBeGreaterThanOrEqual(400 + BASE_ACCOUNTS.length);
    // The kill left requests without an answer: the interesting case.
    expect(model.unknown.length).toBeGreaterThan(0);

    const second = await start(dir);
    expectConsistent(await verifyLedger(second, model), second);

    // A client retrying its unanswered requests with their idempotency keys gets each applied once.
    await retryUnknown(second, model);
    expect(model.unknown).toEqual([]);
    expectConsistent(await verifyLedger(second, model, { exact: true }), second);
  });

  it('applies a large batch SIGKILLed in flight wholly or not at all', async () => {
    const dir = dataDir();
    const first = await start(dir);
    const pools = Array.from({ length: 10 }, (_, i) => `pool-${i}`);
    const model = new LedgerModel(pools, 7);
    await Promise.all(pools.map((id) => model.sendAcked(first, model.openAccount(id, 0n))));

    const BATCHES = 10;
    const DEPOSITS = 500;
    const TRANSFERS = 499;
    const depositTotal = BigInt((DEPOSITS * (DEPOSITS + 1)) / 2);
    const transferAmount = (i: number) => BigInt((i % 50) + 1);
    const batchInput = (k: number) => ({
      idempotencyKey: `batch-${k}`,
      operations: [
        { openAccount: { id: `batch-${k}`, initialBalance: '0' } },
        ...Array.from({ length: DEPOSITS }, (_, i) => ({ deposit: { accountId: `batch-${k}`, amount: String(i + 1), description: `b${k}-d${i}` } })),
        ...Array.from({ length: TRANSFERS }, (_, i) => ({
          transfer: { fromAccountId: `batch-${k}`, toAccountId: pools[i % pools.length], amount: String(transferAmount(i)), description: `b${k}-t${i}` },
        })),
      ],
    });
    const BATCH = `mutation Batch($input: BatchInput!) {
      executeBatch(input: $input) {
        __typename
        ... on BatchSuccess { position transactions { id } }
        ... on LedgerError { code message }
      }
    }`;
    type BatchState = { status: 'unknown' | 'acked' | 'rejected'; ids: string[]; position?: string };
    const batches: BatchState[] = Array.from({ length: BATCHES }, () => ({ status: 'unknown', ids: [] }));
    const send = async (ledger: ChildLedger, k: number, onAck: () => void) => {
      try {
        const { status, body } = await ledger.gql(BATCH, { input: batchInput(k) });
        const result = status === 200 ? body.data?.executeBatch : undefined;
        if (result?.__typename === 'BatchSuccess') {
          batches[k] = { status: 'acked', ids: result.transactions.map((t: { id: string }) => t.id), position: result.position };
          onAck();
        } else if (result?.code) {
          batches[k] = { status: 'rejected', ids: [] };
        }
      } catch {
        // In flight when the server died.
      }
    };

    // Three clients send batches back to back; the third acknowledgement kills the server at once,
    // while the other clients' batches are being parsed, decided or written.
    let next = 0;
    let acks = 0;
    let killed = false;
    const client = async () => {
      while (!killed && next < BATCHES) {
        const k = next++;
        await send(first, k, () => {
          acks += 1;
          if (acks >= 3 && !killed) {
            killed = true;
            first.killNow();
          }
        });
      }
    };
    await Promise.all([client(), client(), client()]);
    await first.kill();
    expect(batches.filter((b) => b.status === 'acked').length).toBeGreaterThanOrEqual(3);
    expect(batches.filter((b) => b.status === 'rejected')).toEqual([]);

    const check = async (ledger: ChildLedger) => {
      const sentinel = await model.sendAcked(ledger, model.openAccount(`sentinel-${model.requests.length}`, 0n));
      const transactions = await allTransactions(ledger, sentinel.position!);
      const accounts = await allAccounts(ledger);
      const applied: number[] = [];
      const idsByBatch = new Map<number, Set<string>>();
      for (let k = 0; k < BATCHES; k += 1) {
        const own = transactions.filter((t) => t.description?.startsWith(`b${k}-`));
        const account = accounts.get(`batch-${k}`);
        if (!account) {
          // Not applied: not one of its operations is there (acknowledged batches are checked below).
          expect({ batch: k, transactions: own.length }).toEqual({ batch: k, transactions: 0 });
          continue;
        }
        applied.push(k);
        idsByBatch.set(k, new Set(own.map((t) => t.id)));
        expect({ batch: k, transactions: own.length, distinct: new Set(own.map((t) => t.description)).size }).toEqual({
          batch: k,
          transactions: DEPOSITS + TRANSFERS,
          distinct: DEPOSITS + TRANSFERS,
        });
        let transferred = 0n;
        for (let i = 0; i < TRANSFERS; i += 1) transferred += transferAmount(i);
        expect({ batch: k, balance: account.balance, count: account.transactionCount }).toEqual({
          batch: k,
          balance: String(depositTotal - transferred),
          count: DEPOSITS + TRANSFERS,
        });
        if (batches[k]!.status === 'acked') expect(new Set(own.map((t) => t.id))).toEqual(new Set(batches[k]!.ids));
      }
      for (let k = 0; k < BATCHES; k += 1) if (batches[k]!.status === 'acked') expect(applied).toContain(k);
      // The pools hold exactly the transfers of the applied batches; money is conserved.
      for (let p = 0; p < pools.length; p += 1) {
        let expected = 0n;
        for (let i = p; i < TRANSFERS; i += pools.length) expected += transferAmount(i);
        expect({ pool: pools[p], balance: accounts.get(pools[p]!)!.balance }).toEqual({ pool: pools[p], balance: String(expected * BigInt(applied.length)) });
      }
      let total = 0n;
      for (const account of accounts.values()) total += BigInt(account.balance);
      expect(total).toBe(depositTotal * BigInt(applied.length));
      return { applied, idsByBatch };
    };

    const second = await start(dir);
    // Queries at the last acknowledged position answer right after the restart.
    const lastAcked = batches.filter((b) => b.position).map((b) => b.position!).sort().at(-1)!;
    await second.query(`query($atLeast: Position) { transactions(first: 1, atLeast: $atLeast) { totalCount } }`, { atLeast: lastAcked });
    const afterCrash = await check(second);

    // Retrying every batch with its idempotency key applies the missing ones and replays the others
    // (applied before the crash, acknowledged or not) with their first outcome.
    for (let k = 0; k < BATCHES; k += 1) {
      const before = batches[k]!;
      await send(second, k, () => undefined);
      expect(batches[k]!.status).toBe('acked');
      if (before.status === 'acked') expect(batches[k]!.ids).toEqual(before.ids);
      const applied = afterCrash.idsByBatch.get(k);
      if (applied) expect(new Set(batches[k]!.ids)).toEqual(applied);
    }
    expect((await check(second)).applied).toEqual(Array.from({ length: BATCHES }, (_, k) => k));
  });

  it('stays consistent through kill, quick restart and kill, graceful stop, and kill again', async () => {
    const dir = dataDir();
    const model = new LedgerModel(BASE_ACCOUNTS, 42);

    // 1. Load, then SIGKILL with requests in flight.
    const first = await start(dir);
    await openBaseAccounts(first, model);
    expect((await model.runWorkload(first, { workers: 24, killAfterAcks: 150, requestsMax: 5_000 })).killed).toBe(true);
    await first.kill();

    // 2. Restart and SIGKILL the moment it listens: the event store and read models are still catching up from the log.
    const quick = ChildLedger.spawn(dir);
    children.push(quick);
    await quick.ready();
    await quick.kill();

    // 3. Restart, a little load, SIGKILL again quickly.
    const third = await start(dir);
    expect((await model.runWorkload(third, { workers: 16, killAfterAcks: 20, requestsMax: 5_000 })).killed).toBe(true);
    await third.kill();

    // 4. Restart, check, then a graceful stop, which leaves a state-machine snapshot.
    const fourth = await start(dir);
    expectConsistent(await verifyLedger(fourth, model), fourth);
    const sentBefore = model.requests.length;
    await model.runWorkload(fourth, { workers: 8, killAfterAcks: Number.POSITIVE_INFINITY, requestsMax: 100 });
    expect(model.requests.slice(sentBefore).filter((r) => r.status !== 'acked')).toEqual([]);
    expect(await fourth.terminate()).toBe(0);
    const snapshots = join(dir, 'node', 'snapshots');
    expect(existsSync(snapshots) && readdirSync(snapshots).some((name) => name.endsWith('.snapshot'))).toBe(true);

    // 5. Restart from the snapshot and the log after it, SIGKILL with requests in flight.
    const fifth = await start(dir);
    expect((await model.runWorkload(fifth, { workers: 24, killAfterAcks: 100, requestsMax: 5_000 })).killed).toBe(true);
    await fifth.kill();

    // 6. Everything acknowledged across all of it is there, exactly once.
    const last = await start(dir);
    expectConsistent(await verifyLedger(last, model), last);
    await retryUnknown(last, model);
    expectConsistent(await verifyLedger(last, model, { exact: true }), last);
  });
});
