import type { CommandLog, ConsensusStatus, LogEntry, StateMachine } from '../consensus/command-log';
import { LogOverloadedError } from '../consensus/command-log';
import type { LedgerCommand } from '../domain/commands';
import { type CommandOutcome, type EntryResult, LedgerMachine, type LedgerSnapshot } from '../domain/ledger';
import type { LedgerRules } from '../domain/rules';
import type { EventPipeline } from './event-pipeline';

/** Adapts the pure ledger machine to the command log's state-machine port. */
export class LedgerStateMachine implements StateMachine<LedgerCommand, EntryResult> {
  readonly ledger: LedgerMachine;
  constructor(rules: LedgerRules) {
    this.ledger = new LedgerMachine(rules);
  }
  get appliedIndex(): number {
    return this.ledger.appliedIndex;
  }
  apply(entry: LogEntry<LedgerCommand>): EntryResult {
    return this.ledger.apply({ index: entry.index, timestampMs: entry.timestampMs }, entry.command);
  }
  snapshot(): unknown {
    return this.ledger.snapshot();
  }
  restore(snapshot: unknown): void {
    this.ledger.restore(snapshot as LedgerSnapshot);
  }
}

export interface LedgerNodeOptions {
  /** Commands are refused while the event store trails the log by more than this many events. */
  publishBacklogEventsMax?: number;
  /** Retry a tick this long after the log was busy when a hold fell due. */
  tickRetryMs?: number;
}

/**
 * One ledger node: the command log, the state machine it drives, and the event pipeline that moves
 * applied events into the event store and the read models. The API talks to this.
 */
export class LedgerNode {
  private tickTimer: NodeJS.Timeout | null = null;
  private tickAtMs: number | null = null;
  private stopped = false;

  constructor(
    readonly machine: LedgerStateMachine,
    readonly log: CommandLog<LedgerCommand, EntryResult>,
    readonly pipeline: EventPipeline,
    private readonly options: LedgerNodeOptions = {},
  ) {
    log.onApplied((entry, result) => {
      pipeline.enqueue(entry.index, entry.timestampMs, result.events);
      this.scheduleTick();
    });
    // Snapshots (and log compaction) never run ahead of what the event store holds.
    pipeline.onDurable((index) => log.setDurableElsewhereIndex(index));
  }

  async start(): Promise<void> {
    await this.pipeline.start();
    await this.log.start();
    this.scheduleTick();
  }

  /** Proposes a command and resolves with its outcome once it is durable and applied. */
  async execute(command: LedgerCommand): Promise<CommandOutcome> {
    const backlogMax = this.options.publishBacklogEventsMax ?? 1_000_000;
    if (this.pipeline.backlogEvents > backlogMax) throw new LogOverloadedError(backlogMax);
    const result = await this.log.propose(command);
    return result.outcome;
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
    this.tickTimer = setTimeout(() => this.tick(), Math.max(0, deadline - Date.now()) + 1);
    this.tickTimer.unref();
  }

  private tick(): void {
    this.tickTimer = null;
    this.tickAtMs = null;
    if (this.stopped) return;
    const deadline = this.machine.ledger.nextHoldDeadlineMs();
    if (deadline === null) return;
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
