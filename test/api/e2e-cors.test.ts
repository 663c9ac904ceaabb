/** End to end over HTTP: CORS headers go only to configured origins, never echoed blindly. */
import { loadConfig } from '../../src/config';
import { type TestLedger, startTestLedger } from '../support/ledger-server';

const APP = 'https://app.example.com';
const EVIL = 'https://evil.example';

async function post(ledger: TestLedger, origin: string | null, token?: string) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (origin) headers.origin = origin;
  if (token) headers.authorization = `Bearer ${token}`;
  return fetch(ledger.url, { method: 'POST', headers, body: JSON.stringify({ query: '{ ledger { nodeId } }' }) });
}
async function preflight(ledger: TestLedger, origin: string) {
  return fetch(ledger.url, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
  });
}
const cors = (res: Response) => Object.fromEntries([...res.headers].filter(([name]) => name.startsWith('access-control-')));

describe('CORS by default (no origins configured)', () => {
  let ledger: TestLedger;
  beforeAll(async () => {
    ledger = await startTestLedger();
  });
  afterAll(async () => {
    await ledger?.close();
  });

  it('gives a foreign origin no CORS headers at all, on answers and preflights', async () => {
    const res = await post(ledger, EVIL, await ledger.token(['admin']));
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    expect(cors(res)).toEqual({});
    const pre = await preflight(ledger, EVIL);
    expect(pre.status).toBe(204);
    expect(cors(pre)).toEqual({});
  });

  it('serves same-origin and non-browser clients as before', async () => {
    const res = await post(ledger, null, await ledger.token(['admin']));
    expect(res.status).toBe(200);
    expect(((await res.json()) as any).data.ledger.nodeId).toBeTruthy();
  });
});

describe('CORS with LEDGER_CORS_ORIGINS', () => {
  let ledger: TestLedger;
  beforeAll(async () => {
    ledger = await startTestLedger({ LEDGER_CORS_ORIGINS: `${APP}, http://localhost:5173` });
  });
  afterAll(async () => {
    await ledger?.close();
  });

  it('answers a listed origin with its own origin and no credentials, also on 401s and preflights', async () => {
    const res = await post(ledger, APP, await ledger.token(['admin']));
    expect(cors(res)).toMatchObject({ 'access-control-allow-origin': APP });
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    expect(res.headers.get('vary')).toMatch(/Origin/);
    const unauthenticated = await post(ledger, 'http://localhost:5173');
    expect(unauthenticated.status).toBe(401);
    expect(unauthenticated.headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
    const pre = await preflight(ledger, APP);
    expect(pre.status).toBe(204);
    expect(cors(pre)).toMatchObject({ 'access-control-allow-origin': APP, 'access-control-allow-headers': 'authorization, content-type' });
  });

  it('does not echo an origin that is not listed, nor one that merely resembles a listed one', async () => {
    for (const origin of [EVIL, `${APP}.evil.example`, 'https://app.example.com:444', 'null', 'http://app.example.com']) {
      const res = await post(ledger, origin, await ledger.token(['admin']));
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
      expect(res.headers.get('access-control-allow-credentials')).toBeNull();
      expect(cors(await preflight(ledger, origin))).toEqual({});
    }
  });

  it('refuses a configured value that is not an origin', () => {
    for (const value of ['*', 'https://app.example.com/', 'app.example.com', 'https://a.example, ftp://b.example']) {
      expect(() => loadConfig({ LEDGER_CORS_ORIGINS: value })).toThrow(/LEDGER_CORS_ORIGINS must be a comma-separated list of origins/);
    }
    expect(loadConfig({ LEDGER_CORS_ORIGINS: 'https://a.example,http://localhost:3000' }).corsOrigins).toEqual(['https://a.example', 'http://localhost:3000']);
    expect(loadConfig({}).corsOrigins).toEqual([]);
  });
});
