import { createClient, type Client } from "./client.ts";

let shared: Promise<Client> | undefined;

/** The client `task.delay()` uses: configured like the CLI (environment, config/qworker.yaml). */
export function defaultClient(): Promise<Client> {
  shared ??= createClient();
  return shared;
}

/** Close the client `task.delay()` opened, so the process can exit. */
export async function closeDefaultClient(): Promise<void> {
  const c = shared;
  shared = undefined;
  if (c) await (await c).close();
}
