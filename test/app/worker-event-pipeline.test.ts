/**
 * The event pipeline's two worker threads (src/app/worker-event-pipeline.ts): a stage that fails to
 * start, or whose thread ends, must not leave the other running nor make stop() wait for ever.
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { WAL_CHECKPOINT_THREAD_NAME } from '../../src/app/wal-checkpointer';
import { PIPELINE_THREAD_NAMES, WorkerEventPipeline } from '../../src/app/worker-event-pipeline';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ledger-worker-pipeline-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const stores = (readModelFile: string) => ({ eventStoreFile: join(dir, 'events.sqlite'), eventStoreUrl: null, readModelFile, mongoDbUrl: null, mongoBulkChunk: 40 });
const threadNames = () =>
  readdirSync('/proc/self/task').flatMap((tid) => {
    try {
      return [readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim()];
    } catch {
      return []; // the thread ended between the listing and the read
    }
  });
const threadsOf = (pipeline: WorkerEventPipeline) => (pipeline as unknown as { workers: Worker[] }).workers;

describe('WorkerEventPipeline on its worker threads', () => {
  it('starts both stages, takes entries and stops', async () => {
    const pipeline = new WorkerEventPipeline(stores(join(dir, 'read-models.sqlite')), {}, 'worker');
    await pipeline.start();
    expect(threadsOf(pipeline)).toHaveLength(2);
    await pipeline.stop();
    expect(threadsOf(pipeline)).toHaveLength(0);
  });

  // Node 24 names a worker's OS thread after its `name` option (Node 22 calls every thread "node").
  const namesOsThreads = Number(process.versions.node.split('.')[0]) >= 24;
  (namesOsThreads ? it : it.skip)('names its threads, which is how ps, top and the benchmark tell the stages apart (Node 24 and later)', async () => {
    const pipeline = new WorkerEventPipeline(stores(join(dir, 'read-models.sqlite')), {}, 'worker');
    await pipeline.start();
    const names = threadNames();
    await pipeline.stop();
    // The event-store stage's WAL checkpoints run on a thread of their own (WalCheckpointer), closed with it.
    expect(names).toEqual(expect.arrayContaining([...Object.values(PIPELINE_THREAD_NAMES), WAL_CHECKPOINT_THREAD_NAME]));
    expect(threadNames()).not.toContain(PIPELINE_THREAD_NAMES.events);
    expect(threadNames()).not.toContain(WAL_CHECKPOINT_THREAD_NAME);
  });

  it('ends the event-store stage when the projection stage cannot start, and says why', async () => {
    // A folder where the read-model file should be: the projection stage cannot open it.
    const readModelFile = join(dir, 'read-models.sqlite');
    mkdirSync(join(readModelFile, 'in-the-way'), { recursive: true });
    const errors: string[] = [];
    const pipeline = new WorkerEventPipeline(stores(readModelFile), { onError: (where, error) => errors.push(`${where}: ${error.message}`) }, 'worker');
    await expect(pipeline.start()).rejects.toThrow();
    expect(threadsOf(pipeline)).toHaveLength(0);
    expect(errors.join('\n')).toMatch(/event pipeline start/);
    await pipeline.stop();
  });

  it('stops although a stage has died', async () => {
    for (const dying of [0, 1]) {
      const pipeline = new WorkerEventPipeline(stores(join(dir, `read-models-${dying}.sqlite`)), { onFatal: () => undefined }, 'worker');
      await pipeline.start();
      const threads = threadsOf(pipeline);
      await threads[dying]!.terminate();
      await pipeline.stop();
      expect(threadsOf(pipeline)).toHaveLength(0);
    }
  });
});
