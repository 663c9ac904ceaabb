import { MongoReadModelStore, redactMongoUrl } from '../projections/mongo-read-model-store';
import type { ReadModelStore } from '../projections/read-model-store';
import { SqliteReadModelStore } from '../projections/sqlite-read-model-store';

/** Where the read models are: enough for any thread (API, pipeline worker, rebuild) to open its own connection. */
export interface ReadModelStoreLocation {
  /** SQLite file of the embedded store, used when mongoDbUrl is null. */
  readModelFile: string;
  mongoDbUrl: string | null;
  mongoBulkChunk: number;
}

/** Opens the configured read-model store; an unreachable MongoDB fails within seconds with an error naming MONGODB_URL. */
export async function openReadModelStore(location: ReadModelStoreLocation): Promise<ReadModelStore> {
  if (location.mongoDbUrl) return MongoReadModelStore.connect(location.mongoDbUrl, { bulkChunk: location.mongoBulkChunk });
  return SqliteReadModelStore.open(location.readModelFile);
}

/** One line for the startup banner. */
export function describeReadModelStore(location: ReadModelStoreLocation): string {
  if (location.mongoDbUrl) {
    return `read models: MongoDB at ${redactMongoUrl(location.mongoDbUrl)} (bulk writes in chunks of ${location.mongoBulkChunk})`;
  }
  return `read models: embedded SQLite at ${location.readModelFile}`;
}
