/**
 * Ports for servers that a test or a benchmark starts later (child processes, restarted replicas).
 *
 * Asking the kernel for port 0 and closing the probe is not enough for that:
 * - the next probe may be handed the same port (two replicas on one port: the second cannot bind,
 *   and the first dials itself when it dials "the other");
 * - until the server binds it, the port is in the kernel's ephemeral range, where any outgoing
 *   connection of the machine may take it as its own, and a connection to a port in that range with
 *   nothing listening can even connect to itself.
 * So the ports come from below the ephemeral range (outgoing connections never take those), are
 * never handed out twice by one process, and each jest worker draws from its own slice of the
 * range, so two test files running side by side cannot draw the same port either.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Lowest port handed out: above the well-known and most registered service ports. */
const PORT_FLOOR = 10_000;
/** The range below the ephemeral ports is split into this many slices, one per jest worker id (mod). */
const SLICES = 8;
const TRIES_MAX = 200;

const handedOut = new Set<number>();

/** Start of the kernel's ephemeral range (Linux: ip_local_port_range), or IANA's default elsewhere. */
function ephemeralFloor(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > PORT_FLOOR + SLICES * 100) return low;
  } catch {
    // Not Linux: fall through.
  }
  return 49_152;
}

/** The ports this process may hand out: its jest worker's slice (benchmarks and scripts use slice 0). */
export function portSlice(workerId = Number(process.env.JEST_WORKER_ID ?? 0)): { first: number; last: number } {
  const size = Math.floor((ephemeralFloor() - PORT_FLOOR) / SLICES);
  const slice = (Number.isInteger(workerId) && workerId >= 0 ? workerId : 0) % SLICES;
  const first = PORT_FLOOR + slice * size;
  return { first, last: first + size - 1 };
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

/** A port free on 127.0.0.1 now, outside the ephemeral range, and not handed out before by this process. */
export async function freePort(): Promise<number> {
  const { first, last } = portSlice();
  for (let tries = 0; tries < TRIES_MAX; tries += 1) {
    const port = first + Math.floor(Math.random() * (last - first + 1));
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port found in ${first}-${last} after ${TRIES_MAX} tries`);
}
