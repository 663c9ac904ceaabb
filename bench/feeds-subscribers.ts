/**
 * Child process of bench/feeds.ts: opens the subscribers (one graphql-ws connection each) and records
 * when each transaction arrives. Messages: parent → 'setup', later 'report'; child → 'ready' (every
 * connection acknowledged), then 'report' with [position, receivedAtMs] pairs and the error count.
 */
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { seededRandom } from '../test/support/seeded-random';

interface Setup {
  wsUrl: string;
  tokens: string[];
  largeCount: number;
  accounts: string[];
  seed: number;
}

const nowMs = () => performance.timeOrigin + performance.now();

const received: Array<[string, number]> = [];
let acknowledged = 0;
let failures = 0;

function open(setup: Setup): void {
  const random = seededRandom(setup.seed);

  const TX = 'id amount position';
  for (let i = 0; i < setup.tokens.length; i += 1) {
    const large = i < setup.largeCount;
    const client = createClient({
      url: setup.wsUrl,
      webSocketImpl: WebSocket,
      lazy: false,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${setup.tokens[i]}` },
      onNonLazyError: () => {
        failures += 1;
      },
      on: {
        connected: () => {
          acknowledged += 1;
          if (acknowledged === setup.tokens.length) process.send?.({ type: 'ready' });
        },
      },
    });
    const payload = large
      ? { query: `subscription { largeTransaction { ${TX} } }` }
      : { query: `subscription($a: ID) { transactionPosted(accountId: $a) { ${TX} } }`, variables: { a: setup.accounts[Math.floor(random() * setup.accounts.length)] } };
    client.subscribe(payload, {
      next: (result) => {
        const t = Object.values(result.data ?? {})[0] as { position: string } | undefined;
        if (t) received.push([t.position, nowMs()]);
      },
      error: () => {
        failures += 1;
      },
      complete: () => undefined,
    });
  }
}

process.on('message', (message: { type: string; setup?: Setup }) => {
  if (message.type === 'setup') open(message.setup!);
  if (message.type === 'report') process.send?.({ type: 'report', received, failures }, () => process.exit(0));
});
