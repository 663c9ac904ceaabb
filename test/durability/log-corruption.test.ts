import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChildLedger } from './child-ledger';

/**
 * The reproduction on the real server: 50 transfers acknowledged, SIGKILL, then one byte
 * flipped inside the 11th of the 52 records of the log segment. The node must refuse to start
 * (naming the segment, the offset and the indexes at stake), never come up with commitIndex 10.
 * A torn final write, by contrast, is cut, reported in the startup output, and loses nothing acknowledged.
 */

jest.setTimeout(90_000);

const SEGMENT = '00000000000000000001.log';

const OPEN = `mutation Open($input: OpenAccountInput!) { result: openAccount(input: $input) { __typename ... on LedgerError { code message } } }`;
const TRANSFER = `mutation T($input: TransferInput!) { result: transfer(input: $input) { __typename ... on LedgerError { code message } } }`;

/** Byte offsets of the records of a segment (framing only). */
function recordOffsets(bytes: Buffer): number[] {
  const offsets: number[] = [];
  for (let at = 0; at + 8 <= bytes.length; at += 8 + bytes.readUInt32LE(at)) offsets.push(at);
  return offsets;
}

async function health(port: number): Promise<{ commitIndex: number; ready: boolean }> {
  return (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as { commitIndex: number; ready: boolean };
}

describe('log corruption vs a torn tail, on the real server', () => {
  const children: ChildLedger[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    for (const child of children.splice(0)) await child.kill();
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  /** Two accounts, 50 acknowledged transfers (52 log entries), then SIGKILL. */
  async function fiftyAcknowledgedThenKill(): Promise<{ dir: string; segment: string }> {
    const dir = mkdtempSync(join(tmpdir(), 'ledger-corrupt-'));
    dirs.push(dir);
    const ledger = await ChildLedger.start(dir);
    children.push(ledger);
    for (const id of ['a', 'b']) {
      const { result } = await ledger.query(OPEN, { input: { id, initialBalance: '100000', idempotencyKey: `open-${id}` } });
      expect(result.__typename).toBe('OpenAccountSuccess');
    }
    for (let i = 0; i < 50; i += 1) {
      const { result } = await ledger.query(TRANSFER, { input: { fromAccountId: 'a', toAccountId: 'b', amount: '7', idempotencyKey: `t-${i}` } });
      expect(result.__typename).toBe('TransferSuccess');
    }
    expect((await health(ledger.port)).commitIndex).toBe(52);
    await ledger.kill();
    return { dir, segment: join(dir, 'node', 'log', SEGMENT) };
  }

  it('a flipped byte inside the 11th of 52 records: startup refuses, naming the segment, the offset and indexes 11 to 52', async () => {
    const { dir, segment } = await fiftyAcknowledgedThenKill();
    const bytes = readFileSync(segment);
    const offsets = recordOffsets(bytes);
    expect(offsets).toHaveLength(52);
    const eleventh = offsets[10]!;
    bytes.writeUInt8(bytes.readUInt8(eleventh + 30) ^ 0x20, eleventh + 30);
    writeFileSync(segment, bytes);

    const restarted = ChildLedger.spawn(dir);
    children.push(restarted);
    const failure = await restarted.ready(30_000).then(
      () => null,
      (error: Error) => error.message,
    );
    if (failure === null) throw new Error(`the node started on a corrupt log with commitIndex ${(await health(restarted.port)).commitIndex}`);
    expect(failure).toMatch(new RegExp(`log segment ${SEGMENT} is corrupt at byte ${eleventh}: checksum mismatch`));
    expect(failure).toMatch(/entries at stake: indexes 11 to 52/);
    expect(failure).toMatch(/restore the data folder from a backup/);
    // Nothing was cut.
    expect(readFileSync(segment).equals(bytes)).toBe(true);
  });

  it('a torn final write (half a record after the last acknowledged one) is cut and reported; all 52 entries are kept', async () => {
    const { dir, segment } = await fiftyAcknowledgedThenKill();
    const bytes = readFileSync(segment);
    const last = recordOffsets(bytes).at(-1)!;
    const torn = bytes.subarray(last, last + 40);
    appendFileSync(segment, torn);

    const restarted = await ChildLedger.start(dir);
    children.push(restarted);
    expect(restarted.output).toMatch(new RegExp(`cut a torn final write \\(truncated record\\) of 40 bytes at byte ${bytes.length} of ${SEGMENT}: entries from index 53 on`));
    expect((await health(restarted.port)).commitIndex).toBe(52);
    expect(readFileSync(segment).length).toBe(bytes.length);
  });
});
