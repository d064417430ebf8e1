"""A real application through the proxy (issue 13): RQ (Debian's python3-rq) enqueues jobs and a
burst worker (the `rq worker --burst` command) runs them, on a replicated shard, each exactly once.

RQ keeps a job's keys, its queue and its registries apart (rq:job:<id>, rq:queue:default,
rq:wip:default ...) and moves them together in MULTI/EXEC blocks, some under WATCH: with no hash
tags of its own it needs one shard (here three servers, primary-replica). Its worker's command
channel (SUBSCRIBE) is pub/sub, the next issue: the worker logs that and runs its jobs anyway.
"""
import os
import signal
import subprocess
import threading
import unittest

import redis
from rq import Queue, Retry

import rq_jobs
from harness import Cluster, digests, server_infos, server_states, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))


class RqTest(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster(shards=1, servers=3, pool={"failure_limit": 1, "retry_interval_ms": 200,
                                                          "request_timeout_ms": 1000},
                               replication={"strategy": "primary-replica", "write_ack": "quorum"})
        self.addCleanup(self.cluster.cleanup)
        self.client = self.cluster.client()

    def burst_worker(self):
        env = dict(os.environ, RINGPROXY_PORT=str(self.cluster.proxy.port), PYTHONPATH=HERE)
        return subprocess.run(["rq", "worker", "--burst", "--url", f"redis://127.0.0.1:{self.cluster.proxy.port}"],
                              env=env, cwd=HERE, capture_output=True, text=True, timeout=600)

    def enqueue(self, n, retried=20):
        queue = Queue(connection=self.client)
        jobs = [queue.enqueue(rq_jobs.record, i) for i in range(n - retried)]
        jobs += [queue.enqueue(rq_jobs.fail_once, i, retry=Retry(max=2)) for i in range(n - retried, n)]
        return queue, jobs

    def check_every_job_ran_once(self, queue, jobs):
        for i, job in enumerate(jobs):
            job.refresh()
            self.assertEqual((job.get_status(), job.result), ("finished", i), f"job {i}")
        done = self.client.mget([f"done:{i}" for i in range(len(jobs))])
        self.assertEqual(done, [b"1"] * len(jobs))  # each ran exactly once
        self.assertEqual(len(queue), 0)
        self.assertEqual(queue.failed_job_registry.count, 0)
        wait_until(lambda: len(set(digests(self.cluster.sets[0]))) == 1, what="servers equal")
        stats = self.client.info("stats")
        self.assertGreater(int(stats["transactions_exec"]), len(jobs))  # (MULTI/EXEC, some watched)

    def test_a_burst_worker_runs_every_job_once(self):
        queue, jobs = self.enqueue(200)
        out = self.burst_worker()
        self.assertEqual(out.returncode, 0, out.stderr[-3000:])
        self.check_every_job_ran_once(queue, jobs)

    def test_with_a_replica_stopped_and_resumed_under_the_worker(self):
        queue, jobs = self.enqueue(300)
        victim = self.cluster.sets[0][2]
        result = {}
        worker = threading.Thread(target=lambda: result.update(out=self.burst_worker()))
        worker.start()
        wait_until(lambda: int(self.client.get("done:20") or 0) > 0, what="jobs running")
        victim.signal(signal.SIGSTOP)
        try:
            wait_until(lambda: server_states(self.cluster)[2] != "up", what="replica not live")
        finally:
            victim.signal(signal.SIGCONT)
        worker.join()
        self.assertEqual(result["out"].returncode, 0, result["out"].stderr[-3000:])
        wait_until(lambda: server_states(self.cluster) == ["up"] * 3, timeout=60, what="caught up")
        info = server_infos(self.cluster)[2]
        self.assertGreaterEqual(int(info["replays"]) + int(info["resyncs"]), 1, info)  # the path it took
        self.check_every_job_ran_once(queue, jobs)


if __name__ == "__main__":
    unittest.main()
