import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type JwtSecret, resolveJwtSecret } from '../api/auth';
import { buildSchema } from '../api/schema';
import { createApiServer } from '../api/server';
import { type FeedServer, attachFeedServer } from '../api/subscriptions/feed-server';
import type { LedgerConfig } from '../config';
import { type ComposeHooks, type ComposedLedger, composeLedger } from './compose';

export interface RunningLedger {
  server: Server;
  ledger: ComposedLedger;
  secret: JwtSecret;
  /** graphql-ws on the same port and path. */
  feeds: FeedServer;
  port: number;
  /** http://localhost:<port>/graphql */
  url: string;
  /** Stops taking requests, finishes in-flight commands, closes the stores. */
  close(): Promise<void>;
}

/** Composes the ledger from the configuration and serves the API; used by main and the tests. */
export async function startLedgerServer(config: LedgerConfig, hooks: ComposeHooks = {}): Promise<RunningLedger> {
  const ledger = await composeLedger(config, hooks);
  const secret = resolveJwtSecret(config.jwtSecret, config.dataDir);
  let ready = true;
  const schema = buildSchema();
  const server = createApiServer({
    schema,
    ledger: ledger.api,
    jwtKey: secret.key,
    production: config.production,
    tokenLifetimeMaxSeconds: config.tokenLifetimeMaxSeconds,
    corsOrigins: config.corsOrigins,
    batchSizeRefusal: (operationCount, idempotencyKey) => ledger.node.batchSizeRefusal(operationCount, idempotencyKey),
    health: () => {
      // Live: the process serves. Ready: it also takes traffic (in a cluster, once a leader is known
      // and this replica has applied what it knows committed).
      const status = ledger.node.status();
      return {
        live: true,
        ready: ready && status.caughtUp !== false,
        nodeId: status.nodeId,
        role: status.role,
        leaderId: status.leaderId,
        term: status.term,
        appliedIndex: status.appliedIndex,
        commitIndex: status.commitIndex,
      };
    },
  });
  const feeds = attachFeedServer({
    server,
    schema,
    ledger: ledger.api,
    hub: ledger.feeds,
    jwtKey: secret.key,
    tokenLifetimeMaxSeconds: config.tokenLifetimeMaxSeconds,
    limits: config.feeds,
    largeThresholdMinor: config.rules.largeTransactionThresholdMinor,
    production: config.production,
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    server,
    ledger,
    secret,
    feeds,
    port,
    url: `http://localhost:${port}/graphql`,
    async close() {
      ready = false;
      await feeds.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await ledger.close();
    },
  };
}
