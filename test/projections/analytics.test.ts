import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteReadModelStore } from '../../src/projections/sqlite-read-model-store';
import { analyticsProperties } from './analytics.properties';

jest.setTimeout(300_000);

analyticsProperties('SqliteReadModelStore', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ledger-analytics-'));
  const store = SqliteReadModelStore.open(join(dir, 'read-models.db'));
  return {
    store,
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
