"""Review of the transactions feature (issue 13): each test is one bug, and states the behaviour
a client of redis (or of the proxy's own rules elsewhere) can rely on.

Run: RINGPROXY_BIN=... /usr/bin/python3 -m unittest test_review_transactions
"""
import hashlib
import os
import signal
import time
import unittest

import redis

from harness import (Cluster, RedisServer, digests, keys_by_shard, raw_exchange, resp, server_infos, server_states,
                     toml_config, wait_until)
from test_transactions import RawClient


def write_config(cluster, shards, pool=None, replication=None):
    """Replaces the proxy's config file at once (a reload never sees it half-written)."""
    text = toml_config(cluster.proxy.port, shards, pool=pool, replication=replication,
                       metrics_port=cluster.metrics_port)
    tmp = cluster.proxy.config_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, cluster.proxy.config_path)


def shard_list(cluster, extra=()):
    return [(n, [s.address for s in rs]) for n, rs in zip(cluster.names, cluster.sets)] + list(extra)


class ReviewTransactionsTest(unittest.TestCase):
    def cluster(self, **kw):
        cluster = Cluster(**kw)
        self.addCleanup(cluster.cleanup)
        return cluster

    def raw(self, cluster):
        c = RawClient(cluster.proxy.port)
        self.addCleanup(c.close)
        return c

    # 1. A watching client's commands for its server go to the dedicated connection without the
    # data path's script handling: EVALSHA of a script the proxy knows is not sent as EVAL.
    def test_evalsha_while_watching_runs_a_script_the_proxy_knows(self):
        cluster = self.cluster(shards=1)
        sha = cluster.client().script_load("return redis.call('INCR', KEYS[1])")
        cluster.redis[0].client().script_flush()  # the server lost it (a restart, a flush)
        self.assertEqual(cluster.client().evalsha(sha, 1, "k"), 1)  # not watching: sent as EVAL
        cluster.redis[0].client().script_flush()
        c = self.raw(cluster)
        self.assertEqual(c.call("WATCH", "k"), b"OK")
        self.assertEqual(c.call("EVALSHA", sha, 1, "k"), 2)  # watching: must work the same

    # 2. The same bypass skips the refusal of blocking commands: a watching client's XREAD BLOCK
    # blocks the dedicated connection until the request timeout, which counts as a failure of
    # the server and (failure_limit) takes the whole shard down for every client.
    # (Issue 14: blocking commands block on a dedicated connection of their own; a watching
    # client's are refused, its WATCH holds the one it has.)
    def test_blocking_xread_while_watching_is_refused_and_the_shard_stays_up(self):
        cluster = self.cluster(shards=1, pool={"failure_limit": 1, "request_timeout_ms": 300,
                                               "retry_interval_ms": 60000})
        c = self.raw(cluster)
        self.assertIsNone(c.call("XREAD", "BLOCK", "500", "STREAMS", "s", "$"))  # longer than the request timeout
        self.assertEqual(c.call("WATCH", "k"), b"OK")
        reply = c.call("XREAD", "BLOCK", "0", "STREAMS", "s", "$")
        self.assertIsInstance(reply, redis.ResponseError)
        self.assertIn("cannot block while a WATCH holds", str(reply))
        self.assertEqual(server_states(cluster), ["up"])
        self.assertIsNone(cluster.client().get("other"))  # another client is still served

    # 3. While watching, a command for the watched server that plans to it alone goes to the
    # dedicated connection, a split one (MSET over two shards) to the shared connection: the
    # client's pipelined commands then run on the server out of order.
    def test_a_watching_clients_pipelined_commands_run_in_order(self):
        cluster = self.cluster(shards=2, pool={"failure_limit": 100})
        keys = keys_by_shard(cluster, 2)
        a, b = keys["shard1"], keys["shard2"]
        server = cluster.server_of("shard1")
        self.addCleanup(server.signal, signal.SIGCONT)
        big = b"x" * (32 << 20)
        cluster.client().set(a[0], "old")
        c = self.raw(cluster)
        self.assertEqual(c.call("WATCH", a[1]), b"OK")
        server.signal(signal.SIGSTOP)  # both commands reach it before it runs either
        c.send(("MSET", a[0], big, b[0], "y"), ("GET", a[0]))
        wait_until(lambda: int(server_infos(cluster)[cluster.names.index("shard1")]["pending"]) >= 1,
                   what="the MSET sent")
        server.signal(signal.SIGCONT)
        self.assertEqual(c.read(), b"OK")
        got = c.read()
        self.assertEqual(len(got), len(big), "GET after the client's own MSET must see it (got %r)" % got[:16])

    # 4. primary-replica: a transaction that times out on the primary is settled and its copies
    # held back; when the primary's late reply comes, its copies go out unless it was an error.
    # A transaction's late reply starts with MULTI's +OK, so an -EXECABORT (the primary refused
    # it) is not seen: the replica applies what the primary refused, and the servers differ.
    def test_a_late_execabort_from_the_primary_is_not_applied_on_the_replica(self):
        cluster = self.cluster(shards=1, servers=2, pool={"request_timeout_ms": 300, "retry_interval_ms": 100},
                               replication={"strategy": "primary-replica", "write_ack": "all"})
        primary, replica = cluster.sets[0]
        for s in (primary, replica):
            s.client().set("filler", "x" * 200000)
        primary.client().config_set("maxmemory", 1)  # the primary refuses writes (OOM)
        self.addCleanup(primary.signal, signal.SIGCONT)
        c = self.raw(cluster)
        self.assertEqual(c.call("MULTI"), b"OK")
        self.assertEqual(c.call("SET", "{t}k", "v"), b"QUEUED")
        primary.signal(signal.SIGSTOP)
        self.assertIsInstance(c.call("EXEC"), redis.ResponseError)  # timed out
        primary.signal(signal.SIGCONT)
        wait_until(lambda: int(server_infos(cluster)[0]["pending"]) == 0 and server_states(cluster) == ["up", "up"],
                   what="the primary's late reply")
        self.assertIsNone(primary.client().get("{t}k"))  # the primary refused it
        primary.client().config_set("maxmemory", 0)
        self.assertTrue(c.call("SET", "{t}marker", "1"))  # behind any copy, on the same connections
        wait_until(lambda: replica.client().get("{t}marker") == b"1", what="marker on the replica")
        self.assertIsNone(replica.client().get("{t}k"), "the replica applied a transaction the primary refused")
        self.assertEqual(len(set(digests(cluster.sets[0]))), 1)

    # 5. A transaction that ends without EXEC reaching the server (a queuing error's EXECABORT,
    # QUIT) gives the watch's connection back closed, and so fails what the client had
    # pipelined on it before: the WATCH and GET get an error instead of their replies.
    def test_pipelined_commands_before_execabort_or_quit_get_their_replies(self):
        cluster = self.cluster(shards=1)
        cluster.client().set("k", "v0")
        out = raw_exchange(cluster.proxy.port, resp("WATCH", "k") + resp("GET", "k") + resp("MULTI") +
                           resp("NOSUCHCOMMAND") + resp("EXEC") + resp("QUIT"), read_until_close=True)
        self.assertTrue(out.startswith(b"+OK\r\n$2\r\nv0\r\n+OK\r\n-ERR unknown command"), out)
        self.assertIn(b"-EXECABORT", out)
        out = raw_exchange(cluster.proxy.port, resp("WATCH", "k") + resp("SET", "k2", "x") + resp("GET", "k") +
                           resp("QUIT"), read_until_close=True)
        self.assertEqual(out, b"+OK\r\n+OK\r\n$2\r\nv0\r\n+OK\r\n")

    # 6. On a replicated shard a queued relative expiry is made absolute when it is queued, not
    # when EXEC runs it: a client that takes longer than the TTL between the command and EXEC
    # (redis-cli, a slow client) writes a key that is already expired.
    def test_a_relative_expiry_in_a_replicated_transaction_counts_from_exec(self):
        cluster = self.cluster(shards=1, servers=2, replication={"strategy": "multi-primary", "write_ack": "all"})
        c = self.raw(cluster)
        self.assertEqual(c.call("MULTI"), b"OK")
        self.assertEqual(c.call("SET", "k", "v", "EX", "2"), b"QUEUED")
        deadline = time.monotonic() + 2.5  # the client thinks for longer than the TTL
        wait_until(lambda: time.monotonic() >= deadline, what="the client's think time")
        self.assertEqual(c.call("EXEC"), [b"OK"])
        self.assertEqual(c.call("GET", "k"), b"v")  # redis: it lives 2 s from EXEC
        for server in cluster.sets[0]:
            self.assertGreater(server.client().pttl("k"), 0)

    # 7. Any reload aborts every queued transaction as if the shards had changed, also one that
    # changed no shard, server or ring (here a timeout).
    def test_a_reload_that_changes_no_shard_keeps_a_queued_transaction(self):
        cluster = self.cluster(shards=2, proxy_args=("--no-watch",))
        c = self.raw(cluster)
        self.assertEqual(c.call("MULTI"), b"OK")
        self.assertEqual(c.call("SET", "k", "1"), b"QUEUED")
        write_config(cluster, shard_list(cluster), pool={"request_timeout_ms": 1500})
        message = cluster.client().execute_command("PROXY", "RELOAD").decode()
        self.assertIn("ring unchanged", message)
        self.assertEqual(c.call("EXEC"), [b"OK"])

    # 8. After a reload that changed the ring with migration = warm (or move), every EXEC is
    # refused until the migration is over (warm_window_ms: 10 minutes by default), also for a
    # transaction queued after the reload on keys that do not move; a retry fails the same.
    def test_transactions_run_while_keys_move_after_a_reload(self):
        cluster = self.cluster(shards=2, pool={"migration": "warm"}, proxy_args=("--no-watch",))
        extra = RedisServer(cluster.workdir).start()
        self.addCleanup(extra.stop)
        r = cluster.client()
        before = {f"k{i}": cluster.route(f"k{i}") for i in range(100)}
        write_config(cluster, shard_list(cluster, [("shard3", [extra.address])]), pool={"migration": "warm"})
        self.assertIn("ring changed, migration warm", r.execute_command("PROXY", "RELOAD").decode())
        stays = next(k for k, shard in before.items() if cluster.route(k) == shard)
        self.assertTrue(r.set(stays, "plain"))  # a plain write runs
        c = self.raw(cluster)
        self.assertEqual(c.call("MULTI"), b"OK")
        self.assertEqual(c.call("SET", stays, "tx"), b"QUEUED")
        self.assertEqual(c.call("EXEC"), [b"OK"])

    # 9. The dedicated connection also bypasses the migration's parking: while watching, a read
    # of a key that moved to a new shard and has not been copied there yet answers nil (and an
    # INCR would start from 0), where any other client waits for the key and gets its value.
    def test_a_watching_clients_reads_wait_for_a_moving_key(self):
        cluster = self.cluster(shards=2, pool={"migration": "warm"}, proxy_args=("--no-watch",))
        extra = RedisServer(cluster.workdir).start()
        self.addCleanup(extra.stop)
        r = cluster.client()
        for i in range(200):
            r.set(f"k{i}", f"v{i}")
        write_config(cluster, shard_list(cluster, [("shard3", [extra.address])]), pool={"migration": "warm"})
        self.assertIn("ring changed, migration warm", r.execute_command("PROXY", "RELOAD").decode())
        moved = [f"k{i}" for i in range(200) if cluster.route(f"k{i}") == "shard3"]
        self.assertGreaterEqual(len(moved), 2)
        self.assertEqual(r.get(moved[1]), f"v{moved[1][1:]}".encode())  # not watching: moved on touch
        c = self.raw(cluster)
        self.assertEqual(c.call("WATCH", moved[0]), b"OK")
        self.assertEqual(c.call("GET", moved[0]), f"v{moved[0][1:]}".encode())

    # 10. (Was: RESET refused, yet ending the transaction.) RESET is now carried out, as redis
    # does: it discards the transaction, drops the watch (and its dedicated connection), and
    # leaves the connection as new: RESP2, no name, unauthenticated where users are configured.
    def test_reset_discards_the_transaction_and_the_watch(self):
        cluster = self.cluster(shards=1)
        c = self.raw(cluster)
        self.assertEqual(c.call("CLIENT", "SETNAME", "worker"), b"OK")
        self.assertEqual(c.call("MULTI"), b"OK")
        self.assertEqual(c.call("SET", "a", "1"), b"QUEUED")
        self.assertEqual(c.call("RESET"), b"RESET")
        self.assertEqual(c.call("SET", "b", "2"), b"OK")  # no longer in a transaction
        self.assertIsNone(cluster.client().get("a"))  # the queued SET never ran
        self.assertIsNone(c.call("CLIENT", "GETNAME"))
        w = self.raw(cluster)
        self.assertEqual(w.call("WATCH", "w"), b"OK")
        self.assertEqual(w.call("RESET"), b"RESET")
        self.assertEqual(w.call("MULTI"), b"OK")
        self.assertEqual(w.call("SET", "w", "mine"), b"QUEUED")
        cluster.client().set("w", "changed by another client")
        self.assertEqual(w.call("EXEC"), [b"OK"])  # the watch went with RESET
        self.assertEqual(cluster.client().get("w"), b"mine")


if __name__ == "__main__":
    unittest.main()
