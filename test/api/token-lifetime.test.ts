/** Bearer tokens must expire, within a configurable longest lifetime; `npm run token` mints no other kind. */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { SignJWT, decodeJwt } from 'jose';
import { authenticate, mintToken } from '../../src/api/auth';
import { loadConfig } from '../../src/config';
import { startTestLedger } from '../support/ledger-server';

const key = new TextEncoder().encode('token-lifetime-secret-token-lifetime-01');
const nowSeconds = () => Math.floor(Date.now() / 1000);
const sign = (claims: { exp?: number; iat?: number }) => {
  const jwt = new SignJWT({ roles: ['admin'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('mallory');
  if (claims.iat !== undefined) jwt.setIssuedAt(claims.iat);
  if (claims.exp !== undefined) jwt.setExpirationTime(claims.exp);
  return jwt.sign(key);
};

describe('token lifetime', () => {
  it('refuses a token without exp, even a correctly signed one', async () => {
    const result = await authenticate(`Bearer ${await sign({ iat: nowSeconds() })}`, key);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toMatch(/"exp" claim/);
  });

  it('refuses a token valid for longer than the longest lifetime, by exp minus iat or exp minus now', async () => {
    const hour = 3600;
    const options = { tokenLifetimeMaxSeconds: hour };
    const tooLong = await authenticate(`Bearer ${await sign({ iat: nowSeconds(), exp: nowSeconds() + 2 * hour })}`, key, options);
    expect(!tooLong.ok && tooLong.reason).toMatch(/valid for 7200 s, longer than the longest allowed, 3600 s/);
    // Backdating iat does not help: what is left of it counts too.
    const backdated = await authenticate(`Bearer ${await sign({ iat: nowSeconds() - 10 * hour, exp: nowSeconds() + 2 * hour })}`, key, options);
    expect(backdated.ok).toBe(false);
    const noIat = await authenticate(`Bearer ${await sign({ exp: nowSeconds() + 2 * hour })}`, key, options);
    expect(noIat.ok).toBe(false);
    const fine = await authenticate(`Bearer ${await sign({ iat: nowSeconds(), exp: nowSeconds() + hour - 5 })}`, key, options);
    expect(fine.ok).toBe(true);
    // A token accepted (and cached) under a longer limit is refused under a shorter one.
    const cachedLong = await sign({ iat: nowSeconds(), exp: nowSeconds() + 2 * hour });
    expect((await authenticate(`Bearer ${cachedLong}`, key, { tokenLifetimeMaxSeconds: 3 * hour })).ok).toBe(true);
    expect((await authenticate(`Bearer ${cachedLong}`, key, options)).ok).toBe(false);
  });

  it('is configuration (LEDGER_TOKEN_LIFETIME_MAX_SECONDS, default 30 days) and the server enforces it', async () => {
    expect(loadConfig({}).tokenLifetimeMaxSeconds).toBe(30 * 24 * 3600);
    expect(() => loadConfig({ LEDGER_TOKEN_LIFETIME_MAX_SECONDS: 'forever' })).toThrow(/LEDGER_TOKEN_LIFETIME_MAX_SECONDS/);
    const ledger = await startTestLedger({ LEDGER_TOKEN_LIFETIME_MAX_SECONDS: '7200' });
    try {
      const post = async (token: string) =>
        fetch(ledger.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query: '{ ledger { nodeId } }' }) });
      const key = ledger.running.secret.key;
      const forever = await new SignJWT({ roles: ['admin'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('m').setIssuedAt().sign(key);
      const refused = await post(forever);
      expect(refused.status).toBe(401);
      expect(((await refused.json()) as any).errors[0].message).toMatch(/"exp" claim/);
      expect((await post(await mintToken(key, { sub: 'm', roles: ['admin'] }, '3h'))).status).toBe(401);
      expect((await post(await mintToken(key, { sub: 'm', roles: ['admin'] }, '1h'))).status).toBe(200);
    } finally {
      await ledger.close();
    }
  });
});

describe('npm run token', () => {
  const run = promisify(execFile);
  const root = resolve(__dirname, '../..');
  const dataDir = mkdtempSync(join(tmpdir(), 'ledger-token-'));
  // The secret the server made on its first start.
  writeFileSync(join(dataDir, 'jwt-secret'), 'a-secret-the-server-made-on-its-first-start', { mode: 0o600 });
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));
  const token = (args: string[], env: Record<string, string> = {}) =>
    run(process.execPath, ['--import', 'tsx', 'src/scripts/token.ts', '--role', 'teller', ...args], { cwd: root, env: { ...process.env, LEDGER_DATA_DIR: dataDir, LEDGER_JWT_SECRET: '', ...env } });

  it('mints tokens that expire, by default after the longest lifetime, and refuses any other', async () => {
    const { stdout } = await token([], { LEDGER_TOKEN_LIFETIME_MAX_SECONDS: '86400' });
    const claims = decodeJwt(stdout.trim());
    expect(claims.exp! - claims.iat!).toBe(86400);
    const hour = decodeJwt((await token(['--expires', '1h'])).stdout.trim());
    expect(hour.exp! - hour.iat!).toBe(3600);
    await expect(token(['--expires', 'never'])).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/--expires must be a time span/) });
    await expect(token(['--expires', '0s'])).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/in the future/) });
    await expect(token(['--expires', '2d'], { LEDGER_TOKEN_LIFETIME_MAX_SECONDS: '86400' })).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--expires 2d is 172800 s, longer than the server accepts \(LEDGER_TOKEN_LIFETIME_MAX_SECONDS=86400\)/),
    });
  }, 120_000);

  it('refuses to sign with a secret of its own when the data folder has none (the server would refuse the token), and creates nothing', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'ledger-token-empty-'));
    try {
      await expect(token([], { LEDGER_DATA_DIR: empty })).rejects.toMatchObject({
        code: 2,
        stderr: expect.stringMatching(/no JWT secret at .*jwt-secret: the server creates it .*same LEDGER_DATA_DIR \(or LEDGER_JWT_SECRET\)/),
      });
      expect(readdirSync(empty)).toEqual([]);
      // With the secret given outright, no file is needed.
      const { stdout } = await token(['--expires', '1h'], { LEDGER_DATA_DIR: empty, LEDGER_JWT_SECRET: 'given-outright-and-at-least-32-characters-long' });
      expect(decodeJwt(stdout.trim()).roles).toEqual(['teller']);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  }, 60_000);
});
