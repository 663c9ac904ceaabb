import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { decodeJwt } from 'jose';
import { ROLES, type Role, jwtSecretPath, mintToken, resolveJwtSecret } from '../api/auth';
import { ConfigError, loadConfig } from '../config';

const USAGE = `usage: npm run token -- --role <${ROLES.join('|')}> [--role …] [--sub NAME] [--expires 30d]`;

function fail(message: string): never {
  console.error(`${USAGE}\n${message}`);
  process.exit(2);
}

/**
 * npm run token -- --role teller [--role analyst] [--sub alice] [--expires 7d]
 * Every token expires: --expires defaults to the longest lifetime the server accepts
 * (LEDGER_TOKEN_LIFETIME_MAX_SECONDS, 30 days by default) and may not exceed it.
 */
async function main() {
  const { values } = parseArgs({
    options: {
      role: { type: 'string', multiple: true, default: [] },
      sub: { type: 'string', default: 'cli-user' },
      expires: { type: 'string' },
    },
  });
  const roles = values.role ?? [];
  const unknown = roles.filter((r) => !(ROLES as readonly string[]).includes(r));
  if (roles.length === 0 || unknown.length > 0) fail(unknown.length ? `unknown role: ${unknown.join(', ')}` : 'give at least one --role');
  const config = loadConfig();
  // Never a new secret here: a token signed with one that no server uses is refused by every server.
  if (!config.jwtSecret && !existsSync(jwtSecretPath(config.dataDir))) {
    fail(
      `no JWT secret at ${jwtSecretPath(config.dataDir)}: the server creates it in its data folder on its first start. ` +
        'Start the server first, or run this with the same LEDGER_DATA_DIR (or LEDGER_JWT_SECRET) as the server.',
    );
  }
  const secret = resolveJwtSecret(config.jwtSecret, config.dataDir);
  const expires = values.expires ?? config.tokenLifetimeMaxSeconds;
  let token: string;
  try {
    token = await mintToken(secret.key, { sub: values.sub ?? 'cli-user', roles: roles as Role[] }, expires);
  } catch (error) {
    fail(`--expires must be a time span such as 3600s, 90m, 12h or 7d, got "${values.expires}" (${(error as Error).message})`);
  }
  const { exp, iat } = decodeJwt(token);
  const lifetimeSeconds = (exp ?? Infinity) - (iat ?? 0);
  if (!(lifetimeSeconds > 0)) fail(`--expires must be a time span in the future, got "${values.expires}"`);
  if (lifetimeSeconds > config.tokenLifetimeMaxSeconds) {
    fail(`--expires ${values.expires} is ${lifetimeSeconds} s, longer than the server accepts (LEDGER_TOKEN_LIFETIME_MAX_SECONDS=${config.tokenLifetimeMaxSeconds})`);
  }
  console.log(token);
}

main().catch((error) => {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(2);
});
