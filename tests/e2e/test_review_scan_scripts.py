"""Review of issue 13 part 1 (SCAN / KEYS / RANDOMKEY across shards, scripts and functions):
each test here shows a bug of commit 745974d (it fails there)."""
import os
import signal
import socket
import unittest

import redis

from harness import (Cluster, RedisServer, digests, fill, keys_by_shard, server_infos, server_states, shard_infos,
                     toml_config, wait_until)

SET_SCRIPT = "return redis.call('SET', KEYS[1], ARGV[1])"


def reloaded(cluster):
    return int(cluster.client().info("stats")["evalsha_as_eval"])


def finish_scan(client, cursor, keys, count=20):
    while True:
        cursor, batch = client.scan(cursor, count=count)
        keys += batch
        if cursor == 0:
            return keys


def pipelined(port, commands):
    """Sends every command in one write (a pipeline the proxy reads at once); the replies, parsed."""
    payload = b""
    for args in commands:
        payload += b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            payload += b"$%d\r\n%s\r\n" % (len(a), a)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        f = s.makefile("rb")
        replies = []
        for _ in commands:
            line = f.readline()
            if line[:1] == b"$" and line[1:3] != b"-1":
                n = int(line[1:-2])
                replies.append(f.read(n + 2)[:-2])
            else:
                replies.append(line[:-2])
        return replies


class ScriptReloadOrderTest(unittest.TestCase):
    """reload_script (data_path.cc) re-sends the EVAL at the tail of the server connection's queue:
    commands pipelined after the EVALSHA run before it."""

    def test_evalsha_sent_again_runs_after_the_commands_pipelined_behind_it(self):
        cluster = Cluster(shards=1)
        self.addCleanup(cluster.cleanup)
        client = cluster.client()
        sha = client.script_load(SET_SCRIPT)
        cluster.redis[0].client().script_flush()  # (as after a restart: the server lacks it)
        # One client, in order: the script sets k=a, then SET k=b. Redis runs one client's
        # commands in order: k must end b.
        replies = pipelined(cluster.proxy.port, [("EVALSHA", sha, 1, "k", "a"), ("SET", "k", "b"), ("GET", "k")])
        self.assertEqual(reloaded(cluster), 1)  # (the path taken)
        self.assertEqual(replies, [b"+OK", b"+OK", b"b"])
        self.assertEqual(client.get("k"), b"b", "the EVALSHA ran after the SET that followed it")

    def test_evalsha_sent_again_on_multi_primary_leaves_the_servers_different(self):
        cluster = Cluster(shards=1, servers=2, replication={"strategy": "multi-primary", "write_ack": "all"})
        self.addCleanup(cluster.cleanup)
        client = cluster.client()
        sha = client.script_load(SET_SCRIPT)
        # One server lacks the script (restarted and resynced: a resync copies data, not scripts).
        cluster.sets[0][1].client().script_flush()
        pipelined(cluster.proxy.port, [("EVALSHA", sha, 1, "k", "a"), ("SET", "k", "b")])
        self.assertEqual(reloaded(cluster), 1)
        values = [s.client().get("k") for s in cluster.sets[0]]
        self.assertEqual(values, [b"b", b"b"], "the servers of one shard now differ")
        self.assertEqual(len(set(digests(cluster.sets[0]))), 1)


class ScriptFlushRefusedTest(unittest.TestCase):
    def test_a_refused_script_flush_still_makes_the_proxy_forget_every_script(self):
        cluster = Cluster(shards=2, pool={"failure_limit": 1, "retry_interval_ms": 100})
        self.addCleanup(cluster.cleanup)
        client = cluster.client()
        keys = keys_by_shard(cluster, 1)
        sha = client.script_load(SET_SCRIPT)
        cluster.redis[1].kill()
        wait_until(lambda: server_states(cluster)[1] == "down", timeout=20, what="shard2 down")
        with self.assertRaisesRegex(redis.ResponseError, "refused while server .* is down or catching up"):
            client.script_flush()  # refused: nothing was flushed anywhere
        self.assertEqual(cluster.redis[0].client().script_exists(sha), [True])
        cluster.redis[1].start()  # back, restarted empty: it needs the script again
        wait_until(lambda: server_states(cluster)[1] == "up", timeout=20, what="shard2 up")
        # SCRIPT LOAD said OK and no SCRIPT FLUSH succeeded: EVALSHA must work on every shard.
        self.assertEqual(client.evalsha(sha, 1, keys["shard2"][0], "x"), b"OK")


class ScanReloadTest(unittest.TestCase):
    def test_a_scan_across_a_reload_that_reorders_the_shards_returns_every_key(self):
        cluster = Cluster(shards=3, proxy_args=("--no-watch",))
        self.addCleanup(cluster.cleanup)
        client = cluster.client()
        written = fill(client, 3000)
        keys = []
        cursor, batch = client.scan(0, count=50)
        keys += batch
        self.assertEqual(cursor & 1023, 0)  # (routing/scan_cursor.h: the shard's 10 bits)
        self.assertNotEqual(cursor, 0)
        # The same shards (same names, same servers: no key moves), listed in another order.
        order = [1, 0, 2]
        text = toml_config(cluster.proxy.port, [(cluster.names[i], [cluster.redis[i].address]) for i in order])
        with open(cluster.proxy.config_path, "w") as f:
            f.write(text)
        self.assertIn("reloaded", client.execute_command("PROXY", "RELOAD").decode())
        self.assertEqual(set(client.keys("*")), written)  # every key is where it was
        # The shards listed in another order: the old cursor could name the wrong ones. Refused
        # (the fix), and a new scan returns every key.
        with self.assertRaisesRegex(redis.ResponseError, "start again from 0"):
            finish_scan(client, cursor, keys)
        self.assertEqual(set(finish_scan(client, 0, [])), written)

    def test_a_scan_across_a_migration_that_removes_a_shard_returns_every_key(self):
        cluster = Cluster(shards=3, proxy_args=("--no-watch",))
        self.addCleanup(cluster.cleanup)
        client = cluster.client()
        written = fill(client, 3000)
        keys, cursor = [], 0
        while cursor & 1023 != 1:  # into shard2 (the second)
            cursor, batch = client.scan(cursor, count=50)
            keys += batch
        cursor, batch = client.scan(cursor, count=50)
        keys += batch
        # shard3 is removed; its keys move to shard1 and shard2 (readable throughout).
        text = toml_config(cluster.proxy.port, [(cluster.names[i], [cluster.redis[i].address]) for i in (0, 1)],
                           pool={"migration": "move", "migration_keys_per_second": 200})  # (seconds of moving)
        with open(cluster.proxy.config_path, "w") as f:
            f.write(text)
        self.assertIn("reloaded", client.execute_command("PROXY", "RELOAD").decode())
        # While keys move, KEYS and SCAN are refused (a key moving under a scan could be missed).
        with self.assertRaisesRegex(redis.ResponseError, "refused while keys move between shards"):
            client.scan(0)
        wait_until(lambda: client.info("proxy")["migration_state"] == "done", timeout=60, what="the move done")
        self.assertEqual(cluster.redis[2].client().dbsize(), 0)
        self.assertEqual(set(client.keys("*")), written)  # every key readable, on shard1 or shard2
        with self.assertRaisesRegex(redis.ResponseError, "start again from 0"):  # the shards changed
            finish_scan(client, cursor, keys)
        self.assertEqual(set(finish_scan(client, 0, [])), written)


class ScanRestartTest(unittest.TestCase):
    def test_a_scan_continued_on_a_server_that_restarted_and_was_resynced_returns_every_key(self):
        cluster = Cluster(shards=1, servers=2, replication={"strategy": "multi-primary", "write_ack": "quorum",
                                                           "read_from": "any"},
                          pool={"failure_limit": 1, "retry_interval_ms": 100})
        self.addCleanup(cluster.cleanup)
        client = cluster.client()
        written = fill(client, 3000)
        keys = []
        cursor = 0
        for _ in range(30):  # about half of the shard
            cursor, batch = client.scan(cursor, count=50)
            keys += batch
        self.assertNotEqual(cursor, 0)
        slot = (cursor >> 10) & 15
        server = cluster.sets[0][slot]
        # The server the cursor names restarts (a new process: a new dict, a new hash seed) and
        # is resynced from its peer; no SCAN meanwhile.
        server.kill()
        wait_until(lambda: server_states(cluster)[slot] != "up", timeout=20, what="down")
        server.start()
        wait_until(lambda: server_infos(cluster)[slot]["resyncs"] >= 1 and server_states(cluster)[slot] == "up",
                   timeout=60, what="resynced")
        self.assertEqual(server.client().dbsize(), 3000)
        finish_scan(client, cursor, keys, count=50)
        self.assertEqual(len(written - set(keys)), 0, "keys present throughout were not returned")


class RandomKeyTest(unittest.TestCase):
    def test_randomkey_is_nil_only_when_the_keyspace_is_empty(self):
        cluster = Cluster(shards=3)
        self.addCleanup(cluster.cleanup)
        client = cluster.client()
        client.set("only", "1")
        answers = [client.randomkey() for _ in range(12)]
        self.assertEqual(answers, [b"only"] * 12)


def library(version):
    return ("#!lua name=lib\n"
            "redis.register_function('setv', function(keys, args) return redis.call('SET', keys[1], '%s') end)\n"
            % version)


class FunctionsOnAReplicaThatWasAwayTest(unittest.TestCase):
    def test_function_load_replace_while_a_replica_lags_leaves_it_running_the_old_code(self):
        cluster = Cluster(shards=1, servers=3,
                          pool={"request_timeout_ms": 1000, "connect_timeout_ms": 500, "retry_interval_ms": 200},
                          replication={"strategy": "multi-primary", "write_ack": "quorum"})
        self.addCleanup(cluster.cleanup)
        client = cluster.client()
        self.assertEqual(client.function_load(library("v1")), b"lib")
        victim = cluster.sets[0][2]
        victim.signal(signal.SIGSTOP)  # away for a moment (not restarted: it keeps data and functions)
        self.addCleanup(lambda: victim.signal(signal.SIGCONT))
        client.set("lag-trigger", 1)
        wait_until(lambda: server_states(cluster)[2] == "recovering", timeout=15, what="lagging")
        # Refused while a server is away (it would come back running v1), then accepted.
        with self.assertRaisesRegex(redis.ResponseError, "refused while server .* is down or catching up"):
            client.function_load(library("v2"), replace=True)
        victim.signal(signal.SIGCONT)
        wait_until(lambda: server_states(cluster)[2] == "up", timeout=30, what="caught up")
        self.assertEqual(client.function_load(library("v2"), replace=True), b"lib")
        client.fcall("setv", 1, "k")
        wait_until(lambda: victim.client().get("k") is not None, timeout=10, what="the write on the victim")
        self.assertEqual([s.client().get("k") for s in cluster.sets[0]], [b"v2"] * 3,
                         "a server of the shard ran the library FUNCTION LOAD REPLACE replaced")


class ScriptBookTest(unittest.TestCase):
    def test_scripts_the_servers_refused_fill_the_proxys_book_for_everyone(self):
        # A readwrite user (not admin: it may not even run EVAL) sends SCRIPT LOAD bodies that
        # no server accepts; the proxy remembers them all, at dispatch, until its 64 MiB are taken.
        cluster = Cluster(shards=1, proxy={"password": "root-pass"}, credentials={"password": "root-pass"},
                          users=[{"name": "app", "password": "app-pass", "access": "readwrite"}])
        self.addCleanup(cluster.cleanup)
        app = cluster.client(username="app", password="app-pass")
        pad = "x" * ((1 << 20) - 5)
        for i in range(64):  # 64 x 1 MiB: the book is full
            with self.assertRaisesRegex(redis.ResponseError, "Error compiling script"):
                app.script_load(f"!{i:03d} {pad}")
        admin = cluster.client()
        sha = admin.script_load(SET_SCRIPT)
        cluster.redis[0].client().script_flush()  # (as after a restart)
        self.assertEqual(admin.evalsha(sha, 1, "k", "v"), b"OK")


class QuorumKeyspaceTest(unittest.TestCase):
    def test_keys_and_randomkey_on_read_from_quorum_are_not_divergences(self):
        cluster = Cluster(shards=1, servers=3, replication={"strategy": "multi-primary", "write_ack": "all",
                                                           "read_from": "quorum"})
        self.addCleanup(cluster.cleanup)
        client = cluster.client()
        written = fill(client, 200)
        self.assertEqual(len(set(digests(cluster.sets[0]))), 1)  # the servers are equal
        for _ in range(5):
            self.assertEqual(set(client.keys("*")), written)
            self.assertIn(client.randomkey(), written)
        self.assertEqual(shard_infos(cluster)[0]["read_repairs"], 0, "equal servers counted as diverged")


class ReplayedEvalshaTest(unittest.TestCase):
    def test_evalsha_replayed_to_a_server_that_missed_script_load_costs_a_full_resync(self):
        cluster = Cluster(shards=1, servers=3,
                          pool={"request_timeout_ms": 1000, "connect_timeout_ms": 500, "retry_interval_ms": 200},
                          replication={"strategy": "multi-primary", "write_ack": "quorum"})
        self.addCleanup(cluster.cleanup)
        client = cluster.client()
        victim = cluster.sets[0][2]
        victim.signal(signal.SIGSTOP)  # away for a moment (not restarted)
        self.addCleanup(lambda: victim.signal(signal.SIGCONT))
        client.set("lag-trigger", 1)
        wait_until(lambda: server_states(cluster)[2] == "recovering", timeout=15, what="lagging")
        sha = client.script_load(SET_SCRIPT)  # the live servers only
        for i in range(20):
            self.assertEqual(client.evalsha(sha, 1, f"k{i}", "v"), b"OK")  # queued for the victim's replay
        victim.signal(signal.SIGCONT)
        wait_until(lambda: server_states(cluster)[2] == "up" and server_infos(cluster)[2]["replay_queue"] == 0,
                   timeout=30, what="caught up")
        self.assertEqual(len(set(digests(cluster.sets[0]))), 1)
        self.assertEqual(server_infos(cluster)[2]["resyncs"], 0,
                         "the replayed EVALSHA got NOSCRIPT: the server was made stale and copied in full")


if __name__ == "__main__":
    unittest.main()
