import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { transportOptions } from "../../src/broker/factory.ts";
import { DEFAULT_CONFIG_PATH, loadConfig } from "../../src/config/load.ts";
import { DEFAULT_BROKER_URL } from "../../src/config/schema.ts";
import { ConfigError } from "../../src/errors.ts";

let cwd: string;

beforeEach(() => {
  cwd = mkdtempSync(join(tmpdir(), "qworker-config-"));
});
afterEach(() => {
  rmSync(cwd, { recursive: true, force: true });
});

function writeYaml(text: string, path = DEFAULT_CONFIG_PATH): string {
  const full = join(cwd, path);
  mkdirSync(join(full, ".."), { recursive: true });
  writeFileSync(full, text);
  return path;
}

/** The ConfigError loadConfig throws, so a test can assert on its one line. */
function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected a ConfigError, nothing was thrown");
}

describe("precedence", () => {
  it("uses built-in defaults and the embedded broker when nothing is configured", () => {
    const { config, file, defaultBroker } = loadConfig({ cwd, env: {} });
    expect(config.concurrency).toBe(10);
    expect(config.queues).toEqual(["default"]);
    expect(config.lease_timeout).toBe(30);
    expect(config.retry).toEqual({ max: 3, countdown: 1, backoff: true, backoff_max: 600, jitter: true });
    expect(config.broker_url).toBe(DEFAULT_BROKER_URL);
    expect(defaultBroker).toBe(true);
    expect(file).toBeUndefined();
  });

  it("YAML beats defaults, environment beats YAML, flags beat environment", () => {
    writeYaml("broker_url: redis://yaml:6379/0\nconcurrency: 3\nqueues: [a, b]\nloglevel: warning\nlease_timeout: 12\n");
    const env = { QWORKER_CONCURRENCY: "7", QWORKER_QUEUES: "x, y", QWORKER_BROKER_URL: "redis://env:6379/1" };
    const { config, file, defaultBroker } = loadConfig({ cwd, env, overrides: { concurrency: 9, queues: undefined } });
    expect(config.concurrency).toBe(9); // flag
    expect(config.queues).toEqual(["x", "y"]); // env (the flag was not given)
    expect(config.broker_url).toBe("redis://env:6379/1"); // env
    expect(config.loglevel).toBe("warning"); // YAML
    expect(config.lease_timeout).toBe(12); // YAML
    expect(config.heartbeat_ttl).toBe(10); // default
    expect(file).toBe(join(cwd, DEFAULT_CONFIG_PATH));
    expect(defaultBroker).toBe(false);
  });

  it("reads the file named by QWORKER_CONFIG, and --config over it", () => {
    writeYaml("concurrency: 4\n", "a.yaml");
    writeYaml("concurrency: 5\n", "b.yaml");
    expect(loadConfig({ cwd, env: { QWORKER_CONFIG: "a.yaml" } }).config.concurrency).toBe(4);
    expect(loadConfig({ cwd, env: { QWORKER_CONFIG: "a.yaml" }, configPath: "b.yaml" }).config.concurrency).toBe(5);
  });

  it("reads environment values as typed scalars", () => {
    const env = { QWORKER_LEASE_TIMEOUT: "2.5", QWORKER_PREFETCH: "4", QWORKER_REDIS_PREFIX: "123" };
    const { config } = loadConfig({ cwd, env });
    expect(config.lease_timeout).toBe(2.5);
    expect(config.prefetch).toBe(4);
    expect(config.redis_prefix).toBe("123"); // strings stay strings even when they look like numbers
  });

  it("loglevel in any case, as Celery users write it (--loglevel INFO), from flag, environment or file", () => {
    expect(loadConfig({ cwd, env: {}, overrides: { loglevel: "WARNING" } }).config.loglevel).toBe("warning");
    expect(loadConfig({ cwd, env: { QWORKER_LOGLEVEL: "Debug" } }).config.loglevel).toBe("debug");
    writeYaml("loglevel: ERROR\n");
    expect(loadConfig({ cwd, env: {} }).config.loglevel).toBe("error");
    expect(configError(() => loadConfig({ cwd, env: {}, overrides: { loglevel: "LOUD" } })).message).toMatch(/^option --loglevel: key "loglevel": expected one of .*found string "LOUD"$/);
  });

  it("ignores empty environment variables", () => {
    writeYaml("concurrency: 3\n");
    expect(loadConfig({ cwd, env: { QWORKER_CONCURRENCY: "" } }).config.concurrency).toBe(3);
  });

  it("accepts an empty YAML file", () => {
    writeYaml("# nothing yet\n");
    expect(loadConfig({ cwd, env: {} }).config.concurrency).toBe(10);
  });
});

describe("errors: one line naming the source, the key, what was found and what is expected", () => {
  it("unknown key, with a suggestion", () => {
    writeYaml("concurency: 4\n");
    const err = configError(() => loadConfig({ cwd, env: {} }));
    expect(err.message).toBe(`${DEFAULT_CONFIG_PATH}: unknown key "concurency" (did you mean "concurrency"?)`);
    expect(err.exitCode).toBe(2);
    expect(err.code).toBe("E_CONFIG");
  });

  it("unknown key far from any known one: no suggestion", () => {
    writeYaml("colour: blue\n");
    expect(configError(() => loadConfig({ cwd, env: {} })).message).toBe(`${DEFAULT_CONFIG_PATH}: unknown key "colour"`);
  });

  it("unknown key inside retry or celery: named by its full path, suggested from its own mapping", () => {
    writeYaml("retry:\n  maxx: 2\n");
    expect(configError(() => loadConfig({ cwd, env: {} })).message).toBe(`${DEFAULT_CONFIG_PATH}: unknown key "retry.maxx" (did you mean "retry.max"?)`);
    writeYaml("retry:\n  bogus: 1\n");
    expect(configError(() => loadConfig({ cwd, env: {} })).message).toBe(`${DEFAULT_CONFIG_PATH}: unknown key "retry.bogus"`);
    writeYaml("celery:\n  queues: [celery]\n  concurency: 2\n");
    expect(configError(() => loadConfig({ cwd, env: {} })).message).toMatch(/^config\/qworker\.yaml: unknown key "celery\.concurency"( \(did you mean "celery\.\w+"\?\))?$/);
  });

  it("soft_time_limit not below time_limit", () => {
    // time_limit 0 is no limit, as timeLimit: 0 on a task: any soft limit is below it.
    writeYaml("time_limit: 0\nsoft_time_limit: 30\n");
    expect(loadConfig({ cwd, env: {} }).config.soft_time_limit).toBe(30);
    writeYaml("time_limit: 2\nsoft_time_limit: 5\n");
    expect(configError(() => loadConfig({ cwd, env: {} })).message).toBe(`${DEFAULT_CONFIG_PATH}: key "soft_time_limit": must be below time_limit (2), found number 5`);
    expect(loadConfig({ cwd, env: { QWORKER_SOFT_TIME_LIMIT: "1" } }).config.soft_time_limit).toBe(1);
  });

  it("range and length errors read as ours, not zod's ('Too small: expected number to be >=1')", () => {
    writeYaml("concurrency: 0\n");
    expect(configError(() => loadConfig({ cwd, env: {} })).message).toBe(`${DEFAULT_CONFIG_PATH}: key "concurrency": expected a number >= 1, found number 0`);
    writeYaml("queues: []\n");
    expect(configError(() => loadConfig({ cwd, env: {} })).message).toBe(`${DEFAULT_CONFIG_PATH}: key "queues": expected a non-empty list, found a list ([])`);
    writeYaml("concurrency: 1.5\n");
    expect(configError(() => loadConfig({ cwd, env: {} })).message).toBe(`${DEFAULT_CONFIG_PATH}: key "concurrency": expected an integer, found number 1.5`);
  });

  it("QWORKER_RETRY_MAX and the like set one retry key, over the file's retry mapping", () => {
    writeYaml("retry:\n  max: 5\n  countdown: 10\n");
    const { config } = loadConfig({ cwd, env: { QWORKER_RETRY_MAX: "7", QWORKER_RETRY_JITTER: "false" } });
    expect(config.retry).toMatchObject({ max: 7, countdown: 10, jitter: false });
    expect(configError(() => loadConfig({ cwd, env: { QWORKER_RETRY_MAX: "abc" } })).message).toBe(
      'environment variable QWORKER_RETRY_MAX: key "retry.max": expected number, found string "abc"',
    );
  });

  it("a QWORKER_* variable one or two letters off a setting is reported with the setting meant; others are not", () => {
    writeYaml("");
    const { unknownEnv } = loadConfig({ cwd, env: { QWORKER_CONCURENCY: "3", QWORKER_TEST_RUNS: "/tmp/x", QWORKER_CONFIG: undefined } });
    expect(unknownEnv).toEqual([{ name: "QWORKER_CONCURENCY", meant: "QWORKER_CONCURRENCY" }]);
    // Short names must be one edit off: QWORKER_PORT is an app's own, not a misspelt QWORKER_POOL.
    expect(loadConfig({ cwd, env: { QWORKER_PORT: "1", QWORKER_QUEUE: "a" } }).unknownEnv).toEqual([{ name: "QWORKER_QUEUE", meant: "QWORKER_QUEUES" }]);
  });

  it("heartbeat_ttl at or below heartbeat_interval is refused (healthy workers would take each other for dead)", () => {
    writeYaml("heartbeat_ttl: 2\nheartbeat_interval: 5\n");
    expect(configError(() => loadConfig({ cwd, env: {} })).message).toBe(
      `${DEFAULT_CONFIG_PATH}: key "heartbeat_ttl": must be above heartbeat_interval (5), or healthy workers are taken for dead; 3 to 5 times it is usual, found number 2`,
    );
    writeYaml("heartbeat_ttl: 2\n");
    expect(configError(() => loadConfig({ cwd, env: {} })).message).toMatch(/key "heartbeat_ttl": must be above heartbeat_interval \(2\)/);
    expect(loadConfig({ cwd, env: { QWORKER_HEARTBEAT_TTL: "3" } }).config.heartbeat_ttl).toBe(3);
  });

  it("time limits no timer can wait for (over 2147483 s) are refused", () => {
    writeYaml("time_limit: 2592000\n");
    expect(configError(() => loadConfig({ cwd, env: {} })).message).toBe(
      `${DEFAULT_CONFIG_PATH}: key "time_limit": must be at most 2147483 seconds (about 24 days, the longest a timer can wait); leave it unset for no limit, found number 2592000`,
    );
    writeYaml("time_limit: 2147483\n");
    expect(loadConfig({ cwd, env: {} }).config.time_limit).toBe(2_147_483);
  });

  it("wrong type in the file", () => {
    writeYaml('concurrency: "ten"\n');
    expect(configError(() => loadConfig({ cwd, env: {} })).message).toBe(
      `${DEFAULT_CONFIG_PATH}: key "concurrency": expected number, found string "ten"`,
    );
  });

  it("a wrong shape is named in YAML's words (list, mapping, true or false), not zod's (array, record, object, boolean)", () => {
    const cases: [string, string][] = [
      ["queues: default\n", 'key "queues": expected a list, e.g. [a, b], found string "default"'],
      ["retry: 5\n", 'key "retry": expected a mapping (key: value), found number 5'],
      ["task_routes: reports\n", 'key "task_routes": expected a mapping of task names or globs to queues, e.g. {"reports.*": reports}, found string "reports"'],
      ["broker_connection_retry_on_startup: maybe\n", 'key "broker_connection_retry_on_startup": expected true or false, found string "maybe"'],
    ];
    for (const [yaml, said] of cases) {
      writeYaml(yaml);
      expect(configError(() => loadConfig({ cwd, env: {} })).message).toBe(`${DEFAULT_CONFIG_PATH}: ${said}`);
    }
    rmSync(join(cwd, DEFAULT_CONFIG_PATH));
    const fromEnv = configError(() => loadConfig({ cwd, env: { QWORKER_TASK_ROUTES: "reports.*=reports" } }));
    expect(fromEnv.message).toMatch(/^environment variable QWORKER_TASK_ROUTES: key "task_routes": expected a mapping of task names or globs to queues, e\.g\. \{"reports\.\*": reports\}, found string/);
  });

  it("wrong type names the environment variable it came from", () => {
    const err = configError(() => loadConfig({ cwd, env: { QWORKER_CONCURRENCY: "abc" } }));
    expect(err.message).toMatch(/^environment variable QWORKER_CONCURRENCY: key "concurrency": .*found string "abc"$/);
    expect(err.exitCode).toBe(2);
  });

  it("out-of-range nested value names its full path", () => {
    writeYaml("retry:\n  max: -1\n");
    const err = configError(() => loadConfig({ cwd, env: {} }));
    expect(err.message).toMatch(/key "retry\.max": .*found number -1$/);
  });

  it("bad broker URL, named by the flag that gave it", () => {
    const err = configError(() => loadConfig({ cwd, env: {}, overrides: { broker_url: "http://x" } }));
    expect(err.message).toBe(
      'option --broker: key "broker_url": expected a URL starting with redis://, rediss://, redis+sentinel://, redis+cluster:// or sqlite://, found string "http://x"',
    );
  });

  it("a malformed Sentinel URL in celery.broker_url fails at load with the reason, as broker_url does", () => {
    writeYaml("celery:\n  broker_url: redis+sentinel://s1:26379\n");
    const err = configError(() => loadConfig({ cwd, env: {} }));
    expect(err.message).toMatch(/key "celery\.broker_url": .*names no master: expected redis\+sentinel:\/\/host:26379/);
    expect(err.message).not.toContain("\n");
    writeYaml("celery:\n  broker_url: redis+cluster://n1:6379\n");
    expect(configError(() => loadConfig({ cwd, env: {} })).message).toMatch(/key "celery\.broker_url": .*kombu has no Cluster support/);
    writeYaml("celery:\n  broker_url: redis+sentinel://s1:26379,s2/mymaster\n");
    expect(loadConfig({ cwd, env: {} }).config.celery?.broker_url).toBe("redis+sentinel://s1:26379,s2/mymaster");
  });

  it("a broker URL that does not parse at all", () => {
    writeYaml("broker_url: not a url\n");
    expect(configError(() => loadConfig({ cwd, env: {} })).message).toMatch(/key "broker_url": expected a URL/);
  });

  it("bad YAML gives line and column", () => {
    writeYaml("broker_url: redis://x\nqueues: [a, b\nconcurrency: 2\n");
    const err = configError(() => loadConfig({ cwd, env: {} }));
    expect(err.message).toMatch(new RegExp(`^${DEFAULT_CONFIG_PATH}: invalid YAML at line \\d+, column \\d+: `));
    expect(err.message).not.toContain("\n");
    expect(err.exitCode).toBe(2);
  });

  it("bad YAML points at the offending line", () => {
    writeYaml("loglevel: info\nconcurrency: 2\nconcurrency: 3\n");
    expect(configError(() => loadConfig({ cwd, env: {} })).message).toBe(
      `${DEFAULT_CONFIG_PATH}: invalid YAML at line 3, column 1: Map keys must be unique`,
    );
  });

  it("a YAML file that is not a mapping", () => {
    writeYaml("- a\n- b\n");
    expect(configError(() => loadConfig({ cwd, env: {} })).message).toMatch(/expected a mapping of settings.*found a list/);
  });

  it("a config file that does not exist, when one was asked for", () => {
    const err = configError(() => loadConfig({ cwd, env: {}, configPath: "missing.yaml" }));
    expect(err.message).toBe("config file missing.yaml not found: check --config or QWORKER_CONFIG");
    expect(err.exitCode).toBe(2);
  });

  it("every error is a single line", () => {
    const cases: (() => unknown)[] = [
      () => loadConfig({ cwd, env: { QWORKER_LOGLEVEL: "loud" } }),
      () => loadConfig({ cwd, env: { QWORKER_QUEUES: "," } }),
      () => loadConfig({ cwd, env: {}, overrides: { concurrency: 0 } }),
    ];
    for (const run of cases) expect(configError(run).message).not.toContain("\n");
  });
});

describe("enqueue_min_replicas", () => {
  it("defaults to 0 and is read for a Redis broker", () => {
    expect(loadConfig({ cwd, env: {} }).config.enqueue_min_replicas).toBe(0);
    const { config } = loadConfig({ cwd, env: { QWORKER_BROKER_URL: "redis://127.0.0.1:6379", QWORKER_ENQUEUE_MIN_REPLICAS: "1" } });
    expect(config).toMatchObject({ enqueue_min_replicas: 1, enqueue_replica_timeout: 1 });
    expect(transportOptions(config, { failFast: true })).toEqual({
      failFast: true,
      redisPrefix: "qw:",
      enqueueMinReplicas: 1,
      enqueueReplicaTimeoutMs: 1000,
      // command_timeout (10 s) counts from the end of the replica wait the send asks Redis for
      commandTimeoutMs: 11_000,
      resultTtlMs: 86_400_000,
    });
  });

  it("is refused, in one line naming where it was set, for the embedded broker", () => {
    const err = configError(() => loadConfig({ cwd, env: { QWORKER_ENQUEUE_MIN_REPLICAS: "2" } }));
    expect(err.message).toBe(
      'environment variable QWORKER_ENQUEUE_MIN_REPLICAS: key "enqueue_min_replicas" needs a Redis broker with replicas, not sqlite://.qworker/broker.db: remove it, or set broker_url to a Redis URL',
    );
  });
});

describe("command_timeout", () => {
  const redis = { QWORKER_BROKER_URL: "redis://127.0.0.1:6379" };

  it("bounds the CLI's and apps' commands (10 s by default), never a worker's", () => {
    const { config } = loadConfig({ cwd, env: redis });
    expect(config.command_timeout).toBe(10);
    expect(transportOptions(config, { failFast: true }).commandTimeoutMs).toBe(10_000);
    expect(transportOptions(config).commandTimeoutMs).toBeUndefined();
  });

  it("can be set in seconds, and 0 waits for ever", () => {
    expect(transportOptions(loadConfig({ cwd, env: { ...redis, QWORKER_COMMAND_TIMEOUT: "2.5" } }).config, { failFast: true }).commandTimeoutMs).toBe(2500);
    expect(transportOptions(loadConfig({ cwd, env: { ...redis, QWORKER_COMMAND_TIMEOUT: "0" } }).config, { failFast: true }).commandTimeoutMs).toBeUndefined();
  });

  it("refuses a negative value in one line", () => {
    writeYaml("command_timeout: -1\n");
    expect(configError(() => loadConfig({ cwd, env: {} })).message).toMatch(/command_timeout/);
  });
});

describe("result_expires", () => {
  it("is the transports' result TTL, so a revoked task's REVOKED result is kept as long as any other", () => {
    expect(transportOptions(loadConfig({ cwd, env: {} }).config).resultTtlMs).toBe(86_400_000);
    expect(transportOptions(loadConfig({ cwd, env: { QWORKER_RESULT_EXPIRES: "90" } }).config, { failFast: true }).resultTtlMs).toBe(90_000);
    expect(transportOptions(loadConfig({ cwd, env: { QWORKER_RESULT_EXPIRES: "0" } }).config).resultTtlMs).toBe(0);
  });
});
