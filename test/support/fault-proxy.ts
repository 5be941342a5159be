/**
 * A loopback TCP proxy in front of a redis-server that can go silent: `freeze()` stops forwarding on every
 * open connection without closing it (what a failover or a NAT dropping state looks like to a client: no
 * FIN, no RST, just nothing), while connections opened afterwards work normally. `stallNew(true)` makes it
 * a server that accepts connections and never answers them (a stopped redis-server looks like this: its
 * kernel still completes TCP handshakes), until `stallNew(false)`.
 */
import net from "node:net";

export interface FaultProxy {
  readonly url: string;
  freeze(): void;
  /**
   * While on, connections opened from now on are accepted and never forwarded (nor closed); with
   * `afterFirstReply`, they are forwarded until the server's first reply reaches the client, then frozen
   * (a server that stops answering half-way through the client's handshake).
   */
  stallNew(on: boolean, opts?: { afterFirstReply?: boolean }): void;
  close(): Promise<void>;
}

export async function startFaultProxy(targetPort: number): Promise<FaultProxy> {
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket; frozen: boolean }>();
  const stalled = new Set<net.Socket>();
  let stallNew = false;
  let stallAfterFirstReply = false;
  const server = net.createServer((client) => {
    if (stallNew && !stallAfterFirstReply) {
      stalled.add(client);
      client.on("close", () => stalled.delete(client)).on("error", () => client.destroy());
      return;
    }
    const upstream = net.createConnection({ host: "127.0.0.1", port: targetPort });
    const pair = { client, upstream, frozen: false };
    pairs.add(pair);
    client.on("data", (d) => pair.frozen || upstream.write(d));
    const freezeAfterReply = stallNew && stallAfterFirstReply;
    upstream.on("data", (d) => {
      if (pair.frozen) return;
      client.write(d);
      if (freezeAfterReply) pair.frozen = true;
    });
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
    stallNew(on, opts) {
      stallNew = on;
      stallAfterFirstReply = opts?.afterFirstReply ?? false;
    },
    async close() {
      for (const c of stalled) c.destroy();
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
