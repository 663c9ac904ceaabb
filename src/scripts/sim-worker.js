// Worker-thread entry for the simulation pool: registers the TypeScript loader, then runs seeds.
// Plain JavaScript so that it loads the same way under node, tsx and jest.
require('tsx/cjs/api').register();
require('./sim-worker.ts');
