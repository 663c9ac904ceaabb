import { z } from 'zod';
import { isOrigin } from './api/cors';
import { DEFAULT_RULES, type LedgerRules } from './domain/rules';
import { DEFAULT_FEED_LIMITS, type FeedLimits } from './feeds/feed-limits';
import { APPEND_INTERVAL_MS_DEFAULT } from './eventstore/ledger-event-publisher';
import { MONGO_BULK_CHUNK_DEFAULT, MONGO_BULK_CHUNK_MAX } from './projections/mongo-read-model-store';

const digits = (name: string) =>
  z
    .string()
    .regex(/^[0-9]{1,19}$/, `${name} must be a whole number of minor units (digits only)`)
    .transform((value) => BigInt(value));

const urlLike = (name: string, schemes: string[]) =>
  z.string().refine((value) => schemes.some((s) => value.startsWith(`${s}://`)), `${name} must start with ${schemes.map((s) => `${s}://`).join(' or ')}`);

const positiveInt = (name: string) => z.coerce.number().int(`${name} must be a whole number`).min(1, `${name} must be at least 1`);

const EnvSchema = z.object({
  PORT: z.coerce.number().int('PORT must be an integer').min(0).max(65535).default(4000),
  HOST: z.string().min(1).default('0.0.0.0'),
  LEDGER_DATA_DIR: z.string().min(1).default('./data'),
  LEDGER_NODE_ID: z.string().regex(/^[A-Za-z0-9_-]{1,50}$/, 'LEDGER_NODE_ID must be 1 to 50 characters of A-Z a-z 0-9 _ -').default('node-1'),
  EVENTSTORE_URL: urlLike('EVENTSTORE_URL', ['esdb', 'esdb+discover']).optional(),
  MONGODB_URL: urlLike('MONGODB_URL', ['mongodb', 'mongodb+srv']).optional(),
  EVENTSTORE_APPEND_BYTES_MAX: z.coerce
    .number()
    .int('EVENTSTORE_APPEND_BYTES_MAX must be a whole number of bytes')
    .min(1024, 'EVENTSTORE_APPEND_BYTES_MAX must be at least 1024')
    .optional(),
  EVENTSTORE_APPEND_INTERVAL_MS: z.coerce
    .number()
    .int('EVENTSTORE_APPEND_INTERVAL_MS must be a whole number of milliseconds')
    .min(0, 'EVENTSTORE_APPEND_INTERVAL_MS must be at least 0')
    .max(1000, 'EVENTSTORE_APPEND_INTERVAL_MS must be at most 1000')
    .default(APPEND_INTERVAL_MS_DEFAULT),
  LEDGER_MONGODB_BULK_CHUNK: z.coerce
    .number()
    .int('LEDGER_MONGODB_BULK_CHUNK must be an integer')
    .min(1, 'LEDGER_MONGODB_BULK_CHUNK must be at least 1')
    .max(MONGO_BULK_CHUNK_MAX, `LEDGER_MONGODB_BULK_CHUNK must be at most ${MONGO_BULK_CHUNK_MAX}`)
    .default(MONGO_BULK_CHUNK_DEFAULT),
  LEDGER_JWT_SECRET: z.string().min(32, 'LEDGER_JWT_SECRET must be at least 32 characters').optional(),
  LEDGER_LARGE_TX_THRESHOLD: digits('LEDGER_LARGE_TX_THRESHOLD').optional(),
  LEDGER_MAX_AMOUNT: digits('LEDGER_MAX_AMOUNT')
    .refine((value) => value > 0n, 'LEDGER_MAX_AMOUNT must be greater than 0')
    .optional(),
  LEDGER_FEED_SUBSCRIPTIONS_PER_CONNECTION_MAX: positiveInt('LEDGER_FEED_SUBSCRIPTIONS_PER_CONNECTION_MAX').default(DEFAULT_FEED_LIMITS.subscriptionsPerConnectionMax),
  LEDGER_FEED_CONNECTIONS_PER_TOKEN_MAX: positiveInt('LEDGER_FEED_CONNECTIONS_PER_TOKEN_MAX').default(DEFAULT_FEED_LIMITS.connectionsPerTokenMax),
  LEDGER_FEED_BUFFER_EVENTS_MAX: positiveInt('LEDGER_FEED_BUFFER_EVENTS_MAX').default(DEFAULT_FEED_LIMITS.queuedEventsMax),
  LEDGER_FEED_BUFFER_BYTES_MAX: positiveInt('LEDGER_FEED_BUFFER_BYTES_MAX').default(DEFAULT_FEED_LIMITS.queuedBytesMax),
  LEDGER_AT_LEAST_WAITS_MAX: z.coerce.number().int('LEDGER_AT_LEAST_WAITS_MAX must be an integer').min(1).max(10_000_000).default(50_000),
  LEDGER_AT_LEAST_WAITS_PER_REQUEST_MAX: z.coerce.number().int('LEDGER_AT_LEAST_WAITS_PER_REQUEST_MAX must be an integer').min(1).max(1000).default(4),
  LEDGER_PROJECTION_BACKLOG_EVENTS_MAX: z.coerce
    .number()
    .int('LEDGER_PROJECTION_BACKLOG_EVENTS_MAX must be a whole number of events')
    .min(0, 'LEDGER_PROJECTION_BACKLOG_EVENTS_MAX must be 0 (no bound) or more')
    .default(10_000),
  LEDGER_TOKEN_LIFETIME_MAX_SECONDS: z.coerce
    .number()
    .int('LEDGER_TOKEN_LIFETIME_MAX_SECONDS must be a whole number of seconds')
    .min(60, 'LEDGER_TOKEN_LIFETIME_MAX_SECONDS must be at least 60')
    .max(366 * 24 * 3600, 'LEDGER_TOKEN_LIFETIME_MAX_SECONDS must be at most a year (31622400)')
    .default(30 * 24 * 3600),
  LEDGER_CORS_ORIGINS: z
    .string()
    .transform((value) => value.split(',').map((origin) => origin.trim()).filter((origin) => origin.length > 0))
    .refine((origins) => origins.every(isOrigin), 'LEDGER_CORS_ORIGINS must be a comma-separated list of origins such as https://app.example.com (scheme, host, optional port; no path, no *)')
    .optional(),
  LEDGER_PEERS: z.string().optional(),
  LEDGER_RAFT_PORT: z.coerce.number().int('LEDGER_RAFT_PORT must be an integer').min(0).max(65535, 'LEDGER_RAFT_PORT must be at most 65535').optional(),
  LEDGER_CLUSTER_SECRET: z.string().min(32, 'LEDGER_CLUSTER_SECRET must be at least 32 characters').optional(),
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/** Every environment variable the configuration reads (the compose-file test checks against it). */
export const CONFIG_ENV_NAMES: readonly string[] = Object.keys(EnvSchema.shape);

/** One member of a Raft cluster: its id and the address the other replicas dial. */
export interface ClusterPeer {
  id: string;
  host: string;
  port: number;
}

export interface ClusterConfig {
  /** Every member, this node included, in the order given. */
  peers: ClusterPeer[];
  /** The port this node's Raft transport listens on (default: the port of its own entry in LEDGER_PEERS). */
  raftPort: number;
  /** Shared by the members; authenticates the handshake and every frame. */
  secret: string;
}

export interface LedgerConfig {
  port: number;
  host: string;
  dataDir: string;
  nodeId: string;
  eventStoreUrl: string | null;
  mongoDbUrl: string | null;
  /** Bytes of event data and metadata per event-store append (null: the default, under EventStoreDB's 1 MiB MaxAppendSize). */
  eventStoreAppendBytesMax: number | null;
  /** Least time between the starts of two event-store drains under load (group commit); 0: none. */
  eventStoreAppendIntervalMs: number;
  /** Write statements per bulk command to MongoDB. */
  mongoBulkChunk: number;
  jwtSecret: string | null;
  production: boolean;
  logLevel: string;
  rules: LedgerRules;
  /** Live feeds over graphql-ws. */
  feeds: FeedLimits;
  /** `atLeast` waits pending at once, over all requests; past it a retryable OVERLOADED error. */
  atLeastWaitsMax: number;
  /** Distinct `atLeast` positions one request may wait for. */
  atLeastWaitsPerRequestMax: number;
  /**
   * Events applied but not yet in the read models beyond which a new command waits (up to 10 s, then
   * a retryable OVERLOADED) before it is proposed: what keeps the read models current under sustained
   * load. 0: no bound (only the event-store backlog of 1,000,000 events refuses commands).
   */
  projectionBacklogEventsMax: number;
  /** Bearer tokens must carry exp, and may be valid for at most this long. */
  tokenLifetimeMaxSeconds: number;
  /** Browser origins allowed to call the API cross-origin; none by default. */
  corsOrigins: string[];
  /** Null: the single-node log (no LEDGER_PEERS). */
  cluster: ClusterConfig | null;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Reads the configuration from the environment; a bad setting throws a ConfigError naming it. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): LedgerConfig {
  const blankToUndefined = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === '' ? undefined : v]));
  const parsed = EnvSchema.safeParse(blankToUndefined);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.') || 'environment'}: ${issue.message}`));
  }
  const e = parsed.data;
  const cluster = clusterConfig(e.LEDGER_NODE_ID, e.LEDGER_PEERS, e.LEDGER_RAFT_PORT, e.LEDGER_CLUSTER_SECRET);
  if (cluster && e.LEDGER_JWT_SECRET === undefined) {
    // Each replica would otherwise make up its own, and a token would work on one replica only.
    throw new ConfigError(['LEDGER_JWT_SECRET is required with LEDGER_PEERS (the same on every member, so that a token works on any replica)']);
  }
  return {
    cluster,
    port: e.PORT,
    host: e.HOST,
    dataDir: e.LEDGER_DATA_DIR,
    nodeId: e.LEDGER_NODE_ID,
    eventStoreUrl: e.EVENTSTORE_URL ?? null,
    mongoDbUrl: e.MONGODB_URL ?? null,
    eventStoreAppendBytesMax: e.EVENTSTORE_APPEND_BYTES_MAX ?? null,
    eventStoreAppendIntervalMs: e.EVENTSTORE_APPEND_INTERVAL_MS,
    mongoBulkChunk: e.LEDGER_MONGODB_BULK_CHUNK,
    jwtSecret: e.LEDGER_JWT_SECRET ?? null,
    production: e.NODE_ENV === 'production',
    logLevel: e.LOG_LEVEL,
    atLeastWaitsMax: e.LEDGER_AT_LEAST_WAITS_MAX,
    atLeastWaitsPerRequestMax: e.LEDGER_AT_LEAST_WAITS_PER_REQUEST_MAX,
    projectionBacklogEventsMax: e.LEDGER_PROJECTION_BACKLOG_EVENTS_MAX,
    tokenLifetimeMaxSeconds: e.LEDGER_TOKEN_LIFETIME_MAX_SECONDS,
    corsOrigins: e.LEDGER_CORS_ORIGINS ?? [],
    rules: {
      ...DEFAULT_RULES,
      amountMaxMinor: e.LEDGER_MAX_AMOUNT ?? DEFAULT_RULES.amountMaxMinor,
      largeTransactionThresholdMinor: e.LEDGER_LARGE_TX_THRESHOLD ?? DEFAULT_RULES.largeTransactionThresholdMinor,
    },
    feeds: {
      subscriptionsPerConnectionMax: e.LEDGER_FEED_SUBSCRIPTIONS_PER_CONNECTION_MAX,
      connectionsPerTokenMax: e.LEDGER_FEED_CONNECTIONS_PER_TOKEN_MAX,
      queuedEventsMax: e.LEDGER_FEED_BUFFER_EVENTS_MAX,
      queuedBytesMax: e.LEDGER_FEED_BUFFER_BYTES_MAX,
    },
  };
}

const PEER = /^([A-Za-z0-9_-]{1,50})=([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):([0-9]{1,5})$/;

/** LEDGER_PEERS is `id=host:port,...` listing every member, this node (LEDGER_NODE_ID) included. */
function clusterConfig(nodeId: string, peersText: string | undefined, raftPort: number | undefined, secret: string | undefined): ClusterConfig | null {
  if (peersText === undefined) {
    const stray = [raftPort !== undefined && 'LEDGER_RAFT_PORT', secret !== undefined && 'LEDGER_CLUSTER_SECRET'].filter(Boolean);
    if (stray.length > 0) throw new ConfigError([`${stray.join(' and ')} set without LEDGER_PEERS: set LEDGER_PEERS to run a cluster, or unset ${stray.join(' and ')}`]);
    return null;
  }
  const problems: string[] = [];
  const peers: ClusterPeer[] = [];
  for (const item of peersText.split(',').map((part) => part.trim()).filter((part) => part.length > 0)) {
    const match = PEER.exec(item);
    const port = match ? Number(match[3]) : NaN;
    if (!match || port < 1 || port > 65535) {
      problems.push(`LEDGER_PEERS: "${item}" is not id=host:port (id of A-Z a-z 0-9 _ -, port 1 to 65535)`);
      continue;
    }
    const host = match[2]!.replace(/^\[(.*)\]$/, '$1');
    if (peers.some((peer) => peer.id === match[1])) problems.push(`LEDGER_PEERS: node id ${match[1]} is listed twice`);
    peers.push({ id: match[1]!, host, port });
  }
  if (problems.length === 0 && peers.length < 3) problems.push(`LEDGER_PEERS: a cluster needs at least 3 members (got ${peers.length}); leave LEDGER_PEERS unset for a single node`);
  const self = peers.find((peer) => peer.id === nodeId);
  if (problems.length === 0 && !self) problems.push(`LEDGER_PEERS: this node's id LEDGER_NODE_ID=${nodeId} is not among the members (${peers.map((p) => p.id).join(', ')})`);
  if (secret === undefined) problems.push('LEDGER_CLUSTER_SECRET is required with LEDGER_PEERS (at least 32 characters, the same on every member)');
  if (problems.length > 0) throw new ConfigError(problems);
  return { peers, raftPort: raftPort ?? self!.port, secret: secret! };
}
