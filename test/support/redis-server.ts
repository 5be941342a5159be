/**
 * Runs a real, private redis-server for integration tests, e2e tests and benchmarks.
 *
 * Every server gets its own free port on 127.0.0.1 and its own data dir, so it never touches a system Redis
 * (6379) or another test's server. The child is tied to this process: on Linux it is started through
 * `setpriv --pdeathsig SIGKILL` so the kernel kills it even if this process is SIGKILLed, and an exit hook
 * kills any server still running when this process exits normally.
 *
 *   const redis = await startRedisServer({ appendonly: true });   // or { port } for a chosen one
 *   ...redis.url...
 *   await redis.kill9();   // crash
 *   await redis.start();   // same port, same dir: AOF data is back
 *   await redis.cleanup(); // in afterAll
 *
 * The binary is `$REDIS_SERVER_BIN`, else /usr/bin/redis-server, else `redis-server` on PATH.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export interface RedisServerOptions {
  /** Turn on the append-only file (default false: no persistence at all). */
  appendonly?: boolean;
  /** Data dir to use (kept by cleanup()); default a fresh temp dir that cleanup() removes. */
  dir?: string;
  /** More `--name value` arguments for redis-server, e.g. ["--appendfsync", "always"]. */
  extraArgs?: string[];
  /** How long to wait for the server to answer PING (default 10 s). */
  startTimeoutMs?: number;
  /** start() returns as soon as the server answers, even while it is still loading its data (LOADING). */
  acceptLoading?: boolean;
  /**
   * Run as a Sentinel with this config file (it must be writable: Sentinel rewrites it with what it
   * learns). The file's `sentinel monitor` lines say what it watches.
   */
  sentinelConfig?: string;
  /**
   * Listen on this port instead of a free one the OS picks (say, one a client was already told to use
   * before the server runs). The first start then fails rather than move to another port if it is taken.
   */
  port?: number;
}

export interface RedisServerHandle {
  readonly port: number;
  /** redis://127.0.0.1:PORT */
  readonly url: string;
  readonly host: "127.0.0.1";
  readonly dir: string;
  /** The running server's pid (undefined while stopped). */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** Start again on the same port with the same data dir (after stop, kill9 or shutdown). */
  start(): Promise<void>;
  /** SHUTDOWN NOSAVE (SIGTERM, then SIGKILL as fallbacks) and wait for the process to exit. */
  stop(): Promise<void>;
  /** Graceful SHUTDOWN: the AOF is flushed and fsynced before the process exits. */
  shutdown(): Promise<void>;
  /** SIGKILL, as a crash would; waits for the process to be gone. */
  kill9(): Promise<void>;
  /** Stop if running and remove the data dir if it was created here. Safe to call twice. */
  cleanup(): Promise<void>;
  /** The last lines redis-server printed (for failure messages). */
  logTail(): string;
}

const HOST = "127.0.0.1";
const LOG_LINES = 60;

/** Every child still alive, so none outlives this process. */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const child of liveChildren) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  });
  // Signals that would otherwise end the process without running "exit" handlers: kill the servers,
  // then let the signal do what it would have done (only when nobody else handles it).
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = (): void => {
      for (const child of liveChildren) {
        try {
          child.kill("SIGKILL");
        } catch {
          // already gone
        }
      }
      liveChildren.clear();
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}

let cachedBinary: string | null | undefined;

function redisBinary(): string | null {
  if (cachedBinary !== undefined) return cachedBinary;
  const candidates = [process.env.REDIS_SERVER_BIN, "/usr/bin/redis-server", "/usr/local/bin/redis-server"];
  for (const c of candidates) {
    if (c && existsSync(c)) return (cachedBinary = c);
  }
  const which = spawnSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" });
  const found = which.status === 0 ? which.stdout.trim() : "";
  return (cachedBinary = found !== "" ? found : null);
}

let cachedSetpriv: boolean | undefined;

function hasSetprivPdeathsig(): boolean {
  if (cachedSetpriv !== undefined) return cachedSetpriv;
  if (process.platform !== "linux") return (cachedSetpriv = false);
  const r = spawnSync("setpriv", ["--pdeathsig", "SIGKILL", "true"], { stdio: "ignore" });
  return (cachedSetpriv = r.status === 0);
}

/** True when a redis-server binary can be run here (tests use it to skip instead of failing). */
export function redisServerAvailable(): boolean {
  const bin = redisBinary();
  if (!bin) return false;
  const r = spawnSync(bin, ["--version"], { stdio: "ignore", timeout: 5000 });
  return r.status === 0;
}

/** The version of the redis-server binary, e.g. "7.0.15", or null. */
export function redisServerVersion(): string | null {
  const bin = redisBinary();
  if (!bin) return null;
  const r = spawnSync(bin, ["--version"], { encoding: "utf8", timeout: 5000 });
  const m = /v=(\S+)/.exec(r.stdout ?? "");
  return m?.[1] ?? null;
}

/** A port that was free a moment ago on 127.0.0.1 (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, HOST, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error("could not get a free port"))));
    });
  });
}

function encodeCommand(args: string[]): string {
  let out = `*${args.length}\r\n`;
  for (const a of args) out += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
  return out;
}

/**
 * Send one command on a fresh raw TCP connection and resolve with the first reply line ("+PONG",
 * "-LOADING ...", ...). Resolves with "" when the server closes without replying (as SHUTDOWN does).
 */
export function rawCommand(port: number, args: string[], timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ host: HOST, port });
    let buf = "";
    let done = false;
    const finish = (err: Error | null, line?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(line ?? "");
    };
    const timer = setTimeout(() => finish(new Error(`no reply to ${args[0]} within ${timeoutMs} ms`)), timeoutMs);
    sock.setEncoding("utf8");
    sock.once("connect", () => sock.write(encodeCommand(args)));
    sock.on("data", (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf("\r\n");
      if (nl >= 0) finish(null, buf.slice(0, nl));
    });
    sock.once("error", (err) => finish(err));
    sock.once("close", () => finish(null, buf));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

class RedisServer implements RedisServerHandle {
  readonly host = HOST;
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private log: string[] = [];
  private cleaned = false;

  constructor(
    private currentPort: number,
    readonly dir: string,
    private readonly ownsDir: boolean,
    private readonly opts: RedisServerOptions,
  ) {}

  get port(): number {
    return this.currentPort;
  }
  get url(): string {
    return `redis://${HOST}:${this.currentPort}`;
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }
  get running(): boolean {
    return this.child !== null;
  }

  logTail(): string {
    return this.log.join("\n");
  }

  /** First start: if the free port got taken in between, try another one (only before any data exists). */
  async firstStart(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.start();
        return;
      } catch (err) {
        const portTaken = /Address already in use|bind/i.test(this.logTail());
        if (!portTaken || attempt >= 3 || this.opts.port !== undefined) throw err;
        this.currentPort = await freePort();
      }
    }
  }

  async start(): Promise<void> {
    if (this.cleaned) throw new Error("redis-server handle was cleaned up");
    if (this.child) throw new Error(`redis-server on port ${this.currentPort} is already running`);
    const bin = redisBinary();
    if (!bin) throw new Error("redis-server not found (set REDIS_SERVER_BIN or install redis-server)");
    installExitHook();

    const args = [
      ...(this.opts.sentinelConfig ? [this.opts.sentinelConfig, "--sentinel"] : []),
      "--port", String(this.currentPort),
      "--bind", HOST,
      "--save", "",
      "--appendonly", this.opts.appendonly ? "yes" : "no",
      "--dir", this.dir,
      "--daemonize", "no",
      "--protected-mode", "no",
      ...(this.opts.extraArgs ?? []),
    ];
    const [cmd, cmdArgs] = hasSetprivPdeathsig()
      ? ["setpriv", ["--pdeathsig", "SIGKILL", bin, ...args]]
      : [bin, args];

    this.log = [];
    const child = spawn(cmd, cmdArgs as string[], { stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    liveChildren.add(child);
    const onOutput = (chunk: Buffer): void => {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line.trim() === "") continue;
        this.log.push(line);
        if (this.log.length > LOG_LINES) this.log.shift();
      }
    };
    child.stdout?.on("data", onOutput);
    child.stderr?.on("data", onOutput);

    let exitInfo: string | null = null;
    this.exited = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        exitInfo = signal ? `signal ${signal}` : `code ${code}`;
        liveChildren.delete(child);
        if (this.child === child) this.child = null;
        resolve();
      });
      child.once("error", (err) => {
        exitInfo = `spawn error: ${err.message}`;
        liveChildren.delete(child);
        if (this.child === child) this.child = null;
        resolve();
      });
    });

    const timeoutMs = this.opts.startTimeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < deadline) {
      if (exitInfo !== null) {
        await this.exited;
        throw new Error(
          `redis-server on port ${this.currentPort} exited during startup (${exitInfo}):\n${this.logTail()}`,
        );
      }
      try {
        last = await rawCommand(this.currentPort, ["PING"], 500);
        if (last === "+PONG" || (this.opts.acceptLoading && last.startsWith("-LOADING"))) return;
      } catch (err) {
        last = (err as Error).message;
      }
      await sleep(25);
    }
    await this.kill9();
    throw new Error(
      `redis-server on port ${this.currentPort} did not answer PING within ${timeoutMs} ms (last: ${last}):\n${this.logTail()}`,
    );
  }

  private async waitExit(ms: number): Promise<boolean> {
    if (!this.child) return true;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
    const ok = await Promise.race([this.exited.then(() => true), timedOut]);
    clearTimeout(timer);
    return ok;
  }

  private async shutdownWith(args: string[]): Promise<void> {
    const child = this.child;
    if (!child) return;
    try {
      await rawCommand(this.currentPort, args, 5000);
    } catch {
      // fall through to signals
    }
    if (await this.waitExit(10_000)) return;
    child.kill("SIGTERM");
    if (await this.waitExit(5_000)) return;
    await this.kill9();
  }

  stop(): Promise<void> {
    return this.shutdownWith(["SHUTDOWN", "NOSAVE"]);
  }

  shutdown(): Promise<void> {
    return this.shutdownWith(["SHUTDOWN"]);
  }

  async kill9(): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill("SIGKILL");
    await this.exited;
  }

  async cleanup(): Promise<void> {
    if (this.child) await this.stop();
    if (!this.cleaned && this.ownsDir) {
      await rm(this.dir, { recursive: true, force: true });
    }
    this.cleaned = true;
  }
}

export async function startRedisServer(opts: RedisServerOptions = {}): Promise<RedisServerHandle> {
  const ownsDir = opts.dir === undefined;
  const dir = opts.dir ?? (await mkdtemp(path.join(os.tmpdir(), "qworker-redis-")));
  const server = new RedisServer(opts.port ?? (await freePort()), dir, ownsDir, opts);
  try {
    await server.firstStart();
  } catch (err) {
    await server.cleanup();
    throw err;
  }
  return server;
}

/**
 * A redis-server that, once this resolves, is loading its data set after a restart and answers LOADING for
 * a few seconds: `keys` keys are saved to its RDB, and it starts again loading them at `delayUs` each
 * (Redis's `key-load-delay`), handling clients between keys. About 4 s with the defaults.
 */
export async function startLoadingRedisServer(opts: { keys?: number; delayUs?: number } = {}): Promise<RedisServerHandle> {
  const redis = await startRedisServer({
    acceptLoading: true,
    extraArgs: ["--key-load-delay", String(opts.delayUs ?? 2000), "--loading-process-events-interval-bytes", "1024"],
  });
  try {
    const keys = opts.keys ?? 2000;
    await rawCommand(redis.port, ["EVAL", `for i = 1, ${keys} do redis.call('SET', 'k' .. i, 'v') end`, "0"]);
    await rawCommand(redis.port, ["SAVE"], 10_000);
    await redis.stop();
    await redis.start();
    const reply = await rawCommand(redis.port, ["PING"]);
    if (!reply.startsWith("-LOADING")) throw new Error(`expected redis-server to be loading after its restart, got ${reply}`);
  } catch (err) {
    await redis.cleanup();
    throw err;
  }
  return redis;
}
