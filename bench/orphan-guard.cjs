'use strict';
/**
 * Preloaded into every server the bench starts (`node --require ./bench/orphan-guard.cjs ...`; plain
 * JavaScript so that it needs no loader): if the bench dies without stopping its children (SIGKILL,
 * crash), the server notices that its parent changed and stops itself with SIGTERM, so that no
 * orphaned server keeps a port and a core.
 */
const parentPid = process.ppid;
setInterval(() => {
  if (process.ppid !== parentPid) process.kill(process.pid, 'SIGTERM');
}, 500).unref();
