import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { type LogStorageOptions, type TornTail, makeDurableDir, syncDir } from '../consensus/log-storage';
import type { CommandLog } from '../consensus/command-log';
import { RaftCommandLog, type RaftCommandLogOptions } from '../consensus/raft-command-log';
import { SingleNodeLog } from '../consensus/single-node-log';
import { TcpTransport } from '../consensus/transport/tcp-transport';
import type { LedgerCommand } from '../domain/commands';
import type { EntryResult } from '../domain/ledger';
import type { LedgerConfig } from '../config';
import type { ReadModelStore } from '../projections/read-model-store';
import type { LedgerApi } from '../api/schema';
import { POSITION_ZERO, parsePosition } from '../domain/position';
import { FeedHub } from '../feeds/feed-hub';
import { LedgerNode, LedgerStateMachine } from './ledger-node';
import { type ReadModelStoreLocation, describeReadModelStore, openReadModelStore } from './read-model-stores';
import { WorkerEventPipeline } from './worker-event-pipeline';

/**
 * The composition root: reads the configuration and wires one adapter per port. Nothing else
 * imports a driver (the pipeline worker opens its stores from the same configuration).
 */
export interface ComposedLedger {
  node: LedgerNode;
  api: LedgerApi;
  readModels: ReadModelStore;
  /** Live feeds, fed from the entries this node applies. */
  feeds: FeedHub;
  describeStores(): string[];
  close(): Promise<void>;
}

export interface ComposeHooks {
  onError?: (where: string, error: Error) => void;
  onFatal?: (error: Error) => void;
  /** Run the event pipeline on this thread instead of a worker (tests that start many nodes). */
  pipelineInThread?: boolean;
  /** Log storage test seams (the storage-fault harness). */
  logStorage?: LogStorageOptions;
  /** Raft timing for tests (tick, election and heartbeat ticks, waits). */
  raft?: Partial<Pick<RaftCommandLogOptions, 'tickMs' | 'electionTicks' | 'heartbeatTicks' | 'leaderWaitMs' | 'proposalTimeoutMs' | 'snapshotEveryEntries'>>;
}

export async function composeLedger(config: LedgerConfig, hooks: ComposeHooks = {}): Promise<ComposedLedger> {
  const eventStoreFile = join(config.dataDir, 'events.sqlite');
  const readModelLocation: ReadModelStoreLocation = {
    readModelFile: join(config.dataDir, 'read-models.sqlite'),
    mongoDbUrl: config.mongoDbUrl,
    mongoBulkChunk: config.mongoBulkChunk,
  };
  makeDurableDir(config.dataDir);
  // MongoDB is connected first, so that an unreachable server stops startup before anything else
  // runs (and its indexes exist before the worker uses them). The embedded file is opened only once
  // the pipeline worker has checked it (and rebuilt it if needed).
  const mongoReadModels: ReadModelStore | null = config.mongoDbUrl ? await openReadModelStore(readModelLocation) : null;
  const pipeline = new WorkerEventPipeline(
    { eventStoreFile: config.eventStoreUrl ? null : eventStoreFile, eventStoreUrl: config.eventStoreUrl, ...readModelLocation, appendBytesMax: config.eventStoreAppendBytesMax, appendIntervalMs: config.eventStoreAppendIntervalMs },
    { onError: hooks.onError, onFatal: hooks.onFatal },
    hooks.pipelineInThread ? 'in-thread' : 'worker',
    { waitersMax: config.atLeastWaitsMax },
  );

  const machine = new LedgerStateMachine(config.rules);
  const logDir = join(config.dataDir, 'node');
  const cluster = config.cluster;
  let log: CommandLog<LedgerCommand, EntryResult> & { recoveredTornTail?: TornTail | null };
  let logDescription: string;
  if (cluster) {
    const transport = new TcpTransport({
      nodeId: config.nodeId,
      listenPort: cluster.raftPort,
      secret: cluster.secret,
      peers: cluster.peers,
      // A snapshot sent to a lagging replica travels in one frame.
      maxFrameBytes: 256 * 1024 * 1024,
    });
    log = new RaftCommandLog(machine, {
      dir: logDir,
      nodeId: config.nodeId,
      peers: cluster.peers.map((p) => p.id),
      transport,
      // Entries whose events reached this replica's own event store were committed, whatever the hard
      // state says. Not so with a shared store: the others' events say nothing about this log's entries.
      committedAtLeast: config.eventStoreUrl ? undefined : () => (pipeline.storedPosition ? parsePosition(pipeline.storedPosition).index : 0),
      onFatal: hooks.onFatal,
      onError: hooks.onError,
      ...hooks.raft,
    });
    logDescription =
      `command log: Raft replica ${config.nodeId} of ${cluster.peers.map((p) => `${p.id}=${p.host}:${p.port}`).join(', ')}; ` +
      `listening for replicas on port ${cluster.raftPort}; durable at ${logDir}`;
  } else {
    log = new SingleNodeLog(machine, {
      dir: logDir,
      nodeId: config.nodeId,
      onFatal: hooks.onFatal,
      onError: hooks.onError,
      storage: hooks.logStorage,
    });
    logDescription = `command log: single node, durable at ${logDir}`;
  }
  // With one EventStoreDB for the cluster every replica publishes its applied events; the stream's
  // expected revision makes that exactly once (a conflict re-reads the stream and skips what is there).
  const node = new LedgerNode(machine, log, pipeline, {
    eventStoreShared: cluster !== null && config.eventStoreUrl !== null,
    projectionBacklogEventsMax: config.projectionBacklogEventsMax,
  });
  const feeds = new FeedHub();
  // Registered before start, so that the head also covers the entries replayed from the log.
  log.onApplied((_entry, result) => feeds.ingest(result.events));
  await node.start().catch(async (error: unknown) => {
    await mongoReadModels?.close();
    throw error;
  });
  // This connection serves the queries.
  const readModels: ReadModelStore = mongoReadModels ?? (await openReadModelStore(readModelLocation));
  // The stores' files now exist: make their directory entries durable.
  syncDir(config.dataDir);
  // The feeds' head covers the events already in the event store, too (replayed entries may stop short of them).
  feeds.noteApplied(pipeline.storedPosition ?? POSITION_ZERO);

  const api: LedgerApi = {
    execute: (command) => node.execute(command),
    readModels,
    waitForPosition: (position, timeoutMs) => pipeline.waitForPosition(position, timeoutMs),
    atLeastWaitsPerRequestMax: config.atLeastWaitsPerRequestMax,
    consensusStatus: () => node.status(),
    stateHash: () => createHash('sha256').update(JSON.stringify(machine.snapshot())).digest('hex'),
    projectionStatus: () => pipeline.projectionStatus(),
    readModelsBehind: () => ({ events: pipeline.unprojectedEvents, lagMs: pipeline.projectionLagMs() }),
  };

  return {
    node,
    api,
    readModels,
    feeds,
    describeStores: () => [
      logDescription,
      config.eventStoreUrl ? `event store: EventStoreDB at ${redact(config.eventStoreUrl)}` : `event store: embedded SQLite at ${eventStoreFile}`,
      describeReadModelStore(readModelLocation),
      'event pipeline: event-store appends and projections on two worker threads',
      ...startupNotes(log),
      ...pipeline.startupNotes,
    ],
    async close() {
      await node.stop();
      await readModels.close();
    },
  };
}

/** What recovery had to do, so that nothing is cut silently. */
function startupNotes(log: { recoveredTornTail?: TornTail | null }): string[] {
  const torn = log.recoveredTornTail;
  if (!torn) return [];
  return [
    `command log recovery: cut a torn final write (${torn.reason}) of ${torn.bytes} bytes at byte ${torn.offset} of ${torn.file}: ` +
      `entries from index ${torn.fromIndex} on were never durable, so never acknowledged`,
  ];
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
