/**
 * No Docker engine runs on CI, so the deployment files are checked by reading them: docker-compose.yml
 * against the configuration the server actually parses (src/config.ts), and the Dockerfile for the
 * properties that matter at run time (non-root, node as the process that gets SIGTERM).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { safeLoad } from 'js-yaml';
import { CONFIG_ENV_NAMES, type LedgerConfig, loadConfig } from '../../src/config';

const ROOT = join(__dirname, '..', '..');

// --- docker-compose.yml, read the way Compose reads it (the parts the ledger depends on) ---

interface ComposeService {
  build?: unknown;
  image?: string;
  environment?: Record<string, unknown> | string[];
  ports?: Array<string | number | { target?: number; published?: string | number }>;
  volumes?: Array<string | { type?: string; source?: string; target?: string }>;
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test?: unknown; disable?: boolean };
  restart?: string;
  stop_grace_period?: string;
}

interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

const compose = safeLoad(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as ComposeFile;
const services = compose.services ?? {};

/**
 * Compose interpolation of one value. `${VAR:?message}` (required) becomes a dummy long enough for
 * every secret check; `${VAR:-default}` its default. A bare `${VAR}` would silently be empty when VAR
 * is unset, so it is refused here.
 */
function interpolate(value: string, where: string): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[?-])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (whole, name?: string, op?: string, arg?: string, bare?: string) => {
    if (whole === '$$') return '$';
    if (op === ':?' || op === '?') return `dummy-${name}-`.padEnd(48, 'x');
    if (op === ':-' || op === '-') return arg ?? '';
    throw new Error(`${where}: ${whole} has neither a default nor a required marker (\${${name ?? bare}:?message})`);
  });
}

/** The environment a service's container gets, before interpolation (map or KEY=VALUE list). */
function rawEnvironment(service: ComposeService): Record<string, string | undefined> {
  const env = service.environment ?? {};
  const entries: Array<[string, unknown]> = Array.isArray(env)
    ? env.map((item) => {
        const at = item.indexOf('=');
        return at < 0 ? [item, undefined] : [item.slice(0, at), item.slice(at + 1)];
      })
    : Object.entries(env);
  // A key without a value is passed through from the shell Compose runs in: unset as far as this file says.
  return Object.fromEntries(entries.map(([key, value]) => [key, value === null || value === undefined ? undefined : String(value)]));
}

function environment(name: string): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(rawEnvironment(services[name]!)).map(([key, value]) => [key, value === undefined ? undefined : interpolate(value, `${name}.${key}`)]));
}

/** Published ports as [hostPort, containerPort] (short syntax `[ip:]host:container[/proto]` or the long one). */
function publishedPorts(service: ComposeService): Array<[number, number]> {
  return (service.ports ?? []).flatMap((port): Array<[number, number]> => {
    if (typeof port === 'object') return port.published === undefined ? [] : [[Number(port.published), Number(port.target)]];
    const parts = String(port).replace(/\/(tcp|udp)$/, '').split(':');
    if (parts.length < 2) return []; // container port only: Docker picks a random host port
    return [[Number(parts[parts.length - 2]), Number(parts[parts.length - 1])]];
  });
}

/** Named-volume mounts as [volume, target]; bind mounts (paths) are not named volumes. */
function namedVolumeMounts(service: ComposeService): Array<[string, string]> {
  return (service.volumes ?? []).flatMap((mount): Array<[string, string]> => {
    if (typeof mount === 'object') return mount.type === 'volume' && mount.source && mount.target ? [[mount.source, mount.target]] : [];
    const [source, target] = mount.split(':');
    if (!source || !target || /^[./~]/.test(source)) return [];
    return [[source, target]];
  });
}

function dependsOn(service: ComposeService): Record<string, string | undefined> {
  const deps = service.depends_on ?? [];
  return Array.isArray(deps) ? Object.fromEntries(deps.map((name) => [name, undefined])) : Object.fromEntries(Object.entries(deps).map(([name, d]) => [name, d?.condition]));
}

/** The host names in a connection string (`scheme://[user@]host[:port][,host[:port]...][/path][?query]`). */
function urlHosts(url: string): string[] {
  const authority = url.replace(/^[a-z+]+:\/\//, '').split(/[/?]/)[0]!;
  return authority
    .replace(/^.*@/, '')
    .split(',')
    .map((hostPort) => hostPort.replace(/:[0-9]+$/, ''));
}

// The ledger replicas are the services built from this repository; everything else is a store they use.
const ledgerNames = Object.keys(services).filter((name) => services[name]!.build !== undefined);
// Parsed per test, so that a configuration loadConfig refuses fails the tests that need it, by name.
const configs = { get: (name: string): LedgerConfig | undefined => (name in services ? loadConfig(environment(name)) : undefined) };

describe('docker-compose.yml', () => {
  test('runs three ledger replicas, each with a node id', () => {
    expect(ledgerNames).toHaveLength(3);
    for (const name of ledgerNames) expect(rawEnvironment(services[name]!).LEDGER_NODE_ID).toBeTruthy();
  });

  test('sets on the ledgers only variables the configuration reads (a typo would be ignored silently)', () => {
    const unknown = ledgerNames.flatMap((name) => Object.keys(rawEnvironment(services[name]!)).filter((key) => !CONFIG_ENV_NAMES.includes(key)).map((key) => `${name}: ${key}`));
    expect(unknown).toEqual([]);
  });

  test('takes both secrets from the environment Compose runs in, required, never written in the file', () => {
    for (const name of ledgerNames) {
      const env = rawEnvironment(services[name]!);
      expect(env.LEDGER_JWT_SECRET).toMatch(/^\$\{LEDGER_JWT_SECRET:\?[^}]+\}$/);
      expect(env.LEDGER_CLUSTER_SECRET).toMatch(/^\$\{LEDGER_CLUSTER_SECRET:\?[^}]+\}$/);
    }
  });

  test('gives every ledger a cluster configuration that loadConfig accepts', () => {
    for (const name of ledgerNames) {
      const config = configs.get(name)!;
      expect(config.cluster).not.toBeNull();
      expect(config.cluster!.peers).toHaveLength(3);
      expect(config.production).toBe(true);
    }
  });

  test('node ids are unique and are exactly the members listed in LEDGER_PEERS', () => {
    const nodeIds = ledgerNames.map((name) => configs.get(name)!.nodeId);
    expect(new Set(nodeIds).size).toBe(ledgerNames.length);
    for (const name of ledgerNames) {
      expect(configs.get(name)!.cluster!.peers.map((peer) => peer.id).sort()).toEqual([...nodeIds].sort());
    }
  });

  test('every replica is given the same LEDGER_PEERS', () => {
    const peersTexts = new Set(ledgerNames.map((name) => environment(name).LEDGER_PEERS));
    expect(peersTexts.size).toBe(1);
  });

  test("each member's address is its compose service name and the Raft port that service listens on", () => {
    const serviceByNodeId = new Map(ledgerNames.map((name) => [configs.get(name)!.nodeId, name]));
    for (const name of ledgerNames) {
      for (const peer of configs.get(name)!.cluster!.peers) {
        const peerService = serviceByNodeId.get(peer.id);
        expect({ id: peer.id, host: peer.host }).toEqual({ id: peer.id, host: peerService });
        expect({ id: peer.id, port: peer.port }).toEqual({ id: peer.id, port: configs.get(peerService!)!.cluster!.raftPort });
      }
    }
  });

  test('publishes distinct host ports, each mapped to the HTTP port (PORT) inside its container', () => {
    const hostPorts: number[] = [];
    for (const name of ledgerNames) {
      const ports = publishedPorts(services[name]!);
      expect(ports.length).toBeGreaterThan(0);
      for (const [hostPort, containerPort] of ports) {
        expect({ service: name, containerPort }).toEqual({ service: name, containerPort: configs.get(name)!.port });
        hostPorts.push(hostPort);
      }
    }
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
  });

  test('mounts its own declared named volume at each ledger data folder (LEDGER_DATA_DIR)', () => {
    const declared = Object.keys(compose.volumes ?? {});
    const dataVolumes = ledgerNames.map((name) => {
      const dataDir = configs.get(name)!.dataDir;
      const mounts = namedVolumeMounts(services[name]!).filter(([, target]) => target === dataDir);
      expect({ service: name, mounts: mounts.length }).toEqual({ service: name, mounts: 1 });
      return mounts[0]![0];
    });
    for (const volume of dataVolumes) expect(declared).toContain(volume);
    expect(new Set(dataVolumes).size).toBe(ledgerNames.length);
  });

  test('points EVENTSTORE_URL and MONGODB_URL at services of this file, and waits for them to be healthy', () => {
    for (const name of ledgerNames) {
      const config = configs.get(name)!;
      const storeUrls = [config.eventStoreUrl, config.mongoDbUrl].filter((url): url is string => url !== null);
      expect(storeUrls).toHaveLength(2);
      const deps = dependsOn(services[name]!);
      for (const host of storeUrls.flatMap(urlHosts)) {
        expect(Object.keys(services)).toContain(host);
        expect({ service: name, dependsOn: host, condition: deps[host] }).toEqual({ service: name, dependsOn: host, condition: 'service_healthy' });
      }
    }
  });

  test('depends only on services that exist, and waits for health only where a healthcheck is defined', () => {
    for (const service of Object.values(services)) {
      for (const [dependency, condition] of Object.entries(dependsOn(service))) {
        expect(Object.keys(services)).toContain(dependency);
        if (condition === 'service_healthy') expect({ dependency, healthcheck: services[dependency]!.healthcheck?.test !== undefined }).toEqual({ dependency, healthcheck: true });
      }
    }
  });

  test('gives every ledger a healthcheck on /health, a restart policy and time for a graceful stop', () => {
    for (const name of ledgerNames) {
      const service = services[name]!;
      expect(JSON.stringify(service.healthcheck?.test)).toContain('/health');
      expect(service.restart).toMatch(/^(always|unless-stopped|on-failure)/);
      expect(service.stop_grace_period).toBeTruthy();
    }
  });
});

// --- Dockerfile: the final stage is what runs ---

/** Instructions of the last stage, continuation lines joined and comments dropped. */
function finalStageInstructions(text: string): Array<{ keyword: string; args: string }> {
  const instructions = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('#'))
    .map((line) => {
      const [keyword, ...rest] = line.split(/\s+/);
      return { keyword: keyword!.toUpperCase(), args: rest.join(' ') };
    });
  const lastFrom = instructions.map((i) => i.keyword).lastIndexOf('FROM');
  return instructions.slice(lastFrom);
}

/** The argument vector of CMD or ENTRYPOINT; shell form is `sh -c`, which would sit between Docker and node. */
function execForm(args: string): string[] {
  const parsed: unknown = args.startsWith('[') ? JSON.parse(args) : ['/bin/sh', '-c', args];
  return parsed as string[];
}

describe('Dockerfile', () => {
  const stage = finalStageInstructions(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
  const last = (keyword: string) => stage.filter((i) => i.keyword === keyword).pop();

  test('runs as a user other than root', () => {
    const user = last('USER')?.args.split(':')[0];
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
  });

  test('starts node itself (exec form), so that SIGTERM reaches the server and not npm', () => {
    const entrypoint = last('ENTRYPOINT');
    const command = [...(entrypoint ? execForm(entrypoint.args) : []), ...execForm(last('CMD')!.args)];
    expect(command[0]).toBe('node');
    expect(command).not.toContain('npm');
  });

  test('starts a file that exists, with a loader the production install keeps', () => {
    const command = execForm(last('CMD')!.args);
    const script = command.find((arg) => arg.endsWith('.ts') || arg.endsWith('.js'));
    expect(script).toBeDefined();
    expect(existsSync(join(ROOT, script!))).toBe(true);
    // The image installs with --omit=dev, so a loader given with --import must be a runtime dependency.
    const loaders = command.filter((_, i) => command[i - 1] === '--import');
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    for (const loader of loaders) expect(Object.keys(pkg.dependencies)).toContain(loader);
  });

  test('works in /app and checks /health', () => {
    expect(last('WORKDIR')?.args).toBe('/app');
    expect(last('HEALTHCHECK')?.args).toContain('/health');
  });
});
