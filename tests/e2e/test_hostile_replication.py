"""Hostile tests of replication: acknowledged writes under failures, SPOP/expiry effects,
repair and resync racing writes, clean refusals. Tests marked expectedFailure show bugs."""
import signal
import socket
import threading
import time
import unittest

import redis

from harness import Cluster, digests, server_infos, server_states, wait_until

# request_timeout_ms: short enough that lag is seen in seconds, long enough that a busy
# shared machine is not mistaken for a lagging server.
FAST = {"failure_limit": 1, "retry_interval_ms": 200, "request_timeout_ms": 1500, "connect_timeout_ms": 300}




def make_lag(cluster, index, r):
    """SIGSTOPs server `index` of shard 1 and waits until the proxy has it recovering."""
    victim = cluster.sets[0][index]
    victim.signal(signal.SIGSTOP)
    r.incr("lag-trigger")
    wait_until(lambda: server_states(cluster)[index] == "recovering", timeout=15, what="server lagging")
    return victim


def resume(victim):
    if victim.proc and victim.proc.poll() is None:
        victim.signal(signal.SIGCONT)


class SpopEffectTest(unittest.TestCase):
    # BUG: send_plan (dispatcher.cc) queues a copy for a server in kServerQueue mode
    # (queue_for_replay(fragment.bytes)) at plan time with the client's original bytes. For
    # SPOP those bytes are "SPOP key n", not the SREM of what the leader popped (which only
    # send_second_stage builds), so the replay pops *other random* members on the recovering
    # server: the servers diverge silently and stay "up".
    def test_spop_while_a_replica_lags_is_replayed_by_effect(self):
        cluster = Cluster(shards=1, servers=3, pool=FAST,
                          replication={"strategy": "primary-replica", "write_ack": "quorum"})
        victim = None
        try:
            r = cluster.client()
            r.sadd("set", *range(200))
            victim = make_lag(cluster, 2, r)
            for _ in range(5):
                self.assertEqual(len(r.spop("set", 5)), 5)
            resume(victim)
            wait_until(lambda: server_states(cluster) == ["up"] * 3, timeout=20, what="replayed")
            members = [s.client().smembers("set") for s in cluster.sets[0]]
            self.assertEqual(len(members[0]), 175)
            self.assertEqual(members[0], members[1])
            self.assertEqual(members[0], members[2], "the replayed SPOP popped different members")
            info = server_infos(cluster)[2]
            self.assertEqual((info["replays"], info["resyncs"]), (1, 0), "the path: a replay")
        finally:
            if victim:
                resume(victim)
            self.assertEqual(cluster.cleanup(), 0)

    def test_spop_count_larger_than_the_set_and_zero(self):
        cluster = Cluster(shards=1, servers=3, pool=FAST,
                          replication={"strategy": "multi-primary", "write_ack": "all"})
        try:
            r = cluster.client()
            r.sadd("s", "a", "b", "c")
            self.assertEqual(sorted(r.spop("s", 10)), [b"a", b"b", b"c"])
            self.assertEqual([s.client().exists("s") for s in cluster.sets[0]], [0, 0, 0])
            r.sadd("s", "x")
            self.assertEqual(r.spop("s", 0), [])
            self.assertEqual(r.spop("missing", 3), [])
            self.assertIsNone(r.spop("missing"))
            with self.assertRaises(redis.ResponseError):
                r.spop("s", -1)
            self.assertEqual(r.spop("s"), b"x")
            self.assertEqual([s.client().exists("s") for s in cluster.sets[0]], [0, 0, 0])
            self.assertEqual(len(set(digests(cluster.sets[0]))), 1)
        finally:
            self.assertEqual(cluster.cleanup(), 0)


class PrimaryErrorWhileLaggingTest(unittest.TestCase):
    # BUG (same root cause as above): the copy for a recovering replica is queued before the
    # primary answered, so a write the primary refuses (WRONGTYPE) is still replayed on the
    # replica, which refuses it too -> on_replay_done marks it stale -> needless full resync.
    # README: "A primary error reply goes to the client and is not replicated."
    def test_primary_error_is_not_replayed_to_a_lagging_replica(self):
        cluster = Cluster(shards=1, servers=3, pool=FAST,
                          replication={"strategy": "primary-replica", "write_ack": "quorum"})
        victim = None
        try:
            r = cluster.client()
            r.set("str", "x")
            victim = make_lag(cluster, 2, r)
            with self.assertRaisesRegex(redis.ResponseError, "WRONGTYPE"):
                r.lpush("str", 1)
            resume(victim)
            wait_until(lambda: server_states(cluster)[2] != "recovering", timeout=20, what="replayed")
            self.assertNotIn("is stale", cluster.proxy.log(), "a refused write made the replica stale")
            self.assertEqual(server_states(cluster), ["up"] * 3)
            self.assertEqual(len(set(digests(cluster.sets[0]))), 1)
            self.assertEqual(server_infos(cluster)[2]["resyncs"], 0, "the path: no resync")
        finally:
            if victim:
                resume(victim)
            self.assertEqual(cluster.cleanup(), 0)


class ExpiryEffectTest(unittest.TestCase):
    def test_negative_and_extreme_expiries(self):
        cluster = Cluster(shards=1, servers=3, pool=FAST,
                          replication={"strategy": "primary-replica", "write_ack": "all"})
        try:
            r = cluster.client()
            servers = cluster.sets[0]
            for cmd in (("EXPIRE", -5), ("PEXPIRE", -1), ("EXPIRE", -9_000_000_000_000_000)):
                r.set("k", "v")
                self.assertEqual(r.execute_command(cmd[0], "k", cmd[1]), 1)
                self.assertEqual([s.client().exists("k") for s in servers], [0, 0, 0], cmd)
            r.set("k", "v")
            for bad in (("SET", "k", "w", "EX", -1), ("SET", "k", "w", "EX", 0), ("SETEX", "k", -3, "w"),
                        ("PSETEX", "k", 0, "w"), ("EXPIRE", "k", "notanumber")):
                with self.assertRaises(redis.ResponseError, msg=str(bad)):
                    r.execute_command(*bad)
            self.assertEqual([s.client().get("k") for s in servers], [b"v"] * 3)
            self.assertEqual([s.client().ttl("k") for s in servers], [-1] * 3)
            # Far expiries: same absolute time everywhere, same answer as redis itself.
            r.execute_command("EXPIRE", "k", 9_000_000_000_000_000)
            at = {s.client().execute_command("PEXPIRETIME", "k") for s in servers}
            self.assertEqual(len(at), 1, at)
            direct = servers[0].client()
            with self.assertRaises(redis.ResponseError):
                direct.execute_command("EXPIRE", "k", 9_223_372_036_854_775)
            with self.assertRaises(redis.ResponseError):
                r.execute_command("EXPIRE", "k", 9_223_372_036_854_775)
            r.expire("k", 100, gt=True)  # GT: 100 s is not greater than the far expiry: no-op
            self.assertEqual(len({s.client().execute_command("PEXPIRETIME", "k") for s in servers}), 1)
            self.assertEqual(len(set(digests(servers))), 1)
        finally:
            self.assertEqual(cluster.cleanup(), 0)


class RefusalTest(unittest.TestCase):
    def test_write_ack_all_with_a_server_down_is_refused_and_writes_nothing(self):
        cluster = Cluster(shards=1, servers=3, pool=FAST,
                          replication={"strategy": "multi-primary", "write_ack": "all"})
        try:
            r = cluster.client()
            r.set("before", 1)
            cluster.sets[0][1].kill()

            def refused():
                try:
                    r.set("probe", 1)
                    return False
                except redis.ResponseError as e:
                    return "nothing was written" in str(e)
            wait_until(refused, timeout=15, what="clean refusal")
            for _ in range(20):
                with self.assertRaisesRegex(redis.ResponseError, r"only 2 of 3 servers can take writes, 3 needed"):
                    r.incr("never")
                with self.assertRaisesRegex(redis.ResponseError, "nothing was written"):
                    r.mset({"m1": 1, "m2": 2})
            for i in (0, 2):
                c = cluster.sets[0][i].client()
                self.assertEqual(c.exists("never", "m1", "m2"), 0)
            self.assertEqual(r.get("before"), b"1")  # reads still served
        finally:
            self.assertEqual(cluster.cleanup(), 0)

    def test_read_from_replica_with_every_replica_down(self):
        cluster = Cluster(shards=1, servers=3, pool=FAST,
                          replication={"strategy": "primary-replica", "write_ack": "primary", "read_from": "replica"})
        try:
            r = cluster.client()
            r.set("k", "v")
            wait_until(lambda: r.get("k") == b"v", what="replicated")
            cluster.sets[0][1].kill()
            cluster.sets[0][2].kill()

            def unreadable():
                r.set("probe", 1)
                try:
                    r.get("k")
                    return False
                except redis.ResponseError as e:
                    return "no server to read from" in str(e)
            wait_until(unreadable, timeout=15, what="reads refused")
            for _ in range(10):
                with self.assertRaisesRegex(redis.ResponseError, "no server to read from"):
                    r.get("k")
                with self.assertRaisesRegex(redis.ResponseError, "no server to read from"):
                    r.mget("k", "x")
            self.assertTrue(r.set("k", "w"))  # write_ack = primary: the primary alone takes it
            self.assertEqual(cluster.sets[0][0].client().get("k"), b"w")
            self.assertTrue(r.ping())
        finally:
            self.assertEqual(cluster.cleanup(), 0)


class QuorumReadWhileLaggingTest(unittest.TestCase):
    def test_quorum_reads_while_a_server_lags(self):
        cluster = Cluster(shards=1, servers=3, pool=FAST,
                          replication={"strategy": "multi-primary", "write_ack": "quorum", "read_from": "quorum"})
        victim = None
        try:
            r = cluster.client()
            for i in range(50):
                r.set(f"q{i}", i)
            victim = make_lag(cluster, 0, r)
            for i in range(50):
                r.set(f"q{i}", i + 1000)
                self.assertEqual(r.get(f"q{i}"), str(i + 1000).encode())
            self.assertEqual(r.mget("q1", "q2"), [b"1001", b"1002"])
            self.assertEqual(cluster.client().info("proxy")["shard0"]["read_repairs"], 0)
            resume(victim)
            wait_until(lambda: server_states(cluster) == ["up"] * 3, timeout=20, what="caught up")
            self.assertEqual(len(set(digests(cluster.sets[0]))), 1)
            self.assertEqual(r.get("q7"), b"1007")
            info = server_infos(cluster)[0]
            self.assertEqual((info["replays"], info["resyncs"]), (1, 0), "the path: a replay")
        finally:
            if victim:
                resume(victim)
            self.assertEqual(cluster.cleanup(), 0)


class CounterTest(unittest.TestCase):
    """INCR counters against acknowledgements: acked <= value <= acked + ambiguous."""

    def load(self, cluster, stop, tally):
        r = cluster.client(socket_timeout=20)
        while not stop.is_set():
            try:
                r.incr("counter")
                tally["acked"] += 1
            except redis.ResponseError as e:
                if "nothing was written" in str(e) or "is not available" in str(e):
                    tally["refused"] += 1
                else:
                    tally["ambiguous"] += 1
            except redis.RedisError:
                tally["ambiguous"] += 1
                r = cluster.client(socket_timeout=20)

    def check(self, cluster, tally, servers):
        values = [int(s.client().get("counter") or 0) for s in servers]
        self.assertEqual(len(set(values)), 1, values)
        self.assertGreaterEqual(values[0], tally["acked"], (values, tally))
        self.assertLessEqual(values[0], tally["acked"] + tally["ambiguous"], (values, tally))

    def test_two_replicas_killed_at_once_and_restarted_empty(self):
        cluster = Cluster(shards=1, servers=3, pool=FAST,
                          replication={"strategy": "primary-replica", "write_ack": "quorum"})
        stop, tally = threading.Event(), {"acked": 0, "ambiguous": 0, "refused": 0}
        threads = [threading.Thread(target=self.load, args=(cluster, stop, tally)) for _ in range(2)]
        try:
            for t in threads:
                t.start()
            wait_until(lambda: tally["acked"] > 500, timeout=30, what="load")
            a, b = cluster.sets[0][1], cluster.sets[0][2]
            a.kill()
            b.kill()
            wait_until(lambda: tally["refused"] > 50, timeout=30, what="writes refused")
            a.start()
            b.start()
            wait_until(lambda: server_states(cluster) == ["up"] * 3, timeout=40, what="both resynced")
            mark = tally["acked"]
            wait_until(lambda: tally["acked"] > mark + 300, timeout=30, what="load after")
            stop.set()
            for t in threads:
                t.join(30)
            wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, timeout=20, what="converged")
            self.check(cluster, tally, cluster.sets[0])
            self.assertEqual([i["resyncs"] >= 1 for i in server_infos(cluster)], [False, True, True])
        finally:
            stop.set()
            self.assertEqual(cluster.cleanup(), 0)

    def test_resync_whose_peer_dies(self):
        cluster = Cluster(shards=1, servers=3, pool=FAST,
                          replication={"strategy": "multi-primary", "write_ack": "one"})
        stop, tally = threading.Event(), {"acked": 0, "ambiguous": 0, "refused": 0}
        threads = [threading.Thread(target=self.load, args=(cluster, stop, tally))]
        s0, s1, s2 = cluster.sets[0]
        try:
            # The first peer waits (diskless sync delay) before sending its copy: a window to kill it.
            s0.client().config_set("repl-diskless-sync-delay", 30)
            s1.client().config_set("repl-diskless-sync-delay", 0)
            for t in threads:
                t.start()
            wait_until(lambda: tally["acked"] > 300, timeout=30, what="load")
            s2.kill()
            wait_until(lambda: server_states(cluster)[2] in ("down", "stale"), timeout=15, what="down")
            s2.start()
            wait_until(lambda: f"from {s0.address} starting" in cluster.proxy.log(), timeout=20,
                       what="resync from server 0")
            s0.kill()
            wait_until(lambda: server_states(cluster) == ["down", "up", "up"] or
                       server_states(cluster) == ["stale", "up", "up"], timeout=40, what="resynced from server 1")
            self.assertIn(f"from {s1.address} starting", cluster.proxy.log())
            mark = tally["acked"]
            wait_until(lambda: tally["acked"] > mark + 200, timeout=30, what="load after")
            stop.set()
            for t in threads:
                t.join(30)
            wait_until(lambda: len(set(digests([s1, s2]))) == 1, timeout=20, what="converged")
            self.check(cluster, tally, [s1, s2])
            self.assertEqual(s2.client().info("replication")["role"], "master")
            self.assertEqual(server_infos(cluster)[2]["resyncs"], 1, "the path: a resync (the second attempt)")
        finally:
            stop.set()
            self.assertEqual(cluster.cleanup(), 0)


class IdleResyncTest(unittest.TestCase):
    # BUG: a resync with no writes arriving never cuts over. ResyncJob::handle (catching_up)
    # requires `peer_offset_ > 0`, but a peer whose replication backlog was just created for
    # this first replica reports master_repl_offset:0 until something is fed to the backlog
    # (a write, or the replication PING every repl-ping-replica-period, 10 s by default). So
    # each attempt holds the shard's writes for kHoldDeadlineMs (2 s), fails with "cutover took
    # too long", and retries: with the default period an idle shard has its writes stalled in
    # 2 s slices for up to ~10 s; here (period raised) the server never comes back.
    def test_resync_of_an_idle_shard(self):
        cluster = Cluster(shards=1, servers=3, pool=FAST,
                          replication={"strategy": "primary-replica", "write_ack": "quorum"})
        try:
            for s in cluster.sets[0]:
                s.client().config_set("repl-ping-replica-period", 3600)
            r = cluster.client()
            for i in range(100):
                r.set(f"k{i}", i)
            victim = cluster.sets[0][2]
            victim.kill()
            wait_until(lambda: r.set("p", 1) and server_states(cluster)[2] in ("down", "stale"), what="down")
            victim.start()
            victim.client().config_set("repl-diskless-sync-delay", 0)
            wait_until(lambda: server_states(cluster) == ["up"] * 3, timeout=30, what="idle resync")
            self.assertEqual(victim.client().get("k42"), b"42")
            self.assertEqual(server_infos(cluster)[2]["resyncs"], 1, "the path: a resync")
        finally:
            self.assertEqual(cluster.cleanup(), 0)


class DisconnectTest(unittest.TestCase):
    def test_clients_vanishing_with_writes_in_flight_and_held_during_a_resync(self):
        # request_timeout long enough that the load alone never makes the primary lag (that
        # case is PrimaryLagTest's bug).
        cluster = Cluster(shards=1, servers=3, pool=dict(FAST, request_timeout_ms=8000),
                          replication={"strategy": "primary-replica", "write_ack": "quorum"})
        stop = threading.Event()
        payload = b"".join(b"*2\r\n$4\r\nINCR\r\n$1\r\nc\r\n" for _ in range(300)) + \
            b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\nk%d\r\n$1\r\nv\r\n" % (len(str(i)) + 1, i) for i in range(100))

        def vanish():
            while not stop.is_set():
                try:
                    with socket.create_connection(("127.0.0.1", cluster.proxy.port), timeout=5) as s:
                        s.sendall(payload)
                except OSError:
                    pass
                stop.wait(0.02)  # pacing only
        threads = [threading.Thread(target=vanish) for _ in range(2)]
        try:
            for t in threads:
                t.start()
            victim = cluster.sets[0][2]
            time.sleep(0.3)
            victim.kill()
            victim.start()
            wait_until(lambda: "resynced" in cluster.proxy.log(), timeout=30, what="resync under load")
            stop.set()
            for t in threads:
                t.join(30)
            r = cluster.client()
            self.assertTrue(r.ping())
            wait_until(lambda: server_states(cluster) == ["up"] * 3, timeout=20, what="all up")
            wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, timeout=20, what="converged")
            before = int(r.get("c"))
            self.assertEqual(r.incr("c"), before + 1)
            self.assertGreaterEqual(server_infos(cluster)[2]["resyncs"], 1, "the path: a resync")
        finally:
            stop.set()
            self.assertEqual(cluster.cleanup(), 0)


class SplitWhileLaggingTest(unittest.TestCase):
    def test_mset_del_across_replicated_shards_while_a_server_lags(self):
        cluster = Cluster(shards=2, servers=3, pool=FAST,
                          replication={"strategy": "multi-primary", "write_ack": "quorum"})
        victim = cluster.sets[0][1]
        try:
            r = cluster.client()
            keys = [f"sp:{i}" for i in range(200)]
            r.mset({k: "old" for k in keys})
            victim.signal(signal.SIGSTOP)
            r.mset({k: k for k in keys})  # times out on the stopped server; quorum holds
            wait_until(lambda: server_states(cluster)[1] == "recovering", timeout=15, what="lagging")
            for i in range(20):
                self.assertTrue(r.mset({k: f"{k}:{i}" for k in keys[i::7]}))
                self.assertGreater(r.delete(*keys[i * 3:i * 3 + 2], "nope"), -1)
            victim.signal(signal.SIGCONT)
            wait_until(lambda: all(s == "up" for s in server_states(cluster)), timeout=20, what="caught up")
            for rs in cluster.sets:
                wait_until(lambda: len(set(digests(rs))) == 1, timeout=10, what="shard converged")
            expected = dict(zip(keys, r.mget(keys)))
            for k, v in expected.items():
                rs = cluster.sets[cluster.names.index(cluster.route(k))]
                self.assertEqual({s.client().get(k) for s in rs}, {v}, k)
            info = server_infos(cluster)[1]
            self.assertEqual((info["replays"], info["resyncs"]), (1, 0), "the path: a replay")
        finally:
            victim.signal(signal.SIGCONT)
            self.assertEqual(cluster.cleanup(), 0)


class PrimaryLagTest(unittest.TestCase):
    # BUG: primary-replica, the primary times out with writes in flight. BackendConnection::lag
    # settles them as failed; on_group_outcome/WriteTracker then cancels the stage-1 replica
    # copies (cancel_replicas) and the client gets "acknowledged by 0 of 3 ... may be applied".
    # But the bytes are in the primary's socket: the primary applies them when it resumes,
    # the late replies are dropped, and nobody sends them to the replicas nor marks the
    # replicas stale. The primary and replicas diverge silently and permanently (all "up";
    # only a PROXY REPAIR would notice). Under overload (no SIGSTOP needed) this was seen to
    # leave a replica ~175,000 INCRs behind the primary. Fix idea: on the leader's late
    # reply, send the second stage (or mark the replicas stale), or mark the primary stale.
    def test_writes_in_flight_on_a_lagging_primary_reach_the_replicas(self):
        cluster = Cluster(shards=1, servers=3, pool=FAST,
                          replication={"strategy": "primary-replica", "write_ack": "quorum"})
        primary = cluster.sets[0][0]
        try:
            r = cluster.client()
            r.set("c", 0)
            primary.signal(signal.SIGSTOP)
            with self.assertRaisesRegex(redis.ResponseError, "may be applied"):
                r.incr("c")
            wait_until(lambda: server_states(cluster)[0] == "recovering", timeout=15, what="primary lagging")
            primary.signal(signal.SIGCONT)
            wait_until(lambda: server_states(cluster) == ["up"] * 3, timeout=20, what="primary back")
            self.assertEqual(r.incr("c"), 2)  # the primary applied the unacknowledged INCR
            wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, timeout=10,
                       what="replicas got what the primary applied")
            # The path: the late reply's copies, no resync (on_primary_down = fail: no promotion).
            self.assertEqual([i["resyncs"] for i in server_infos(cluster)], [0, 0, 0])
        finally:
            primary.signal(signal.SIGCONT)
            self.assertEqual(cluster.cleanup(), 0)


class RepairUnderWritesTest(unittest.TestCase):
    def repair(self, cluster, r):
        before = cluster.client().info("proxy")["shard0"]["repairs_finished"]
        self.assertIn(b"started", r.execute_command("PROXY", "REPAIR", "shard1"))
        wait_until(lambda: cluster.client().info("proxy")["shard0"]["repairs_finished"] > before,
                   timeout=30, what="repair finished")

    def test_repair_while_writes_continue_never_regresses_values(self):
        for strategy, ack in (("primary-replica", "primary"), ("multi-primary", "quorum")):
            with self.subTest(strategy=strategy):
                cluster = Cluster(shards=1, servers=3, pool=FAST,
                                  replication={"strategy": strategy, "write_ack": ack,
                                               "repair_keys_per_second": 100000})
                stop, last, errors = threading.Event(), {}, []

                def writer():
                    w = cluster.client()
                    i = 0
                    while not stop.is_set():
                        try:
                            key = f"mono:{i % 40}"
                            w.set(key, i)
                            last[key] = i
                        except redis.RedisError as e:
                            errors.append(repr(e))
                        i += 1
                t = threading.Thread(target=writer)
                try:
                    r = cluster.client()
                    r.mset({f"filler:{i}": i for i in range(1000)})
                    t.start()
                    wait_until(lambda: len(last) == 40, timeout=20, what="writes")
                    for s in cluster.sets[0][1:]:
                        s.client().set("mono:3", -1)  # something to repair
                    for _ in range(3):
                        self.repair(cluster, r)
                    stop.set()
                    t.join(30)
                    self.assertEqual(errors, [])
                    wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, timeout=20, what="converged")
                    for key, value in last.items():
                        self.assertEqual(cluster.sets[0][0].client().get(key), str(value).encode(), key)
                finally:
                    stop.set()
                    t.join(30)
                    self.assertEqual(cluster.cleanup(), 0)

    def test_repair_with_a_stale_server_racing_its_resync(self):
        cluster = Cluster(shards=1, servers=3, pool=FAST,
                          replication={"strategy": "multi-primary", "write_ack": "quorum",
                                       "replay_queue_max_writes": 10})
        victim = cluster.sets[0][2]
        try:
            r = cluster.client()
            make_lag(cluster, 2, r)
            for i in range(100):
                r.incr("n")
            wait_until(lambda: server_states(cluster)[2] == "stale", timeout=15, what="stale")
            cluster.sets[0][1].client().set("drift", "x")
            victim.signal(signal.SIGCONT)
            self.repair(cluster, r)  # while the stale server is being resynced
            for i in range(100):
                r.incr("n")
            self.assertEqual(cluster.sets[0][1].client().exists("drift"), 0)
            wait_until(lambda: server_states(cluster) == ["up"] * 3, timeout=30, what="resynced")
            wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, timeout=20, what="converged")
            self.assertEqual({s.client().get("n") for s in cluster.sets[0]}, {b"200"})
            self.assertEqual({s.client().get("lag-trigger") for s in cluster.sets[0]}, {b"1"})
        finally:
            victim.signal(signal.SIGCONT)
            self.assertEqual(cluster.cleanup(), 0)

    # BUG: while one server lags (stopped, a write in flight on it), PROXY REPAIR of its shard
    # always fails with "writes in flight did not drain", and every batch attempt first holds
    # all of the shard's writes for kHoldDeadlineMs (2 s). Proxy::writes_in_flight counts a
    # request until *all* its fragments are released, including the copies already settled on
    # the lagging server (fragment_finished runs only when the late reply arrives), so
    # RepairJob::tick never sees 0. The resync cutover (ResyncJob, Step::draining) waits on the
    # same counter, so one lagging server also blocks the resync of another one ("cutover took
    # too long"), each attempt stalling writes for 2 s. README: the hold "lasts milliseconds";
    # clients are answered "with no wait for the stopped one".
    def test_repair_while_another_server_lags(self):
        cluster = Cluster(shards=1, servers=3, pool=FAST,
                          replication={"strategy": "multi-primary", "write_ack": "quorum"})
        victim = cluster.sets[0][2]
        try:
            r = cluster.client()
            for i in range(50):
                r.set(f"k{i}", i)
            make_lag(cluster, 2, r)
            cluster.sets[0][1].client().set("k1", "drift")
            info = lambda: cluster.client().info("proxy")["shard0"]  # noqa: E731
            self.assertIn(b"started", r.execute_command("PROXY", "REPAIR", "shard1"))
            wait_until(lambda: info()["repairs_finished"] + info()["repairs_failed"] > 0, timeout=20,
                       what="repair over")
            self.assertEqual(info()["repairs_failed"], 0, "repair failed: writes in flight did not drain")
            self.assertEqual(cluster.sets[0][1].client().get("k1"), b"1")
        finally:
            victim.signal(signal.SIGCONT)
            self.assertEqual(cluster.cleanup(), 0)

if __name__ == "__main__":
    unittest.main()
