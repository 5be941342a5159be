import { createTransport, transportOptions } from "../broker/factory.ts";
import type { Transport } from "../broker/transport.ts";
import { loadConfig } from "../config/load.ts";
import type { QWorkerConfig } from "../config/schema.ts";
import { QWorkerError, ResultIgnoredError, ResultTimeoutError, UsageError } from "../errors.ts";
import { decodeResult, errorFromInfo, type TaskResult } from "../results/record.ts";
import type { TaskHandle } from "../tasks/define.ts";
import { isTaskDefinition, type TaskDefinition } from "../tasks/definition.ts";
import { waitTimeoutMs } from "../results/wait-deadline.ts";
import { buildEnqueueItem } from "./build-message.ts";
import { compileRoutes } from "./routes.ts";
import type { SendOptions, TaskCall, TaskRef } from "./types.ts";

/** Tasks per broker call in sendMany: large enough to amortise the round trip, small enough not to stall Redis. */
const SEND_MANY_CHUNK = 1000;

export interface ClientOptions {
  /** Broker URL; otherwise read from QWORKER_BROKER_URL / config/qworker.yaml like the CLI. */
  brokerUrl?: string;
  configPath?: string;
  /** Use this transport (tests, custom transports). */
  transport?: Transport;
}

export interface Client {
  readonly transport: Transport;
  /**
   * Send a task defined with defineTask: its arguments are checked and its result typed from the handler,
   * and it goes to the definition's queue with its priority unless `options` say otherwise, as
   * `task.applyAsync(args, options)` does on the default client.
   */
  send<A extends unknown[], R>(task: TaskHandle<A, R>, args: A, options?: SendOptions): Promise<TaskRef<Awaited<R>>>;
  /** Send a task by name: to `options.queue`, else its `task_routes` entry, else default_queue. */
  send<R = unknown>(task: string, args?: unknown[], options?: SendOptions): Promise<TaskRef<R>>;
  /**
   * Send many tasks with one broker call per 1,000 (BullMQ's addBulk): refs in the order given. Every
   * message is built and checked before anything is sent; each chunk of 1,000 is enqueued atomically, the
   * whole call is not (a failure part-way leaves the earlier chunks sent).
   */
  sendMany(calls: TaskCall[]): Promise<TaskRef[]>;
  /** A handle on an existing task id. */
  ref<R = unknown>(id: string): TaskRef<R>;
  close(): Promise<void>;
}

/** A client that sends tasks by name and waits for their results; call close() when done. */
export async function createClient(options: ClientOptions = {}): Promise<Client> {
  const { config } = loadConfig({
    ...(options.configPath ? { configPath: options.configPath } : {}),
    // An empty brokerUrl is a mistake to report (the schema does), not a reason to fall back to the config's.
    overrides: options.brokerUrl !== undefined ? { broker_url: options.brokerUrl } : {},
    overrideSource: () => "createClient option brokerUrl",
  });
  const transport = options.transport ?? (await createTransport(config.broker_url, transportOptions(config, { failFast: true })));
  if (!options.transport) await transport.connect();
  return new QWorkerClient(transport, config);
}

/** sendMany's calls, or a one-line UsageError naming the first that is not `{ task, args?, options? }`. */
function checkCalls(calls: unknown): TaskCall[] {
  const shape = "{ task, args?, options? }";
  if (!Array.isArray(calls)) throw new UsageError(`sendMany expects a list of ${shape}, found ${describeValue(calls)}`);
  calls.forEach((c: unknown, i) => {
    if (typeof c !== "object" || c === null || Array.isArray(c)) throw new UsageError(`sendMany: call ${i} must be ${shape}, found ${describeValue(c)}`);
    const { options } = c as { options?: unknown };
    if (options !== undefined && (typeof options !== "object" || options === null)) {
      throw new UsageError(`sendMany: call ${i}'s options must be an object, found ${describeValue(options)}`);
    }
  });
  return calls as TaskCall[];
}

/**
 * The name and options a defined task is sent with: the definition's queue and priority are the defaults of
 * every send of it, the call's own options win. A task named only by discovery (from its file, in the
 * worker) has no name in an app.
 */
export function definitionSend(task: Pick<TaskDefinition, "name" | "options">, options: SendOptions): [string, SendOptions] {
  if (!task.name) {
    throw new QWorkerError("E_TASK_UNNAMED", "this task has no name yet: give it one (defineTask({ name }, …)) to send it from application code");
  }
  const { queue, priority } = task.options;
  return [task.name, { ...(queue ? { queue } : {}), ...(priority !== undefined ? { priority } : {}), ...options }];
}

function describeValue(v: unknown): string {
  if (Array.isArray(v)) return "a list";
  if (typeof v === "string") return `string ${JSON.stringify(v)}`;
  return v === null ? "null" : typeof v;
}

class QWorkerClient implements Client {
  private readonly route: (task: string) => string | undefined;

  constructor(
    readonly transport: Transport,
    private readonly config: QWorkerConfig,
  ) {
    this.route = compileRoutes(config.task_routes);
  }

  /** What every message built here defaults to. */
  private get defaults() {
    return { queue: this.config.default_queue, maxPayloadBytes: this.config.max_payload_bytes, route: this.route };
  }

  send<A extends unknown[], R>(task: TaskHandle<A, R>, args: A, options?: SendOptions): Promise<TaskRef<Awaited<R>>>;
  send<R = unknown>(task: string, args?: unknown[], options?: SendOptions): Promise<TaskRef<R>>;
  async send(task: string | TaskDefinition, args: unknown[] = [], options: SendOptions = {}): Promise<TaskRef<unknown>> {
    const [name, sendOptions] = isTaskDefinition(task) ? definitionSend(task, options) : [task, options];
    const item = buildEnqueueItem(name, args, sendOptions, this.defaults);
    const [res] = await this.transport.enqueue([item]);
    const ignored = sendOptions.ignoreResult === true || (isTaskDefinition(task) && task.options.ignoreResult === true);
    return this.refFor(item, res, ignored);
  }

  async sendMany(calls: TaskCall[]): Promise<TaskRef[]> {
    const defaults = this.defaults;
    const items = checkCalls(calls).map((c) => buildEnqueueItem(c.task, c.args ?? [], c.options ?? {}, defaults));
    const refs: TaskRef[] = [];
    for (let i = 0; i < items.length; i += SEND_MANY_CHUNK) {
      const chunk = items.slice(i, i + SEND_MANY_CHUNK);
      const results = await this.transport.enqueue(chunk);
      chunk.forEach((item, k) => refs.push(this.refFor(item, results[k], calls[i + k]?.options?.ignoreResult === true)));
    }
    return refs;
  }

  /**
   * The ref for a sent item: the id that will run (another one's, for a duplicate) and whether it was one.
   * `ignored`: sent with ignoreResult, so get() has nothing to wait for (for a duplicate, the task that runs
   * was sent by someone else, with options this send cannot see).
   */
  private refFor<R>(item: { id: string }, res: { id: string; duplicate: boolean } | undefined, ignored: boolean): TaskRef<R> {
    const duplicate = res?.duplicate ?? false;
    return this.makeRef<R>(res?.id ?? item.id, duplicate, ignored && !duplicate);
  }

  ref<R>(id: string): TaskRef<R> {
    return this.makeRef<R>(id, false, false);
  }

  private makeRef<R>(id: string, duplicate: boolean, ignored: boolean): TaskRef<R> {
    const transport = this.transport;
    return {
      id,
      duplicate,
      async state(): Promise<TaskResult | null> {
        const raw = await transport.getResult(id);
        return raw === null ? null : decodeResult(raw);
      },
      async get(opts?: { timeout?: number }): Promise<R> {
        const timeoutMs = waitTimeoutMs(opts?.timeout ?? 3600);
        if (ignored) throw new ResultIgnoredError(id);
        const raw = await transport.waitForResult(id, timeoutMs);
        if (raw === null) throw new ResultTimeoutError(id, timeoutMs);
        const result = decodeResult(raw);
        if (result.state === "SUCCESS") return result.result as R;
        if (result.state === "FAILURE" && result.error) throw errorFromInfo(result.error);
        throw new QWorkerError(`E_${result.state}`, `task ${id} ended ${result.state}`);
      },
    };
  }

  async close(): Promise<void> {
    await this.transport.close();
  }
}
