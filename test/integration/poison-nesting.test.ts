/**
 * Messages a worker could read but not run, found by test/unit/decoders-fuzz.test.ts, are dead-lettered at
 * once with a one-line reason, and the worker goes on with other work. A message nested deeper than
 * JSON.stringify can write back:
 * - on the embedded broker, a qworker message: its task failed on it, the retry could not be encoded, and it
 *   was handed back and run again for ever;
 * - on Redis, a Celery message a qworker worker consumes: the consumer could not re-encode it for the worker,
 *   so every claim failed as a broker error ("broker unreachable (Maximum call stack size exceeded)"), and the
 *   good messages claimed with it waited with it. (The qworker message on Redis is in faults/s4-poison.)
 * A Celery message whose id is longer than a qworker message holds: the worker refused it after the Celery
 * decode had accepted it, and dead-lettered it without the FAILURE result a waiting Celery client needs.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { createRedisTransport } from "../../src/broker/redis/index.ts";
import { createCeleryClient } from "../../src/celery/client.ts";
import { defineTask } from "../../src/index.ts";
import { decodeResultMeta, encodeCeleryTask } from "../../src/protocol/celery/index.ts";
import type { TaskDefinition } from "../../src/tasks/definition.ts";
import { waitFor } from "../e2e/helpers.ts";
import { startQworkerWorker } from "../fixtures/celery/interop.ts";
import { redisServerAvailable, startRedisServer } from "../support/redis-server.ts";
import { startSqliteWorker } from "../support/sqlite-worker.ts";

/** 20,000 levels: JSON.stringify gives up at about 4,000. */
const DEEP = "[".repeat(20_000) + "]".repeat(20_000);

describe("a message nested deeper than a worker can write back", () => {
  it("embedded broker: dead-lettered with its reason; the next task runs", async () => {
    // String() recurses too: the task fails on the argument, as a real one printing it would.
    const tasks = [defineTask({ name: "t.show" }, (x: unknown) => String(x)), defineTask({ name: "t.ok" }, () => "ok")];
    const { client, transport, about, close } = await startSqliteWorker(tasks as TaskDefinition[], { retry: { max: 3, countdown: 0.01 } });
    try {
      const payload = `{"v":1,"id":"deep-1","task":"t.show","args":[${DEEP}],"kwargs":{},"queue":"default","priority":0,"retries":0,"sentAt":1}`;
      await transport.enqueue([{ id: "deep-1", queue: "default", priority: 0, payload }]);
      const ok = await client.send("t.ok");
      expect(await ok.get({ timeout: 10 })).toBe("ok");
      await waitFor("the deep message to be dead-lettered", async () => ((await transport.listDead()).length === 1 ? true : undefined), 5000);
      expect((await transport.listDead())[0]).toMatchObject({
        id: "deep-1",
        reason: 'undecodable message: payload "args" nests deeper than 512 levels, more than a worker can write back',
      });
      expect(about("deep-1").filter((m) => / started| retry /.test(m))).toEqual([]);
    } finally {
      await close();
    }
  }, 30_000);

  it.skipIf(!redisServerAvailable())("Celery messages on Redis (deep; an id too long): dead-lettered with a FAILURE result; the task after each runs", async () => {
    const server = await startRedisServer();
    const raw = new Redis(server.url);
    const t = createRedisTransport(server.url);
    const celery = await createCeleryClient({ brokerUrl: server.url });
    const outDir = mkdtempSync(path.join(os.tmpdir(), "qw-poison-nesting-"));
    const worker = startQworkerWorker(server.url, outDir);
    try {
      await t.connect();
      await worker.waitFor(/celery queues: celery/);
      const body = Buffer.from(`[[${DEEP}], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`).toString("base64");
      const id = "6f25c36f-62bf-4767-a722-deadbeef0001";
      const envelope = {
        body,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        headers: { lang: "py", task: "tasks.add", id, retries: 0, timelimit: [null, null], root_id: id },
        properties: { correlation_id: id, body_encoding: "base64", delivery_tag: "t-1", delivery_info: { exchange: "", routing_key: "celery" }, priority: 0 },
      };
      await raw.lpush("celery", JSON.stringify(envelope));
      const add = await celery.send("tasks.add", [2, 3]);
      expect(await add.get({ timeout: 10 })).toBe(5);
      const reason = "undecodable Celery message: celery message: body element 0 nests deeper than 512 levels, more than a worker can write back";
      await waitFor("the deep message to be dead-lettered", async () => ((await t.listDead("celery:celery")).length === 1 ? true : undefined), 5000);
      expect((await t.listDead("celery:celery"))[0]!.reason).toBe(reason);
      const stored = decodeResultMeta((await raw.get(`celery-task-meta-${id}`))!);
      expect(stored.state).toBe("FAILURE");
      expect(stored.error!.message).toBe(reason.slice("undecodable Celery message: ".length));
      expect(worker.output()).not.toMatch(/Maximum call stack|broker unreachable/);

      // An id Celery allows but a qworker message does not hold: a FAILURE for the waiting client.
      const longId = "x".repeat(201);
      await raw.lpush("celery", encodeCeleryTask({ task: "tasks.add", id: longId, args: [1, 2] }).raw);
      const after = await celery.send("tasks.add", [4, 5]);
      expect(await after.get({ timeout: 10 })).toBe(9);
      const failed = await celery.result(longId).wait({ timeout: 5 });
      expect(failed.state).toBe("FAILURE");
      expect(failed.error!.message).toBe("celery message: headers.id: id is longer than 200 characters, the most a qworker worker keeps");
      await waitFor("the long id to be dead-lettered", async () => ((await t.listDead("celery:celery")).length === 2 ? true : undefined), 5000);
      expect(worker.child.exitCode).toBeNull();
    } finally {
      await worker.kill();
      await celery.close();
      await t.close();
      raw.disconnect();
      await server.cleanup();
      rmSync(outDir, { recursive: true, force: true });
    }
  }, 60_000);
});
