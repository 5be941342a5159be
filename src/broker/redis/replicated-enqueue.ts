import { ReplicationError } from "../../errors.ts";
import type { RedisConnection } from "./connection.ts";
import { runScriptsReplicated } from "./scripts.ts";

interface Pending {
  args: (string | number)[];
  ids: string[];
  resolve: (reply: unknown) => void;
  reject: (err: unknown) => void;
}

/**
 * Enqueues that return only once `replicas` replicas have them (enqueue_min_replicas), grouped so that one
 * WAIT serves every enqueue made while the previous one was waiting. WAIT holds up the connection it is
 * sent on, and every command behind it waits too: with a WAIT per send, concurrent sends from one client
 * waited one after another, so with a replica down the tenth of them failed after ten timeouts (and could
 * run into command_timeout first, with a message that blamed Redis). Grouped, a send waits for at most the
 * WAIT in progress and its own group's.
 */
export class ReplicatedEnqueuer {
  private queue: Pending[] = [];
  private flushing = false;

  constructor(
    private readonly redis: () => RedisConnection,
    private readonly replicas: number,
    private readonly timeoutMs: number,
  ) {}

  /** enqueue.lua's reply for these arguments, once replicated; ReplicationError naming `ids` otherwise. */
  enqueue(args: (string | number)[], ids: string[]): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.queue.push({ args, ids, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.queue.length > 0) {
      const group = this.queue;
      this.queue = [];
      try {
        const { replies, confirmed } = await runScriptsReplicated(this.redis(), "enqueue", group.map((p) => p.args), this.replicas, this.timeoutMs);
        group.forEach((p, i) => {
          const reply = replies[i]!;
          if ("error" in reply) p.reject(reply.error);
          else if (confirmed < this.replicas) p.reject(this.notReplicated(p.ids, confirmed));
          else p.resolve(reply.value);
        });
      } catch (err) {
        for (const p of group) p.reject(err);
      }
    }
    this.flushing = false;
  }

  private notReplicated(ids: string[], confirmed: number): ReplicationError {
    const what = ids.length === 1 ? `task ${ids[0]}` : `${ids.length} tasks (${ids[0]} …)`;
    return new ReplicationError(
      `${what} reached the Redis master, but ${confirmed} of the ${this.replicas} replica(s) enqueue_min_replicas asks for confirmed it within ${this.timeoutMs} ms, so a failover now could lose it: send it again with the same id (qworker send --id; a task still queued is not queued twice), or check the replicas (INFO replication)`,
      ids,
      confirmed,
      this.replicas,
    );
  }
}
