"""The keyspace across shards (issue 13): SCAN one shard at a time (the cursor names the shard,
its server and that server's own cursor), KEYS on every shard, RANDOMKEY on any; against real
redis-servers behind the proxy, with redis-py and redis-cli.

SCAN's guarantee through the proxy is redis's: a full iteration (from 0 back to 0) returns every
key that was there throughout at least once, whatever was added or deleted meanwhile, and whatever
server of a replicated shard went away (its shard is then scanned again on another, from 0).
"""
import subprocess
import unittest

import redis

from harness import Cluster, fill, server_states, wait_until


def full_scan(client, **kwargs):
    """Every key a whole SCAN iteration returns (a list: duplicates show), and its cursors."""
    keys, cursors, cursor = [], [], 0
    while True:
        cursor, batch = client.scan(cursor, **kwargs)
        keys += batch
        cursors.append(cursor)
        if cursor == 0:
            return keys, cursors


class KeyspaceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(shards=3)
        cls.client = cls.cluster.client()

    @classmethod
    def tearDownClass(cls):
        cls.cluster.cleanup()

    def setUp(self):
        for server in self.cluster.redis:
            server.client().flushall()

    def fill(self, n, prefix="k"):
        return fill(self.client, n, prefix)

    def test_a_full_scan_returns_every_key_of_every_shard(self):
        written = self.fill(3000)
        per_shard = [s.client().dbsize() for s in self.cluster.redis]
        self.assertTrue(all(n > 500 for n in per_shard), per_shard)  # the keys really are spread
        keys, cursors = full_scan(self.client, count=100)
        self.assertEqual(set(keys), written)
        self.assertGreater(len(cursors), 3)
        self.assertEqual(set(self.client.scan_iter(count=1000)), written)  # redis-py's own loop

    def test_match_count_and_type_pass_through(self):
        self.fill(500, "user:")
        self.fill(200, "item:")
        pipe = self.client.pipeline(transaction=False)
        for i in range(100):
            pipe.hset(f"user:h{i}", "f", "v")
        pipe.execute()
        self.assertEqual(set(self.client.scan_iter(match="item:*", count=50)), {f"item:{i}".encode() for i in range(200)})
        self.assertEqual(set(self.client.scan_iter(_type="hash")), {f"user:h{i}".encode() for i in range(100)})
        self.assertEqual(set(self.client.scan_iter(match="user:h1*", _type="hash")),
                         {f"user:h{i}".encode() for i in [1] + list(range(10, 20))})

    def test_redis_cli_scan(self):
        written = self.fill(400, "cli:")
        out = subprocess.run(["redis-cli", "-p", str(self.cluster.proxy.port), "--scan", "--pattern", "cli:*"],
                             capture_output=True, text=True, timeout=30, check=True).stdout.split()
        self.assertEqual({k.encode() for k in out}, written)

    def test_keys_added_and_deleted_during_a_scan(self):
        stay = self.fill(1500, "stay:")
        going = self.fill(500, "going:")
        keys, cursor, step = set(), 0, 0
        while True:
            cursor, batch = self.client.scan(cursor, count=50)
            keys.update(batch)
            step += 1
            if step == 5:  # meanwhile: some keys go, new ones come
                self.client.delete(*going)
                self.fill(500, "new:")
            if cursor == 0:
                break
        self.assertTrue(stay <= keys, f"{len(stay - keys)} keys present throughout were not returned")

    def test_keys_merges_every_shard(self):
        written = self.fill(300, "kk:")
        self.fill(50, "other:")
        self.assertEqual(set(self.client.keys("kk:*")), written)
        self.assertEqual(len(self.client.keys("*")), 350)
        self.assertEqual(self.client.keys("nothing:*"), [])

    def test_randomkey(self):
        self.assertIsNone(self.client.randomkey())  # every shard empty
        written = self.fill(300)
        seen = {self.client.randomkey() for _ in range(60)}
        self.assertTrue(seen <= written, seen - written)
        # It asks a different shard each time: keys of every shard come back.
        shards = {self.cluster.route(k.decode()) for k in seen}
        self.assertEqual(shards, set(self.cluster.names))

    def test_bad_cursors(self):
        for bad in ("abc", "-1", "99999999999999999999"):
            with self.assertRaisesRegex(redis.ResponseError, "invalid cursor"):
                self.client.execute_command("SCAN", bad)
        # A cursor naming a shard this config does not have (a reload removed shards).
        with self.assertRaisesRegex(redis.ResponseError, "start again from 0"):
            self.client.execute_command("SCAN", str(4000))

    def test_hscan_is_routed_by_its_key(self):
        self.client.hset("h", mapping={f"f{i}": i for i in range(300)})
        self.assertEqual(len(dict(self.client.hscan_iter("h", count=20))), 300)


class ShardDownTest(unittest.TestCase):
    def test_a_scan_waits_for_an_unreplicated_shard_that_is_down(self):
        cluster = Cluster(shards=3, pool={"failure_limit": 1, "retry_interval_ms": 100})
        self.addCleanup(cluster.cleanup)
        client = cluster.client()
        fill(client, 600)
        keys, cursor = set(), 0
        cursor, batch = client.scan(cursor, count=10)
        keys.update(batch)
        cluster.redis[1].kill()
        # Its keys cannot be skipped: the scan stops at that shard with the reason ...
        wait_until(lambda: server_states(cluster)[1] == "down", timeout=20, what="shard2 down")
        with self.assertRaisesRegex(redis.ResponseError, "unavailable"):
            while True:
                cursor, batch = client.scan(cursor, count=10)
                keys.update(batch)
                self.assertNotEqual(cursor, 0, "the scan ended without shard2")
        # ... and goes on from the same cursor once it is back (restarted empty here: its keys
        # are gone, the rest all come back).
        cluster.redis[1].start()
        wait_until(lambda: server_states(cluster)[1] == "up", timeout=20, what="shard2 up")
        while True:
            cursor, batch = client.scan(cursor, count=10)
            keys.update(batch)
            if cursor == 0:
                break
        on_live_shards = {f"k{i}".encode() for i in range(600) if cluster.route(f"k{i}") != "shard2"}
        self.assertTrue(on_live_shards <= keys, f"missing {len(on_live_shards - keys)}")


class ReplicatedScanTest(unittest.TestCase):
    def test_a_server_that_goes_away_mid_scan_has_its_shard_scanned_again_on_another(self):
        cluster = Cluster(shards=2, servers=3, replication={"strategy": "multi-primary", "write_ack": "quorum",
                                                           "read_from": "any"},
                          pool={"failure_limit": 1, "retry_interval_ms": 100})
        self.addCleanup(cluster.cleanup)
        client = cluster.client()
        written = fill(client, 2000, "r")
        # Scan into the first shard, then stop the server that shard is being read from.
        keys = []
        cursor, batch = client.scan(0, count=20)
        keys += batch
        self.assertNotEqual(cursor, 0)
        slot = (cursor >> 10) & 15  # which of shard1's servers (routing/scan_cursor.h)
        cluster.sets[0][slot].kill()
        wait_until(lambda: "down" in server_states(cluster), timeout=20, what="the scanned server down")
        cursor, batch = client.scan(cursor, count=20)
        keys += batch
        self.assertEqual(cursor & 1023, 0, "still on shard1")
        self.assertNotEqual((cursor >> 10) & 15, slot, "shard1 is read from another server now")
        while True:
            cursor, batch = client.scan(cursor, count=20)
            keys += batch
            if cursor == 0:
                break
        self.assertEqual(set(keys), written)  # every key ...
        # ... and the keys of shard1's first batch twice: it was scanned again from 0 (the path taken).
        self.assertGreater(len(keys), len(set(keys)))


if __name__ == "__main__":
    unittest.main()
