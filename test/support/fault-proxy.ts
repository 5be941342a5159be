/**
 * A loopback TCP proxy in front of a redis-server that can go silent: `freeze()` stops forwarding on every
 * open connection without closing it (what a failover or a NAT dropping state looks like to a client: no
 * FIN, no RST, just nothing), while connections opened afterwards work normally.
 */
import net from "node:net";

export interface FaultProxy {
  readonly url: string;
  freeze(): void;
  close(): Promise<void>;
}

export async function startFaultProxy(targetPort: number): Promise<FaultProxy> {
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket; frozen: boolean }>();
  const server = net.createServer((client) => {
    const upstream = net.createConnection({ host: "127.0.0.1", port: targetPort });
    const pair = { client, upstream, frozen: false };
    pairs.add(pair);
    client.on("data", (d) => pair.frozen || upstream.write(d));
    upstream.on("data", (d) => pair.frozen || client.write(d));
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `redis://127.0.0.1:${port}`,
    freeze() {
      for (const p of pairs) p.frozen = true;
    },
    async close() {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
