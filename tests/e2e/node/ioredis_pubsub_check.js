#!/usr/bin/env node
// ioredis's pub/sub through ringproxy, driven by tests/e2e/test_pubsub.py (IoredisPubSubTest).
//
// stdin: {"port": N, "channels": [one channel per shard]}. A subscriber SUBSCRIBEs to every
// channel and PSUBSCRIBEs "ch*"; a publisher PUBLISHes one message per channel once both
// subscriptions are confirmed; the subscriber collects "message" and "pmessage" events until it
// has two per channel, then UNSUBSCRIBEs and PUNSUBSCRIBEs.
// stdout: one JSON line: {"ioredis", "subscribed": the count SUBSCRIBE resolved with,
//   "psubscribed", "published": [PUBLISH's replies], "messages": [[channel, message]...],
//   "pmessages": [[pattern, channel, message]...], "unsubscribed", "errors"}
// Exits 2, with what it has, when it has not finished in 30 s.
"use strict";

const output = { ioredis: require("ioredis/package.json").version, messages: [], pmessages: [], errors: [] };

const common = require("./check_common");
common.watchdog("ioredis_pubsub_check.js", output);

const client = (port, name) => common.client(output, port, name);

async function main() {
  const spec = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const subscriber = client(spec.port, "subscriber");
  const publisher = client(spec.port, "publisher");
  let done;
  const all = new Promise((resolve) => { done = resolve; });
  const expected = spec.channels.length * 2;
  const check = () => { if (output.messages.length + output.pmessages.length >= expected) done(); };
  subscriber.on("message", (channel, message) => { output.messages.push([channel, message]); check(); });
  subscriber.on("pmessage", (pattern, channel, message) => { output.pmessages.push([pattern, channel, message]); check(); });
  output.subscribed = await subscriber.subscribe(...spec.channels);
  output.psubscribed = await subscriber.psubscribe("ch*");
  output.published = [];
  for (const channel of spec.channels) output.published.push(await publisher.publish(channel, `to-${channel}`));
  await all;
  output.unsubscribed = await subscriber.unsubscribe(...spec.channels);  // (ioredis hangs on a bare UNSUBSCRIBE while patterns remain, against redis too)
  output.punsubscribed = await subscriber.punsubscribe("ch*");
  output.after = await subscriber.get("after-pubsub");  // out of subscribed mode: commands again
  subscriber.disconnect();
  publisher.disconnect();
}

main().then(() => {
  console.log(JSON.stringify(output));
  process.exit(0);
}, (e) => {
  output.failure = e.message;
  console.log(JSON.stringify(output));
  process.exit(1);
});
