import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { maskUrl, sentinelReason } from "../../src/broker/redis/connection.ts";
import { clusterPrefix } from "../../src/broker/redis/keys.ts";
import { isClusterUrl, isRedisUrl, parseRedisUrl } from "../../src/broker/redis/url.ts";
import { loadConfig } from "../../src/config/load.ts";
import { ConfigError } from "../../src/errors.ts";

describe("parseRedisUrl", () => {
  it("passes plain redis:// and rediss:// URLs to ioredis as they are, with their db", () => {
    expect(parseRedisUrl("redis://127.0.0.1:6379/3")).toEqual({ kind: "url", url: "redis://127.0.0.1:6379/3", db: 3 });
    expect(parseRedisUrl("rediss://h:6380")).toEqual({ kind: "url", url: "rediss://h:6380", db: 0 });
  });

  it("reads a plain URL's db from its path or its db option; anything but digits is a ConfigError naming the URL", () => {
    expect(parseRedisUrl("redis://h:6379/0/").db).toBe(0);
    expect(parseRedisUrl("redis://h:6379?db=4").db).toBe(4);
    expect(parseRedisUrl("rediss://h/2147483647").db).toBe(2147483647);
    for (const [url, problem] of [
      ["redis://h:6379/abc", /^Redis URL redis:\/\/h:6379\/abc: database "abc" is not a number from 0 up: expected redis:\/\//],
      ["redis://h:6379/-1", /database "-1" is not a number from 0 up/],
      ["rediss://h:6379/1.5", /^Redis URL rediss:\/\/h:6379\/1\.5: database "1\.5" is not a number/],
      ["redis://h:6379/2x", /database "2x" is not a number/],
      ["redis://h:6379/0/extra", /database "0\/extra" is not a number/],
      ["redis://h:6379?db=abc", /database "abc" is not a number/],
      ["redis://h:6379/2147483648", /database 2147483648 is out of range/],
      ["redis+sentinel://s1/m/-1", /^Sentinel URL redis\+sentinel:\/\/s1\/m\/-1: database "-1" is not a number from 0 up/],
      ["rediss+sentinel://s1/m/1.5", /database "1\.5" is not a number/],
    ] as const) {
      expect(() => parseRedisUrl(url), url).toThrow(ConfigError);
      expect(() => parseRedisUrl(url), url).toThrow(problem);
    }
  });

  it("a plain URL that is not a URL at all is a ConfigError that names the bad port, password masked", () => {
    expect(() => parseRedisUrl("redis://127.0.0.1:notaport/0")).toThrow(ConfigError);
    expect(() => parseRedisUrl("redis://u:secret@127.0.0.1:notaport/0")).toThrow(
      /^invalid Redis URL redis:\/\/u:\*\*\*\*@127\.0\.0\.1:notaport\/0: port "notaport" is not a number: expected redis:\/\/\[\[user\]:password@\]host\[:port\]\[\/db\]/,
    );
    expect(() => parseRedisUrl("redis://[::1/0")).toThrow(/^invalid Redis URL redis:\/\/\[::1\/0: it cannot be read as a URL/);
  });

  it("reads sentinels, master name and db from a redis+sentinel:// URL", () => {
    const t = parseRedisUrl("redis+sentinel://10.0.0.1:26379,10.0.0.2,[::1]:26380/mymaster/2");
    expect(t).toEqual({
      kind: "sentinel",
      db: 2,
      options: {
        sentinels: [
          { host: "10.0.0.1", port: 26379 },
          { host: "10.0.0.2", port: 26379 },
          { host: "::1", port: 26380 },
        ],
        name: "mymaster",
        db: 2,
      },
    });
  });

  it("takes the master's credentials from the URL and the sentinels' from options; rediss+ means TLS", () => {
    const t = parseRedisUrl("rediss+sentinel://app:p%40ss@s1:26379/prod?sentinel_password=sp&sentinel_username=su");
    expect(t.kind).toBe("sentinel");
    if (t.kind !== "sentinel") return;
    expect(t.options).toMatchObject({
      username: "app",
      password: "p@ss",
      sentinelPassword: "sp",
      sentinelUsername: "su",
      tls: {},
      enableTLSForSentinelMode: true,
      name: "prod",
      db: 0,
    });
  });

  it("rejects what it cannot read, naming the problem and the form", () => {
    const msg = (u: string): string => {
      try {
        parseRedisUrl(u);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
      throw new Error(`${u} was accepted`);
    };
    expect(msg("redis+sentinel://s1:26379")).toMatch(/names no master: expected redis\+sentinel:\/\/host:26379/);
    expect(msg("redis+sentinel://s1:26379/m/x")).toMatch(/database "x" is not a number/);
    expect(msg("redis+sentinel://s1:99999/m")).toMatch(/port 99999 is out of range/);
    expect(msg("redis+sentinel://s1:26379/m?master=x")).toMatch(/unknown option "master"/);
    expect(msg("redis+sentinel://s1:abc/m")).toMatch(/cannot read address "s1:abc"/);
    // The password never shows in the message.
    expect(msg("redis+sentinel://u:pw@s1/m?sentinel_password=hush&x=1")).not.toMatch(/pw|hush/);
  });

  it("reads a redis+cluster:// URL's start-up nodes and credentials; a cluster has no db", () => {
    expect(parseRedisUrl("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001,10.0.0.3")).toEqual({
      kind: "cluster",
      db: 0,
      nodes: [
        { host: "10.0.0.1", port: 7000 },
        { host: "10.0.0.2", port: 7001 },
        { host: "10.0.0.3", port: 6379 },
      ],
      nodeOptions: { password: "pw" },
    });
    expect(parseRedisUrl("rediss+cluster://n1:7000")).toMatchObject({ kind: "cluster", nodeOptions: { tls: {} } });
    expect(() => parseRedisUrl("redis+cluster://n1:7000/2")).toThrow(/a cluster has no database number/);
    expect(isClusterUrl("redis+cluster://n1")).toBe(true);
    expect(isClusterUrl("redis+sentinel://n1/m")).toBe(false);
  });

  it("gives a prefix without a hash tag one on a cluster, and keeps one that has it", () => {
    expect(clusterPrefix("qw:")).toBe("{qw}:");
    expect(clusterPrefix("myapp")).toBe("{myapp}");
    expect(clusterPrefix("{shop}:qw:")).toBe("{shop}:qw:");
    // "{}" is no hash tag for Redis (an empty tag hashes the whole key), so it gets one.
    expect(clusterPrefix("{}:")).toBe("{{}}:");
  });

  it("recognises every Redis scheme, and masks Sentinel passwords for display", () => {
    for (const u of ["redis://h", "rediss://h", "redis+sentinel://h/m", "REDISS+SENTINEL://h/m", "redis+cluster://h:7000"]) expect(isRedisUrl(u)).toBe(true);
    for (const u of ["sqlite://x.db", "sentinel://h:26379", "http://h"]) expect(isRedisUrl(u)).toBe(false);
    expect(maskUrl("redis+sentinel://u:secret@s1,s2/m?sentinel_password=hush")).toBe("redis+sentinel://u:****@s1,s2/m?sentinel_password=****");
  });

  it("a bad Sentinel URL in the config fails at load, with the reason", () => {
    expect(() => loadConfig({ cwd: "/nonexistent-dir", env: {}, overrides: { broker_url: "redis+sentinel://s1:26379" } })).toThrow(
      /key "broker_url": Sentinel URL redis\+sentinel:\/\/s1:26379 names no master/,
    );
    expect(() => loadConfig({ cwd: "/nonexistent-dir", env: {}, overrides: { broker_url: "sentinel://s1:26379" } })).toThrow(
      /kombu's sentinel:\/\/ form is not read: write redis\+sentinel:\/\//,
    );
    expect(loadConfig({ cwd: "/nonexistent-dir", env: {}, overrides: { broker_url: "redis+sentinel://s1/m" } }).config.broker_url).toBe("redis+sentinel://s1/m");
  });
});

describe("a bad broker URL at load: a ConfigError naming where it came from", () => {
  const bad = "redis://u:secret@127.0.0.1:notaport/0";
  const load = (opts: { env?: NodeJS.ProcessEnv; flag?: string; cwd?: string }) => () =>
    loadConfig({ cwd: opts.cwd ?? "/nonexistent-dir", env: opts.env ?? {}, ...(opts.flag ? { overrides: { broker_url: opts.flag } } : {}) });

  it("from the flag, the environment or the YAML file, with the password masked everywhere in the line", () => {
    const dir = mkdtempSync(join(tmpdir(), "qworker-url-"));
    try {
      mkdirSync(join(dir, "config"));
      writeFileSync(join(dir, "config", "qworker.yaml"), `broker_url: ${bad}\n`);
      for (const [opts, from] of [
        [{ flag: bad }, "option --broker"],
        [{ env: { QWORKER_BROKER_URL: bad } }, "environment variable QWORKER_BROKER_URL"],
        [{ cwd: dir }, "config/qworker.yaml"],
      ] as const) {
        expect(load(opts), from).toThrow(ConfigError);
        let message = "";
        try {
          load(opts)();
        } catch (err) {
          message = (err as Error).message;
        }
        expect(message.startsWith(`${from}: key "broker_url": invalid Redis URL redis://u:****@127.0.0.1:notaport/0: port "notaport" is not a number`), message).toBe(true);
        expect(message).not.toContain("secret");
      }
      expect(load({ flag: "redis://127.0.0.1:6379/abc" })).toThrow(/^option --broker: key "broker_url": Redis URL redis:\/\/127\.0\.0\.1:6379\/abc: database "abc" is not a number/);
      expect(load({ env: { QWORKER_BROKER_URL: "redis+sentinel://s1/m/x" } })).toThrow(/^environment variable QWORKER_BROKER_URL: key "broker_url": Sentinel URL .*database "x" is not a number/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("sentinelReason", () => {
  it("says what a failed Sentinel lookup means instead of ioredis's 'Connection is closed.'", () => {
    const all = "All sentinels are unreachable and retry is disabled. Last error: ";
    expect(sentinelReason(`${all}Connection is closed.`)).toBe("no sentinel answered");
    expect(sentinelReason(`${all}ERR No such master with that name`)).toBe("no sentinel monitors a master of that name");
    expect(sentinelReason(`${all}NOAUTH Authentication required.`)).toBe("no sentinel answered: NOAUTH Authentication required.");
    expect(sentinelReason("ECONNRESET")).toBe("ECONNRESET");
  });
});
