import { join } from 'node:path';
import { SingleNodeLog } from '../consensus/single-node-log';
import type { LedgerConfig } from '../config';
import type { ReadModelStore } from '../projections/read-model-store';
import { SqliteReadModelStore } from '../projections/sqlite-read-model-store';
import type { LedgerApi } from '../api/schema';
import { LedgerNode, LedgerStateMachine } from './ledger-node';
import { WorkerEventPipeline } from './worker-event-pipeline';

/**
 * The composition root: reads the configuration and wires one adapter per port. Nothing else
 * imports a driver (the pipeline worker opens its stores from the same configuration).
 */
export interface ComposedLedger {
  node: LedgerNode;
  api: LedgerApi;
  readModels: ReadModelStore;
  describeStores(): string[];
  close(): Promise<void>;
}

export interface ComposeHooks {
  onError?: (where: string, error: Error) => void;
  onFatal?: (error: Error) => void;
}

export async function composeLedger(config: LedgerConfig, hooks: ComposeHooks = {}): Promise<ComposedLedger> {
  if (config.mongoDbUrl) {
    throw new Error(
      'MONGODB_URL is set, but this version has no MongoDB read-model adapter yet (it arrives with the MongoDB read-side work); unset MONGODB_URL to use the embedded read models',
    );
  }
  const eventStoreFile = join(config.dataDir, 'events.sqlite');
  const readModelFile = join(config.dataDir, 'read-models.sqlite');
  // Opened here first so that the read-model schema exists before the pipeline worker and the
  // queries use it; this connection serves the queries.
  const readModels: ReadModelStore = SqliteReadModelStore.open(readModelFile);
  const pipeline = new WorkerEventPipeline(
    { eventStoreFile: config.eventStoreUrl ? null : eventStoreFile, eventStoreUrl: config.eventStoreUrl, readModelFile },
    { onError: hooks.onError, onFatal: hooks.onFatal },
    { waitersMax: config.atLeastWaitsMax },
  );

  const machine = new LedgerStateMachine(config.rules);
  const log = new SingleNodeLog(machine, {
    dir: join(config.dataDir, 'node'),
    nodeId: config.nodeId,
    onFatal: hooks.onFatal,
  });
  const node = new LedgerNode(machine, log, pipeline);
  await node.start();

  const api: LedgerApi = {
    execute: (command) => node.execute(command),
    readModels,
    waitForPosition: (position, timeoutMs) => pipeline.waitForPosition(position, timeoutMs),
    atLeastWaitsPerRequestMax: config.atLeastWaitsPerRequestMax,
    consensusStatus: () => node.status(),
    projectionStatus: () => pipeline.projectionStatus(),
  };

  return {
    node,
    api,
    readModels,
    describeStores: () => [
      `command log: single node, durable at ${join(config.dataDir, 'node')}`,
      config.eventStoreUrl ? `event store: EventStoreDB at ${redact(config.eventStoreUrl)}` : `event store: embedded SQLite at ${eventStoreFile}`,
      `read models: embedded SQLite at ${readModelFile}`,
      'event pipeline (event store appends, projections): worker thread',
    ],
    async close() {
      await node.stop();
      await readModels.close();
    },
  };
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
