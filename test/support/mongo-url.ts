import { randomUUID } from 'node:crypto';

/** MONGODB_URL from the environment (set by .ci/run from scripts/ferretdb.sh), or null: suites say plainly when they skip. */
export function mongoUrlFromEnv(): string | null {
  const url = process.env.MONGODB_URL;
  return url === undefined || url === '' ? null : url;
}

/** The same server with a fresh database of its own, so suites running at the same time never meet. */
export function withFreshDatabase(url: string, prefix: string): { url: string; database: string } {
  const database = `${prefix}_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
  const match = /^(mongodb(?:\+srv)?:\/\/[^/?]*)\/?[^?]*(\?.*)?$/.exec(url);
  if (!match) throw new Error(`MONGODB_URL "${url}" is not a mongodb:// URL`);
  return { url: `${match[1]}/${database}${match[2] ?? ''}`, database };
}
