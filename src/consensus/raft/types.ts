import type { LogEntry } from '../command-log';

/**
 * The messages, persistent state and outputs of the pure Raft core (src/consensus/raft/raft.ts).
 * Shapes follow etcd-io/raft: a replica is driven by tick(), step(message) and propose(commands), and
 * hands back a Ready (what to persist, send and apply), after which the shell calls advance().
 */

export type Entry<C> = LogEntry<C>;

export type MessageType =
  | 'PreVote'
  | 'PreVoteResp'
  | 'Vote'
  | 'VoteResp'
  | 'App'
  | 'AppResp'
  | 'Heartbeat'
  | 'HeartbeatResp'
  | 'Snap'
  | 'TimeoutNow';

/** A snapshot of the state machine at `index`, with what the log needs to go on after it. */
export interface Snapshot {
  index: number;
  term: number;
  /** The timestamp of entry `index`, so timestamps stay non-decreasing after compaction. */
  timestampMs: number;
  /** The state machine's image (JSON-serializable); the core never looks inside. */
  data: unknown;
}

/**
 * One message between replicas. Every field is always present (defaults 0/false/null/[]), which keeps
 * the shape fixed and the encoding (part 2) trivial.
 */
export interface Message<C> {
  type: MessageType;
  from: string;
  to: string;
  /** The sender's term; for PreVote the term it would campaign in; for a granted PreVoteResp that same term. */
  term: number;
  /** App: term of entry `index`. Vote/PreVote: term of the candidate's last entry. Rejecting AppResp: term at rejectHint. */
  logTerm: number;
  /** App: index before `entries`. Vote/PreVote: candidate's last index. AppResp: the index acknowledged or rejected. */
  index: number;
  entries: readonly Entry<C>[];
  commit: number;
  reject: boolean;
  /** Rejecting AppResp: the follower's guess at the last index where it may match the leader. */
  rejectHint: number;
  snapshot: Snapshot | null;
  /** Vote sent because of a leader transfer: bypasses the receivers' leader lease. */
  transfer: boolean;
}

/** What must be durable before any message of the same Ready is sent. */
export interface HardState {
  term: number;
  vote: string | null;
  commit: number;
}

export type RaftRole = 'follower' | 'precandidate' | 'candidate' | 'leader';

/** The durable state a replica restarts from. */
export interface DurableState<C> {
  hardState: HardState;
  snapshot: Snapshot | null;
  /** The log after the snapshot, gap-free. */
  entries: readonly Entry<C>[];
}

export interface Ready<C> {
  /** Present when term, vote or commit changed since the last Ready. */
  hardState: HardState | null;
  /**
   * Entries to append. If the first one's index is at or below the last persisted index, the
   * persisted log is truncated from there first (a conflict was resolved).
   */
  entries: Entry<C>[];
  /** A snapshot received from the leader: persist it, replace the log with it, restore the state machine. */
  snapshot: Snapshot | null;
  /** Entries to apply, in order, after `snapshot` and `entries` are durable. */
  committedEntries: Entry<C>[];
  /** To send only after `hardState`, `entries` and `snapshot` are durable. */
  messages: Message<C>[];
  /** Whether the shell must fsync before sending (entries, term or vote changed). */
  mustSync: boolean;
}

export type ProposeResult =
  | { ok: true; firstIndex: number; lastIndex: number; term: number }
  | { ok: false; reason: 'not-leader' | 'transferring' | 'overloaded'; leaderId: string | null };

/**
 * Deliberate bugs for the simulator to prove that its checkers catch them (SIM_BUG=…). Test-only:
 * nothing outside the simulator sets one.
 */
export type PlantedBug =
  /** (a) commit an entry of a previous term by counting replicas (Raft paper Fig. 8, logcabin#44). */
  | 'commit-prior-term'
  /** (b) release a Ready's vote replies before its term and vote are durable (planted in the simulator's shell). */
  | 'vote-before-durable'
  /** (c) accept AppendEntries from a stale leader, without the term check. */
  | 'append-without-term-check'
  /** (d) truncate the log on every AppendEntries, not only on a conflict. */
  | 'truncate-without-conflict'
  /** (e) the leader counts its own entries towards a majority before they are durable. */
  | 'ack-before-durable';

export const PLANTED_BUGS: readonly PlantedBug[] = [
  'commit-prior-term',
  'vote-before-durable',
  'append-without-term-check',
  'truncate-without-conflict',
  'ack-before-durable',
];

export interface RaftConfig<C> {
  id: string;
  /** Every voter, this replica included. Membership is fixed. */
  peers: readonly string[];
  /** A follower that hears from no leader for a random [electionTicks, 2·electionTicks) ticks campaigns. */
  electionTicks: number;
  heartbeatTicks: number;
  /** Seeded source in [0, 1): the core has no randomness of its own. */
  random: () => number;
  preVote: boolean;
  /** A leader that has not heard from a majority within electionTicks steps down, and followers that heard from a leader within it refuse votes. */
  checkQuorum: boolean;
  entriesPerMessageMax: number;
  /** Entries in one App message stop before this many (estimated) bytes; at least one entry is always sent. */
  bytesPerMessageMax: number;
  /** App messages in flight to one follower (replicating state) before the leader waits for acks. */
  inflightMessagesMax: number;
  /** Proposals are refused once this many entries are appended but not committed. */
  uncommittedEntriesMax: number;
  /** At most this many committed entries per Ready. */
  committedEntriesPerReadyMax: number;
  /** Estimated encoded size of a command, for bytesPerMessageMax. */
  commandBytes: (command: C) => number;
  /** The command of the entry a new leader appends to commit its predecessors' entries (the ledger's Tick). */
  noopCommand: C;
  /** Test-only (see PlantedBug). */
  plantedBug?: PlantedBug | null;
}
