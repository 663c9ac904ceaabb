import { parentPort, workerData } from 'node:worker_threads';
import { SqliteEventStore } from '../eventstore/sqlite-event-store';
import { type ProjectedChunk, type ReadAheadRequest, type ReadAheadWorkerData, type ReadAheadMessage, readProjectedChunk } from './rebuild';
import { LEDGER_PROJECTORS } from './projectors';
import type { Checkpoint } from './read-model-store';
import { prepareWrites } from './sqlite-read-model-store';

/**
 * The reading side of a rebuild from the embedded event store (see ReadAheadSource in rebuild.ts):
 * reads and parses the events and projects them into writes, on its own connection to the file,
 * and posts each chunk's writes and checkpoints while the rebuilding thread writes the previous ones.
 * It runs at most `credit` chunks ahead; each chunk taken gives one back.
 */
function run(): void {
  const parent = parentPort;
  if (!parent) throw new Error('rebuild-worker must run in a worker thread');
  const data = workerData as ReadAheadWorkerData;
  const projectors = data.projectorNames.map((name) => {
    const projector = LEDGER_PROJECTORS.find((p) => p.name === name);
    if (!projector) throw new Error(`unknown projection "${name}"`);
    return projector;
  });
  // The rebuilding thread's store: a path that names no file is a mistake, not an empty ledger.
  const store = SqliteEventStore.open(data.eventStoreFile, { mustExist: true });
  const checkpoints = new Map<string, Checkpoint | null>(data.checkpoints);
  let after = data.after;
  let credit = data.credit;
  let ended = false;
  const post = (message: ReadAheadMessage) => parent.postMessage(message);

  const produce = async (): Promise<void> => {
    while (credit > 0 && !ended) {
      const chunk: ProjectedChunk | null = await readProjectedChunk(store, projectors, checkpoints, after, data.chunkEventsMax);
      credit -= 1;
      if (!chunk) {
        ended = true;
        post({ type: 'end' });
        break;
      }
      after = chunk.after;
      // Rows, not documents: a structured clone of the documents costs the receiving thread about what reading them cost here.
      const { writes, ...progress } = chunk;
      post({ type: 'chunk', chunk: { ...progress, prepared: prepareWrites(writes) } });
      // The rebuilding thread finishes with that chunk.
      if (chunk.exhausted) ended = true;
    }
  };
  const fail = (error: unknown) => post(errorMessage(error));
  let busy = false;
  const pump = (): void => {
    if (busy || ended) return;
    busy = true;
    produce().then(
      () => {
        busy = false;
        // Credit only arrives between turns, so this is for one that came while the last post was made.
        if (credit > 0) pump();
      },
      (error: unknown) => {
        ended = true;
        fail(error);
      },
    );
  };
  parent.on('message', (request: ReadAheadRequest) => {
    if (request.type !== 'credit') return;
    credit += 1;
    pump();
  });
  pump();
}

function errorMessage(error: unknown): ReadAheadMessage {
  if (error instanceof Error) return { type: 'error', name: error.name, message: error.message, stack: error.stack ?? '' };
  return { type: 'error', name: 'Error', message: String(error), stack: '' };
}

// The connection closes with the thread (terminate() or the end of the rebuilding process).
try {
  run();
} catch (error) {
  parentPort?.postMessage(errorMessage(error));
}
