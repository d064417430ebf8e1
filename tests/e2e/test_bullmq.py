"""A real application through the proxy (issue 14): BullMQ (Node.js, pinned by tests/e2e/node's
package-lock.json), its Queue adding jobs (some delayed, some failing once and retried) and its
Worker running them, each exactly once. tests/e2e/node/bullmq_check.js runs both and prints JSON
that the tests assert on.

BullMQ keeps a queue in many keys ({prefix}:<queue>:wait, :active, :delayed, :marker, one hash per
job...) that its Lua scripts move jobs between, some of them built inside the scripts from the
prefix: with the prefix "{bull}" and `[pool] hash_tag = "{}"` every key of the queue is on one
shard. Its worker waits for jobs with BZPOPMIN on the queue's marker key (a sorted set): on a
plain shard that goes to the server on a dedicated connection; on a replicated shard the proxy
waits itself and runs ZPOPMIN as a replicated write (INFO stats proxy_pops).

Run: RINGPROXY_BIN=... /usr/bin/python3 -m unittest test_bullmq
"""
import json
import os
import shutil
import subprocess
import time
import unittest

from harness import Cluster, digests, wait_until

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")
SCRIPT = os.path.join(NODE_DIR, "bullmq_check.js")

PREFIX = "{bull}"
QUEUE = "work"
JOBS = 200
DELAYED_EVERY = 10   # job i is delayed when i % 10 == 0
FLAKY_EVERY = 7      # job i fails its first attempt when i % 7 == 3
DELAY_MS = 300
EVENTS = f"{PREFIX}:{QUEUE}:events".encode()  # BullMQ's events stream


def node_problem(packages=("bullmq", "ioredis")):
    """Why BullMQ cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    with open(os.path.join(NODE_DIR, "package.json")) as f:
        pinned = json.load(f)["dependencies"]
    for package in packages:
        installed = os.path.join(NODE_DIR, "node_modules", package, "package.json")
        if not os.path.exists(installed):
            return f"{package} is not installed in {NODE_DIR}/node_modules"
        with open(installed) as f:
            version = json.load(f)["version"]
        if version != pinned[package]:
            return f"{NODE_DIR}/node_modules has {package} {version}, package.json pins {pinned[package]}"
    return None


def job_ids(predicate=lambda i: True):
    return sorted(f"j{i}" for i in range(JOBS) if predicate(i))


def delayed(i):
    return i % DELAYED_EVERY == 0


def flaky(i):
    return i % FLAKY_EVERY == 3


def command_calls(server, command):
    """How many times `server` ran `command` (INFO commandstats)."""
    return int(server.client().info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def key_digests(server):
    """{key: DEBUG DIGEST-VALUE} of every key of a server."""
    client = server.client()
    return {key: client.execute_command("DEBUG", "DIGEST-VALUE", key)[0] for key in client.keys("*")}


class BullmqTest(unittest.TestCase):
    def setUp(self):
        problem = node_problem()
        if problem:
            self.skipTest(f"{problem}: run scripts/bootstrap (it installs Node.js, npm and tests/e2e/node's modules)")

    def cluster(self, **kw):
        cluster = Cluster(pool={"hash_tag": "{}"}, **kw)
        self.addCleanup(cluster.cleanup)
        return cluster

    def bullmq(self, cluster):
        """Runs bullmq_check.js against the proxy; its output, once the worker and the queue closed."""
        spec = {"port": cluster.proxy.port, "prefix": PREFIX, "queue": QUEUE, "jobs": JOBS,
                "delayed_every": DELAYED_EVERY, "flaky_every": FLAKY_EVERY, "delay": DELAY_MS}
        started = time.monotonic()
        result = subprocess.run(["node", SCRIPT], input=json.dumps(spec), capture_output=True, text=True,
                                timeout=50, cwd=NODE_DIR)
        self.assertEqual(result.returncode, 0, f"bullmq_check.js failed: {result.stdout}{result.stderr}"
                                               f"\nproxy log:\n{cluster.proxy.log()[-3000:]}")
        output = json.loads(result.stdout)
        output["wall_s"] = time.monotonic() - started
        return output

    def assert_every_job_once(self, output):
        self.assertEqual(output["errors"], [])
        ids = job_ids()
        # Each job completed exactly once: one "completed" event and one successful run each.
        self.assertEqual(sorted(output["completed"]), ids)
        self.assertEqual(output["processed_counts"], {id: 1 for id in ids})
        self.assertEqual(sorted(output["completed_in_queue"]), ids)
        self.assertEqual(output["counts"], {"wait": 0, "active": 0, "delayed": 0, "completed": JOBS, "failed": 0,
                                            "paused": 0, "prioritized": 0, "waiting-children": 0})
        # The flaky jobs failed once and succeeded on their retry (attemptsMade 1 as the retry ran,
        # 2 once it completed); the others ran once.
        flaky_ids = job_ids(flaky)
        self.assertEqual(output["failed_attempts"], len(flaky_ids))
        self.assertEqual(output["failed_events"], len(flaky_ids))
        for i in range(JOBS):
            id = f"j{i}"
            self.assertEqual(output["attempts"][id], 1 if flaky(i) else 0, id)
            self.assertEqual(output["jobs"][id], {"state": "completed", "attemptsMade": 2 if flaky(i) else 1,
                                                  "returnvalue": {"i": i, "doubled": 2 * i}}, id)
        # The delayed jobs ran, not before their delay.
        self.assertEqual(sorted(output["delays"]), job_ids(delayed))
        for id, waited in output["delays"].items():
            self.assertGreaterEqual(waited, DELAY_MS, id)

    def test_bullmq_on_three_shards(self):
        cluster = self.cluster(shards=3)
        output = self.bullmq(cluster)
        self.assertEqual(output["bullmq"], "6.7.0")
        self.assert_every_job_once(output)
        # The hash tag kept the whole queue on the shard of "{bull}"; the others have nothing.
        home = cluster.server_of(cluster.route(PREFIX))
        for server in cluster.redis:
            keys = server.client().keys("*")
            if server is home:
                self.assertIn(f"{PREFIX}:{QUEUE}:j0".encode(), keys)
                self.assertTrue(all(key.startswith(f"{PREFIX}:{QUEUE}:".encode()) for key in keys), keys)
            else:
                self.assertEqual(keys, [])
        # The worker's BZPOPMIN on the marker reached that server (a dedicated connection), and
        # no pop ran in the proxy; once the worker closed nothing is blocked any more.
        self.assertGreater(command_calls(home, "bzpopmin"), 0)
        stats = cluster.client().info("stats")
        self.assertEqual(stats["proxy_pops"], 0)
        wait_until(lambda: cluster.client().info("clients")["blocked_clients"] == 0, what="no client blocked")

    def replicated(self):
        return self.cluster(shards=1, servers=3, replication={"strategy": "primary-replica", "write_ack": "quorum"})

    def test_bullmq_on_a_replicated_shard(self):
        cluster = self.replicated()
        output = self.bullmq(cluster)
        self.assert_every_job_once(output)
        # The worker's BZPOPMIN waited in the proxy, which ran its pops as replicated writes:
        # no server ever blocked.
        self.assertGreater(cluster.client().info("stats")["proxy_pops"], 0)
        for server in cluster.sets[0]:
            self.assertEqual(command_calls(server, "bzpopmin"), 0)
        wait_until(lambda: cluster.client().info("clients")["blocked_clients"] == 0, what="no client blocked")
        # The servers hold the same keys, all equal but the events stream (see the next test),
        # which has the same number of entries everywhere.
        servers = cluster.sets[0]

        def equal_but_events():
            values = [key_digests(s) for s in servers]
            for v in values:
                v.pop(EVENTS, None)
            return all(v == values[0] for v in values)

        wait_until(equal_but_events, what="the servers' keys equal (the events stream aside)")
        lengths = [s.client().xlen(EVENTS) for s in servers]
        self.assertEqual(len(set(lengths)), 1, lengths)
        self.assertGreater(lengths[0], 0)

    @unittest.expectedFailure
    def test_bullmq_leaves_the_replicated_servers_equal(self):
        """Known limitation, not fixed yet: BullMQ's Lua scripts (addStandardJob, moveToActive,
        moveToFinished...) publish to the events stream with `XADD <prefix>:<queue>:events MAXLEN ~
        10000 * event ...`. The proxy replicates a script by running the same EVAL on every server
        (README: "Scripts (EVAL) are re-executed on each server and must be deterministic"), so each
        server picks its own time-based ID for each of those entries: the streams have the same
        entries under different IDs, and the servers' DEBUG DIGEST differ (every other key is equal,
        test above). Redis's own replication sends a script's effects, the XADD with the ID the
        primary chose. Remove expectedFailure once scripts' XADD '*' are replicated by effect."""
        cluster = self.replicated()
        self.bullmq(cluster)
        # Servers that got every write end equal at once; a few seconds is plenty.
        servers = cluster.sets[0]
        try:
            wait_until(lambda: len(set(digests(servers))) == 1, timeout=5, what="servers equal")
            return
        except TimeoutError:
            pass
        values = [key_digests(s) for s in servers]
        differ = sorted(k for k in set().union(*values) if len({str(v.get(k)) for v in values}) > 1)
        self.fail(f"the servers differ in {differ}")


if __name__ == "__main__":
    unittest.main()
