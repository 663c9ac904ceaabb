import { type ChildProcess, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoadReport } from './load';

/** What the benchmark scripts (run.ts, cluster.ts) share: settings, child processes and cleanup, formatting. */

export function intFromEnv(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer of at least ${min}, got "${raw}"`);
  return value;
}

// ---- child processes and cleanup -----------------------------------------------------------

export const children = new Set<ChildProcess>();
export const tempDirs = new Set<string>();

export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Last-resort cleanup, synchronous so that it also runs from process 'exit'. */
export function killEverythingNow(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

process.on('exit', killEverythingNow);

export function makeTempDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `ledger-bench-${label}-`));
  tempDirs.add(dir);
  return dir;
}

export const CLOCK_TICKS_PER_SECOND = (() => {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
})();

export function failures(report: LoadReport): number {
  const { ok: _ok, ...failed } = report.verdicts;
  return Object.values(failed).reduce((a, b) => a + b, 0) + report.socketErrors + report.timeouts;
}

export function fmt(value: number, digits = 0): string {
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
export function pct(ratio: number): string {
  return `${(ratio * 100).toFixed(1)}%`;
}
export function verdict(pass: boolean): string {
  return pass ? 'PASS' : 'MISS';
}
