/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`): self time per function and per area
 * (a package, a src/ module, Node internals, GC). Usable as a module (bench/run.ts) or on its own:
 *   npx tsx bench/cpu-profile-summary.ts <file.cpuprofile> [top]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  selfMs: number;
  percent: number;
}
export interface ProfileSummary {
  totalMs: number;
  /** Share of the profile the thread was idle (waiting for I/O). */
  idlePercent: number;
  byArea: SelfTime[];
  byFunction: SelfTime[];
  /** Time with the function on the stack (its callees included), for the project's own functions (src/). */
  srcInclusive: SelfTime[];
}

/** Where a script lives, in the words a reader of this repository uses. */
export function areaOf(url: string): string {
  if (url === '') return '';
  const nodeModules = url.lastIndexOf('/node_modules/');
  if (nodeModules >= 0) {
    const rest = url.slice(nodeModules + '/node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) {
    const parts = url.slice('node:'.length).split('/');
    return `node:${parts.slice(0, parts[0] === 'internal' ? 2 : 1).join('/')}`;
  }
  const src = url.lastIndexOf('/src/');
  if (src >= 0) return url.slice(src + 1).replace(/\.[cm]?[jt]s$/, '');
  const bench = url.lastIndexOf('/bench/');
  if (bench >= 0) return url.slice(bench + 1).replace(/\.[cm]?[jt]s$/, '');
  return url;
}

export function summarizeCpuProfile(path: string, top = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parentOf.set(child, node.id);
  }
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time before sample i; attribute it to the sample that ends it (V8's convention).
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  }
  // A native function (no script) counts toward the area of the script that called it.
  const areaOfNode = (id: number): string => {
    let current: number | undefined = id;
    while (current !== undefined) {
      const node = byId.get(current)!;
      const area = areaOf(node.callFrame.url);
      if (area) return current === id ? area : `${area} (native calls)`;
      if (node.callFrame.functionName.startsWith('(')) return node.callFrame.functionName;
      current = parentOf.get(current);
    }
    return '(native)';
  };
  const areas = new Map<string, number>();
  const functions = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    totalUs += us;
    if (node.callFrame.functionName === '(idle)') idleUs += us;
    const area = areaOfNode(id);
    areas.set(area, (areas.get(area) ?? 0) + us);
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url ? ` ${areaOf(url)}:${lineNumber + 1}` : area.startsWith('(') ? '' : ` [native, from ${area.replace(' (native calls)', '')}]`;
    const name = `${functionName || '(anonymous)'}${where}`;
    functions.set(name, (functions.get(name) ?? 0) + us);
  }
  // Inclusive: each sample counts once for every distinct src/ function on its stack.
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const seen = new Set<string>();
    for (let current: number | undefined = id; current !== undefined; current = parentOf.get(current)) {
      const { functionName, url } = byId.get(current)!.callFrame;
      const area = areaOf(url);
      if (!area.startsWith('src/')) continue;
      const name = `${functionName || '(anonymous)'} ${area}`;
      if (seen.has(name)) continue;
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + us);
    }
  }
  const rank = (entries: Map<string, number>) =>
    [...entries]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, selfMs: us / 1000, percent: totalUs === 0 ? 0 : (100 * us) / totalUs }));
  return { totalMs: totalUs / 1000, idlePercent: totalUs === 0 ? 0 : (100 * idleUs) / totalUs, byArea: rank(areas), byFunction: rank(functions), srcInclusive: rank(inclusive) };
}

export function formatSummary(summary: ProfileSummary): string {
  const line = (s: SelfTime) => `  ${s.percent.toFixed(1).padStart(5)}%  ${s.selfMs.toFixed(0).padStart(7)} ms  ${s.name}`;
  return [
    `total ${summary.totalMs.toFixed(0)} ms sampled, idle ${summary.idlePercent.toFixed(1)}%`,
    'self time by area:',
    ...summary.byArea.map(line),
    'self time by function:',
    ...summary.byFunction.map(line),
    'inclusive time of src/ functions (callees included):',
    ...summary.srcInclusive.map(line),
  ].join('\n');
}

if (require.main === module) {
  const [path, top] = process.argv.slice(2);
  if (!path) {
    console.error('usage: tsx bench/cpu-profile-summary.ts <file.cpuprofile> [top]');
    process.exit(2);
  }
  console.log(formatSummary(summarizeCpuProfile(path, top ? Number(top) : 25)));
}
