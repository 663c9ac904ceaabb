import { parseArgs } from 'node:util';
import { ROLES, type Role, mintToken, resolveJwtSecret } from '../api/auth';
import { ConfigError, loadConfig } from '../config';

/** npm run token -- --role teller [--role analyst] [--sub alice] [--expires 7d] */
async function main() {
  const { values } = parseArgs({
    options: {
      role: { type: 'string', multiple: true, default: [] },
      sub: { type: 'string', default: 'cli-user' },
      expires: { type: 'string', default: '30d' },
    },
  });
  const roles = values.role ?? [];
  const unknown = roles.filter((r) => !(ROLES as readonly string[]).includes(r));
  if (roles.length === 0 || unknown.length > 0) {
    console.error(`usage: npm run token -- --role <${ROLES.join('|')}> [--role …] [--sub NAME] [--expires 30d]${unknown.length ? `\nunknown role: ${unknown.join(', ')}` : ''}`);
    process.exit(2);
  }
  const config = loadConfig();
  const secret = resolveJwtSecret(config.jwtSecret, config.dataDir);
  console.log(await mintToken(secret.key, { sub: values.sub ?? 'cli-user', roles: roles as Role[] }, values.expires ?? '30d'));
}

main().catch((error) => {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(2);
});
