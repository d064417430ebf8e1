"""Dead, stopped and returning servers: only their keys fail, with errors naming the shard."""
import signal
import time
import unittest

import redis

import harness
from harness import Cluster, wait_until


def keys_by_shard(cluster, count=30):
    return harness.keys_by_shard(cluster, count, "fk")


class KilledServerTest(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster(shards=3, pool={"failure_limit": 2, "retry_interval_ms": 300,
                                               "request_timeout_ms": 1000, "connect_timeout_ms": 500})

    def tearDown(self):
        self.assertEqual(self.cluster.cleanup(), 0)

    def test_killed_server_fails_only_its_keys_and_is_served_again_after_restart(self):
        r = self.cluster.client()
        keys = keys_by_shard(self.cluster)
        for shard_keys in keys.values():
            for k in shard_keys:
                r.set(k, k)

        victim = self.cluster.server_of("shard2")
        victim.kill()  # kill -9

        # Every shard2 key fails with an error naming the shard; others are unaffected.
        for k in keys["shard2"]:
            with self.assertRaisesRegex(redis.ResponseError, "shard 'shard2'"):
                r.get(k)
        for name in ("shard1", "shard3"):
            for k in keys[name]:
                self.assertEqual(r.get(k), k.encode())
        # Once marked down it fails fast (no connect attempt per request).
        wait_until(lambda: r.info("proxy")["server1"]["state"] == "down", what="shard2 marked down")
        start = time.monotonic()
        for _ in range(50):
            with self.assertRaisesRegex(redis.ResponseError, "shard 'shard2' is unavailable"):
                r.get(keys["shard2"][0])
        self.assertLess(time.monotonic() - start, 2.0)
        # A multi-key command that touches the dead shard fails as a whole, clearly.
        with self.assertRaisesRegex(redis.ResponseError, "shard2"):
            r.mget(keys["shard1"][0], keys["shard2"][0])
        self.assertEqual(r.mget(keys["shard1"][0], keys["shard3"][0]), [keys["shard1"][0].encode(),
                                                                          keys["shard3"][0].encode()])
        # Keys are never re-hashed to another shard while it is down.
        for server in (self.cluster.server_of("shard1"), self.cluster.server_of("shard3")):
            for k in keys["shard2"]:
                self.assertIsNone(server.client().get(k))

        victim.start()  # same port, empty (no persistence)
        wait_until(lambda: r.set(keys["shard2"][0], "back"), timeout=10, what="shard2 served again")
        self.assertEqual(r.get(keys["shard2"][0]), b"back")
        self.assertEqual(victim.client().get(keys["shard2"][0]), b"back")
        self.assertIn("is up again", self.cluster.proxy.log())


class StoppedServerTest(unittest.TestCase):
    def test_stopped_server_times_out_without_stalling_other_shards(self):
        cluster = Cluster(shards=3, pool={"failure_limit": 2, "retry_interval_ms": 300,
                                          "request_timeout_ms": 400, "connect_timeout_ms": 300})
        try:
            r = cluster.client()
            keys = keys_by_shard(cluster, 5)
            victim = cluster.server_of("shard3")
            victim.signal(signal.SIGSTOP)
            start = time.monotonic()
            with self.assertRaisesRegex(redis.ResponseError, "shard 'shard3'.*timed out"):
                r.get(keys["shard3"][0])
            self.assertLess(time.monotonic() - start, 3.0)
            other = cluster.client()
            for k in keys["shard1"]:
                self.assertIsNone(other.get(k))
            victim.signal(signal.SIGCONT)
            wait_until(lambda: r.set(keys["shard3"][0], 1), timeout=10, what="shard3 back after SIGCONT")
        finally:
            cluster.server_of("shard3").signal(signal.SIGCONT)
            self.assertEqual(cluster.cleanup(), 0)


if __name__ == "__main__":
    unittest.main()
