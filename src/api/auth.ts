import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, jwtVerify } from 'jose';
import { LRUCache } from 'lru-cache';

export const ROLES = ['teller', 'analyst', 'compliance', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface Principal {
  sub: string;
  roles: Role[];
}

const ALGORITHM = 'HS256';
const SECRET_FILE = 'jwt-secret';

export interface JwtSecret {
  key: Uint8Array;
  /** Where it came from, for the startup message. */
  source: 'LEDGER_JWT_SECRET' | 'generated' | 'data folder';
  path: string | null;
}

/**
 * The HS256 secret: LEDGER_JWT_SECRET when set; otherwise one kept in the data folder, created
 * (random, owner-only) on first start.
 */
/** Where the server keeps the secret it creates when LEDGER_JWT_SECRET is not set. */
export function jwtSecretPath(dataDir: string): string {
  return join(dataDir, SECRET_FILE);
}

export function resolveJwtSecret(configured: string | null, dataDir: string): JwtSecret {
  if (configured) return { key: new TextEncoder().encode(configured), source: 'LEDGER_JWT_SECRET', path: null };
  const path = jwtSecretPath(dataDir);
  if (existsSync(path)) return { key: new TextEncoder().encode(readFileSync(path, 'utf8').trim()), source: 'data folder', path };
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(path, randomBytes(48).toString('base64url'), { mode: 0o600 });
  chmodSync(path, 0o600);
  return { key: new TextEncoder().encode(readFileSync(path, 'utf8').trim()), source: 'generated', path };
}

/** The longest a token may be valid (exp minus iat, and exp minus now) unless configured otherwise: 30 days. */
export const TOKEN_LIFETIME_MAX_SECONDS_DEFAULT = 30 * 24 * 3600;

/** Every token has an expiry: `expiresIn` is a jose time span ("30d", "1h", "60s") or seconds. */
export async function mintToken(key: Uint8Array, principal: Principal, expiresIn: string | number): Promise<string> {
  // jose reads the clock again for a span such as "7d"; when a second boundary falls between the two reads the token
  // would live one second longer than asked. Build again until both reads fall in the same second.
  const epochSeconds = (): number => Math.floor(Date.now() / 1000);
  for (;;) {
    const issuedAt = epochSeconds();
    const jwt = new SignJWT({ roles: principal.roles })
      .setProtectedHeader({ alg: ALGORITHM })
      .setSubject(principal.sub)
      .setIssuedAt(issuedAt)
      .setExpirationTime(typeof expiresIn === 'number' ? issuedAt + expiresIn : expiresIn);
    if (epochSeconds() === issuedAt) return jwt.sign(key);
  }
}

export interface AuthOptions {
  /** Tokens valid for longer than this (exp minus iat, or exp minus now) are refused. */
  tokenLifetimeMaxSeconds?: number;
}

/** Why a verified token's lifetime is refused, or null when it is acceptable. */
function lifetimeProblem(exp: number | undefined, iat: number | undefined, nowSeconds: number, lifetimeMaxSeconds: number): string | null {
  if (exp === undefined) return 'the token has no expiry (exp): tokens must expire';
  const lifetime = Math.max(exp - nowSeconds, iat === undefined ? 0 : exp - iat);
  if (lifetime > lifetimeMaxSeconds) return `the token is valid for ${Math.round(lifetime)} s, longer than the longest allowed, ${lifetimeMaxSeconds} s`;
  return null;
}

export type AuthResult = { ok: true; principal: Principal } | { ok: false; reason: string };

/** Verifies an `Authorization` header value (`Bearer <JWT>`). */
export async function authenticate(header: string | null | undefined, key: Uint8Array, options: AuthOptions = {}): Promise<AuthResult> {
  const lifetimeMaxSeconds = options.tokenLifetimeMaxSeconds ?? TOKEN_LIFETIME_MAX_SECONDS_DEFAULT;
  if (!header) return { ok: false, reason: 'missing Authorization header: send "Authorization: Bearer <JWT>"' };
  const match = /^Bearer\s+(\S+)$/i.exec(header.trim());
  if (!match) return { ok: false, reason: 'the Authorization header must be "Bearer <JWT>"' };
  const token = match[1]!;
  const cache = verifiedTokens(key);
  const cached = cache.get(token);
  // A cached token is still checked against its expiry and not-before times on every use.
  const nowSeconds = Date.now() / 1000;
  if (
    cached &&
    cached.exp !== undefined &&
    nowSeconds < cached.exp &&
    (cached.nbf === undefined || nowSeconds >= cached.nbf) &&
    lifetimeProblem(cached.exp, cached.iat, nowSeconds, lifetimeMaxSeconds) === null
  ) {
    return { ok: true, principal: cached.principal };
  }
  try {
    const { payload } = await jwtVerify(token, key, { algorithms: [ALGORITHM], requiredClaims: ['exp'] });
    if (typeof payload.sub !== 'string' || payload.sub.length === 0) return { ok: false, reason: 'the token has no subject (sub)' };
    const problem = lifetimeProblem(payload.exp, payload.iat, nowSeconds, lifetimeMaxSeconds);
    if (problem) return { ok: false, reason: `invalid token: ${problem}` };
    const roles = Array.isArray(payload.roles) ? payload.roles.filter((r): r is Role => (ROLES as readonly string[]).includes(r as string)) : [];
    const principal: Principal = { sub: payload.sub, roles };
    cache.set(token, { principal, exp: payload.exp, nbf: payload.nbf, iat: payload.iat });
    return { ok: true, principal };
  } catch (error) {
    return { ok: false, reason: `invalid token: ${(error as Error).message}` };
  }
}

/** Verified tokens, per secret: clients send the same token with every request. */
const VERIFIED_TOKENS_MAX = 10_000;
const tokenCaches = new WeakMap<Uint8Array, LRUCache<string, { principal: Principal; exp: number | undefined; nbf: number | undefined; iat: number | undefined }>>();

function verifiedTokens(key: Uint8Array) {
  let cache = tokenCaches.get(key);
  if (!cache) {
    cache = new LRUCache({ max: VERIFIED_TOKENS_MAX });
    tokenCaches.set(key, cache);
  }
  return cache;
}
