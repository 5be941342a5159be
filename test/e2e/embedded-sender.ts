/**
 * A sender process for test/e2e/embedded-senders.test.ts: sends `count` e2e.record tasks labelled
 * `<prefix>-<i>` through the library client (createClient + send, one awaited send each, as application
 * code does), then prints one JSON line {"sent": n} and exits.
 *   node --import tsx test/e2e/embedded-sender.ts <broker url> <prefix> <count>
 */
import { createClient } from "../../src/client/client.ts";

const [url, prefix, countArg] = process.argv.slice(2);
if (!url || !prefix || !countArg) {
  process.stderr.write("usage: embedded-sender.ts <broker url> <prefix> <count>\n");
  process.exit(2);
}
const count = Number(countArg);
const client = await createClient({ brokerUrl: url });
let sent = 0;
for (let i = 0; i < count; i++) {
  const ref = await client.send("e2e.record", [`${prefix}-${i}`]);
  if (!ref.duplicate) sent++;
}
await client.close();
process.stdout.write(`${JSON.stringify({ sent })}\n`);
