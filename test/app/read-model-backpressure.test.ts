/**
 * Backpressure from the read models: while they trail the log by more than the bound, a command
 * waits before it is proposed (nothing is logged meanwhile), goes through once they catch up, and
 * after the wait bound is refused with a retryable OVERLOADED that logged nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LedgerNode, LedgerStateMachine } from '../../src/app/ledger-node';
import type { EventPipeline } from '../../src/app/event-pipeline';
import { LogOverloadedError } from '../../src/consensus/command-log';
import { SingleNodeLog } from '../../src/consensus/single-node-log';
import type { BatchOperation, LedgerCommand } from '../../src/domain/commands';
import type { EntryResult, PositionedEvent } from '../../src/domain/ledger';
import { DEFAULT_RULES } from '../../src/domain/rules';
import { WorkerEventPipeline } from '../../src/app/worker-event-pipeline';
import { composeLedger } from '../../src/app/compose';
import { loadConfig } from '../../src/config';
import { SqliteEventStore } from '../../src/eventstore/sqlite-event-store';

/** A pipeline whose read models move only when the test says so. */
class HeldPipeline implements EventPipeline {
  readonly storedPosition = null;
  readonly startupNotes: string[] = [];
  readonly backlogEvents = 0;
  private handed: PositionedEvent[] = [];
  private projectedCount = 0;
  private waiters: Array<{ below: number; resolve: (reached: boolean) => void }> = [];
  async start(): Promise<void> {}
  enqueue(_index: number, _timestampMs: number, events: PositionedEvent[]): void {
    this.handed.push(...events);
  }
  get unprojectedEvents(): number {
    return this.handed.length - this.projectedCount;
  }
  projectionLagMs(): number {
    return this.unprojectedEvents > 0 ? 1 : 0;
  }
  waitForUnprojectedBelow(events: number, timeoutMs: number): Promise<boolean> {
    if (this.unprojectedEvents < events) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.waiters.push({
        below: events,
        resolve: (reached) => {
          clearTimeout(timer);
          resolve(reached);
        },
      });
    });
  }
  /** The read models take in everything handed over. */
  projectAll(): void {
    this.projectedCount = this.handed.length;
    for (const waiter of this.waiters) if (this.unprojectedEvents < waiter.below) waiter.resolve(true);
  }
  onDurable(): void {}
  async waitForPosition(): Promise<boolean> {
    return true;
  }
  projectionStatus() {
    return [];
  }
  async stop(): Promise<void> {}
}

const deposits = (count: number): LedgerCommand => ({
  type: 'ExecuteBatch',
  input: { operations: Array.from({ length: count }, (): BatchOperation => ({ deposit: { accountId: 'a', amount: '1' } })) },
});

describe('read-model backpressure (LedgerNode)', () => {
  let dir: string;
  let log: SingleNodeLog<LedgerCommand, EntryResult>;
  let pipeline: HeldPipeline;
  let node: LedgerNode;

  async function open(projectionBacklogEventsMax: number, projectionBacklogWaitMs = 10_000): Promise<void> {
    dir = mkdtempSync(join(tmpdir(), 'ledger-backpressure-'));
    const machine = new LedgerStateMachine(DEFAULT_RULES);
    log = new SingleNodeLog(machine, { dir, nodeId: 'node-1' });
    pipeline = new HeldPipeline();
    node = new LedgerNode(machine, log, pipeline, { projectionBacklogEventsMax, projectionBacklogWaitMs });
    await node.start();
    const opened = await node.execute({ type: 'OpenAccount', input: { id: 'a', initialBalance: '0' } });
    expect(opened.ok).toBe(true);
    pipeline.projectAll();
  }

  afterEach(async () => {
    await node.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('holds a command back, unlogged, while the read models trail by the bound, and proposes it once they catch up', async () => {
    await open(5);
    expect((await node.execute(deposits(10))).ok).toBe(true);
    expect(pipeline.unprojectedEvents).toBe(10);
    const before = log.status().commitIndex;
    let settled = false;
    const held = node.execute(deposits(1)).finally(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(settled).toBe(false);
    expect(log.status().commitIndex).toBe(before);
    pipeline.projectAll();
    expect((await held).ok).toBe(true);
    expect(log.status().commitIndex).toBe(before + 1);
  });

  it('refuses with a retryable OVERLOADED after the wait bound, having logged nothing', async () => {
    await open(5, 100);
    expect((await node.execute(deposits(10))).ok).toBe(true);
    const before = log.status().commitIndex;
    const refusal = await node.execute(deposits(1)).then(
      () => null,
      (error: unknown) => error,
    );
    expect(refusal).toBeInstanceOf(LogOverloadedError);
    expect(String((refusal as Error).message)).toMatch(/read models trail the log by 10 events \(bound 5\)/);
    expect(log.status().commitIndex).toBe(before);
  });

  it('does not wait below the bound, nor with no bound', async () => {
    await open(0);
    for (let i = 0; i < 3; i += 1) expect((await node.execute(deposits(10))).ok).toBe(true);
    expect(pipeline.unprojectedEvents).toBe(30);
  });
});

describe('WorkerEventPipeline counts what the read models do not hold yet', () => {
  it('counts handed-over events until they are projected, with the age of the oldest', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ledger-unprojected-'));
    const pipeline = new WorkerEventPipeline(
      { eventStoreFile: join(dir, 'events.sqlite'), eventStoreUrl: null, readModelFile: join(dir, 'read.sqlite'), mongoDbUrl: null, mongoBulkChunk: 40 },
      {},
      'in-thread',
    );
    try {
      await pipeline.start();
      const machine = new LedgerStateMachine(DEFAULT_RULES);
      const first = machine.apply({ index: 1, timestampMs: 1_000, term: 1, command: { type: 'OpenAccount', input: { id: 'a', initialBalance: '5' } } });
      const second = machine.apply({ index: 2, timestampMs: 2_000, term: 1, command: deposits(3) });
      pipeline.enqueue(1, 1_000, first.events);
      pipeline.enqueue(2, 2_000, second.events);
      const handed = first.events.length + second.events.length;
      expect(pipeline.unprojectedEvents).toBe(handed);
      expect(await pipeline.waitForUnprojectedBelow(1, 1)).toBe(false);
      expect(await pipeline.waitForUnprojectedBelow(1, 30_000)).toBe(true);
      expect(pipeline.unprojectedEvents).toBe(0);
      expect(pipeline.projectionLagMs()).toBe(0);
      expect(await pipeline.waitForPosition(second.events.at(-1)!.position, 1)).toBe(true);
    } finally {
      await pipeline.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('read-model backpressure across restarts', () => {
  jest.setTimeout(60_000);

  it('does not count entries replayed from the log that the read models already hold (a restart without a snapshot would otherwise hold every command)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ledger-backpressure-restart-'));
    const config = loadConfig({ LEDGER_DATA_DIR: dir, NODE_ENV: 'test', LEDGER_JWT_SECRET: 'test-secret-test-secret-test-secret-42', LEDGER_PROJECTION_BACKLOG_EVENTS_MAX: '5' });
    try {
      const first = await composeLedger(config);
      expect((await first.api.execute({ type: 'OpenAccount', input: { id: 'a', initialBalance: '0' } })).ok).toBe(true);
      for (let i = 0; i < 12; i += 1) expect((await first.api.execute(deposits(1))).ok).toBe(true);
      expect(await first.api.waitForPosition(first.node.machine.lastEventPosition!, 30_000)).toBe(true);
      await first.close();
      // As after a crash before any snapshot: the whole log is replayed at start.
      rmSync(join(dir, 'node', 'snapshots'), { recursive: true, force: true });

      const again = await composeLedger(config);
      try {
        expect(again.node.machine.appliedIndex).toBe(13);
        expect(again.api.readModelsBehind?.().events).toBe(0);
        const started = Date.now();
        expect((await again.api.execute(deposits(1))).ok).toBe(true);
        // Held, it would have waited the full 10 s bound and been refused.
        expect(Date.now() - started).toBeLessThan(5_000);
      } finally {
        await again.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('does not hold commands while the read models catch up with what the event store held at start (a rebuild after an upgrade)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ledger-backpressure-rebuild-'));
    const stores = { eventStoreFile: join(dir, 'events.sqlite'), eventStoreUrl: null, readModelFile: join(dir, 'read.sqlite'), mongoDbUrl: null, mongoBulkChunk: 40 };
    const machine = new LedgerStateMachine(DEFAULT_RULES);
    const entries = [
      { index: 1, result: machine.apply({ index: 1, timestampMs: 1_000, term: 1, command: { type: 'OpenAccount', input: { id: 'a', initialBalance: '5' } } }) },
      { index: 2, result: machine.apply({ index: 2, timestampMs: 2_000, term: 1, command: deposits(500) }) },
    ];
    try {
      const first = new WorkerEventPipeline(stores, {}, 'in-thread');
      await first.start();
      for (const entry of entries) first.enqueue(entry.index, entry.index * 1_000, entry.result.events);
      expect(await first.waitForPosition(entries[1]!.result.events.at(-1)!.position, 30_000)).toBe(true);
      await first.stop();
      rmSync(stores.readModelFile, { force: true });

      const second = new WorkerEventPipeline(stores, {}, 'in-thread');
      await second.start();
      try {
        expect(second.catchingUpAtStart).toBe(true);
        const next = machine.apply({ index: 3, timestampMs: 3_000, term: 1, command: deposits(3) });
        second.enqueue(3, 3_000, next.events);
        expect(second.unprojectedEvents).toBe(3);
        // Below any bound while catching up: the command would go through.
        expect(await second.waitForUnprojectedBelow(1, 1)).toBe(true);
        expect(await second.waitForPosition(next.events.at(-1)!.position, 30_000)).toBe(true);
        expect(second.catchingUpAtStart).toBe(false);
        expect(second.unprojectedEvents).toBe(0);
      } finally {
        await second.stop();
      }
      const stored = SqliteEventStore.open(stores.eventStoreFile);
      expect((await stored.readAll()).length).toBe(entries[0]!.result.events.length + entries[1]!.result.events.length + 3);
      await stored.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
