/**
 * The lease keeper's thread: renews the worker's leases and beats its heartbeat over a broker connection
 * of its own, so a task that blocks the worker's event loop (CPU-bound code in the async pool) costs
 * neither. It renews whatever the broker has leased to the worker, which includes a batch reserved a
 * moment before the main loop blocked; the main thread only posts the latest worker info.
 */
import { parentPort, workerData } from "node:worker_threads";
import { createTransport } from "../broker/factory.ts";
import type { Transport, WorkerInfo } from "../broker/transport.ts";
import type { KeeperConfig, FromKeeper, ToKeeper } from "./lease-keeper-protocol.ts";

const port = parentPort!;
const cfg = workerData as KeeperConfig;
let info: WorkerInfo | undefined;
/** The worker's broker first, then any other Redis holding its leases (see KeeperConfig.extraBrokerUrls). */
const transports: Transport[] = [];
let timer: NodeJS.Timeout | undefined;
let busy = false;
let nextRenew = 0;
let nextBeat = 0;
let failing = false;
let roundStartedAt = 0;
let rebuilding = false;
/** A round that has not come back in this long is stuck on a silently dead socket: rebuild it. */
const STUCK_MS = 5000;

function post(m: FromKeeper): void {
  port.postMessage(m);
}

async function round(): Promise<void> {
  if (transports.length === 0) return;
  const now = Date.now();
  if (busy) {
    // The main thread's watchdog rebuilds only its own connections; this one needs the same care, or a
    // dead socket here would stop heartbeats and get this live worker declared dead (duplicate runs).
    if (now - roundStartedAt > STUCK_MS && !rebuilding) {
      rebuilding = true;
      roundStartedAt = now;
      void Promise.all(transports.map((t) => t.reconnect?.().catch(() => {}))).finally(() => (rebuilding = false));
    }
    return;
  }
  busy = true;
  roundStartedAt = now;
  try {
    if (now >= nextRenew) {
      nextRenew = now + cfg.leaseMs / 3;
      const ids = (await Promise.all(transports.map((t) => t.extendWorkerLeases(cfg.workerId, cfg.leaseMs)))).flat();
      post({ type: "renewed", startedAt: now, ids });
    }
    if (info && now >= nextBeat) {
      nextBeat = now + cfg.heartbeatIntervalMs;
      const beat = { ...info, lastBeat: now };
      await Promise.all(transports.map((t) => t.heartbeat(beat, cfg.heartbeatTtlMs)));
    }
    if (failing) post({ type: "ok" });
    failing = false;
  } catch (err) {
    nextRenew = 0;
    if (!failing) post({ type: "error", message: (err as Error).message });
    failing = true;
  } finally {
    busy = false;
  }
}

function handle(m: ToKeeper): void {
  switch (m.type) {
    case "info":
      info = m.info;
      return;
    case "stop":
      if (timer) clearInterval(timer);
      void Promise.all(transports.map((t) => t.close().catch(() => {}))).finally(() => {
        post({ type: "stopped" });
        port.close();
      });
      return;
  }
}

port.on("message", handle);

try {
  const opts = cfg.redisPrefix ? { redisPrefix: cfg.redisPrefix } : {};
  for (const url of [cfg.brokerUrl, ...(cfg.extraBrokerUrls ?? [])]) {
    const t = await createTransport(url, opts);
    transports.push(t);
    await t.connect();
  }
  timer = setInterval(() => void round(), cfg.tickMs);
  post({ type: "ready" });
} catch (err) {
  post({ type: "fatal", message: (err as Error).message });
}
