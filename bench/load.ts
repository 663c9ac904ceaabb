/**
 * The load generator, run in its own process (forked by bench/run.ts) so that it never shares an
 * event loop with the server it measures. It receives one LoadRequest over IPC, drives the server
 * with autocannon, checks every response and sends back one LoadReport.
 */
import autocannon from 'autocannon';
import { type ResponseVerdict, type WorkloadSpec, buildBodies, classifyResponse } from './workload';

export interface LoadRequest {
  /** e.g. http://127.0.0.1:4000 */
  origin: string;
  /**
   * Several servers instead of one (the replicas of a cluster): the connections are split evenly
   * over them, one autocannon instance each, and the report merges them (see mergeResults).
   */
  origins?: string[];
  token: string | null;
  spec: WorkloadSpec;
  connections: number;
  durationSeconds: number;
  /** Every n-th response is also parsed and its shape checked. */
  thoroughEvery: number;
}

export interface LoadReport {
  durationSeconds: number;
  /** Responses that were 2xx, free of GraphQL errors and a success of the expected type. */
  successes: number;
  successesPerSecond: number;
  requestsTotal: number;
  /** autocannon's own average of its per-second samples. */
  requestsPerSecondAverage: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; average: number };
  verdicts: Record<ResponseVerdict, number>;
  non2xx: number;
  socketErrors: number;
  timeouts: number;
  /** A few failing responses, for the report. */
  failureSamples: string[];
}

/** What the load generator tells the orchestrator: when the measured load starts, then the report. */
export type LoadMessage = { type: 'started' } | { type: 'report'; report: LoadReport } | { type: 'failed'; error: string };

const FAILURE_SAMPLES_MAX = 5;

async function runLoad(request: LoadRequest, onStarted: () => void): Promise<LoadReport> {
  const bodies = buildBodies(request.spec);
  const verdicts: Record<ResponseVerdict, number> = { ok: 0, 'http-error': 0, 'graphql-error': 0, 'domain-error': 0, 'wrong-shape': 0 };
  const failureSamples: string[] = [];
  let next = 0;
  let responses = 0;
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/graphql-response+json, application/json;q=0.9',
  };
  if (request.token) headers.authorization = `Bearer ${request.token}`;

  const origins = request.origins && request.origins.length > 0 ? request.origins : [request.origin];
  if (request.connections < origins.length) throw new Error(`${request.connections} connections cannot be spread over ${origins.length} servers`);
  onStarted();
  const instances = origins.map((origin, i) => autocannon({
    url: origin,
    // Even split; the first ones take the remainder.
    connections: Math.floor(request.connections / origins.length) + (i < request.connections % origins.length ? 1 : 0),
    duration: request.durationSeconds,
    pipelining: 1,
    timeout: 30,
    requests: [
      {
        method: 'POST',
        path: '/graphql',
        headers,
        // A global cursor: the connections take successive bodies, so they do not all send the same.
        setupRequest: (req) => {
          const body = bodies[next]!;
          next = (next + 1) % bodies.length;
          return { ...req, body };
        },
        onResponse: (status, body) => {
          responses += 1;
          const verdict = classifyResponse(status, body, request.spec.workload, responses % request.thoroughEvery === 0);
          verdicts[verdict] += 1;
          if (verdict !== 'ok' && failureSamples.length < FAILURE_SAMPLES_MAX) failureSamples.push(`${verdict} ${status}: ${body.slice(0, 400)}`);
        },
      },
    ],
  }));
  const result = mergeResults(await Promise.all(instances));
  const durationSeconds = result.duration;
  return {
    durationSeconds,
    successes: verdicts.ok,
    successesPerSecond: verdicts.ok / durationSeconds,
    requestsTotal: result.requests.total,
    requestsPerSecondAverage: result.requests.average,
    latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max, average: result.latency.average },
    verdicts,
    non2xx: result.non2xx,
    socketErrors: result.errors,
    timeouts: result.timeouts,
    failureSamples,
  };
}

type AutocannonResult = autocannon.Result;

/**
 * One result from several instances run side by side: counts add up; latency p50 and average are
 * the request-weighted means and p90, p99 and max the highest of the instances (an upper bound of the
 * true merged percentile, as autocannon gives percentiles, not histograms).
 */
function mergeResults(results: AutocannonResult[]): Pick<AutocannonResult, 'duration' | 'non2xx' | 'errors' | 'timeouts'> & {
  requests: { total: number; average: number };
  latency: { p50: number; p90: number; p99: number; max: number; average: number };
} {
  const total = results.reduce((sum, r) => sum + r.requests.total, 0);
  const weighted = (pick: (r: AutocannonResult) => number) =>
    total === 0 ? 0 : results.reduce((sum, r) => sum + pick(r) * r.requests.total, 0) / total;
  const highest = (pick: (r: AutocannonResult) => number) => Math.max(...results.map(pick));
  return {
    duration: highest((r) => r.duration),
    non2xx: results.reduce((sum, r) => sum + r.non2xx, 0),
    errors: results.reduce((sum, r) => sum + r.errors, 0),
    timeouts: results.reduce((sum, r) => sum + r.timeouts, 0),
    requests: { total, average: results.reduce((sum, r) => sum + r.requests.average, 0) },
    latency: {
      p50: weighted((r) => r.latency.p50),
      p90: highest((r) => r.latency.p90),
      p99: highest((r) => r.latency.p99),
      max: highest((r) => r.latency.max),
      average: weighted((r) => r.latency.average),
    },
  };
}

if (require.main === module) {
  if (!process.send) {
    console.error('bench/load.ts is started by bench/run.ts over IPC');
    process.exit(2);
  }
  process.once('message', (message) => {
    runLoad(message as LoadRequest, () => process.send!({ type: 'started' } satisfies LoadMessage)).then(
      (report) => process.send!({ type: 'report', report } satisfies LoadMessage, () => process.exit(0)),
      (error: unknown) =>
        process.send!({ type: 'failed', error: error instanceof Error ? (error.stack ?? error.message) : String(error) } satisfies LoadMessage, () => process.exit(1)),
    );
  });
  // The orchestrator going away ends the load too.
  process.once('disconnect', () => process.exit(1));
}
