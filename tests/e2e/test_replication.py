"""Replication strategies against real redis-servers: ack levels, reads, effects, lagging servers."""
import signal
import threading
import time
import unittest

import redis

from harness import Cluster, digests, server_infos, server_states, shard_infos, wait_until


def holders(servers, key):
    return sum(1 for s in servers if s.client().exists(key))




class AckLevelsTest(unittest.TestCase):
    CASES = [
        ("primary-replica", "primary", 1),
        ("primary-replica", "one", 2),
        ("primary-replica", "quorum", 2),
        ("primary-replica", "all", 3),
        ("multi-primary", "one", 1),
        ("multi-primary", "quorum", 2),
        ("multi-primary", "all", 3),
    ]

    def test_every_acknowledged_write_is_on_at_least_the_acknowledged_servers(self):
        for strategy, ack, needed in self.CASES:
            with self.subTest(strategy=strategy, write_ack=ack):
                cluster = Cluster(shards=1, servers=3, replication={"strategy": strategy, "write_ack": ack})
                try:
                    r = cluster.client()
                    servers = cluster.sets[0]
                    for i in range(150):
                        key = f"ack:{i}"
                        self.assertTrue(r.set(key, i))
                        self.assertGreaterEqual(holders(servers, key), needed, key)
                        self.assertEqual(r.incr(f"counter:{i % 5}"), i // 5 + 1)
                    # Every server ends up with every write, applied once.
                    wait_until(lambda: len(set(digests(servers))) == 1, what="servers converge")
                    for s in servers:
                        self.assertEqual(s.client().get("counter:4"), b"30")
                finally:
                    self.assertEqual(cluster.cleanup(), 0)


class ReplicatedCommandsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(shards=2, servers=3, replication={
            "strategy": "primary-replica", "write_ack": "all", "read_from": "prefer-replica"})
        cls.r = cls.cluster.client()

    @classmethod
    def tearDownClass(cls):
        assert cls.cluster.cleanup() == 0

    def all_servers(self):
        return [s for rs in self.cluster.sets for s in rs]

    def test_reads_go_to_replicas_with_prefer_replica(self):
        for s in self.all_servers():
            s.client().config_resetstat()
        for i in range(60):
            self.r.set(f"read:{i}", i)
        for i in range(60):
            self.assertEqual(self.r.get(f"read:{i}"), str(i).encode())
        for rs in self.cluster.sets:
            gets = [s.client().info("commandstats").get("cmdstat_get", {}).get("calls", 0) for s in rs]
            self.assertEqual(gets[0], 0, "the primary serves no reads while replicas are in sync")
            self.assertGreater(gets[1] + gets[2], 0)

    def test_relative_expiry_is_the_same_moment_on_every_server(self):
        self.r.set("exp:a", "v", ex=100)
        self.r.setex("exp:b", 100, "v")
        self.r.set("exp:c", "v")
        self.r.expire("exp:c", 100)
        for key in ("exp:a", "exp:b", "exp:c"):
            servers = self.cluster.sets[self.cluster.names.index(self.cluster.route(key))]
            at = {s.client().execute_command("PEXPIRETIME", key) for s in servers}
            self.assertEqual(len(at), 1, f"{key} expires at {at}")
            self.assertGreater(at.pop(), time.time() * 1000)

    def test_spop_is_replicated_by_its_effect(self):
        self.r.sadd("{pop}set", *range(100))
        popped = self.r.spop("{pop}set", 10)
        self.assertEqual(len(popped), 10)
        self.r.spop("{pop}set")
        servers = self.cluster.sets[self.cluster.names.index(self.cluster.route("{pop}set"))]
        members = [s.client().smembers("{pop}set") for s in servers]
        self.assertEqual(len(members[0]), 89)
        self.assertTrue(all(m == members[0] for m in members), "every server popped the same members")

    def test_primary_error_is_not_replicated(self):
        self.r.set("wrongtype", "x")
        with self.assertRaisesRegex(redis.ResponseError, "WRONGTYPE"):
            self.r.lpush("wrongtype", 1)
        servers = self.cluster.sets[self.cluster.names.index(self.cluster.route("wrongtype"))]
        self.assertEqual([s.client().get("wrongtype") for s in servers], [b"x"] * 3)

    def test_split_writes_are_replicated_per_shard(self):
        keys = [f"split:{i}" for i in range(40)]
        self.r.mset({k: k for k in keys})
        self.assertEqual(self.r.delete(*keys[:10]), 10)
        for k in keys[10:]:
            servers = self.cluster.sets[self.cluster.names.index(self.cluster.route(k))]
            self.assertEqual([s.client().get(k) for s in servers], [k.encode()] * 3)


class LaggingServerTest(unittest.TestCase):
    def test_sigstop_with_quorum_no_client_error_then_replay_converges(self):
        cluster = Cluster(shards=1, servers=3, pool={"request_timeout_ms": 1000, "connect_timeout_ms": 500},
                          replication={"strategy": "multi-primary", "write_ack": "quorum"})
        errors, latencies, stop = [], [], threading.Event()

        def writer(n):
            r = cluster.client()
            i = 0
            while not stop.is_set():
                start = time.monotonic()
                try:
                    pipe = r.pipeline(transaction=False)
                    pipe.set(f"w{n}:{i % 500}", i)
                    pipe.incr(f"c{n}")
                    pipe.hset(f"h{n}", i % 50, i)
                    pipe.lpush(f"l{n}", i)
                    pipe.execute()
                except redis.RedisError as e:
                    errors.append(repr(e))
                latencies.append(time.monotonic() - start)
                i += 1

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        try:
            for t in threads:
                t.start()
            time.sleep(0.5)
            victim = cluster.sets[0][2]
            victim.signal(signal.SIGSTOP)
            wait_until(lambda: server_states(cluster)[2] == "recovering", timeout=15, what="lagging")
            # Stopped well past the timeout, but not so long that its replay queue overflows.
            queued = server_infos(cluster)[2]["replay_queue"]
            wait_until(lambda: server_infos(cluster)[2]["replay_queue"] > queued + 1000, timeout=30,
                       what="writes queued for replay")
            victim.signal(signal.SIGCONT)
            time.sleep(0.5)
            stop.set()
            for t in threads:
                t.join(30)
            self.assertEqual(errors, [])
            # The timeout is 1 s (checked by a 100 ms sweep); the stop lasted 8 s: nobody waited
            # for SIGCONT. (Generous: the machine is shared.)
            self.assertLess(max(latencies), 5.0, "a request waited for the stopped server")
            wait_until(lambda: server_states(cluster) == ["up"] * 3, timeout=20, what="replay drained")
            self.assertEqual(len(set(digests(cluster.sets[0]))), 1, "servers differ after the replay")
            # The path its name promises: a replay, no resync.
            info = server_infos(cluster)[2]
            self.assertGreaterEqual(info["replays"], 1, info)
            self.assertEqual(info["resyncs"], 0, info)
            counts = [s.client().get("c0") for s in cluster.sets[0]]
            self.assertEqual(len(set(counts)), 1)
        finally:
            stop.set()
            cluster.sets[0][2].signal(signal.SIGCONT)
            self.assertEqual(cluster.cleanup(), 0)


class ServerDownTest(unittest.TestCase):
    def test_write_levels_with_a_server_down(self):
        cluster = Cluster(shards=1, servers=3, pool={"failure_limit": 1, "retry_interval_ms": 200},
                          replication={"strategy": "multi-primary", "write_ack": "quorum"}, metrics=True)
        try:
            r = cluster.client()
            r.set("before", 1)
            cluster.sets[0][1].kill()
            wait_until(lambda: (r.set("probe", 1) and server_states(cluster)[1] in ("down", "stale")),
                       what="server marked down")
            self.assertTrue(r.set("during", 2))  # quorum: 2 of 3 still take it
            self.assertEqual(r.get("during"), b"2")
            self.assertIn(server_states(cluster)[1], ("down", "stale"))
            from test_metrics_endpoint import scrape, value
            text = scrape(cluster.metrics_port)
            self.assertGreaterEqual(value(text, "ringproxy_replication_acks_total", '{level="quorum",outcome="met"}'), 3)
            dead = cluster.sets[0][1].address
            states = [s for s in ("down", "stale")
                      if value(text, "ringproxy_server_state", f'{{server="{dead}",shard="shard1",state="{s}"}}') == 1]
            self.assertEqual(len(states), 1, text)
        finally:
            self.assertEqual(cluster.cleanup(), 0)

    def test_primary_down_with_fail_refuses_writes_and_reads_follow_read_from(self):
        cluster = Cluster(shards=1, servers=3, pool={"failure_limit": 1, "retry_interval_ms": 200},
                          replication={"strategy": "primary-replica", "write_ack": "one",
                                       "read_from": "prefer-replica"})
        try:
            r = cluster.client()
            r.set("k", "v")
            cluster.sets[0][0].kill()
            wait_until(lambda: server_states(cluster)[0] in ("down", "stale") or not r.set("probe", 1),
                       what="primary marked down")
            wait_until(lambda: server_states(cluster)[0] in ("down", "stale"), what="primary down")
            with self.assertRaisesRegex(redis.ResponseError, "primary .* is not available; writes fail"):
                r.set("k", "w")
            self.assertEqual(r.get("k"), b"v")  # replicas still serve reads
        finally:
            self.assertEqual(cluster.cleanup(), 0)


if __name__ == "__main__":
    unittest.main()


class ResyncTest(unittest.TestCase):
    """Stale servers are copied from an in-sync peer (REPLICAOF), then cut over."""

    def mixed_load(self, cluster, stop, errors, acked):
        r = cluster.client()
        i = 0
        while not stop.is_set():
            try:
                pipe = r.pipeline(transaction=False)
                pipe.set(f"s:{i % 3000}", i)
                pipe.incr("counter")
                pipe.hset(f"h:{i % 100}", i % 7, i)
                pipe.lpush(f"l:{i % 50}", i)
                pipe.expire(f"s:{i % 3000}", 3600)
                if i % 10 == 0:
                    pipe.delete(f"s:{(i * 7) % 3000}")
                pipe.execute()
                acked.append(i)
            except redis.RedisError as e:
                errors.append(repr(e))
            i += 1

    def test_killed_replica_restarted_empty_is_resynced(self):
        cluster = Cluster(shards=1, servers=3, pool={"failure_limit": 1, "retry_interval_ms": 200,
                                                     "request_timeout_ms": 1000, "connect_timeout_ms": 500},
                          replication={"strategy": "primary-replica", "write_ack": "quorum"})
        stop, errors, acked = threading.Event(), [], []
        threads = [threading.Thread(target=self.mixed_load, args=(cluster, stop, errors, acked)) for _ in range(2)]
        try:
            for t in threads:
                t.start()
            wait_until(lambda: len(acked) > 2000, timeout=60, what="load")
            victim = cluster.sets[0][2]
            victim.kill()
            time.sleep(0.5)
            victim.start()  # same port, empty
            wait_until(lambda: "resynced" in cluster.proxy.log(), timeout=30, what="resync")
            wait_until(lambda: len(acked) > 6000, timeout=60, what="load after resync")
            stop.set()
            for t in threads:
                t.join(30)
            self.assertEqual(errors, [], "quorum of 3 survives one replica")
            wait_until(lambda: server_states(cluster) == ["up"] * 3, timeout=30, what="all up")
            wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, timeout=10, what="digests equal")
            # Every acknowledged INCR counted exactly once, on every server.
            counts = {s.client().get("counter") for s in cluster.sets[0]}
            self.assertEqual(counts, {str(len(acked)).encode()})
            self.assertGreaterEqual(server_infos(cluster)[2]["resyncs"], 1, "the path: a resync")
        finally:
            stop.set()
            self.assertEqual(cluster.cleanup(), 0)

    def test_replay_queue_overflow_makes_the_server_stale_then_resync(self):
        cluster = Cluster(shards=1, servers=3, pool={"request_timeout_ms": 1000, "retry_interval_ms": 200},
                          replication={"strategy": "multi-primary", "write_ack": "quorum",
                                       "replay_queue_max_writes": 50})
        try:
            r = cluster.client()
            victim = cluster.sets[0][1]
            victim.signal(signal.SIGSTOP)
            r.incr("n")
            wait_until(lambda: server_states(cluster)[1] == "recovering", what="lagging after a timeout")
            for i in range(399):
                r.incr("n")
                r.set(f"k{i}", i)
            wait_until(lambda: server_states(cluster)[1] == "stale", what="stale after overflow")
            victim.signal(signal.SIGCONT)
            wait_until(lambda: server_states(cluster) == ["up"] * 3, timeout=30, what="resynced")
            self.assertEqual(len(set(digests(cluster.sets[0]))), 1)
            self.assertEqual({s.client().get("n") for s in cluster.sets[0]}, {b"400"})
            self.assertIn("overflowed", cluster.proxy.log())
            info = server_infos(cluster)[1]
            self.assertEqual((info["resyncs"], info["replays"]), (1, 0), info)
        finally:
            cluster.sets[0][1].signal(signal.SIGCONT)
            self.assertEqual(cluster.cleanup(), 0)


def shard_info(cluster, index=0):
    return cluster.client().info("proxy")[f"shard{index}"]


class RepairTest(unittest.TestCase):
    def repair(self, cluster, proxy_client=None):
        r = proxy_client or cluster.client()
        before = shard_info(cluster)["repairs_finished"]
        self.assertIn(b"started", r.execute_command("PROXY", "REPAIR", "shard1"))
        wait_until(lambda: shard_info(cluster)["repairs_finished"] > before, timeout=30, what="repair finished")

    def test_multi_primary_majority_wins(self):
        cluster = Cluster(shards=1, servers=3, replication={"strategy": "multi-primary", "write_ack": "all"})
        try:
            r = cluster.client()
            for i in range(300):
                r.set(f"k{i}", i)
            s0, s1, s2 = (s.client() for s in cluster.sets[0])
            s2.set("k1", "diverged")          # one server differs: the two others win
            s1.delete("k2")                   # one server lost it: restored there
            s0.set("only-on-0", "x")          # one server has an extra key: deleted (absent is the majority)
            s0.expire("k3", 1000)             # an expiry on one server only: the majority (none) wins
            self.repair(cluster)
            wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, what="converged")
            self.assertEqual(s2.get("k1"), b"1")
            self.assertEqual(s1.get("k2"), b"2")
            self.assertEqual(s0.exists("only-on-0"), 0)
            self.assertEqual(s0.ttl("k3"), -1)
            self.assertGreaterEqual(shard_info(cluster)["repair_keys_fixed"], 4)
        finally:
            self.assertEqual(cluster.cleanup(), 0)

    def test_primary_replica_primary_wins(self):
        cluster = Cluster(shards=1, servers=3, replication={"strategy": "primary-replica", "write_ack": "all"})
        try:
            r = cluster.client()
            r.set("a", "1")
            primary, replica1, replica2 = (s.client() for s in cluster.sets[0])
            primary.set("a", "from-primary")
            replica2.hset("h", "f", "only-on-replica")
            self.repair(cluster)
            self.assertEqual([c.get("a") for c in (primary, replica1, replica2)], [b"from-primary"] * 3)
            self.assertEqual(replica2.exists("h"), 0)
        finally:
            self.assertEqual(cluster.cleanup(), 0)

    def test_two_proxies_writing_conflicting_values_converge_after_repair(self):
        from harness import Proxy, free_port, toml_config
        cluster = Cluster(shards=1, servers=3, replication={"strategy": "multi-primary", "write_ack": "quorum"})
        port = free_port()
        config = toml_config(port, [("shard1", [s.address for s in cluster.sets[0]])],
                             replication={"strategy": "multi-primary", "write_ack": "quorum"})
        second = Proxy(cluster.workdir, config, port).start()
        try:
            def writer(client, tag):
                for i in range(3000):
                    client.set(f"c{i % 40}", f"{tag}{i}")
                    client.hset(f"hc{i % 10}", i % 3, tag)

            threads = [threading.Thread(target=writer, args=(cluster.client(), "A")),
                       threading.Thread(target=writer, args=(second.client(), "B"))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            self.repair(cluster)
            wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, what="all servers converge")
        finally:
            self.assertEqual(second.stop(), 0)
            self.assertEqual(cluster.cleanup(), 0)

    def test_periodic_repair(self):
        cluster = Cluster(shards=1, servers=2, replication={"strategy": "primary-replica", "write_ack": "all",
                                                            "repair_interval_ms": 200})
        try:
            cluster.client().set("p", "1")
            cluster.sets[0][1].client().set("p", "drifted")
            wait_until(lambda: cluster.sets[0][1].client().get("p") == b"1", timeout=20, what="periodic repair")
        finally:
            self.assertEqual(cluster.cleanup(), 0)


class PromoteTest(unittest.TestCase):
    def test_primary_killed_with_promote_keeps_serving_then_rejoins(self):
        cluster = Cluster(shards=1, servers=3, pool={"failure_limit": 1, "retry_interval_ms": 200,
                                                     "request_timeout_ms": 1000, "connect_timeout_ms": 500},
                          replication={"strategy": "primary-replica", "write_ack": "quorum",
                                       "on_primary_down": "promote"})
        try:
            r = cluster.client()
            for i in range(200):
                r.set(f"p{i}", i)
            primary = cluster.sets[0][0]
            primary.kill()
            # The first writes may meet the dead connection; once it is marked down the
            # first replica leads and nothing fails.
            wait_until(lambda: server_states(cluster)[0] in ("down", "stale"), what="primary down")
            for i in range(200, 600):
                self.assertTrue(r.set(f"p{i}", i))
                self.assertEqual(r.incr("n"), i - 199)
            self.assertEqual(r.get("p450"), b"450")
            primary.start()  # back, empty: stale, then resynced from a replica
            wait_until(lambda: server_states(cluster) == ["up"] * 3, timeout=30, what="old primary resynced")
            for i in range(600, 700):
                r.set(f"p{i}", i)
            wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, what="digests equal")
            self.assertEqual(primary.client().get("p650"), b"650")
            self.assertEqual(primary.client().get("n"), b"400")
            # The path: the first replica took the lead, the primary was resynced and leads again.
            self.assertEqual(shard_infos(cluster)[0]["leader_changes"], 2)
            self.assertEqual(server_infos(cluster)[0]["resyncs"], 1)
        finally:
            self.assertEqual(cluster.cleanup(), 0)


class QuorumReadTest(unittest.TestCase):
    def check(self, strategy, diverge_slot, expected):
        cluster = Cluster(shards=1, servers=3, metrics=True,
                          replication={"strategy": strategy, "write_ack": "all", "read_from": "quorum"})
        try:
            r = cluster.client()
            r.set("q", "good")
            self.assertEqual(r.get("q"), b"good")
            self.assertEqual(shard_info(cluster)["read_repairs"], 0)
            cluster.sets[0][diverge_slot].client().set("q", "diverged")
            self.assertEqual(r.get("q"), expected.encode())
            self.assertEqual(shard_info(cluster)["read_repairs"], 1)
            wait_until(lambda: {s.client().get("q") for s in cluster.sets[0]} == {expected.encode()},
                       what="read repair")
            from test_metrics_endpoint import scrape, value
            self.assertEqual(value(scrape(cluster.metrics_port), "ringproxy_read_repairs_total", '{shard="shard1"}'), 1)
        finally:
            self.assertEqual(cluster.cleanup(), 0)

    def test_multi_primary_majority_answers_and_the_copy_is_repaired(self):
        self.check("multi-primary", 1, "good")   # asked: servers 0 and 1; tie -> first; repair: majority

    def test_primary_replica_primary_is_the_authority(self):
        self.check("primary-replica", 0, "diverged")  # the primary's copy wins, replicas repaired
