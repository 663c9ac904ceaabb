import type { IncomingMessage, Server } from 'node:http';
import {
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  GraphQLError,
  type GraphQLSchema,
  Kind,
  type OperationDefinitionNode,
  OperationTypeNode,
  createSourceEventStream,
  execute,
  getOperationAST,
  parse,
  specifiedRules,
  validate,
  visit,
} from 'graphql';
import { costLimitRule } from '@escape.tech/graphql-armor-cost-limit';
import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { CloseCode, type Context, GRAPHQL_TRANSPORT_WS_PROTOCOL, handleProtocols, makeServer } from 'graphql-ws';
import { decodeJwt } from 'jose';
import { type WebSocket, WebSocketServer } from 'ws';
import type { FeedHub, FeedTopic } from '../../feeds/feed-hub';
import type { FeedLimits } from '../../feeds/feed-limits';
import { ConnectionBudget, FeedSubscription } from '../../feeds/feed-subscription';
import { type Principal, authenticate } from '../auth';
import { exactJsonReviver } from '../exact-json';
import type { LedgerApi } from '../schema';
import { REQUEST_LIMITS, lazyLoaders } from '../server';
import { type FeedOpener, forbiddenToSubscribe, maySubscribe } from './subscription-type';
import { TIMER_DELAY_MAX_MS } from '../../timers';

/**
 * Close codes, chosen so that the standard graphql-ws client does the right thing: it reconnects
 * after 1012 and 1013 (and 4403, with connectionParams evaluated again, so a fresh token), and gives
 * up after 4400, 4401, 4409, 4429, 4500 and other 1xxx codes.
 */
export const FEED_CLOSE = {
  /** Graceful shutdown: "Service Restart". */
  restart: 1012,
  /** The client did not keep up, or the read models were too far behind for a catch-up: "Try Again Later". */
  tryAgainLater: 1013,
  /** Missing, invalid or expired token; too many connections for one token. */
  forbidden: CloseCode.Forbidden,
  /** A binary frame: graphql-ws messages are JSON text (RFC 6455 "Unsupported Data"). */
  unsupportedData: 1003,
  /** A well-formed message of a type only the server sends (next, error, connection_ack). */
  badRequest: CloseCode.BadRequest,
} as const;

/**
 * Bugs the graphql-ws frame fuzzer must catch (test/api/fuzz-ws.test.ts switches them on); never
 * set outside tests.
 */
export const plantedFeedBugsForTests = {
  /** Parse frames with plain JSON.parse again: 1e3 and 1000.0 pass as Amounts. */
  plainJsonFrames: false,
  /** Skip the per-connection subscription limit. */
  noSubscriptionLimit: false,
};

/** The HTTP API's request limits (GraphQL Armor), for subscribe messages: yoga's plugins do not see WebSocket traffic. */
const SUBSCRIBE_RULES = [
  ...specifiedRules,
  maxDepthRule({ n: REQUEST_LIMITS.depthMax, exposeLimits: true }),
  maxAliasesRule({ n: REQUEST_LIMITS.aliasesMax, exposeLimits: true }),
  costLimitRule({ maxCost: REQUEST_LIMITS.costMax, exposeLimits: true }),
];

/** How long a catch-up waits for the read models to reach the hand-over position. */
const CATCH_UP_WAIT_MS = 30_000;
/** The largest client message (a subscribe with its query and variables). */
const MESSAGE_BYTES_MAX = 64 * 1024;
/** Ping every this many ms; a client that does not answer within the next interval is dropped. */
const KEEP_ALIVE_MS = 12_000;
/** A close reason is at most 123 bytes (RFC 6455). */
const CLOSE_REASON_BYTES_MAX = 123;
/** How long shutdown waits for clients to answer the close before dropping them. */
const SHUTDOWN_WAIT_MS = 2_000;

export interface FeedServerOptions {
  server: Server;
  schema: GraphQLSchema;
  ledger: LedgerApi;
  hub: FeedHub;
  jwtKey: Uint8Array;
  /** Tokens must carry exp and be valid for at most this long (as over HTTP). */
  tokenLifetimeMaxSeconds?: number;
  limits: FeedLimits;
  largeThresholdMinor: bigint;
  production: boolean;
}

export interface FeedServerStats {
  connections: number;
  subscriptions: number;
  queuedEvents: number;
  queuedBytes: number;
  /** Connections closed with 1013 since start (slow consumers, catch-ups that timed out). */
  closedTryAgainLater: number;
}

export interface FeedServer {
  stats(): FeedServerStats;
  /** Closes every connection with 1012 (clients reconnect and resume) and stops accepting new ones. */
  close(): Promise<void>;
}

interface Connection {
  socket: WebSocket;
  request: IncomingMessage;
  principal: Principal | null;
  token: string | null;
  budget: ConnectionBudget;
  expiryTimer: NodeJS.Timeout | null;
}

type Extra = { connection: Connection };

/** A result executed once per event and cohort, with its JSON, which send() splices into every message. */
const SHARED_JSON = Symbol('sharedJson');
type SharedResult = ExecutionResult & { [SHARED_JSON]: string };
const SHARED_MARK = '\u0001shared:';
const SHARED_MARK_JSON = JSON.stringify(SHARED_MARK).slice(0, -1);

/**
 * graphql-ws on the HTTP server's port and path, with the ledger's own adapter over `ws` (so that it
 * controls authentication, close codes, outbound buffers and shared serialisation). Live events
 * come from the FeedHub (the applied log); with `after`, a catch-up from the read models first.
 */
export function attachFeedServer(options: FeedServerOptions): FeedServer {
  const { hub, limits } = options;
  const wss = new WebSocketServer({ server: options.server, path: '/graphql', maxPayload: MESSAGE_BYTES_MAX, handleProtocols });
  const connectionsPerToken = new Map<string, number>();
  const connections = new Set<Connection>();
  const sharedTexts = new Map<string, string>();
  let sharedSeq = 0;
  let closing = false;
  let closedTryAgainLater = 0;

  const closeSocket = (socket: WebSocket, code: number, reason: string) => {
    if (socket.readyState === socket.OPEN || socket.readyState === socket.CONNECTING) socket.close(code, limitReason(reason));
  };

  const server = makeServer<Record<string, unknown> | undefined, Extra>({
    schema: options.schema,
    connectionInitWaitTimeout: 3_000,
    // Numbers in frames are judged by their source text, as in HTTP bodies: 1e3 is no Amount.
    jsonMessageReviver(key, value, context?: { source?: string }) {
      if (plantedFeedBugsForTests.plainJsonFrames) return value;
      return exactJsonReviver.call(this, key, value, context);
    },
    jsonMessageReplacer(key, value) {
      if (key === 'payload' && value !== null && typeof value === 'object' && SHARED_JSON in value) {
        sharedSeq = (sharedSeq + 1) % Number.MAX_SAFE_INTEGER;
        const id = String(sharedSeq);
        sharedTexts.set(id, (value as SharedResult)[SHARED_JSON]);
        return `${SHARED_MARK}${id}`;
      }
      return value;
    },
    async onConnect(ctx) {
      const connection = ctx.extra.connection;
      const params = ctx.connectionParams ?? {};
      const header = typeof params.authorization === 'string' ? params.authorization : typeof params.Authorization === 'string' ? params.Authorization : null;
      if (header === null) {
        closeSocket(connection.socket, FEED_CLOSE.forbidden, 'send { "authorization": "Bearer <JWT>" } in connection_init');
        return false;
      }
      const auth = await authenticate(header, options.jwtKey, { tokenLifetimeMaxSeconds: options.tokenLifetimeMaxSeconds });
      if (!auth.ok) {
        closeSocket(connection.socket, FEED_CLOSE.forbidden, auth.reason);
        return false;
      }
      const token = header.trim().split(/\s+/)[1]!;
      const open = connectionsPerToken.get(token) ?? 0;
      if (open >= limits.connectionsPerTokenMax) {
        closeSocket(connection.socket, FEED_CLOSE.forbidden, `too many connections for this token (at most ${limits.connectionsPerTokenMax})`);
        return false;
      }
      connectionsPerToken.set(token, open + 1);
      connection.token = token;
      connection.principal = auth.principal;
      armExpiry(connection, decodeJwt(token).exp);
      return { sub: auth.principal.sub, roles: auth.principal.roles };
    },
    async onSubscribe(ctx, id, payload) {
      const connection = ctx.extra.connection;
      const principal = connection.principal!;
      if (tokenExpired(connection.token!)) {
        closeSocket(connection.socket, FEED_CLOSE.forbidden, 'token expired: reconnect with a fresh token');
        return [new GraphQLError('the token has expired', { extensions: { code: 'UNAUTHENTICATED' } })];
      }
      // ctx.subscriptions already holds this one.
      const active = Object.keys(ctx.subscriptions).length;
      if (active > limits.subscriptionsPerConnectionMax && !plantedFeedBugsForTests.noSubscriptionLimit) {
        return [
          new GraphQLError(`at most ${limits.subscriptionsPerConnectionMax} subscriptions per connection; complete one or open another connection`, {
            extensions: { code: 'LIMIT_EXCEEDED' },
          }),
        ];
      }
      let document: DocumentNode;
      try {
        document = parse(payload.query, { maxTokens: REQUEST_LIMITS.tokensMax });
      } catch (error) {
        return [error instanceof GraphQLError ? error : new GraphQLError(String(error))];
      }
      let errors: readonly GraphQLError[];
      try {
        errors = validate(options.schema, document, SUBSCRIBE_RULES);
      } catch (error) {
        // The Armor rules throw their refusal.
        if (error instanceof GraphQLError) return [error];
        throw error;
      }
      if (errors.length > 0) return [...errors];
      const operation = getOperationAST(document, payload.operationName);
      if (!operation) return [new GraphQLError('the document must contain exactly one operation, or name one with operationName')];
      if (operation.operation !== OperationTypeNode.SUBSCRIPTION) {
        return [new GraphQLError('only subscriptions are served over graphql-ws; send queries and mutations over HTTP POST to /graphql', { extensions: { code: 'BAD_REQUEST' } })];
      }
      if (!maySubscribe(principal)) return [forbiddenToSubscribe(principal)];
      const args: ExecutionArgs = { schema: options.schema, document, operationName: payload.operationName, variableValues: payload.variables ?? null };
      const cohort = cohortKey(document, operation, payload.operationName ?? null, payload.variables ?? {}, payload.query);
      let contextValue: Record<string, unknown> | undefined;
      const feeds: FeedOpener = {
        largeThresholdMinor: options.largeThresholdMinor,
        open: (topic: FeedTopic, after: string | null) =>
          new FeedSubscription(topic, after, {
            hub,
            budget: connection.budget,
            transactionsChangedBetween: (query, from, upTo, limit) => options.ledger.readModels.transactionsChangedBetween(query, from, upTo, limit),
            waitForPosition: (position, timeoutMs) => options.ledger.waitForPosition(position, timeoutMs),
            catchUpWaitMs: CATCH_UP_WAIT_MS,
            onCatchUpTimeout: (position) => connection.budget.overflow(`read models did not reach ${position}`),
            render: (event) => {
              let result = event.results.get(cohort);
              if (!result) {
                result = Promise.resolve(execute({ ...args, rootValue: event.payload, contextValue })).then(share);
                event.results.set(cohort, result);
              }
              return result;
            },
          }),
      };
      contextValue = { principal, ledger: options.ledger, loaders: lazyLoaders(options.ledger), feeds };
      void id;
      return { ...args, contextValue };
    },
    // The fields' subscribe resolvers return iterables of finished results: no per-subscriber mapping.
    subscribe: (args) => createSourceEventStream(args) as never,
    onClose(ctx) {
      const connection = ctx.extra.connection;
      if (connection.expiryTimer) clearTimeout(connection.expiryTimer);
      if (connection.token !== null) {
        const open = (connectionsPerToken.get(connection.token) ?? 1) - 1;
        if (open <= 0) connectionsPerToken.delete(connection.token);
        else connectionsPerToken.set(connection.token, open);
        connection.token = null;
      }
    },
  });

  function armExpiry(connection: Connection, expSeconds: number | undefined): void {
    if (expSeconds === undefined) return;
    const delayMs = expSeconds * 1000 - Date.now();
    connection.expiryTimer = setTimeout(
      () => {
        connection.expiryTimer = null;
        if (Date.now() >= expSeconds * 1000) closeSocket(connection.socket, FEED_CLOSE.forbidden, 'token expired: reconnect with a fresh token');
        else armExpiry(connection, expSeconds);
      },
      Math.max(0, Math.min(delayMs, TIMER_DELAY_MAX_MS)),
    );
    connection.expiryTimer.unref();
  }

  wss.on('connection', (socket, request) => {
    if (closing) {
      socket.close(FEED_CLOSE.restart, 'server restarting: reconnect and resume with after');
      return;
    }
    const connection: Connection = {
      socket,
      request,
      principal: null,
      token: null,
      expiryTimer: null,
      budget: new ConnectionBudget(
        limits.queuedEventsMax,
        limits.queuedBytesMax,
        () => socket.bufferedAmount,
        (why) => {
          closedTryAgainLater += 1;
          closeSocket(socket, FEED_CLOSE.tryAgainLater, `slow consumer: ${why}; reconnect and resume with after`);
        },
      ),
    };
    connections.add(connection);
    socket.on('error', () => socket.terminate());

    let awaitingPong = false;
    const keepAlive = setInterval(() => {
      if (awaitingPong) return socket.terminate();
      awaitingPong = true;
      socket.ping();
    }, KEEP_ALIVE_MS);
    keepAlive.unref();
    socket.on('pong', () => {
      awaitingPong = false;
    });

    const closed = server.opened(
      {
        protocol: socket.protocol,
        send: (data) =>
          new Promise<void>((resolve, reject) => {
            if (socket.readyState !== socket.OPEN) return resolve();
            socket.send(spliceShared(data, sharedTexts), (error) => (error ? reject(error) : resolve()));
          }),
        close: (code, reason) => closeSocket(socket, code ?? CloseCode.InternalServerError, reason ?? ""),
        onMessage: (handle) =>
          socket.on('message', (data, isBinary) => {
            // Bytes are refused rather than decoded as if they were text (found by the frame fuzzer).
            if (isBinary) return closeSocket(socket, FEED_CLOSE.unsupportedData, 'graphql-ws messages are JSON text frames, not binary');
            handle(String(data)).catch((error: Error) => {
              // graphql-ws throws for a client sending a server's message type: the client's fault, 4400, not 4500.
              if (UNEXPECTED_TYPE.test(error.message)) return closeSocket(socket, FEED_CLOSE.badRequest, error.message);
              closeSocket(socket, CloseCode.InternalServerError, options.production ? 'Internal server error' : error.message);
            });
          }),
      },
      { connection },
    );
    socket.once('close', (code, reason) => {
      clearInterval(keepAlive);
      connections.delete(connection);
      void closed(code, String(reason));
    });
  });
  hub.onFailure(() => {
    for (const connection of connections) {
      closedTryAgainLater += 1;
      closeSocket(connection.socket, FEED_CLOSE.tryAgainLater, 'live feed failed on the server; reconnect and resume with after');
    }
  });
  // A listener keeps 'error' from crashing the process; the HTTP server reports its own errors.
  wss.on('error', () => undefined);

  return {
    stats() {
      let queuedEvents = 0;
      let queuedBytes = 0;
      for (const connection of connections) {
        queuedEvents += connection.budget.queuedEvents;
        queuedBytes += connection.budget.queuedBytes;
      }
      return { connections: connections.size, subscriptions: hub.subscribers, queuedEvents, queuedBytes, closedTryAgainLater };
    },
    async close() {
      closing = true;
      const all = [...connections];
      const gone = all.map((c) => new Promise<void>((resolve) => (c.socket.readyState === c.socket.CLOSED ? resolve() : c.socket.once('close', () => resolve()))));
      for (const connection of all) closeSocket(connection.socket, FEED_CLOSE.restart, 'server restarting: reconnect and resume with after');
      const timer = setTimeout(() => {
        for (const connection of all) connection.socket.terminate();
      }, SHUTDOWN_WAIT_MS);
      await Promise.all(gone);
      clearTimeout(timer);
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/** graphql-ws's error for a valid message of a type a client may not send (next, error, connection_ack). */
const UNEXPECTED_TYPE = /^Unexpected message of type \S+ received$/;

/** The protocol the server speaks (the standard graphql-ws client's default). */
export const FEED_PROTOCOL = GRAPHQL_TRANSPORT_WS_PROTOCOL;

function share(result: ExecutionResult): SharedResult {
  const { errors, ...rest } = result;
  const json = JSON.stringify({ ...rest, ...(errors ? { errors: errors.map((e) => e.toJSON()) } : {}) });
  return Object.assign(result, { [SHARED_JSON]: json });
}

/** Puts a shared result's JSON where jsonMessageReplacer left its mark: `..."payload":"<mark>"}`. */
function spliceShared(data: string, texts: Map<string, string>): string {
  if (!data.endsWith('"}')) return data;
  const at = data.lastIndexOf(`"payload":${SHARED_MARK_JSON}`);
  if (at < 0) return data;
  const id = data.slice(at + `"payload":${SHARED_MARK_JSON}`.length, -2);
  const text = texts.get(id);
  if (text === undefined) return data;
  texts.delete(id);
  return `${data.slice(0, at)}"payload":${text}}`;
}

/**
 * Subscribers with the same document and variables get the same results, so they share one
 * execution per event. `after` only decides where a feed starts, so a variable used for nothing
 * else is left out of the key: dashboards resuming from different positions still share.
 */
function cohortKey(document: DocumentNode, operation: OperationDefinitionNode, operationName: string | null, variables: Record<string, unknown>, query: string): string {
  const uses = new Map<string, number>();
  visit(document, {
    Variable(node, _key, parent) {
      if (parent && !Array.isArray(parent) && (parent as { kind?: string }).kind === Kind.VARIABLE_DEFINITION) return;
      uses.set(node.name.value, (uses.get(node.name.value) ?? 0) + 1);
    },
  });
  const afterVariables = new Set<string>();
  for (const selection of operation.selectionSet.selections) {
    if (selection.kind !== Kind.FIELD) continue;
    for (const argument of selection.arguments ?? []) {
      if (argument.name.value === 'after' && argument.value.kind === Kind.VARIABLE) afterVariables.add(argument.value.name.value);
    }
  }
  const keyed = Object.fromEntries(
    Object.entries(variables)
      .filter(([name]) => !(afterVariables.has(name) && uses.get(name) === 1))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
  return JSON.stringify([query, operationName, keyed]);
}

function tokenExpired(token: string): boolean {
  const { exp } = decodeJwt(token);
  return exp !== undefined && Date.now() >= exp * 1000;
}

function limitReason(reason: string): string {
  if (Buffer.byteLength(reason) <= CLOSE_REASON_BYTES_MAX) return reason;
  let cut = reason.slice(0, CLOSE_REASON_BYTES_MAX);
  while (Buffer.byteLength(cut) > CLOSE_REASON_BYTES_MAX - 3) cut = cut.slice(0, -1);
  return `${cut}...`;
}

export type { Context as FeedConnectionContext };
