import { join } from 'node:path';
import { SingleNodeLog } from '../consensus/single-node-log';
import type { LedgerConfig } from '../config';
import type { EventStore } from '../eventstore/event-store';
import { EventStoreDbEventStore } from '../eventstore/eventstoredb-event-store';
import { LedgerEventPublisher } from '../eventstore/ledger-event-publisher';
import { SqliteEventStore } from '../eventstore/sqlite-event-store';
import { ProjectionRunner } from '../projections/projection-runner';
import { LEDGER_PROJECTORS } from '../projections/projectors';
import type { ReadModelStore } from '../projections/read-model-store';
import { SqliteReadModelStore } from '../projections/sqlite-read-model-store';
import type { LedgerApi } from '../api/schema';
import { LedgerNode, LedgerStateMachine } from './ledger-node';

/**
 * The composition root: reads the configuration and wires one adapter per port. Nothing else
 * imports a driver.
 */
export interface ComposedLedger {
  node: LedgerNode;
  api: LedgerApi;
  eventStore: EventStore;
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
  const eventStore: EventStore = config.eventStoreUrl
    ? EventStoreDbEventStore.connect(config.eventStoreUrl)
    : SqliteEventStore.open(join(config.dataDir, 'events.sqlite'));
  const readModels: ReadModelStore = SqliteReadModelStore.open(join(config.dataDir, 'read-models.sqlite'));

  const machine = new LedgerStateMachine(config.rules);
  const log = new SingleNodeLog(machine, {
    dir: join(config.dataDir, 'node'),
    nodeId: config.nodeId,
    onFatal: hooks.onFatal,
  });
  const publisher = new LedgerEventPublisher(eventStore, {
    onDurable: (index) => log.setDurableElsewhereIndex(index),
    onError: (error) => hooks.onError?.('event store append', error),
  });
  const projections = new ProjectionRunner(eventStore, readModels, LEDGER_PROJECTORS, {
    onError: (error) => hooks.onError?.('projections', error),
  });
  const node = new LedgerNode(machine, log, publisher, projections);
  await node.start();

  const api: LedgerApi = {
    execute: (command) => node.execute(command),
    readModels,
    waitForPosition: (position, timeoutMs) => projections.waitFor(position, timeoutMs),
    consensusStatus: () => node.status(),
    projectionStatus: () => projections.status(),
  };

  return {
    node,
    api,
    eventStore,
    readModels,
    describeStores: () => [
      `command log: single node, durable at ${join(config.dataDir, 'node')}`,
      config.eventStoreUrl ? `event store: EventStoreDB at ${redact(config.eventStoreUrl)}` : `event store: embedded SQLite at ${join(config.dataDir, 'events.sqlite')}`,
      `read models: embedded SQLite at ${join(config.dataDir, 'read-models.sqlite')}`,
    ],
    async close() {
      await node.stop();
      await readModels.close();
      await eventStore.close();
    },
  };
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
