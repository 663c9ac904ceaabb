'use strict';
// Worker-thread entry used by bench/ledger-variant.ts: the same patches in this thread, then the
// worker script the ledger asked for (the last argv entry).
require('tsx/cjs/api').register();
require('./ledger-variant.ts').applyVariantPatches();
require(process.argv[process.argv.length - 1]);
