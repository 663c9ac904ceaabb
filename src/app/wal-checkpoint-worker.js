'use strict';
// The thread of WalCheckpointer (wal-checkpointer.ts). Plain JavaScript: it needs nothing but the
// SQLite driver, so it starts without the TypeScript loader.
const fs = require('node:fs');
const Database = require('better-sqlite3');
const { parentPort, workerData } = require('node:worker_threads');

/** PASSIVE checkpoints per file and tick at most, while each still makes progress (see checkpointFile). */
const ROUNDS_PER_TICK_MAX = 8;

/**
 * file -> { db, inode, failing, retryAtMs }. `inode`: the file the connection opened, so that a file
 * deleted and created anew under the same name is noticed (a connection to the old one would copy the
 * new file's WAL into the deleted file and mark it done).
 */
const files = new Map();

function report(type, file, message) {
  parentPort.postMessage({ type, file, message });
}

function closeQuietly(db) {
  try {
    db?.close();
  } catch {
    // Closing after a failure: the failure is what gets reported.
  }
}

/** Opens `file` (never creating it) and ties the connection to it at once by reading its WAL. */
function open(file, entry) {
  // Only a file its writer has created: a checkpointer must never create an empty database.
  const db = new Database(file, { fileMustExist: true });
  try {
    entry.inode = fs.statSync(file).ino;
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (error) {
    closeQuietly(db);
    throw error;
  }
  entry.db = db;
}

function fail(file, entry, error) {
  closeQuietly(entry.db);
  entry.db = null;
  entry.retryAtMs = Date.now() + workerData.retryDelayMs;
  if (!entry.failing) report('error', file, error instanceof Error ? error.message : String(error));
  entry.failing = true;
}

/**
 * PASSIVE copies the WAL as it stood when the checkpoint began, without waiting for or blocking the
 * writer; the writer starts the WAL over only once all of it has been copied. Under a steady stream
 * of commits one round rarely ends with all of it copied (a commit lands meanwhile), so rounds go on,
 * each shorter, while they make progress: otherwise the WAL would grow to the writer's backstop.
 */
function checkpointFile(db) {
  let copied = -1;
  for (let round = 0; round < ROUNDS_PER_TICK_MAX; round++) {
    const [row] = db.pragma('wal_checkpoint(PASSIVE)');
    if (!row || row.busy !== 0 || row.log <= 0 || row.checkpointed >= row.log || row.checkpointed <= copied) return;
    copied = row.checkpointed;
  }
}

function checkpoint() {
  for (const [file, entry] of files) {
    try {
      if (!entry.db) {
        if (Date.now() < entry.retryAtMs) continue;
        open(file, entry);
        if (entry.failing) report('recovered', file, 'checkpointing again');
        entry.failing = false;
        continue;
      }
      if (fs.statSync(file).ino !== entry.inode) {
        // Replaced under the same name: let the old file go, take the new one at the next tick.
        closeQuietly(entry.db);
        entry.db = null;
        entry.retryAtMs = 0;
        continue;
      }
      checkpointFile(entry.db);
    } catch (error) {
      fail(file, entry, error);
    }
  }
}

function add(file) {
  if (files.has(file)) return;
  const entry = { db: null, inode: 0, failing: false, retryAtMs: 0 };
  files.set(file, entry);
  try {
    open(file, entry);
  } catch (error) {
    fail(file, entry, error);
  }
}

const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on('message', (request) => {
  if (request.type === 'add') {
    add(request.file);
    return;
  }
  if (request.type === 'checkpoint') {
    checkpoint();
    parentPort.postMessage({ type: 'checkpointed', id: request.id });
    return;
  }
  clearInterval(timer);
  for (const entry of files.values()) closeQuietly(entry.db);
  files.clear();
  parentPort.close();
});
