"""Replication under faults that leave commands queued inside a server: a stopped server runs
whatever its sockets hold when it wakes, even from connections the proxy has given up. Each
test asserts the recovery path it took from the proxy's own counters (INFO proxy)."""
import os
import signal
import threading
import time
import unittest

import redis

from harness import (Cluster, RedisServer, digests, server_infos, server_states, shard_infos, started, toml_config,
                     wait_until)


class Writers:
    """Pipelining clients with checkable writes: INCR on one counter per client, then RPUSH of
    unique elements (or, with `pad`, SET of a unique value padded to `pad` bytes on one of 64
    keys: many bytes on the wire, a small dataset). Outcomes are tallied per client."""

    def __init__(self, cluster, clients=4, batch=50, pad=0):
        self.cluster, self.batch, self.pad = cluster, batch, pad
        self.written = [{} for _ in range(clients)]  # SET key -> values sent, in order
        self.stop = threading.Event()
        self.go = threading.Event()     # cleared: the clients pause between pipelines
        self.go.set()
        self.idle = [threading.Event() for _ in range(clients)]
        self.acked = [0] * clients      # INCRs acknowledged
        self.attempted = [0] * clients  # INCRs sent (acknowledged or not)
        self.pushed = [[] for _ in range(clients)]  # acknowledged RPUSH elements
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True) for n in range(clients)]

    def run(self, n):
        r = self.cluster.client(socket_timeout=30)
        seq = 0
        while not self.stop.is_set():
            if not self.go.is_set():
                self.idle[n].set()
                self.go.wait(0.1)
                continue
            self.idle[n].clear()
            pipe = r.pipeline(transaction=False)
            elements = []
            for _ in range(self.batch):
                pipe.incr(f"c{n}")
                elements.append(f"{n}:{seq}")
                if self.pad:
                    key = f"s{n}:{seq % 64}"
                    self.written[n].setdefault(key, []).append(elements[-1])
                    pipe.set(key, elements[-1].ljust(self.pad, "."))
                else:
                    pipe.rpush(f"l{n}", elements[-1])
                seq += 1
            self.attempted[n] += self.batch
            try:
                replies = pipe.execute(raise_on_error=False)
            except redis.RedisError:
                r = self.cluster.client(socket_timeout=30)
                continue
            for i in range(self.batch):
                if not isinstance(replies[2 * i], Exception):
                    self.acked[n] += 1
                if not isinstance(replies[2 * i + 1], Exception) and not self.pad:
                    self.pushed[n].append(elements[i])

    def pause(self):
        self.go.clear()
        wait_until(lambda: all(e.is_set() for e in self.idle), timeout=60, what="writers paused")

    def resume(self):
        self.go.set()

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def check(self, test, servers):
        """Every acknowledged INCR and element is there, nothing is there twice."""
        for s in servers:
            c = s.client()
            for n in range(len(self.acked)):
                value = int(c.get(f"c{n}") or 0)
                test.assertGreaterEqual(value, self.acked[n], f"{s.address} c{n}: acknowledged INCRs missing")
                test.assertLessEqual(value, self.attempted[n], f"{s.address} c{n}: INCRs applied twice")
                for key, values in self.written[n].items():
                    value = c.get(key)
                    test.assertTrue(value is None or value.decode().rstrip(".") in values,
                                    f"{s.address} {key}: a value never written")
                elements = [e.decode() for e in c.lrange(f"l{n}", 0, -1)]
                test.assertEqual(len(elements), len(set(elements)), f"{s.address} l{n}: an element pushed twice")
                missing = set(self.pushed[n]) - set(elements)
                test.assertFalse(missing, f"{s.address} l{n}: acknowledged elements missing")


def assert_clean_exit(test, cluster):
    """Stops the cluster; the proxy must exit 0 (a signal is named: SIGSEGV, SIGABRT from ASan)."""
    status = cluster.cleanup()
    test.assertEqual(status, 0, f"the proxy died of {signal.Signals(-status).name}"
                     if status is not None and status < 0 else "the proxy's exit status")


def reload_shard(test, cluster, servers, pool, replication):
    """Rewrites the config with `servers` as shard1 (the proxy runs --no-watch) and applies it
    with PROXY RELOAD; returns the reload's summary."""
    with open(cluster.proxy.config_path + ".tmp", "w") as f:
        f.write(toml_config(cluster.proxy.port, [("shard1", [s.address for s in servers])], pool=pool,
                            replication=replication))
    os.replace(cluster.proxy.config_path + ".tmp", cluster.proxy.config_path)
    reply = cluster.client().execute_command("PROXY", "RELOAD").decode()
    test.assertIn("reloaded", reply)
    return reply


def increments(cluster, per_counter, n=4):
    """One pipeline of `per_counter` INCRs on each of c0..c{n-1} through the proxy; returns the
    replies. To a stopped primary they stay in its socket, and their errors come back once its
    connection lags (settled), however long the primary stays stopped."""
    pipe = cluster.client(socket_timeout=30).pipeline(transaction=False)
    for _ in range(per_counter):
        for i in range(n):
            pipe.incr(f"c{i}")
    return pipe.execute(raise_on_error=False)


def counters(server, n=4):
    c = server.client()
    return [int(c.get(f"c{i}") or 0) for i in range(n)]


def reached(predicate, timeout):
    """A bounded poll for a state a correct proxy must not reach: whether it was reached."""
    try:
        wait_until(predicate, timeout=timeout)
        return True
    except TimeoutError:
        return False


def proxy_alive(cluster, predicate):
    """A wait_until predicate that gives up at once, with its status and log, if the proxy died."""
    return started(cluster.proxy.proc, cluster.proxy.log_path, predicate)


class StoppedServerBacklogTest(unittest.TestCase):
    def test_backlog_of_a_stopped_server_does_not_run_after_its_resync(self):
        """Issue 9's double apply. A server is SIGSTOPped under pipelined writers: the writes
        in flight to it are settled after the timeout and stay in its socket. Its replay queue
        overflows, it is stale, and its resync starts while it is still stopped. The writers pause
        (so the sync itself is short); after SIGCONT
        redis reads that backlog 16 KB per event-loop turn; a client of its own makes each turn
        slow, so the full sync and the cutover finish long before the backlog does. Whatever of
        the backlog ran after the cutover was applied twice (the peer's copy had it already)."""
        cluster = Cluster(shards=1, servers=3,
                          pool={"request_timeout_ms": 1000, "connect_timeout_ms": 500, "retry_interval_ms": 200},
                          replication={"strategy": "multi-primary", "write_ack": "quorum",
                                       "replay_queue_max_writes": 200})
        victim = cluster.sets[0][2]
        writers = Writers(cluster, pad=1000)
        slow = threading.Event()

        def slow_down():  # one DEBUG SLEEP per event-loop turn of the victim
            c = victim.client(socket_timeout=60)
            while not slow.is_set():
                c.execute_command("DEBUG", "SLEEP", "0.03")

        slower = threading.Thread(target=slow_down, daemon=True)
        try:
            writers.start()
            wait_until(lambda: sum(writers.acked) > 2000, timeout=30, what="load")
            victim.signal(signal.SIGSTOP)
            wait_until(lambda: server_states(cluster)[2] == "stale", timeout=30, what="replay queue overflowed")
            # The backlog: what the victim's socket took before the proxy settled its writes.
            self.assertIn("replay queue overflowed", cluster.proxy.log())
            # Quiet while it syncs, so that the sync is quick next to the backlog.
            writers.pause()
            slower.start()
            victim.signal(signal.SIGCONT)
            wait_until(lambda: server_infos(cluster)[2]["resyncs"] >= 1, timeout=60, what="resynced")
            writers.resume()
            mark = sum(writers.acked)
            wait_until(lambda: sum(writers.acked) > mark + 2000, timeout=60, what="load after the resync")
            slow.set()
            slower.join(30)
            writers.finish()
            wait_until(lambda: server_states(cluster) == ["up"] * 3, timeout=30, what="all up")
            wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, timeout=30,
                       what="servers equal (the backlog ran after the cutover)")
            writers.check(self, cluster.sets[0])
            # The path: a resync, whose first step killed the abandoned connection.
            info = server_infos(cluster)[2]
            self.assertGreaterEqual(info["fences"], 1, info)
            self.assertEqual(info["resyncs"], 1, info)
        finally:
            slow.set()
            writers.stop.set()
            victim.signal(signal.SIGCONT)
            self.assertEqual(cluster.cleanup(), 0)


class RepairMeetsAStoppedServerTest(unittest.TestCase):
    def test_a_server_stopped_mid_repair_does_not_hold_the_shards_writes(self):
        """A repair whose server stops answering hung: its SCAN had no deadline (the repair
        stayed `running` for ever, and no other could start), and a batch holding the shard's
        writes had none once its compare began (the writes waited for ever). Now each step
        gives up (a batch after 2 s, fencing its connections should its fixes run late),
        writes go on, and the stopped server catches up by replay once it answers."""
        cluster = Cluster(shards=1, servers=3,
                          pool={"request_timeout_ms": 1000, "connect_timeout_ms": 500, "retry_interval_ms": 200},
                          replication={"strategy": "multi-primary", "write_ack": "quorum",
                                       "repair_keys_per_second": 1000})
        victim = cluster.sets[0][2]
        try:
            r = cluster.client()
            pipe = r.pipeline(transaction=False)
            for i in range(20000):
                pipe.set(f"k{i}", i)
            pipe.execute()
            self.assertIn(b"started", r.execute_command("PROXY", "REPAIR", "shard1"))
            wait_until(lambda: cluster.client().info("proxy")["shard0"]["repair"] == "running", what="repair running")
            victim.signal(signal.SIGSTOP)
            r.set("lag-trigger", 1)
            wait_until(lambda: server_states(cluster)[2] == "recovering", timeout=15, what="lagging")
            started = time.monotonic()
            for i in range(50):  # held at most 2 s by the batch, then the stopped server is left behind
                self.assertTrue(r.set(f"after{i}", i))
            self.assertLess(time.monotonic() - started, 15, "writes were held behind the repair")
            wait_until(lambda: cluster.client().info("proxy")["shard0"]["repairs_failed"] >= 1, timeout=20,
                       what="the repair gave up")
            victim.signal(signal.SIGCONT)
            wait_until(lambda: server_states(cluster) == ["up"] * 3, timeout=30, what="caught up")
            wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, timeout=20, what="servers equal")
            self.assertEqual(victim.client().get("after49"), b"49")
            info = server_infos(cluster)[2]
            self.assertEqual((info["resyncs"], info["replays"]), (0, 1), info)
        finally:
            victim.signal(signal.SIGCONT)
            self.assertEqual(cluster.cleanup(), 0)


class ReplicaJoinsByReloadTest(unittest.TestCase):
    def test_a_replica_added_by_a_reload_is_resynced_before_it_serves(self):
        """A server that a reload adds to a replicated shard holding data started `up` and empty:
        reads from it found nothing and the servers differed for good. It is now stale until
        resynced from a live peer, under writes; removed and added back, the same."""
        pool = {"request_timeout_ms": 1000, "connect_timeout_ms": 500, "retry_interval_ms": 200}
        replication = {"strategy": "multi-primary", "write_ack": "quorum", "read_from": "any"}
        cluster = Cluster(shards=1, servers=2, pool=pool, replication=replication, proxy_args=("--no-watch",))
        a, b = cluster.sets[0]
        c = RedisServer(cluster.workdir).start()
        writers = Writers(cluster, clients=2, batch=20)

        def reload(servers):
            reload_shard(self, cluster, servers, pool, replication)
        try:
            writers.start()
            wait_until(lambda: sum(writers.acked) > 2000, timeout=30, what="load")
            reload([a, b, c])
            wait_until(lambda: server_states(cluster) == ["up"] * 3, timeout=30, what="the new replica resynced")
            self.assertEqual(server_infos(cluster)[2]["resyncs"], 1, "the path: a resync")
            reload([a, b])  # removed, then added back: it missed what was written meanwhile
            mark = sum(writers.acked)
            wait_until(lambda: sum(writers.acked) > mark + 1000, timeout=30, what="writes while it is out")
            reload([a, b, c])
            wait_until(lambda: server_states(cluster) == ["up"] * 3, timeout=30, what="resynced again")
            self.assertEqual(server_infos(cluster)[2]["resyncs"], 1, "a new server object, resynced once")
            writers.finish()
            wait_until(lambda: len(set(digests([a, b, c]))) == 1, timeout=30, what="servers equal")
            writers.check(self, [a, b, c])
        finally:
            writers.stop.set()
            self.assertEqual(cluster.cleanup(), 0)
            c.stop()


# Both: primary-replica, on_primary_down = fail. The primary P is SIGSTOPped with INCRs in flight;
# after request_timeout_ms its connection lags: the INCRs are settled (the client gets the timeout
# error) and their copies for the replicas cancelled. P still holds them in its socket: on SIGCONT
# it applies them and the proxy sends the copies after all (late copies). A reload meanwhile
# adds or removes a replica.
LATE_POOL = {"request_timeout_ms": 400, "connect_timeout_ms": 500, "retry_interval_ms": 200}
LATE_REPLICATION = {"strategy": "primary-replica", "on_primary_down": "fail", "write_ack": "all"}
BASE, IN_FLIGHT = 50, 150  # INCRs per counter: acknowledged before the stop, then settled while stopped


def stop_primary_with_settled_writes(test, cluster, primary):
    """P is stopped, and the INCRs it holds are settled: returns once their clients have the errors."""
    test.assertTrue(all(not isinstance(r, Exception) for r in increments(cluster, BASE)))
    primary.signal(signal.SIGSTOP)
    replies = increments(cluster, IN_FLIGHT)
    test.assertTrue(all(isinstance(r, redis.ResponseError) and "acknowledged by 0" in str(r) for r in replies),
                    f"every INCR in flight to the stopped primary is settled: {set(map(str, replies))}")
    test.assertEqual(server_states(cluster)[0], "recovering", "the primary lags")


class LateCopiesReachJoiningReplicaTest(unittest.TestCase):
    def test_a_replica_added_while_the_primary_lags_gets_the_late_copies(self):
        """Chaos seed 800006. A replica R2 that a reload adds while the primary lags is resynced
        from the other replica R1. Its cutover came before the late copies, which then went to R1
        only (R2 was in none of those writes): R2 missed them for good while `up`. Its cutover
        now waits until no late copy is pending: R2 gets them through R1 (its master until then)."""
        cluster = Cluster(shards=1, servers=2, pool=LATE_POOL, replication=LATE_REPLICATION,
                          proxy_args=("--no-watch",))
        primary, r1 = cluster.sets[0]
        r2 = RedisServer(cluster.workdir).start()

        def r2_replicates_r1():
            role = r2.client().execute_command("ROLE")
            return role[0] == b"slave" and role[2] == r1.port and role[3] == b"connected"
        try:
            stop_primary_with_settled_writes(self, cluster, primary)
            reload_shard(self, cluster, [primary, r1, r2], LATE_POOL, LATE_REPLICATION)
            self.assertEqual(server_states(cluster)[2], "stale", "it joined a shard that holds data")
            # Its resync from R1 (the only live peer) reaches the cutover once R2 replicates R1;
            # before the fix the cutover followed within milliseconds.
            wait_until(lambda: server_states(cluster)[2] == "up" or r2_replicates_r1(), timeout=20,
                       what="R2 syncing from R1")
            cut_over_early = reached(lambda: server_states(cluster)[2] == "up", timeout=2)
            primary.signal(signal.SIGCONT)
            wait_until(proxy_alive(cluster, lambda: server_states(cluster) == ["up"] * 3), timeout=20,
                       what="the primary caught up and R2 resynced")
            # The late copies reached R1 (so R2 had its chance to get them).
            wait_until(lambda: counters(r1) == counters(primary), timeout=10, what="late copies on R1")
            values = [counters(s) for s in (primary, r1, r2)]
            self.assertEqual(values[0], [BASE + IN_FLIGHT] * 4, "the primary applied every settled INCR")
            for s, v in zip(("primary", "R1", "R2"), values):
                for n in range(4):  # acknowledged: BASE; attempted: BASE + IN_FLIGHT
                    self.assertGreaterEqual(v[n], BASE, f"{s} c{n}: acknowledged INCRs missing")
                    self.assertLessEqual(v[n], BASE + IN_FLIGHT, f"{s} c{n}: INCRs applied twice")
            self.assertEqual(values[2], values[0],
                             f"R2 missed the late copies (it was up before the primary answered: {cut_over_early})")
            self.assertEqual(len(set(digests([primary, r1, r2]))), 1, "servers equal")
            # The path: R2 was resynced, the primary lagged and answered late.
            infos = server_infos(cluster)
            self.assertGreaterEqual(infos[2]["resyncs"], 1, infos[2])
            self.assertEqual((infos[0]["resyncs"], infos[0]["pending"]), (0, 0), infos[0])
            self.assertGreaterEqual(infos[0]["failures"], 1, infos[0])
            self.assertIn("lags (timed out", cluster.proxy.log())
        finally:
            primary.signal(signal.SIGCONT)
            self.assertEqual(cluster.cleanup(), 0)
            r2.stop()


class LateCopiesToRemovedReplicaTest(unittest.TestCase):
    def test_a_replica_removed_while_the_primary_lags_outlives_the_late_copies(self):
        """Chaos seed 800025. A replica R2 that a reload removes while the primary lags had nothing
        in flight (its copies were cancelled): it was closed and freed as drained at once, and
        the late copy the primary's answer sent it went to the freed server (SIGSEGV). It now
        drains only once no leader of its shard has late copies pending."""
        cluster = Cluster(shards=1, servers=3, pool=LATE_POOL, replication=LATE_REPLICATION,
                          proxy_args=("--no-watch",))
        primary, r1, r2 = cluster.sets[0]

        def draining():
            return cluster.client().info("proxy")["servers_draining"]
        try:
            stop_primary_with_settled_writes(self, cluster, primary)
            summary = reload_shard(self, cluster, [primary, r1], LATE_POOL, LATE_REPLICATION)
            self.assertIn("1 removed and draining", summary)
            # Before the fix R2 was closed at the next sweep (its log: "drained: closing it").
            closed_early = reached(lambda: draining() == 0, timeout=2)
            primary.signal(signal.SIGCONT)
            wait_until(proxy_alive(cluster, lambda: server_states(cluster) == ["up"] * 2 and draining() == 0),
                       timeout=20, what="the primary caught up and R2 drained")
            self.assertTrue(cluster.client().ping())
            self.assertIsNone(cluster.proxy.proc.poll(), "the proxy is running")
            wait_until(lambda: counters(r1) == counters(primary), timeout=10, what="late copies on R1")
            self.assertEqual(counters(primary), [BASE + IN_FLIGHT] * 4, "the primary applied every settled INCR")
            self.assertEqual(len(set(digests([primary, r1]))), 1, "primary and R1 equal")
            self.assertFalse(closed_early, "R2 was closed while the lagging primary could still send it a copy")
            # Writes finish on the snapshot they were planned with: R2 got its copies before it went.
            self.assertEqual(counters(r2), counters(primary), "the removed R2 got its late copies")
            # The path: the primary lagged, then answered and is live again, without a resync.
            infos = server_infos(cluster)
            self.assertEqual((infos[0]["resyncs"], infos[0]["pending"]), (0, 0), infos[0])
            self.assertGreaterEqual(infos[0]["failures"], 1, infos[0])
            self.assertIn("lags (timed out", cluster.proxy.log())
        finally:
            primary.signal(signal.SIGCONT)
            self.assertEqual(cluster.cleanup(), 0)


class RemovedPrimaryLateCopiesTest(unittest.TestCase):
    def test_a_removed_primarys_late_reply_does_not_overwrite_the_new_leaders_write(self):
        """A primary P that lags holds `SET k old`, settled as failed. A reload removes P: R1 leads
        and acknowledges `SET k new`. When P answered late, its late reply sent the cancelled
        copies of `SET k old` to R1 and R2 after all, behind `new` on R1's connection: R1 ended
        with the failed `old` over the acknowledged `new`, R2 with `new`, both `up`, and a GET
        returned `old`. A removed leader's late reply now sends nothing. R1 is stopped while `new`
        is in flight to it, so that P's late reply comes first (well within request_timeout_ms)."""
        pool = {"request_timeout_ms": 2000, "connect_timeout_ms": 500, "retry_interval_ms": 200}
        cluster = Cluster(shards=1, servers=3, pool=pool, replication=LATE_REPLICATION, proxy_args=("--no-watch",))
        primary, r1, r2 = cluster.sets[0]
        acked = {}

        def draining():
            return cluster.client().info("proxy")["servers_draining"]

        def write_new():
            try:
                acked["new"] = cluster.client(socket_timeout=30).set("k", "new")
            except redis.RedisError as e:
                acked["new"] = e

        writer = threading.Thread(target=write_new, daemon=True)
        try:
            c = cluster.client(socket_timeout=30)
            self.assertTrue(c.set("k", "base"))
            primary.signal(signal.SIGSTOP)
            with self.assertRaisesRegex(redis.ResponseError, "acknowledged by 0"):
                c.set("k", "old")  # settled as failed once P lags; P holds it in its socket
            self.assertEqual(server_states(cluster)[0], "recovering", "the primary lags")
            summary = reload_shard(self, cluster, [r1, r2], pool, LATE_REPLICATION)
            self.assertIn("1 removed and draining", summary)
            r1.signal(signal.SIGSTOP)
            writer.start()
            wait_until(lambda: server_infos(cluster)[0]["pending"] >= 1, timeout=5, what="`new` in flight to R1")
            primary.signal(signal.SIGCONT)
            # P applies `old` and answers late; the proxy drains P once that reply is in.
            wait_until(proxy_alive(cluster, lambda: draining() == 0), timeout=5, what="P answered and drained")
            r2_before_r1 = r2.client().get("k")  # R2 gets nothing before its leader R1 answers
            r1.signal(signal.SIGCONT)
            writer.join(30)
            self.assertFalse(writer.is_alive(), "`new` answered")
            self.assertIs(acked["new"], True, f"`new` acknowledged by the new leader: {acked['new']!r}")
            wait_until(proxy_alive(cluster, lambda: server_states(cluster) == ["up"] * 2), timeout=10,
                       what="R1 and R2 up")
            # The history (write_ack = all: `new` is on R1 and R2 once acknowledged): the acknowledged
            # `new` everywhere, the failed `old` nowhere among the remaining servers (only on P,
            # which applied it late and is out of the shard).
            self.assertEqual(primary.client().get("k"), b"old", "P applied the settled write late")
            values = {"R1": r1.client().get("k"), "R2": r2.client().get("k")}
            self.assertEqual(values, {"R1": b"new", "R2": b"new"},
                             "the failed `old` overwrote the acknowledged `new` "
                             f"(R2 before R1 answered: {r2_before_r1!r})")
            self.assertEqual(r2_before_r1, b"base", "R2 got a copy of the failed `old`")
            self.assertEqual(len(set(digests([r1, r2]))), 1, "R1 and R2 equal")
            self.assertEqual(cluster.client().get("k"), b"new", "GET through the proxy")
            self.assertEqual(server_states(cluster), ["up"] * 2)
            self.assertEqual(draining(), 0)
            # The path: P lagged, R1 took the lead, P answered late and was drained; R1 and R2 were
            # never behind (no lag, no resync, no replay).
            log = cluster.proxy.log()
            self.assertIn(f"server {primary.address} (shard shard1) lags (timed out", log)
            self.assertIn(f"shard shard1: writes are now led by {r1.address}", log)
            self.assertIn(f"server {primary.address} (shard shard1) answers again", log)
            self.assertIn(f"server {primary.address} (shard shard1) drained: closing it", log)
            self.assertEqual(shard_infos(cluster)[0]["leader_changes"], 1, "one leader change: P to R1")
            infos = server_infos(cluster)
            self.assertEqual([i["addr"] for i in infos], [r1.address, r2.address])
            for info in infos:
                self.assertEqual((info["failures"], info["pending"], info["resyncs"], info["replays"]), (0, 0, 0, 0),
                                 info)
        finally:
            primary.signal(signal.SIGCONT)
            r1.signal(signal.SIGCONT)
            if writer.is_alive():
                writer.join(30)
            self.assertEqual(cluster.cleanup(), 0)


class RemovedReplicaWithPlannedCopiesTest(unittest.TestCase):
    def test_a_replica_removed_while_its_copies_wait_for_the_primary_gets_them_before_it_closes(self):
        """Chaos seed 3000028. With primary-replica, a write goes to the primary P first and its
        copies for the replicas are only planned until P answers (stage two). A reload removed the
        replica R2 while P had not answered yet: R2 had nothing in flight (its copies were not sent
        yet), so it was closed and freed as drained at the next sweep, and P's answer sent the copy
        to the freed server (SIGSEGV). A removed server is now closed only once no copy is planned
        for it. P is stopped briefly, well within request_timeout_ms: it never lags, the INCRs are
        acknowledged (write_ack = all: by P, R1 and R2) and R2 gets every copy before it closes."""
        pool = {"request_timeout_ms": 5000, "connect_timeout_ms": 500, "retry_interval_ms": 200}
        replication = {"strategy": "primary-replica", "on_primary_down": "fail", "write_ack": "all"}
        cluster = Cluster(shards=1, servers=3, pool=pool, replication=replication, proxy_args=("--no-watch",))
        primary, r1, r2 = cluster.sets[0]
        per_counter = 20  # INCRs per counter in flight to the stopped P: 80 requests, 160 planned copies
        outcome = {}

        def draining():
            return cluster.client().info("proxy")["servers_draining"]

        def write():
            try:
                outcome["replies"] = increments(cluster, per_counter)
            except redis.RedisError as e:
                outcome["replies"] = e

        writer = threading.Thread(target=write, daemon=True)
        try:
            self.assertTrue(all(not isinstance(r, Exception) for r in increments(cluster, BASE)))
            self.assertEqual([counters(s) for s in (primary, r1, r2)], [[BASE] * 4] * 3, "acknowledged everywhere")
            primary.signal(signal.SIGSTOP)
            writer.start()
            # Every INCR planned with R2 in the shard: P has them all (it answers none while stopped).
            wait_until(lambda: server_infos(cluster)[0]["pending"] == 4 * per_counter, timeout=10,
                       what="every INCR in flight to the stopped primary")
            summary = reload_shard(self, cluster, [primary, r1], pool, replication)
            self.assertIn("1 removed and draining", summary)
            # Before the fix R2 was closed at the next sweep (every 50 ms here): nothing in flight.
            closed_early = reached(lambda: draining() == 0, timeout=1)
            log_while_stopped = cluster.proxy.log()
            primary.signal(signal.SIGCONT)
            # Before the fix the proxy died here (SIGSEGV: P's answer sent the copies to the freed R2).
            wait_until(proxy_alive(cluster, lambda: not writer.is_alive()), timeout=20,
                       what="the INCRs answered once the primary woke")
            self.assertIsNone(cluster.proxy.proc.poll(), "the proxy is running")
            self.assertTrue(cluster.client().ping())
            self.assertFalse(closed_early, "R2 was closed while copies planned for it waited for the primary")
            replies = outcome["replies"]
            self.assertIsInstance(replies, list, f"the INCRs answered: {replies!r}")
            self.assertTrue(all(not isinstance(r, Exception) for r in replies),
                            f"every INCR acknowledged by P, R1 and R2: {set(map(str, replies))}")
            self.assertEqual(sorted(replies[-4:]), [BASE + per_counter] * 4, "each counter's last INCR")
            expected = [BASE + per_counter] * 4
            self.assertEqual(counters(primary), expected, "P applied every INCR once")
            self.assertEqual(counters(r1), expected, "R1 got every copy")
            self.assertEqual(len(set(digests([primary, r1]))), 1, "P and R1 equal")
            # Requests finish on the snapshot they were planned with: R2 got its copies before it went.
            self.assertEqual(counters(r2), expected, "the removed R2 got the copies planned for it")
            self.assertEqual(len(set(digests([primary, r1, r2]))), 1, "R2 equal to P")
            wait_until(proxy_alive(cluster, lambda: draining() == 0), timeout=10,
                       what="R2 closed once its copies are done")
            # The path: R2 left with nothing in flight and stayed open while P was stopped; it closed
            # only after P answered. P never lagged (no timeout, no failure); no server fell behind.
            removed = f"server {r2.address} (shard shard1) removed by the reload: draining 0 requests in flight"
            closing = f"server {r2.address} (shard shard1) drained: closing it"
            self.assertIn(removed, log_while_stopped)
            self.assertNotIn(closing, log_while_stopped, "R2 closed before the primary answered")
            log = cluster.proxy.log()
            self.assertEqual(log.count(closing), 1, "R2 closed once, after the primary answered")
            self.assertNotIn("lags (timed out", log)
            infos = server_infos(cluster)
            self.assertEqual([i["addr"] for i in infos], [primary.address, r1.address])
            self.assertEqual(server_states(cluster), ["up"] * 2)
            for info in infos:
                self.assertEqual((info["failures"], info["pending"], info["resyncs"], info["replays"]), (0, 0, 0, 0),
                                 info)
                self.assertEqual(info["requests"], 4 * (BASE + per_counter), info)
        finally:
            primary.signal(signal.SIGCONT)
            if writer.is_alive():
                writer.join(30)
            assert_clean_exit(self, cluster)



class QuorumReadFirstServerRemovedTest(unittest.TestCase):
    def test_a_quorum_read_whose_first_server_is_removed_and_closed_before_the_last_reply(self):
        """read_from = quorum asks a majority of the shard's servers, in the shard's order (the
        primary first) and answers once all have replied; when their copies differ,
        answer_quorum_read picks the winner, and decided whether the primary was asked from the
        first fragment's server. A reload removed that server P after it had answered but before
        the last server asked (R2, stopped) did: P had nothing in flight, so it was closed and
        freed as drained, and R2's reply made answer_quorum_read read the freed server (a heap use
        after free: ASan aborts the proxy). Even before it was freed, a removed server's index is
        detached: the primary's copy lost to the replicas'. Whether the primary was asked is now
        decided at plan time, on the snapshot the read was planned with: the primary's copy wins.
        Four servers, so that three are asked (P, R1, R2; not R3); R2 is stopped well within
        request_timeout_ms: nothing times out."""
        pool = {"request_timeout_ms": 5000, "connect_timeout_ms": 500, "retry_interval_ms": 200}
        replication = {"strategy": "primary-replica", "write_ack": "all", "read_from": "quorum"}
        cluster = Cluster(shards=1, servers=4, pool=pool, replication=replication, proxy_args=("--no-watch",))
        primary, r1, r2, r3 = cluster.sets[0]
        outcome = {}

        def draining():
            return cluster.client().info("proxy")["servers_draining"]

        def read():
            try:
                outcome["reply"] = cluster.client(socket_timeout=30).get("k")
            except redis.RedisError as e:
                outcome["reply"] = e

        reader = threading.Thread(target=read, daemon=True)
        try:
            self.assertTrue(cluster.client().set("k", "old"))  # write_ack = all: on every server
            self.assertEqual([s.client().get("k") for s in (primary, r1, r2, r3)], [b"old"] * 4)
            # The copies differ (only then is the winner picked): the primary has a write the
            # replicas missed. Its copy is the authority, though the replicas asked outnumber it.
            self.assertTrue(primary.client().set("k", "new"))
            before = server_infos(cluster)
            r2.signal(signal.SIGSTOP)
            reader.start()
            # The GET is in flight to R2; P and R1 have answered it.
            wait_until(proxy_alive(cluster, lambda: [i["pending"] for i in server_infos(cluster)][:3] == [0, 0, 1]),
                       timeout=5, what="P and R1 answered, R2 not")
            self.assertTrue(reader.is_alive(), "the GET waits for R2")
            summary = reload_shard(self, cluster, [r1, r2, r3], pool, replication)
            self.assertIn("1 removed and draining", summary)
            # Nothing in flight on P: it is closed and freed at the next sweep (unchanged by the fix).
            wait_until(proxy_alive(cluster, lambda: draining() == 0), timeout=5, what="P closed as drained")
            log_while_stopped = cluster.proxy.log()
            r2.signal(signal.SIGCONT)
            # Before the fix the proxy died here (ASan: heap-use-after-free in answer_quorum_read).
            wait_until(proxy_alive(cluster, lambda: not reader.is_alive()), timeout=10, what="the GET answered")
            self.assertIsNone(cluster.proxy.proc.poll(), "the proxy is running")
            self.assertTrue(cluster.client().ping())
            self.assertEqual(outcome.get("reply"), b"new",
                             "the primary's copy (the read was planned with P as the shard's primary)")
            # The path: P removed with nothing in flight and closed before R2 answered; R2 never
            # timed out; three servers asked, not R3; the copies were compared (a read repair).
            removed = f"server {primary.address} (shard shard1) removed by the reload: draining 0 requests in flight"
            closing = f"server {primary.address} (shard shard1) drained: closing it"
            self.assertIn(removed, log_while_stopped)
            self.assertIn(closing, log_while_stopped, "P closed before R2 answered")
            log = cluster.proxy.log()
            self.assertEqual(log.count(closing), 1)
            self.assertNotIn("lags (timed out", log)
            self.assertNotIn("AddressSanitizer", log)
            self.assertNotIn("runtime error", log)
            self.assertEqual(shard_infos(cluster)[0]["read_repairs"], 1, "the copies differed")
            infos = server_infos(cluster)
            self.assertEqual([i["addr"] for i in infos], [r1.address, r2.address, r3.address])
            self.assertEqual(server_states(cluster), ["up"] * 3)
            for info in infos:
                self.assertEqual((info["failures"], info["pending"], info["resyncs"], info["replays"]), (0, 0, 0, 0),
                                 info)
            self.assertEqual([i["requests"] - b["requests"] for i, b in zip(infos, before[1:])], [1, 1, 0],
                             "R1 and R2 asked, not R3")
        finally:
            r2.signal(signal.SIGCONT)
            if reader.is_alive():
                reader.join(30)
            assert_clean_exit(self, cluster)


if __name__ == "__main__":
    unittest.main()
