import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { freePort, portSlice } from './free-port';

describe('freePort', () => {
  it('hands out distinct ports below the ephemeral range, in this worker\'s slice, that a server can bind', async () => {
    const ports: number[] = [];
    for (let i = 0; i < 40; i += 1) ports.push(await freePort());
    expect(new Set(ports).size).toBe(ports.length);
    const { first, last } = portSlice();
    const ephemeralLow = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(first);
      expect(port).toBeLessThanOrEqual(last);
      expect(port).toBeLessThan(ephemeralLow);
    }
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(ports[0], '127.0.0.1', () => resolve());
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('gives each jest worker a slice of its own', () => {
    const slices = [1, 2, 3, 4].map((worker) => portSlice(worker));
    for (let i = 1; i < slices.length; i += 1) expect(slices[i]!.first).toBeGreaterThan(slices[i - 1]!.last);
  });
});
