import type { CommandLog, ConsensusStatus, LogEntry, StateMachine } from '../consensus/command-log';
import { LogOverloadedError, LogStoppedError } from '../consensus/command-log';
import type { BatchOperation, LedgerCommand } from '../domain/commands';
import { type CommandOutcome, type EntryResult, LedgerMachine, type LedgerSnapshot } from '../domain/ledger';
import type { Rejection } from '../domain/errors';
import type { LedgerRules } from '../domain/rules';
import { batchSizeRejection } from '../domain/validate-command';
import { StoresDisagreeError } from '../consensus/storage-errors';
import { parsePosition } from '../domain/position';
import type { EventPipeline } from './event-pipeline';
import { TIMER_DELAY_MAX_MS } from '../timers';


/** Adapts the pure ledger machine to the command log's state-machine port. */
export class LedgerStateMachine implements StateMachine<LedgerCommand, EntryResult> {
  readonly ledger: LedgerMachine;
  /** Position of the last event any applied entry produced (null: none yet): what the event store must not go beyond. */
  lastEventPosition: string | null = null;
  /** The same, as of the snapshot restored at start: what the event store must have reached. */
  restoredLastEventPosition: string | null = null;
  constructor(rules: LedgerRules) {
    this.ledger = new LedgerMachine(rules);
  }
  get appliedIndex(): number {
    return this.ledger.appliedIndex;
  }
  apply(entry: LogEntry<LedgerCommand>): EntryResult {
    const result = this.ledger.apply({ index: entry.index, timestampMs: entry.timestampMs }, entry.command);
    const last = result.events.at(-1);
    if (last) this.lastEventPosition = last.position;
    return result;
  }
  snapshot(): unknown {
    const image: LedgerSnapshot & { lastEventPosition: string | null } = { ...this.ledger.snapshot(), lastEventPosition: this.lastEventPosition };
    return image;
  }
  restore(snapshot: unknown): void {
    const image = snapshot as LedgerSnapshot & { lastEventPosition?: string | null };
    this.ledger.restore(image);
    this.lastEventPosition = image.lastEventPosition ?? null;
    this.restoredLastEventPosition = this.lastEventPosition;
  }
}

export interface LedgerNodeOptions {
  /** Commands are refused while the event store trails the log by more than this many events. */
  publishBacklogEventsMax?: number;
  /**
   * Events applied but not yet in the read models beyond which a command waits before it is
   * proposed (0 or absent: no bound). Under sustained load this holds acknowledgements to what the
   * read models keep up with, so their lag stays bounded instead of growing until OVERLOADED.
   */
  projectionBacklogEventsMax?: number;
  /** How long a command waits for the read models to come back under that bound before a retryable OVERLOADED. */
  projectionBacklogWaitMs?: number;
  /** Retry a tick this long after the log was busy when a hold fell due. */
  tickRetryMs?: number;
  /**
   * The event store is shared with other replicas (one EventStoreDB for a cluster): it may hold
   * events this replica has not applied yet, published by the others, so being ahead of this
   * replica's log is no sign of loss.
   */
  eventStoreShared?: boolean;
}

/**
 * One ledger node: the command log, the state machine it drives, and the event pipeline that moves
 * applied events into the event store and the read models. The API talks to this.
 */
export class LedgerNode {
  private tickTimer: NodeJS.Timeout | null = null;
  private tickAtMs: number | null = null;
  private stopped = false;
  /** While starting, replayed entries wait here until the stores have been checked against each other. */
  private heldForChecks: Array<{ index: number; timestampMs: number; events: EntryResult['events'] }> | null = null;

  constructor(
    readonly machine: LedgerStateMachine,
    readonly log: CommandLog<LedgerCommand, EntryResult>,
    readonly pipeline: EventPipeline,
    private readonly options: LedgerNodeOptions = {},
  ) {
    log.onApplied((entry, result) => {
      if (this.heldForChecks) this.heldForChecks.push({ index: entry.index, timestampMs: entry.timestampMs, events: result.events });
      else pipeline.enqueue(entry.index, entry.timestampMs, result.events);
      this.scheduleTick();
    });
    // Snapshots (and log compaction) never run ahead of what the event store holds.
    pipeline.onDurable((index) => log.setDurableElsewhereIndex(index));
  }

  /**
   * Starts the pipeline (which reads where the event store stands), recovers the log, then checks
   * the stores against each other before anything replayed reaches the event store: the event
   * store may trail the log (it catches up from it) but never be ahead of it (the log lost
   * acknowledged entries), nor behind the snapshot (events the log no longer holds are missing).
   * Either refuses to start.
   */
  async start(): Promise<void> {
    await this.pipeline.start();
    this.heldForChecks = [];
    try {
      await this.log.start();
      this.checkStoresAgree();
    } catch (error) {
      this.heldForChecks = null;
      await this.log.stop().catch(() => undefined);
      await this.pipeline.stop().catch(() => undefined);
      throw error;
    }
    const held = this.heldForChecks;
    this.heldForChecks = null;
    for (const entry of held) this.pipeline.enqueue(entry.index, entry.timestampMs, entry.events);
    this.scheduleTick();
  }

  private checkStoresAgree(): void {
    const stored = this.pipeline.storedPosition;
    const logLast = this.machine.lastEventPosition;
    const { commitIndex, snapshotIndex } = this.log.status();
    if (!this.options.eventStoreShared && stored !== null && (logLast === null || stored > logLast)) {
      throw new StoresDisagreeError(
        `the event store holds events up to position ${stored} (log index ${parsePosition(stored).index}), but the command log ends at index ${commitIndex}` +
          ` (its last event is at ${logLast ?? 'nothing'}): the log lost acknowledged entries`,
      );
    }
    const restored = this.machine.restoredLastEventPosition;
    if (restored !== null && (stored === null || stored < restored)) {
      throw new StoresDisagreeError(
        `the snapshot at index ${snapshotIndex} covers events up to position ${restored}, but the event store ends at ${stored ?? 'nothing'}:` +
          ' the event store lost events that the log no longer holds',
      );
    }
  }

  /** Proposes a command and resolves with its outcome once it is durable and applied. */
  async execute(command: LedgerCommand): Promise<CommandOutcome> {
    const backlogMax = this.options.publishBacklogEventsMax ?? 1_000_000;
    if (this.pipeline.backlogEvents > backlogMax) {
      throw new LogOverloadedError(backlogMax, `the event store trails the log by more than ${backlogMax} events; try again shortly`);
    }
    // What the decider refuses on the command's own content is refused here, before it costs a log
    // write and an fsync (a batch of 100,000 operations was a 12 MB entry before it was refused).
    const refusal = this.refusalBeforeLog(command);
    if (refusal) return { ok: false, rejection: refusal };
    await this.waitForReadModels();
    const result = await this.log.propose(command);
    return result.outcome;
  }

  /** Backpressure: while the read models trail by more than the bound, a command waits (bounded) before it is proposed. */
  private async waitForReadModels(): Promise<void> {
    const eventsMax = this.options.projectionBacklogEventsMax ?? 0;
    if (eventsMax <= 0 || this.pipeline.unprojectedEvents < eventsMax) return;
    const waitMs = this.options.projectionBacklogWaitMs ?? 10_000;
    const caughtUp = await this.pipeline.waitForUnprojectedBelow(eventsMax, waitMs);
    if (this.stopped) throw new LogStoppedError();
    if (caughtUp) return;
    throw new LogOverloadedError(
      eventsMax,
      `the read models trail the log by ${this.pipeline.unprojectedEvents} events (bound ${eventsMax}) and did not catch up within ${waitMs} ms; try again shortly`,
    );
  }

  /**
   * The decider's rejection of this command when it can be given without a log entry (see
   * LedgerMachine.refusalBeforeLog), or null. One that read the state is given only where the state
   * holds every entry this node knows committed and the node takes writes; the others anywhere.
   */
  refusalBeforeLog(command: LedgerCommand): Rejection | null {
    const refusal = this.machine.ledger.refusalBeforeLog(command);
    if (!refusal) return null;
    if (refusal.readsState) {
      const status = this.log.status();
      const writable = status.role === 'STANDALONE' || status.role === 'LEADER';
      if (!writable || status.appliedIndex < status.commitIndex) return null;
    }
    return refusal.rejection;
  }

  /**
   * The decider's refusal of a batch of this many operations on its size alone, or null: what the
   * API answers before it coerces that many operations (src/api/batch-size.ts).
   */
  batchSizeRefusal(operationCount: number, idempotencyKey: string | undefined): Rejection | null {
    if (batchSizeRejection(operationCount, this.machine.ledger.rules) === null) return null;
    // Holes: the size is refused before any operation is looked at.
    const operations: BatchOperation[] = new Array<BatchOperation>(operationCount);
    return this.refusalBeforeLog({ type: 'ExecuteBatch', input: { operations }, ...(idempotencyKey === undefined ? {} : { idempotencyKey }) });
  }

  status(): ConsensusStatus {
    return this.log.status();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.tickTimer) clearTimeout(this.tickTimer);
    await this.log.stop();
    await this.pipeline.stop();
  }

  /** A due hold expires with the next entry; when nothing else is written, the node proposes a tick. */
  private scheduleTick(): void {
    if (this.stopped) return;
    const deadline = this.machine.ledger.nextHoldDeadlineMs();
    if (deadline === null || deadline === this.tickAtMs) return;
    if (this.tickTimer) clearTimeout(this.tickTimer);
    this.tickAtMs = deadline;
    // A timer waits at most TIMER_DELAY_MAX_MS (Node fires a longer one after 1 ms); a hold may run 30 days,
    // so a far deadline is reached in steps, and tick() proposes only once it is due.
    this.tickTimer = setTimeout(() => this.tick(), Math.min(Math.max(0, deadline - Date.now()) + 1, TIMER_DELAY_MAX_MS));
    this.tickTimer.unref();
  }

  private tick(): void {
    this.tickTimer = null;
    this.tickAtMs = null;
    if (this.stopped) return;
    const deadline = this.machine.ledger.nextHoldDeadlineMs();
    if (deadline === null) return;
    // Not due yet (a step towards a far deadline): wait on, write nothing.
    if (deadline > Date.now()) return this.scheduleTick();
    // In a cluster only the leader proposes ticks (a follower's would be forwarded and doubled).
    const { role } = this.log.status();
    if (role !== 'LEADER' && role !== 'STANDALONE') {
      this.tickTimer = setTimeout(() => this.tick(), this.options.tickRetryMs ?? 100);
      this.tickTimer.unref();
      return;
    }
    if (!this.log.idle) {
      this.tickTimer = setTimeout(() => this.tick(), this.options.tickRetryMs ?? 100);
      this.tickTimer.unref();
      return;
    }
    this.log.propose({ type: 'Tick' }).catch(() => {
      // The log is stopping or failed; the next start expires the hold with its first entry.
    });
  }
}
