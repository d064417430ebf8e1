#!/usr/bin/env node
// ioredis's blocking commands through ringproxy, driven by tests/e2e/test_blocking.py (IoredisTest).
//
// stdin: {"port": N, "tag": "{io}"}: every key is "<tag>:<name>" (one shard).
// Two ioredis clients: "consumer" blocks, "producer" pushes once the proxy counts the consumer as
// blocked (INFO clients blocked_clients, polled). The cases, in order:
//   blpop_woken:       BLPOP <tag>:jobs 0, woken by the producer's RPUSH <tag>:jobs job1
//   blpop_timeout:     BLPOP <tag>:empty 0.2 on an empty list (nil)
//   brpoplpush_woken:  BRPOPLPUSH <tag>:src <tag>:dst 5, woken by RPUSH <tag>:src a b
//   brpoplpush_timeout: BRPOPLPUSH <tag>:nothing <tag>:dst 0.1 (nil)
//   blmove_ready:      BLMOVE <tag>:src <tag>:dst LEFT RIGHT 5, an element waiting ("a")
//   blmove_woken:      BLMOVE <tag>:src2 <tag>:dst RIGHT LEFT 5, woken by RPUSH <tag>:src2 m
//   blmove_timeout:    BLMOVE <tag>:nothing <tag>:dst LEFT RIGHT 0.1 (nil)
//   after:             LRANGE <tag>:dst 0 -1 by the consumer (its connection goes on as usual)
// stdout: one JSON line: {"node", "ioredis", "cases": {name: {"ok": reply} or {"error": message},
//   "ms": how long the consumer's command took, "blocked_seen": the producer saw it blocked}},
//   "errors": the clients' "error" events}
// Exits 2, with what it has, when it has not finished in 30 s.
"use strict";

const output = { node: process.version, ioredis: require("ioredis/package.json").version, cases: {}, errors: [] };

const common = require("./check_common");
common.watchdog("ioredis_blocking_check.js", output);

const client = (port, name) => common.client(output, port, name);

async function blockedClients(redis) {
  const match = /^blocked_clients:(\d+)/m.exec(await redis.info("clients"));
  return match ? Number(match[1]) : -1;
}

// Polls (every 10 ms, for up to 10 s) until the proxy counts `n` blocked clients.
async function waitBlocked(redis, n) {
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    if ((await blockedClients(redis)) === n) return true;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return false;
}

// Runs `call` on the consumer; when `feed` is given, runs it on the producer once the consumer blocks.
async function run(name, call, feed) {
  const started = Date.now();
  const pending = call().then((ok) => ({ ok }), (e) => ({ error: e.message }));
  const result = {};
  if (feed) {
    result.blocked_seen = await waitBlocked(producer, 1);
    await feed();
  }
  Object.assign(result, await pending);
  result.ms = Date.now() - started;
  output.cases[name] = result;
}

let producer;

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const { port, tag } = JSON.parse(Buffer.concat(chunks).toString());
  const k = (name) => `${tag}:${name}`;
  const consumer = client(port, "consumer");
  producer = client(port, "producer");

  await run("blpop_woken", () => consumer.blpop(k("jobs"), 0), () => producer.rpush(k("jobs"), "job1"));
  await run("blpop_timeout", () => consumer.blpop(k("empty"), 0.2));
  await run("brpoplpush_woken", () => consumer.brpoplpush(k("src"), k("dst"), 5),
    () => producer.rpush(k("src"), "a", "b"));
  await run("brpoplpush_timeout", () => consumer.brpoplpush(k("nothing"), k("dst"), 0.1));
  await run("blmove_ready", () => consumer.blmove(k("src"), k("dst"), "LEFT", "RIGHT", 5));
  await run("blmove_woken", () => consumer.blmove(k("src2"), k("dst"), "RIGHT", "LEFT", 5),
    () => producer.rpush(k("src2"), "m"));
  await run("blmove_timeout", () => consumer.blmove(k("nothing"), k("dst"), "LEFT", "RIGHT", 0.1));
  await run("after", () => consumer.lrange(k("dst"), 0, -1));
  output.blocked_at_end = await blockedClients(producer);

  consumer.disconnect();
  producer.disconnect();
  console.log(JSON.stringify(output));
}

main().catch((e) => {
  output.crash = e.stack;
  console.log(JSON.stringify(output));
  process.exit(1);
});
