/**
 * npm run rebuild -- <projection|all> [--read-models FILE] [--batch N]
 *
 * Rebuilds read models from the event store from position zero, with a progress bar, rate and ETA.
 * Safe to interrupt (Ctrl-C stops after the current batch; even SIGKILL is safe) and to resume: run
 * the same command again. Run it with the server stopped, or, while the server runs, into a store the
 * server does not use (`--read-models` for a new embedded file, or another MONGODB_URL database).
 * Stores come from the same configuration as the server (LEDGER_DATA_DIR, EVENTSTORE_URL, MONGODB_URL).
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { loadConfig } from '../config';
import type { EventStore } from '../eventstore/event-store';
import { EventStoreDbEventStore } from '../eventstore/eventstoredb-event-store';
import { SqliteEventStore } from '../eventstore/sqlite-event-store';
import { LEDGER_PROJECTORS } from '../projections/projectors';
import type { ReadModelStore } from '../projections/read-model-store';
import { rebuildProjections } from '../projections/rebuild';
import { describeReadModelStore, openReadModelStore } from '../app/read-model-stores';
import { assertSqliteDriverLoads } from '../app/sqlite-driver';

const USAGE = `usage: npm run rebuild -- <${[...LEDGER_PROJECTORS.map((p) => p.name), 'all'].join('|')}> [--read-models FILE] [--batch N]`;

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { 'read-models': { type: 'string' }, batch: { type: 'string' }, help: { type: 'boolean' } },
  });
  if (values.help || positionals.length !== 1) {
    console.error(USAGE);
    return values.help ? 0 : 2;
  }
  const name = positionals[0]!;
  const projectors = name === 'all' ? LEDGER_PROJECTORS : LEDGER_PROJECTORS.filter((p) => p.name === name);
  if (projectors.length === 0) {
    console.error(`unknown projection "${name}"\n${USAGE}`);
    return 2;
  }
  const batchSizeMax = values.batch === undefined ? undefined : Number(values.batch);
  if (batchSizeMax !== undefined && (!Number.isInteger(batchSizeMax) || batchSizeMax < 1)) {
    console.error(`--batch must be a positive integer, got ${values.batch}`);
    return 2;
  }

  const config = loadConfig(process.env);
  if (!config.eventStoreUrl || !config.mongoDbUrl) assertSqliteDriverLoads();
  const eventStoreFile = config.eventStoreUrl ? undefined : join(config.dataDir, 'events.sqlite');
  const eventStore: EventStore = eventStoreFile === undefined ? EventStoreDbEventStore.connect(config.eventStoreUrl!) : SqliteEventStore.open(eventStoreFile);
  if (config.mongoDbUrl && values['read-models'] !== undefined) {
    console.error('--read-models names an embedded file, but MONGODB_URL is set: unset it, or give MONGODB_URL another database');
    return 2;
  }
  const location = { readModelFile: values['read-models'] ?? join(config.dataDir, 'read-models.sqlite'), mongoDbUrl: config.mongoDbUrl, mongoBulkChunk: config.mongoBulkChunk };
  const readModels: ReadModelStore = await openReadModelStore(location);
  console.log(`rebuilding ${projectors.map((p) => p.name).join(', ')} into ${describeReadModelStore(location).replace(/^read models: /, '')}`);

  let stopping = false;
  const stop = () => {
    if (stopping) process.exit(130);
    stopping = true;
    console.error('\nstopping after the current batch; run the same command again to resume');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  const bar = new cliProgress.SingleBar(
    { format: '{bar} {percentage}% | {value}/{total} events | {rate} events/s | ETA {eta_formatted}', etaBuffer: 50, noTTYOutput: true, notTTYSchedule: 2000 },
    cliProgress.Presets.shades_classic,
  );
  const startedMs = Date.now();
  const rate = (processed: number) => Math.round((processed * 1000) / Math.max(1, Date.now() - startedMs));
  try {
    const finished = await rebuildProjections(eventStore, readModels, projectors, {
      batchSizeMax,
      eventStoreFile,
      shouldStop: () => stopping,
      onStart: ({ totalEvents, resumed }) => {
        if (resumed) console.log('resuming an interrupted rebuild');
        bar.start(totalEvents, 0, { rate: 0 });
      },
      onProgress: ({ doneEvents, totalEvents, processedEvents }) => {
        bar.setTotal(totalEvents);
        bar.update(doneEvents, { rate: rate(processedEvents) });
      },
    });
    bar.stop();
    const seconds = (Date.now() - startedMs) / 1000;
    if (!finished) {
      console.log(`interrupted after ${seconds.toFixed(1)} s; run the same command again to resume`);
      return 130;
    }
    console.log(`rebuilt ${projectors.map((p) => p.name).join(', ')} in ${seconds.toFixed(1)} s`);
    return 0;
  } finally {
    bar.stop();
    await readModels.close();
    await eventStore.close();
  }
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    console.error(`rebuild failed: ${error.stack ?? error.message}`);
    process.exit(1);
  },
);
