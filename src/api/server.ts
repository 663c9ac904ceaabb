import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { useDisableIntrospection } from '@graphql-yoga/plugin-disable-introspection';
import DataLoader from 'dataloader';
import type { GraphQLSchema } from 'graphql';
import { type Plugin, createYoga } from 'graphql-yoga';
import { useAcceptCheck } from './accept';
import { type BatchSizeRefusal, useBatchSizeBeforeCoercion } from './batch-size';
import { type AuthOptions, type Principal, authenticate } from './auth';
import { useAllowedOrigins } from './cors';
import { useExactJsonNumbers } from './exact-json';
import { useNestingLimit } from './nesting';
import type { ApiContext, LedgerApi } from './schema';

export interface ApiServerOptions {
  schema: GraphQLSchema;
  ledger: LedgerApi;
  jwtKey: Uint8Array;
  production: boolean;
  /** Answers GET /health. */
  health: () => { ready: boolean; [key: string]: unknown };
  /** Requests with a larger body are refused with 413 before they are read. */
  bodyBytesMax?: number;
  /** Bearer tokens valid for longer than this are refused (default 30 days). */
  tokenLifetimeMaxSeconds?: number;
  /** Origins that get CORS headers; none by default (same-origin pages need none). */
  corsOrigins?: readonly string[];
  /** Refuses an oversized executeBatch before its operations are coerced; none: they are coerced first. */
  batchSizeRefusal?: BatchSizeRefusal;
}

/** Request limits shared by the ledger and the benchmark's guarded ceiling. */
export const REQUEST_LIMITS = {
  /** Room for a batch of 1,000 operations with metadata. */
  bodyBytesMax: 6 * 1024 * 1024,
  depthMax: 12,
  aliasesMax: 20,
  directivesMax: 20,
  /** High enough for a full page (first: 500) of transactions with every field. */
  costMax: 50_000,
  /** Literal batches of 1,000 operations are long documents; variables are the better way. */
  tokensMax: 60_000,
} as const;

/** GraphQL Armor with the ledger's limits: depth, aliases, directives, cost, tokens, no field suggestions. */
export function armorPlugins() {
  return [
    EnvelopArmorPlugin({
      maxDepth: { n: REQUEST_LIMITS.depthMax },
      maxAliases: { n: REQUEST_LIMITS.aliasesMax },
      maxDirectives: { n: REQUEST_LIMITS.directivesMax },
      costLimit: { maxCost: REQUEST_LIMITS.costMax },
      maxTokens: { n: REQUEST_LIMITS.tokensMax },
      blockFieldSuggestion: { enabled: true },
    }),
  ];
}

/** Writes a GraphQL-shaped refusal. */
export function refuse(res: ServerResponse, status: number, code: string, message: string): void {
  const body = JSON.stringify({ errors: [{ message, extensions: { code } }] });
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/**
 * What yoga is told about bodies when checkBodySize guards the server: its own limiter is off. The
 * size is settled before yoga (a Content-Length is required and bounded, and Node's parser reads
 * exactly that many bytes, refusing a body also sent chunked). yoga's limiter would wrap every body
 * in a TransformStream and a new Request: ~200-400 µs of CPU per request in a same-process
 * measurement (bench/RESULTS.md, fifth pass), for nothing.
 */
export const YOGA_BODY_OPTIONS = { maxRequestBodySize: false } as const;

/**
 * Checks the body size declared by the request; a body without a declared length is refused
 * (411) so that nothing reads an unbounded stream.
 */
export function checkBodySize(req: IncomingMessage, res: ServerResponse, bodyBytesMax: number): boolean {
  if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return true;
  const declared = req.headers['content-length'];
  if (declared === undefined) {
    refuse(res, 411, 'LENGTH_REQUIRED', 'send the request body with a Content-Length header');
    return false;
  }
  const bytes = Number(declared);
  if (!Number.isSafeInteger(bytes) || bytes > bodyBytesMax) {
    refuse(res, 413, 'PAYLOAD_TOO_LARGE', `the request body may be at most ${bodyBytesMax} bytes, got ${declared}`);
    return false;
  }
  return true;
}

/** The HTTP server: GET /health without a token; /graphql with a valid bearer token only. */
export function createApiServer(options: ApiServerOptions): Server {
  const bodyBytesMax = options.bodyBytesMax ?? REQUEST_LIMITS.bodyBytesMax;
  const yoga = createYoga<Record<string, never>, ApiContext>({
    schema: options.schema,
    graphqlEndpoint: '/graphql',
    graphiql: !options.production,
    landingPage: false,
    // yoga's default CORS echoes any Origin with credentials allowed; ours answers only listed origins.
    cors: false,
    maskedErrors: true,
    ...YOGA_BODY_OPTIONS,
    logging: options.production ? 'warn' : 'info',
    plugins: [
      useAllowedOrigins(options.corsOrigins ?? []),
      useExactJsonNumbers(),
      useNestingLimit(),
      useBearerAuth(options.jwtKey, !options.production, { tokenLifetimeMaxSeconds: options.tokenLifetimeMaxSeconds }),
      // After authentication: a request without a valid token is told so first.
      useAcceptCheck(),
      ...armorPlugins(),
      useBatchSizeBeforeCoercion(options.batchSizeRefusal ?? null),
      ...(options.production ? [useDisableIntrospection()] : []),
    ],
    context: ({ request }): ApiContext => ({
      principal: principals.get(request) ?? ANONYMOUS,
      ledger: options.ledger,
      loaders: lazyLoaders(options.ledger),
    }),
  });

  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if ((path === '/health' || path === '/health/ready' || path === '/health/live') && (req.method === 'GET' || req.method === 'HEAD')) {
      // /health and /health/ready: 200 only when the node takes traffic; /health/live: 200 while the
      // process serves at all (a restart is not the cure for a replica that is catching up).
      const health = options.health();
      const body = JSON.stringify(health);
      const ok = path === '/health/live' ? true : health.ready;
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json; charset=utf-8' });
      res.end(body);
      return;
    }
    if (path !== '/graphql') {
      refuse(res, 404, 'NOT_FOUND', 'not found: the API is at /graphql and the health check at /health');
      return;
    }
    if (!checkBodySize(req, res, bodyBytesMax)) return;
    void yoga(req, res);
  });
}

const principals = new WeakMap<Request, Principal>();
/** Only the GraphiQL page (no data) is served without a token. */
const ANONYMOUS: Principal = { sub: 'anonymous', roles: [] };

/**
 * Refuses every GraphQL request without a valid bearer token with HTTP 401, before parsing.
 * Runs inside yoga: yoga must receive the Node request synchronously, so verification cannot
 * happen in front of it.
 */
export function useBearerAuth(jwtKey: Uint8Array, graphiqlPageOpen: boolean, authOptions: AuthOptions = {}): Plugin {
  return {
    async onRequest({ request, url, endResponse }) {
      const graphiqlPage = request.method === 'GET' && !url.searchParams.has('query') && (request.headers.get('accept') ?? '').includes('text/html');
      if (graphiqlPageOpen && graphiqlPage) return;
      const auth = await authenticate(request.headers.get('authorization'), jwtKey, authOptions);
      if (!auth.ok) {
        endResponse(
          new Response(JSON.stringify({ errors: [{ message: auth.reason, extensions: { code: 'UNAUTHENTICATED' } }] }), {
            status: 401,
            headers: { 'content-type': 'application/json; charset=utf-8', 'www-authenticate': 'Bearer' },
          }),
        );
        return;
      }
      principals.set(request, auth.principal);
    },
  };
}

/** Per-request loaders, made on first use: most mutations never read a read model. */
export function lazyLoaders(ledger: LedgerApi): ApiContext['loaders'] {
  let accounts: ApiContext['loaders']['accounts'] | undefined;
  let transactions: ApiContext['loaders']['transactions'] | undefined;
  return {
    get accounts() {
      accounts ??= new DataLoader((ids: readonly string[]) => ledger.readModels.getAccounts(ids));
      return accounts;
    },
    get transactions() {
      transactions ??= new DataLoader((ids: readonly string[]) => ledger.readModels.getTransactions(ids));
      return transactions;
    },
  };
}
