#!/usr/bin/env node
// A real ioredis client against ringproxy, driven by tests/e2e/test_ioredis.py.
//
// stdin: {"port": N, "clients": [{"options": {...}, "steps": [...]}, ...]}
//   options: ioredis's own (password, username, ...), over the defaults below.
//   a step: ["set", "k", "v"], one command by ioredis's method of that name (call() when it has
//   none), or {"pipeline": [["set", "k", "v"], ["get", "k"]]}, one ioredis pipeline.
// stdout: one JSON line: {"node", "ioredis", "clients": [{"steps": [...], "errors": [...]}]}
//   each step's outcome is {"ok": reply} or {"error": message}; a pipeline's reply is the list
//   of its commands' outcomes; "errors" are the client's "error" events, in order.
// The clients run one after the other, each step awaited before the next. Exits 2, with what
// it has, when it has not finished in 30 s.
"use strict";

const Redis = require("ioredis");

const output = { node: process.version, ioredis: require("ioredis/package.json").version, clients: [] };

setTimeout(() => {
  output.timeout = "ioredis_check.js: not finished after 30 s";
  console.log(JSON.stringify(output));
  process.exit(2);
}, 30000).unref();

function outcome(promise) {
  return promise.then((ok) => ({ ok }), (e) => ({ error: e.message }));
}

function command(redis, [name, ...args]) {
  return typeof redis[name] === "function" ? redis[name](...args) : redis.call(name, ...args);
}

async function runClient(port, { options = {}, steps = [] }) {
  const client = { steps: [], errors: [] };
  output.clients.push(client);
  const redis = new Redis({
    host: "127.0.0.1",
    port,
    connectTimeout: 5000,
    commandTimeout: 5000,
    retryStrategy: () => null, // no reconnection: a refused login ends the client
    maxRetriesPerRequest: 0,
    ...options,
  });
  redis.on("error", (e) => client.errors.push(e.message));
  for (const step of steps) {
    if (Array.isArray(step)) {
      client.steps.push(await outcome(command(redis, step)));
    } else {
      client.steps.push(await outcome(redis.pipeline(step.pipeline).exec().then(
        (replies) => replies.map(([e, ok]) => (e ? { error: e.message } : { ok })))));
    }
  }
  redis.disconnect();
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const { port, clients } = JSON.parse(Buffer.concat(chunks).toString());
  for (const client of clients) await runClient(port, client);
  console.log(JSON.stringify(output));
}

main().catch((e) => {
  output.crash = e.stack;
  console.log(JSON.stringify(output));
  process.exit(1);
});
