"""Regressions from a hostile review of the fences and leader changes (each failed before its
fix). The ones about freed memory run the proxy under valgrind (or rely on ASan in the
sanitizer build) and fail on any invalid read or write."""
import os
import shutil
import signal
import stat
import threading
import unittest

import redis

import harness
from harness import Cluster, RedisServer, digests, server_infos, server_states, toml_config, wait_until

BUSY_SCRIPT = "local t = redis.call('TIME') local e = t[1] + 2 while true do t = redis.call('TIME') " \
              "if tonumber(t[1]) > e then break end end return 1"
COPY_POOL = {"request_timeout_ms": 8000, "connect_timeout_ms": 2000, "retry_interval_ms": 6000}


def checked_cluster(**kw):
    """A Cluster whose proxy runs under valgrind (exit 99 on a memory error), unless the binary
    is already built with AddressSanitizer."""
    saved = harness.RINGPROXY_BIN
    valgrind = shutil.which("valgrind")
    wrapper = None
    if valgrind and not harness.SANITIZED:
        wrapper = os.path.join("/tmp", f"ringproxy-vg-{os.getpid()}.sh")
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/sh\nexec {valgrind} -q --error-exitcode=99 {saved} \"$@\"\n")
        os.chmod(wrapper, stat.S_IRWXU)
        harness.RINGPROXY_BIN = wrapper
    try:
        return Cluster(**kw), wrapper
    finally:
        harness.RINGPROXY_BIN = saved


def write_in_background(cluster, key):
    """SET key 1 from a thread of its own (its leader is stopped: it answers only later)."""
    def write():
        try:
            cluster.client(socket_timeout=30).set(key, 1)
        except redis.RedisError:
            pass
    t = threading.Thread(target=write, daemon=True)
    t.start()
    return t


def reload(cluster, shards, replication):
    with open(cluster.proxy.config_path, "w") as f:
        f.write(toml_config(cluster.proxy.port, shards, pool=RELOAD_POOL, replication=replication))
    return cluster.client().execute_command("PROXY", "RELOAD").decode()


RELOAD_POOL = {"request_timeout_ms": 10000, "connect_timeout_ms": 500, "retry_interval_ms": 200}
PRIMARY_ACK = {"strategy": "primary-replica", "write_ack": "primary"}

class MultiPrimarySpopOrderTest(unittest.TestCase):
    def test_pipelined_spop_then_sadd_leaves_servers_equal(self):
        """multi-primary: SPOP runs on the first server, the others get SREM of what it popped
        once it answered; a plain write is sent to every server at once. A client pipelining
        `SPOP s` then `SADD s x` has its SADD run on the followers before the SREM copy."""
        cluster = Cluster(shards=1, servers=3,
                          replication={"strategy": "multi-primary", "write_ack": "all"})
        try:
            r = cluster.client()
            for i in range(200):
                r.sadd(f"s{i}", "x")
            pipe = r.pipeline(transaction=False)
            for i in range(200):
                pipe.spop(f"s{i}")
                pipe.sadd(f"s{i}", "x")
            replies = pipe.execute(raise_on_error=False)
            self.assertFalse([x for x in replies if isinstance(x, Exception)])
            self.assertEqual(server_states(cluster), ["up"] * 3)
            # Every reply the client saw says: popped x, then added it back. The set holds x.
            members = [sorted(s.client().smembers("s0")) for s in cluster.sets[0]]
            self.assertEqual(len(set(digests(cluster.sets[0]))), 1,
                             f"servers differ while all up: s0 = {members}")
        finally:
            self.assertEqual(cluster.cleanup(), 0)


class AbandonedServerModeTest(unittest.TestCase):
    def test_abandoning_a_removed_server_does_not_change_a_kept_servers_mode(self):
        """shard1 = [A, B], shard2 = [C, D]; A has a GET outstanding (stopped). The reload makes
        shard1 = [B, E] (E new) and moves A to shard2. The removed A is abandon()ed (same address as the
        added one) before it is detached: its fence() sets the planner mode of its OLD index
        (0), which is now B's. B stays `up` in INFO but every write to shard1 is refused, and the
        new E (stale: it joined a shard with data) finds no live peer to resync from."""
        cluster = Cluster(shards=2, servers=2, pool=RELOAD_POOL, replication=PRIMARY_ACK, proxy_args=("--no-watch",))
        a, b = cluster.sets[0]
        c, d = cluster.sets[1]
        e = RedisServer(cluster.workdir).start()
        try:
            r = cluster.client()
            key = next(k for k in (f"k{i}" for i in range(1000)) if cluster.route(k) == "shard1")
            r.set(key, "v")
            a.signal(signal.SIGSTOP)
            done = []
            def get():
                try:
                    done.append(cluster.client(socket_timeout=30).get(key))
                except redis.RedisError as e:
                    done.append(e)
            t = threading.Thread(target=get, daemon=True)
            t.start()
            wait_until(lambda: int(server_infos(cluster)[0]["pending"]) >= 1, what="GET outstanding on A")
            self.assertIn("reloaded", reload(cluster, [("shard1", [b.address, e.address]),
                                                       ("shard2", [c.address, d.address, a.address])],
                                             PRIMARY_ACK))
            a.signal(signal.SIGCONT)
            t.join(30)
            wait_until(lambda: server_states(cluster)[0] == "up", what="B up")
            key1 = next(k for k in (f"x{i}" for i in range(1000)) if cluster.route(k) == "shard1")
            # B is `up` and nothing is wrong with it: a write to shard1 must go through (polled
            # for 10 s: it never does, nothing ever resets the planner's mode of index 0).
            wait_until(lambda: r.set(key1, "after"), timeout=10, what="a write to shard1 with B up")
            self.assertEqual(r.get(key1), b"after")
            wait_until(lambda: server_states(cluster)[1] == "up", timeout=20, what="E resynced from B")
        finally:
            a.signal(signal.SIGCONT)
            self.assertEqual(cluster.cleanup(), 0)
            e.stop()


class RestartWhileRecoveringTest(unittest.TestCase):
    def test_a_replica_restarted_empty_while_waiting_for_a_copy_is_resynced(self):
        cluster = Cluster(shards=1, servers=2,
                          pool={"request_timeout_ms": 1000, "connect_timeout_ms": 500, "retry_interval_ms": 1500},
                          replication={"strategy": "primary-replica", "write_ack": "primary"})
        primary, replica = cluster.sets[0]
        try:
            r = cluster.client(socket_timeout=30)
            pipe = r.pipeline(transaction=False)
            for i in range(1000):
                pipe.set(f"k{i}", i)
            pipe.execute()
            wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, what="equal")
            # The replica is down (its connection closed) until a probe sees its run_id.
            replica.client().execute_command("CLIENT", "KILL", "TYPE", "normal")
            wait_until(lambda: server_states(cluster)[1] == "down", what="replica down")
            # A write led by a primary that stops: the replica's copy waits for its late reply.
            primary.signal(signal.SIGSTOP)
            t = write_in_background(cluster, "late")
            # The probe sees the same run_id: recovering, waiting for that copy.
            wait_until(lambda: server_states(cluster)[1] == "recovering", timeout=10, what="replica recovering")
            replica.kill()
            replica.start()  # empty: a new run_id
            primary.signal(signal.SIGCONT)
            t.join(30)
            wait_until(lambda: server_states(cluster) == ["up", "up"], timeout=30, what="all up")
            wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, timeout=20,
                       what=f"servers equal (replica holds {replica.client().dbsize()} keys, "
                            f"primary {primary.client().dbsize()}; {server_infos(cluster)[1]})")
        finally:
            primary.signal(signal.SIGCONT)
            self.assertEqual(cluster.cleanup(), 0)


class ReplayInFlightConnectionLostTest(unittest.TestCase):
    def test_losing_the_connection_with_a_replay_in_flight(self):
        cluster, wrapper = checked_cluster(shards=1, servers=3,
                                           pool={"request_timeout_ms": 10000, "connect_timeout_ms": 2000,
                                                 "retry_interval_ms": 1500},
                                           replication={"strategy": "multi-primary", "write_ack": "one"})
        victim = cluster.sets[0][2]
        try:
            r = cluster.client(socket_timeout=30)
            r.set("warm", 1)
            # The proxy's data connection is closed by the server: a replicated server is down
            # until a probe (retry_interval later) sees its run_id again.
            victim.client().execute_command("CLIENT", "KILL", "TYPE", "normal")
            wait_until(lambda: server_states(cluster)[2] == "down", what="victim down")
            pipe = r.pipeline(transaction=False)
            pipe.eval(BUSY_SCRIPT, 1, "k0")               # replayed first: the victim is busy ~2 s with it
            for i in range(300):
                pipe.set(f"k{i}", "x" * 100)  # in flight behind it, in `replaying_`
            pipe.execute(raise_on_error=False)
            wait_until(lambda: server_states(cluster)[2] == "recovering", timeout=10, what="replay in flight")
            victim.kill()                     # the connection breaks with ~300 replayed writes in flight
            wait_until(lambda: server_states(cluster)[2] == "stale", timeout=10, what="victim stale")
            self.assertTrue(r.ping())
            log = cluster.proxy.log()
            self.assertNotIn("Invalid read", log, log[-6000:])
            self.assertNotIn("Invalid write", log, log[-6000:])
        finally:
            status = cluster.cleanup()
            if wrapper:
                os.unlink(wrapper)
            self.assertEqual(status, 0)


class RemovedServerWaitingForACopyTest(unittest.TestCase):
    def test_removing_a_server_whose_copy_waits_for_the_leader(self):
        cluster, wrapper = checked_cluster(shards=1, servers=3, pool=COPY_POOL, replication=PRIMARY_ACK,
                                            proxy_args=("--no-watch",))
        p, r1, r2 = cluster.sets[0]
        try:
            c = cluster.client(socket_timeout=30)
            c.set("warm", 1)
            r1.client().execute_command("CLIENT", "KILL", "TYPE", "normal")
            wait_until(lambda: server_states(cluster)[1] == "down", what="r1 down")
            p.signal(signal.SIGSTOP)
            t = write_in_background(cluster, "w")
            wait_until(lambda: int(cluster.client().info("proxy")["server0"]["pending"]) >= 1, what="write on p")
            with open(cluster.proxy.config_path, "w") as f:
                f.write(toml_config(cluster.proxy.port, [("shard1", [p.address, r2.address])], pool=COPY_POOL,
                                    replication=PRIMARY_ACK))
            self.assertIn("reloaded", c.execute_command("PROXY", "RELOAD").decode())
            # It is not destroyed while the copy waits (it used to be, at once).
            self.assertNotIn(f"server {r1.address} (shard shard1) drained", cluster.proxy.log())
            p.signal(signal.SIGCONT)  # the leader answers: its copy for r1 is resolved
            t.join(30)
            wait_until(lambda: f"server {r1.address} (shard shard1) drained" in cluster.proxy.log(),
                       what="r1 drained once its copy was resolved")
            self.assertTrue(c.ping())
            log = cluster.proxy.log()
            self.assertNotIn("Invalid read", log, log[-6000:])
            self.assertNotIn("Invalid write", log, log[-6000:])
        finally:
            p.signal(signal.SIGCONT)
            status = cluster.cleanup()
            if wrapper:
                os.unlink(wrapper)
            self.assertEqual(status, 0)



if __name__ == "__main__":
    unittest.main()
