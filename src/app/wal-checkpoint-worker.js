'use strict';
// The thread of WalCheckpointer (wal-checkpointer.ts). Plain JavaScript: it needs nothing but the
// SQLite driver, so it starts without the TypeScript loader.
const Database = require('better-sqlite3');
const { parentPort, workerData } = require('node:worker_threads');

/** @type {Map<string, import('better-sqlite3').Database>} */
const files = new Map();

/** A file that fails is let go (its writer's own backstop checkpoints take over) and reported. */
function fail(file, error) {
  const db = files.get(file);
  files.delete(file);
  try {
    db?.close();
  } catch {
    // Already failing; the report below says why.
  }
  parentPort.postMessage({ type: 'error', file, message: error instanceof Error ? error.message : String(error) });
}

function add(file) {
  if (files.has(file)) return;
  try {
    // Only a file its writer has created: a checkpointer must never create an empty database.
    files.set(file, new Database(file, { fileMustExist: true }));
  } catch (error) {
    fail(file, error);
  }
}

// PASSIVE: copies what no reader still needs, never waits for or blocks the writer, which goes on
// appending to the WAL meanwhile and starts it over once everything in it has been copied.
function checkpoint() {
  for (const [file, db] of files) {
    try {
      db.pragma('wal_checkpoint(PASSIVE)');
    } catch (error) {
      fail(file, error);
    }
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
  for (const db of files.values()) db.close();
  files.clear();
  parentPort.close();
});
