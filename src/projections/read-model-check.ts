import { existsSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Projector } from './projectors';
import type { ReadModelStore } from './read-model-store';

/**
 * Read models are derived: when one does not check out at start (the file is corrupt, or a
 * checkpoint is ahead of the event store it was projected from), it is dropped and re-projected
 * from the event store, never trusted.
 */

/** Null when the embedded read-model file is readable and passes SQLite's quick_check; otherwise why not. */
export function embeddedReadModelProblem(file: string): string | null {
  if (!existsSync(file)) return null;
  let db: Database.Database | null = null;
  try {
    db = new Database(file, { fileMustExist: true });
    const rows = db.pragma('quick_check') as Array<{ quick_check: string }>;
    const result = rows.map((r) => r.quick_check).join('; ');
    if (result !== 'ok') return `quick_check: ${result.slice(0, 500)}`;
    // Documents are JSON: one that no longer parses is damage quick_check cannot see.
    for (const table of ['accounts', 'transactions']) {
      const bad = db.prepare(`SELECT count(*) AS n FROM ${table} WHERE NOT json_valid(doc)`).get() as { n: number };
      if (bad.n > 0) return `${bad.n} ${table} documents are not valid JSON`;
    }
    return null;
  } catch (error) {
    return (error as Error).message;
  } finally {
    db?.close();
  }
}

/** Deletes the embedded read-model file and its WAL, so the next open starts empty. */
export function dropEmbeddedReadModels(file: string): void {
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${file}${suffix}`, { force: true });
}

/** Null when no projection's checkpoint is past the event store's last ledger position; otherwise which one. */
export async function checkpointAheadOf(
  readModels: ReadModelStore,
  projectors: readonly Projector[],
  eventStorePosition: string | null,
): Promise<string | null> {
  for (const projector of projectors) {
    const checkpoint = await readModels.loadCheckpoint(projector.name);
    if (checkpoint && (eventStorePosition === null || checkpoint.position > eventStorePosition)) {
      return `projection "${projector.name}" is at position ${checkpoint.position} but the event store ends at ${eventStorePosition ?? 'nothing'}`;
    }
  }
  return null;
}
