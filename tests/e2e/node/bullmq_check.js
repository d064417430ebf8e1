#!/usr/bin/env node
// A real application through ringproxy: a BullMQ queue and worker, driven by tests/e2e/test_bullmq.py.
//
// stdin: {"port": N, "prefix": "{bull}", "queue": "name", "jobs": 200, "delayed_every": 10,
//         "flaky_every": 7, "delay": 300, "concurrency": 4}
//   job i (i = 0 .. jobs-1, job id "j<i>"): delayed by `delay` ms when i % delayed_every == 0;
//   "flaky" when i % flaky_every == 3: its first attempt throws, a retry (attempts: 3, fixed
//   backoff of 100 ms) succeeds. Every key of the queue starts with `prefix` (one hash tag).
// stdout: one JSON line:
//   {"node", "bullmq", "completed": [job ids, in the order the worker's "completed" events came],
//    "processed_counts": {id: successful runs of the processor}, "attempts": {id: attemptsMade
//    seen by the successful run}, "failed_attempts": n (throws), "failed_events": n,
//    "delays": {id of a delayed job: ms from its add to its successful run's start},
//    "jobs": {id: {"state", "attemptsMade", "returnvalue"}} (read back by the Queue at the end),
//    "counts": the Queue's getJobCounts() at the end, "completed_in_queue": ids in the completed
//    set, "errors": [error events of the queue and the worker], "elapsed_ms"}
// Exits 2, with what it has, when the jobs have not all completed in `deadline_ms` (40 s).
"use strict";

const { Queue, Worker } = require("bullmq");

const output = {
  node: process.version,
  bullmq: require("bullmq/package.json").version,
  completed: [],
  processed_counts: {},
  attempts: {},
  failed_attempts: 0,
  failed_events: 0,
  delays: {},
  errors: [],
};

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const spec = JSON.parse(Buffer.concat(chunks).toString());
  const { port, prefix, queue: name, jobs } = spec;
  const delayedEvery = spec.delayed_every || 10;
  const flakyEvery = spec.flaky_every || 7;
  const delay = spec.delay || 300;
  const deadline = spec.deadline_ms || 40000;

  const timer = setTimeout(() => {
    output.timeout = `bullmq_check.js: ${output.completed.length} of ${jobs} jobs completed after ${deadline} ms`;
    console.log(JSON.stringify(output));
    process.exit(2);
  }, deadline);
  timer.unref();

  // The queue and the worker each open their own connections (the worker a second, blocking one).
  const connection = { host: "127.0.0.1", port, maxRetriesPerRequest: null };
  const queue = new Queue(name, { connection, prefix });
  queue.on("error", (e) => output.errors.push(`queue: ${e.message}`));

  const isDelayed = (i) => i % delayedEvery === 0;
  const isFlaky = (i) => i % flakyEvery === 3;
  const addedAt = {};

  let allDone;
  const done = new Promise((resolve) => { allDone = resolve; });
  const seen = new Set();

  const worker = new Worker(name, async (job) => {
    const i = job.data.i;
    if (isFlaky(i) && job.attemptsMade === 0) {
      output.failed_attempts += 1;
      throw new Error(`first attempt of ${job.id} fails`);
    }
    output.processed_counts[job.id] = (output.processed_counts[job.id] || 0) + 1;
    output.attempts[job.id] = job.attemptsMade;
    if (isDelayed(i)) output.delays[job.id] = Date.now() - addedAt[job.id];
    return { i, doubled: 2 * i };
  }, { connection, prefix, concurrency: spec.concurrency || 4 });
  worker.on("error", (e) => output.errors.push(`worker: ${e.message}`));
  worker.on("failed", () => { output.failed_events += 1; });
  worker.on("completed", (job) => {
    output.completed.push(job.id);
    seen.add(job.id);
    if (seen.size === jobs) allDone();
  });

  const started = Date.now();
  const ids = [];
  for (let i = 0; i < jobs; i++) {
    const id = `j${i}`;
    ids.push(id);
    const opts = { jobId: id };
    if (isDelayed(i)) opts.delay = delay;
    if (isFlaky(i)) Object.assign(opts, { attempts: 3, backoff: { type: "fixed", delay: 100 } });
    addedAt[id] = Date.now();
    await queue.add("work", { i }, opts);
  }
  await done;
  output.elapsed_ms = Date.now() - started;

  // The queue's own view, once everything completed.
  output.counts = await queue.getJobCounts("wait", "active", "delayed", "completed", "failed", "paused",
    "prioritized", "waiting-children");
  output.completed_in_queue = (await queue.getCompleted(0, -1)).map((job) => job.id);
  output.jobs = {};
  for (const id of ids) {
    const job = await queue.getJob(id);
    output.jobs[id] = job
      ? { state: await job.getState(), attemptsMade: job.attemptsMade, returnvalue: job.returnvalue }
      : null;
  }

  await worker.close();
  await queue.close();
  console.log(JSON.stringify(output));
}

main().catch((e) => {
  output.crash = e.stack;
  console.log(JSON.stringify(output));
  process.exit(1);
});
