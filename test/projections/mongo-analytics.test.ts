/**
 * The analytics and replay properties (analytics.properties.ts: brute force over random histories,
 * replay twice, rebuild = incremental, a crash that stored part of a batch) on MongoReadModelStore at
 * MONGODB_URL (FerretDB in CI), with chunks of 3 so that batches span many bulk commands, and as
 * many runs as on SQLite. Skipped, and it says so, without MONGODB_URL.
 */
import { MongoReadModelStore } from '../../src/projections/mongo-read-model-store';
import { mongoUrlFromEnv, withFreshDatabase } from '../support/mongo-url';
import { analyticsProperties } from './analytics.properties';

jest.setTimeout(600_000);

const MONGO_RUNS = 40;
const mongoUrl = mongoUrlFromEnv();

if (mongoUrl !== null) {
  analyticsProperties(
    'MongoReadModelStore',
    async () => {
      const store = await MongoReadModelStore.connect(withFreshDatabase(mongoUrl, 'analytics').url, { bulkChunk: 3 });
      return {
        store,
        cleanup: async () => {
          await store.db.dropDatabase();
          await store.close();
        },
      };
    },
    MONGO_RUNS,
  );
} else {
  console.warn('MongoDB analytics properties skipped: MONGODB_URL is not set (.ci/run starts FerretDB with scripts/ferretdb.sh)');
  describe.skip('MongoReadModelStore analytics properties (skipped: MONGODB_URL is not set)', () => {
    it('is skipped', () => undefined);
  });
}
