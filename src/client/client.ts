import { createTransport, transportOptions } from "../broker/factory.ts";
import type { Transport } from "../broker/transport.ts";
import { loadConfig } from "../config/load.ts";
import type { QWorkerConfig } from "../config/schema.ts";
import { QWorkerError, ResultTimeoutError } from "../errors.ts";
import { decodeResult, errorFromInfo, type TaskResult } from "../results/record.ts";
import { buildEnqueueItem } from "./build-message.ts";
import type { SendOptions, TaskRef } from "./types.ts";


export interface ClientOptions {
  /** Broker URL; otherwise read from QWORKER_BROKER_URL / config/qworker.yaml like the CLI. */
  brokerUrl?: string;
  configPath?: string;
  /** Use this transport (tests, custom transports). */
  transport?: Transport;
}

export interface Client {
  readonly transport: Transport;
  send<R = unknown>(task: string, args?: unknown[], options?: SendOptions): Promise<TaskRef<R>>;
  /** A handle on an existing task id. */
  ref<R = unknown>(id: string): TaskRef<R>;
  close(): Promise<void>;
}

/** A client that sends tasks by name and waits for their results; call close() when done. */
export async function createClient(options: ClientOptions = {}): Promise<Client> {
  const { config } = loadConfig({
    ...(options.configPath ? { configPath: options.configPath } : {}),
    overrides: options.brokerUrl ? { broker_url: options.brokerUrl } : {},
  });
  const transport = options.transport ?? (await createTransport(config.broker_url, transportOptions(config, { failFast: true })));
  if (!options.transport) await transport.connect();
  return new QWorkerClient(transport, config);
}

class QWorkerClient implements Client {
  constructor(
    readonly transport: Transport,
    private readonly config: QWorkerConfig,
  ) {}

  async send<R>(task: string, args: unknown[] = [], options: SendOptions = {}): Promise<TaskRef<R>> {
    const item = buildEnqueueItem(task, args, options, {
      queue: this.config.default_queue,
      maxPayloadBytes: this.config.max_payload_bytes,
    });
    const [res] = await this.transport.enqueue([item]);
    return this.makeRef<R>(res?.id ?? item.id, res?.duplicate ?? false);
  }

  ref<R>(id: string): TaskRef<R> {
    return this.makeRef<R>(id, false);
  }

  private makeRef<R>(id: string, duplicate: boolean): TaskRef<R> {
    const transport = this.transport;
    return {
      id,
      duplicate,
      async state(): Promise<TaskResult | null> {
        const raw = await transport.getResult(id);
        return raw === null ? null : decodeResult(raw);
      },
      async get(opts?: { timeout?: number }): Promise<R> {
        const timeoutMs = (opts?.timeout ?? 3600) * 1000;
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
