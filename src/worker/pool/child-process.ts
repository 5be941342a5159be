import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type { FromChild, ToChild } from "./protocol.ts";

const FROM_SOURCE = import.meta.url.endsWith(".ts");
const ENTRY = fileURLToPath(new URL(`./child.${FROM_SOURCE ? "ts" : "js"}`, import.meta.url));

let setprivWorks: boolean | undefined;

/** `setpriv --pdeathsig` makes the kernel kill a child whose worker died, even one stuck in a busy loop. */
function hasSetpriv(): boolean {
  if (setprivWorks === undefined) {
    setprivWorks = process.platform === "linux" && spawnSync("setpriv", ["--pdeathsig", "SIGKILL", "true"], { stdio: "ignore" }).status === 0;
  }
  return setprivWorks;
}

/**
 * Start one pool child with an IPC channel. When qworker itself runs from its TypeScript sources the child
 * gets tsx's loader too; task modules written in TypeScript are handled by discovery either way.
 */
export function spawnChild(): ChildProcess {
  const nodeArgs: string[] = [];
  if (FROM_SOURCE) nodeArgs.push("--import", createRequire(import.meta.url).resolve("tsx"));
  nodeArgs.push(ENTRY);
  const viaSetpriv = hasSetpriv();
  const command = viaSetpriv ? "setpriv" : process.execPath;
  const args = viaSetpriv ? ["--pdeathsig", "SIGKILL", process.execPath, ...nodeArgs] : nodeArgs;
  return spawn(command, args, {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    serialization: "advanced",
    env: { ...process.env, QWORKER_POOL_TSX: FROM_SOURCE ? "1" : "0" },
  });
}

export function sendTo(child: ChildProcess, m: ToChild): void {
  if (child.connected) child.send(m, undefined, undefined, () => {});
}

export function isFromChild(m: unknown): m is FromChild {
  return typeof m === "object" && m !== null && typeof (m as { type?: unknown }).type === "string";
}
