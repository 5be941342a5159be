// Build dist/: compile with tsc, copy the Lua scripts next to the compiled Redis transport, and write a
// stamp that bin/qworker.js compares with src/ to decide whether the build is current.
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";

rmSync("dist", { recursive: true, force: true });
execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
mkdirSync("dist/broker/redis/lua", { recursive: true });
cpSync("src/broker/redis/lua", "dist/broker/redis/lua", { recursive: true });
writeFileSync("dist/.build-stamp", new Date().toISOString());
