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
  const store = SqliteEventStore.open(data.eventStoreFile);
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
      post({ type: 'chunk', chunk: { ...chunk, writes: [], prepared: prepareWrites(chunk.writes) } });
    }
  };
  const fail = (error: Error) => post({ type: 'error', name: error.name, message: error.message, stack: error.stack ?? '' });
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
      (error: Error) => {
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
  parent.once('close', () => void store.close());
}

try {
  run();
} catch (error) {
  const e = error as Error;
  parentPort?.postMessage({ type: 'error', name: e.name, message: e.message, stack: e.stack ?? '' } satisfies ReadAheadMessage);
}
