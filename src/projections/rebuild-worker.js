// Worker-thread entry: registers the TypeScript loader (the same one `npm start` uses), then reads and
// projects for rebuildProjections. Plain JavaScript so that it loads the same way under node, tsx and jest.
require('tsx/cjs/api').register();
require('./rebuild-worker.ts');
