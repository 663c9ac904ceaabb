import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ComposedLedger } from '../../src/app/compose';
import type { LogStorageOptions } from '../../src/consensus/log-storage';
import { LEDGER_STREAM } from '../../src/eventstore/ledger-event-publisher';
import { SqliteEventStore } from '../../src/eventstore/sqlite-event-store';
import { type ComposeHooks, composeLedger } from '../../src/app/compose';
import { loadConfig } from '../../src/config';
import { openAccount, transfer } from './ledger-on-disk';
import { seededRandom } from './seeded-random';

/**
 * The storage-fault harness. A "golden" data folder is built by a seeded workload (every command
 * acknowledged, the event store and read models caught up, some variants with the snapshot taken at
 * a clean stop, others as if the node died before writing it). Each trial copies a golden folder,
 * applies one seeded fault to one store, restarts the node on it, and checks the property:
 *
 *   the node either holds every acknowledged transfer with every store in agreement (its state, the
 *   event store's events and the read models all equal the golden ones), or refuses to start with a
 *   clear message. It never starts with less.
 *
 * Faults: truncation, a zero-filled range, flipped bytes, a lost final write (the disk dropped the
 * last acknowledged write: the log's last record, or an earlier copy of a SQLite store), and a
 * snapshot without its rename (only the temporary file is left).
 */

export const TARGETS = ['log', 'snapshot', 'eventStore', 'readModels'] as const;
export const FAULTS = ['truncate', 'zeroRange', 'flipBytes', 'lostFinalWrite', 'snapshotWithoutRename'] as const;
export type Target = (typeof TARGETS)[number];
export type Fault = (typeof FAULTS)[number];

/**
 * excluded: a fault no single node can tell from a crash, on a folder where no other store holds the
 * entries it destroys (the only copy of acknowledged entries is gone: only peers could repair it).
 */
export type TrialOutcome = 'held' | 'refused' | 'no-op' | 'excluded';

export interface TrialResult {
  seed: number;
  target: Target;
  fault: Fault;
  detail: string;
  outcome: TrialOutcome;
  /** Null when the property held. */
  violation: string | null;
  message?: string;
}

interface Golden {
  dir: string;
  /** An earlier copy of the SQLite stores (after the first half of the workload). */
  earlyDir: string;
  balances: Record<string, string>;
  events: string[];
  kind: (typeof VARIANT_KINDS)[number];
}

/** snapshot: stopped cleanly; noSnapshot: died before the stop's snapshot; pipelineBehind: died with the event store and read models half-way. */
const VARIANT_KINDS = ['snapshot', 'noSnapshot', 'pipelineBehind'] as const;

const ACCOUNTS = ['a', 'b', 'c', 'd'];
const OPENING = 1_000_000n;
const CLEAR_REFUSAL = /Refusing to start|refuses to start|cannot be read/;

export interface HarnessOptions {
  /** The old rule ("cut anything bad in the last segment") switched back on: the harness must catch it. */
  plantedBug?: boolean;
  /** Golden variants built per harness (trials pick one by seed). */
  variants?: number;
  /** Commands per golden workload. */
  commands?: number;
}

export class StorageFaultHarness {
  private readonly root = mkdtempSync(join(tmpdir(), 'ledger-storage-faults-'));
  private goldens: Golden[] = [];
  constructor(private readonly options: HarnessOptions = {}) {}

  async prepare(): Promise<void> {
    const variants = this.options.variants ?? 6;
    for (let v = 0; v < variants; v += 1) this.goldens.push(await this.buildGolden(v));
  }

  dispose(): void {
    rmSync(this.root, { recursive: true, force: true });
  }

  private hooks(errors: string[]): ComposeHooks & { storage?: LogStorageOptions } {
    return { pipelineInThread: true, onError: (where, e) => errors.push(`${where}: ${e.message}`), onFatal: (e) => errors.push(`fatal: ${e.message}`) };
  }

  private open(dir: string, errors: string[]): Promise<ComposedLedger> {
    const config = loadConfig({ LEDGER_DATA_DIR: dir, NODE_ENV: 'test', LEDGER_JWT_SECRET: 'harness-secret-harness-secret-harness-42' });
    return composeLedger(config, { ...this.hooks(errors), logStorage: { plantedBugCutAnythingInLastSegment: this.options.plantedBug === true } });
  }

  private async buildGolden(variant: number): Promise<Golden> {
    const random = seededRandom(0x5eed0000 + variant);
    const dir = join(this.root, `golden-${variant}`);
    const earlyDir = join(this.root, `golden-${variant}-early`);
    const commands = this.options.commands ?? 24;
    const errors: string[] = [];
    let ledger = await this.open(dir, errors);
    for (const id of ACCOUNTS) await ack(ledger, openAccount(id, OPENING, `open-${id}`));
    const half = Math.floor(commands / 2);
    const step = async (i: number) => {
      const from = ACCOUNTS[Math.floor(random() * ACCOUNTS.length)]!;
      const to = ACCOUNTS.filter((a) => a !== from)[Math.floor(random() * (ACCOUNTS.length - 1))]!;
      await ack(ledger, transfer(from, to, BigInt(1 + Math.floor(random() * 500)), random() < 0.5 ? `t-${variant}-${i}` : undefined));
    };
    for (let i = 0; i < half; i += 1) await step(i);
    await settleLedger(ledger);
    await ledger.close();
    cpSync(dir, earlyDir, { recursive: true });
    ledger = await this.open(dir, errors);
    for (let i = half; i < commands; i += 1) await step(i);
    await settleLedger(ledger);
    const balances = await balancesOf(ledger);
    await ledger.close();
    const events = await eventsOf(dir);
    const kind = VARIANT_KINDS[variant % VARIANT_KINDS.length]!;
    // As if the node died before writing the snapshot of a clean stop.
    if (kind !== 'snapshot') rmSync(join(dir, 'node', 'snapshots'), { recursive: true, force: true });
    if (kind === 'pipelineBehind') {
      // As if it died right after acknowledging, the event store and read models still half-way:
      // only the log has the second half (the restart must publish and project it).
      for (const name of ['events.sqlite', 'read-models.sqlite']) {
        for (const suffix of ['', '-wal', '-shm']) rmSync(join(dir, `${name}${suffix}`), { force: true });
        for (const suffix of ['', '-wal', '-shm']) if (existsSync(join(earlyDir, `${name}${suffix}`))) cpSync(join(earlyDir, `${name}${suffix}`), join(dir, `${name}${suffix}`));
      }
    }
    if (errors.length > 0) throw new Error(`golden ${variant}: ${errors.join('; ')}`);
    return { dir, earlyDir, balances, events, kind };
  }

  /** One seeded trial. Never throws: a broken property is returned as a violation. */
  async trial(seed: number): Promise<TrialResult> {
    const random = seededRandom(seed);
    const golden = this.goldens[Math.floor(random() * this.goldens.length)]!;
    const target = TARGETS[Math.floor(random() * TARGETS.length)]!;
    const faults: Fault[] = target === 'snapshot' ? [...FAULTS] : FAULTS.filter((f) => f !== 'snapshotWithoutRename');
    const fault = faults[Math.floor(random() * faults.length)]!;
    const dir = join(this.root, `trial-${seed}`);
    cpSync(golden.dir, dir, { recursive: true });
    const base: Omit<TrialResult, 'outcome' | 'violation'> = { seed, target, fault, detail: '' };
    try {
      const detail = applyFault(dir, golden, target, fault, random);
      base.detail = detail ?? 'nothing to damage';
      if (detail === null) return { ...base, outcome: 'no-op', violation: null };
      if (detail === EXCLUDED) return { ...base, outcome: 'excluded', violation: null };
      return { ...base, ...(await this.restartAndCheck(dir, golden)) };
    } catch (error) {
      return { ...base, outcome: 'refused', violation: `harness error: ${(error as Error).stack ?? String(error)}` };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  private async restartAndCheck(dir: string, golden: Golden): Promise<Pick<TrialResult, 'outcome' | 'violation' | 'message'>> {
    const errors: string[] = [];
    let ledger: ComposedLedger;
    try {
      ledger = await this.open(dir, errors);
    } catch (error) {
      const message = (error as Error).message;
      return { outcome: 'refused', message, violation: CLEAR_REFUSAL.test(message) ? null : `refused without a clear message: ${message}` };
    }
    try {
      const settled = await settleLedger(ledger, 10_000).then(
        () => null,
        (e: Error) => e.message,
      );
      if (settled) return { outcome: 'held', violation: `started, but the stores did not come into agreement: ${settled}` };
      const state = Object.fromEntries(ACCOUNTS.map((id) => [id, ledger.node.machine.ledger.account(id)?.balance ?? 'missing']));
      if (JSON.stringify(state) !== JSON.stringify(golden.balances)) {
        return { outcome: 'held', violation: `started with other balances than acknowledged: ${JSON.stringify(state)} vs ${JSON.stringify(golden.balances)}` };
      }
      const readModels = await balancesOf(ledger);
      if (JSON.stringify(readModels) !== JSON.stringify(golden.balances)) {
        return { outcome: 'held', violation: `read models disagree with the acknowledged state: ${JSON.stringify(readModels)} vs ${JSON.stringify(golden.balances)}` };
      }
      const fatal = errors.filter((e) => e.startsWith('fatal'));
      if (fatal.length > 0) return { outcome: 'held', violation: `fatal errors after start: ${fatal.join('; ')}` };
    } finally {
      await ledger.close().catch(() => undefined);
    }
    const events = await eventsOf(dir).catch((e: Error) => [`unreadable: ${e.message}`]);
    if (JSON.stringify(events) !== JSON.stringify(golden.events)) {
      const at = events.findIndex((e, i) => e !== golden.events[i]);
      return { outcome: 'held', violation: `the event store disagrees with the acknowledged history (first difference at event ${at}: ${events[at]?.slice(0, 200)} vs ${golden.events[at]?.slice(0, 200)})` };
    }
    return { outcome: 'held', violation: null };
  }
}

async function ack(ledger: ComposedLedger, command: Parameters<ComposedLedger['api']['execute']>[0]): Promise<void> {
  const outcome = await ledger.api.execute(command);
  if (!outcome.ok) throw new Error(`golden workload: rejected ${JSON.stringify(outcome.rejection)}`);
}

async function settleLedger(ledger: ComposedLedger, timeoutMs = 30_000): Promise<void> {
  const position = ledger.node.machine.lastEventPosition;
  if (position !== null && !(await ledger.api.waitForPosition(position, timeoutMs))) throw new Error(`read models did not reach ${position}`);
}

async function balancesOf(ledger: ComposedLedger): Promise<Record<string, string>> {
  const docs = await ledger.readModels.getAccounts(ACCOUNTS);
  return Object.fromEntries(ACCOUNTS.map((id, i) => [id, docs[i]?.balance ?? 'missing']));
}

async function eventsOf(dir: string): Promise<string[]> {
  const store = SqliteEventStore.open(join(dir, 'events.sqlite'));
  try {
    const events = await store.readStream(LEDGER_STREAM, { maxCount: 4096 });
    return events.map((e) => JSON.stringify([e.revision.toString(), e.id, e.type, e.metadata.position, e.data]));
  } finally {
    await store.close();
  }
}

const EXCLUDED = 'excluded: only the log held these entries, and the damage cannot be told from a torn write on one node';

function lastRecordOffset(bytes: Buffer): number {
  let last = 0;
  for (let at = 0; at + 8 <= bytes.length; at += 8 + bytes.readUInt32LE(at)) last = at;
  return last;
}

/** Applies the fault; returns what it did, or null when the target has nothing to damage. */
function applyFault(dir: string, golden: Golden, target: Target, fault: Fault, random: () => number): string | null {
  const files = filesOf(dir, target);
  if (files.length === 0) return null;
  const file = files[Math.floor(random() * files.length)]!;
  const name = file.slice(dir.length + 1);
  // With the event store behind, the log's final records are their only copy: damage that leaves no
  // whole record after it looks exactly like a torn write. Only damage before the last record is
  // detectable there (a valid record follows it).
  const onlyCopy = target === 'log' && golden.kind === 'pipelineBehind';
  if (onlyCopy && (fault === 'truncate' || fault === 'lostFinalWrite')) return EXCLUDED;
  const size = onlyCopy ? lastRecordOffset(readFileSync(file)) : statSync(file).size;
  switch (fault) {
    case 'truncate': {
      if (size === 0) return null;
      const at = Math.floor(random() * size);
      truncateSync(file, at);
      return `${name}: truncated from ${size} to ${at} bytes`;
    }
    case 'zeroRange':
    case 'flipBytes': {
      if (size === 0) return null;
      const bytes = readFileSync(file);
      const at = Math.floor(random() * size);
      const length = Math.min(size - at, 1 + Math.floor(random() * (fault === 'zeroRange' ? 512 : 4)));
      for (let i = at; i < at + length; i += 1) bytes[i] = fault === 'zeroRange' ? 0 : bytes[i]! ^ (1 + Math.floor(random() * 255));
      writeFileSync(file, bytes);
      return `${name}: ${fault === 'zeroRange' ? 'zeroed' : 'flipped'} ${length} bytes at ${at}`;
    }
    case 'lostFinalWrite': {
      if (target === 'log') {
        const bytes = readFileSync(file);
        let last = -1;
        for (let at = 0; at + 8 <= bytes.length; at += 8 + bytes.readUInt32LE(at)) last = at;
        if (last < 0) return null;
        truncateSync(file, last);
        return `${name}: the last record (at ${last}) lost`;
      }
      if (target === 'snapshot') {
        rmSync(file);
        return `${name}: lost`;
      }
      // A SQLite store: the disk dropped its later writes, so an earlier copy of the file is what remains.
      const early = join(golden.earlyDir, name);
      for (const suffix of ['', '-wal', '-shm']) rmSync(`${file}${suffix}`, { force: true });
      for (const suffix of ['', '-wal', '-shm']) if (existsSync(`${early}${suffix}`)) cpSync(`${early}${suffix}`, `${file}${suffix}`);
      return `${name}: replaced by its copy from the middle of the workload`;
    }
    case 'snapshotWithoutRename': {
      renameSync(file, `${file}.tmp`);
      return `${name}: left as its temporary file (the rename never happened)`;
    }
  }
}

function filesOf(dir: string, target: Target): string[] {
  const list = (sub: string, suffix: string) => {
    const at = join(dir, sub);
    return existsSync(at) ? readdirSync(at).filter((n) => n.endsWith(suffix)).sort().map((n) => join(at, n)) : [];
  };
  switch (target) {
    case 'log':
      return list(join('node', 'log'), '.log');
    case 'snapshot':
      return list(join('node', 'snapshots'), '.snapshot');
    case 'eventStore':
      return [join(dir, 'events.sqlite')].filter(existsSync);
    case 'readModels':
      return [join(dir, 'read-models.sqlite')].filter(existsSync);
  }
}

export interface HarnessRun {
  results: TrialResult[];
  trialsPerSecond: number;
  /** target/fault -> outcome -> count */
  summary: Record<string, Record<string, number>>;
}

/** Runs trials from seed `from`; prints each violation with the command that replays it. */
export async function runHarness(trials: number, from: number, options: HarnessOptions = {}, log: (line: string) => void = () => undefined): Promise<HarnessRun> {
  const harness = new StorageFaultHarness(options);
  try {
    await harness.prepare();
    const started = Date.now();
    const results: TrialResult[] = [];
    for (let seed = from; seed < from + trials; seed += 1) {
      const result = await harness.trial(seed);
      results.push(result);
      if (result.violation) log(`VIOLATION seed ${seed} (${result.target}/${result.fault}: ${result.detail}): ${result.violation}\n  replay: ${replayCommand(seed, options)}`);
    }
    const seconds = Math.max(0.001, (Date.now() - started) / 1000);
    const summary: HarnessRun['summary'] = {};
    for (const r of results) {
      const key = `${r.target}/${r.fault}`;
      summary[key] ??= {};
      const outcome = r.violation ? 'VIOLATION' : r.outcome;
      summary[key][outcome] = (summary[key][outcome] ?? 0) + 1;
    }
    return { results, trialsPerSecond: trials / seconds, summary };
  } finally {
    harness.dispose();
  }
}

export function replayCommand(seed: number, options: HarnessOptions = {}): string {
  return `npm run storage-faults -- --trials 1 --from ${seed}${options.plantedBug ? ' --planted-bug' : ''}`;
}
