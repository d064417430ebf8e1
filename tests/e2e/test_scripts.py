"""Scripts and functions through the proxy (issue 13), against real redis-servers.

Scripts and functions live in each server: SCRIPT LOAD, FUNCTION LOAD and their FLUSH / DELETE
go to every live server of every shard, so EVALSHA and FCALL work wherever their keys land. The
proxy remembers scripts and sends EVALSHA of one it has as EVAL with its body, so a server that
lacks it (restarted empty, resynced, down during SCRIPT LOAD) runs it all the same, in order:
the client never sees a NOSCRIPT, and `evalsha_as_eval` counts it (the path taken).
"""
import hashlib
import threading
import unittest

import redis

from test_resp3 import Resp3Connection
from harness import (Cluster, cluster_with_app_user, count_incrs, digests, keys_by_shard, raw_exchange, resp, scrape,
                     server_infos, server_states, value, wait_until)

GET_SCRIPT = "return redis.call('GET', KEYS[1])"
INCR_SCRIPT = "return redis.call('INCR', KEYS[1])"
LIBRARY = """#!lua name=mylib
redis.register_function('echo_arg', function(keys, args) return args[1] end)
redis.register_function{function_name='get_key', callback=function(keys, args) return redis.call('GET', keys[1]) end,
                        flags={'no-writes'}}
"""


def reloaded(cluster):
    """EVALSHA calls the proxy sent as EVAL with the script's body."""
    return int(cluster.client().info("stats")["evalsha_as_eval"])


class ScriptsTest(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster(shards=3, metrics=True, pool={"failure_limit": 1, "retry_interval_ms": 100})
        self.addCleanup(self.cluster.cleanup)
        self.client = self.cluster.client()
        self.keys = keys_by_shard(self.cluster, 5)
        for shard_keys in self.keys.values():
            for k in shard_keys:
                self.client.set(k, f"v-{k}")

    def restart_empty(self, shard_index):
        server = self.cluster.redis[shard_index]
        server.kill()
        wait_until(lambda: server_states(self.cluster)[shard_index] == "down", timeout=20, what="down")
        server.start()
        wait_until(lambda: server_states(self.cluster)[shard_index] == "up", timeout=20, what="up again")

    def test_script_load_reaches_every_server_and_evalsha_works_on_every_shard(self):
        sha = self.client.script_load(GET_SCRIPT)
        for server in self.cluster.redis:
            self.assertEqual(server.client().script_exists(sha), [True])
        self.assertEqual(self.client.script_exists(sha, "0" * 40), [True, False])
        for shard_keys in self.keys.values():
            for k in shard_keys:
                self.assertEqual(self.client.evalsha(sha, 1, k), f"v-{k}".encode())
                self.assertEqual(self.client.evalsha_ro(sha, 1, k), f"v-{k}".encode())
        self.assertEqual(reloaded(self.cluster), 30)  # every call of a script the proxy has

    def test_script_kill_stops_a_busy_script_through_a_side_connection(self):
        # The busy script holds its server's shared connection: the kill goes on another one.
        name = self.cluster.names[1]
        key = self.keys[name][0]
        self.cluster.server_of(name).client().config_set("busy-reply-threshold", 100)
        self.assertRaisesRegex(redis.ResponseError, "NOTBUSY", self.client.script_kill)
        outcome = []

        def busy():
            try:
                outcome.append(self.cluster.client(socket_timeout=60).eval(
                    "local n = redis.call('GET', KEYS[1]) while true do end", 1, key))
            except redis.RedisError as e:
                outcome.append(e)

        runner = threading.Thread(target=busy)
        runner.start()

        def killed():
            try:
                return self.cluster.client().script_kill()
            except redis.ResponseError as e:
                if "NOTBUSY" in str(e):
                    return False
                raise
        wait_until(killed, timeout=30, what="SCRIPT KILL accepted")
        runner.join(30)
        self.assertEqual(len(outcome), 1)
        self.assertIn("killed", str(outcome[0]))
        self.assertEqual(self.client.get(key), f"v-{key}".encode())  # the server serves again

    def test_ping_answered_by_the_servers_says_busy_while_a_script_runs(self):
        """[proxy] ping = "servers": every server answers the client's PING on a connection of its
        own, so a script that keeps one busy shows (redis's own BUSY); the proxy's default PONG
        says only that the proxy is alive."""
        cluster = Cluster(shards=3, proxy={"ping": "servers"}, pool={"failure_limit": 100})
        self.addCleanup(cluster.cleanup)
        c = cluster.client()
        self.assertTrue(c.ping())
        self.assertEqual(raw_exchange(cluster.proxy.port, resp("PING", "hello"), expect_bytes=11), b"$5\r\nhello\r\n")
        # Pipelined PINGs share rounds of connections, and each echoes its own message.
        connections = lambda: int(cluster.redis[0].client().info("stats")["total_connections_received"])
        before = connections()
        pings = b"".join(resp("PING", f"m{i}") for i in range(200))
        expected = b"".join(b"$%d\r\nm%d\r\n" % (len(f"m{i}"), i) for i in range(200))
        self.assertEqual(raw_exchange(cluster.proxy.port, pings, expect_bytes=len(expected)), expected)
        self.assertLess(connections() - before, 100)  # (one per PING: 200)
        echoed = raw_exchange(cluster.proxy.port, resp("PING", "a") + resp("PING") + resp("PING", "bb"),
                              expect_bytes=18)
        self.assertEqual(echoed, b"$1\r\na\r\n+PONG\r\n$2\r\nbb\r\n")
        cluster.redis[2].client().config_set("busy-reply-threshold", 50)
        runner = threading.Thread(target=self.run_forever, args=(cluster.redis[2],))
        runner.start()
        self.addCleanup(runner.join, 30)

        def busy():
            try:
                c.ping()
                return False
            except redis.ResponseError as e:
                self.assertIn("BUSY", str(e))
                return True
        wait_until(busy, what="PING answered BUSY")
        self.assertEqual(c.script_kill(), True)
        wait_until(lambda: c.ping(), what="PONG again")
        c.set("k", "v")
        self.assertEqual(c.get("k"), b"v")
        cluster.redis[1].kill()
        with self.assertRaisesRegex(redis.ResponseError, "server 127.0.0.1:[0-9]+ of shard 'shard2' cannot be reached"):
            c.ping()
        self.cluster.redis[1].kill()
        self.assertTrue(self.client.ping())  # by default the proxy answers: it is alive

    def test_function_stats_shows_the_running_function_and_function_kill_stops_it(self):
        cluster = Cluster(shards=3, pool={"failure_limit": 100, "request_timeout_ms": 30000})
        self.addCleanup(cluster.cleanup)
        c = cluster.client()
        c.function_load("#!lua name=spin\nredis.register_function('spin', function() while true do end end)")
        idle = c.function_stats()
        self.assertIsNone(idle[1])  # running_script
        self.assertEqual(idle[3][1], [b"libraries_count", 1, b"functions_count", 1])
        for server in cluster.redis:
            server.client().config_set("busy-reply-threshold", 50)
        outcome = []
        runner = threading.Thread(target=lambda: outcome.append(self.call(cluster.client(socket_timeout=60), "FCALL", "spin", 0)))
        runner.start()
        self.addCleanup(runner.join, 30)
        wait_until(lambda: c.function_stats()[1] is not None, what="FUNCTION STATS shows the function")
        running = c.function_stats()[1]
        self.assertEqual(running[:4], [b"name", b"spin", b"command", [b"FCALL", b"spin", b"0"]])
        resp3 = Resp3Connection(cluster.proxy.port)
        self.addCleanup(resp3.close)
        resp3.call("HELLO", "3")
        kind, fields = resp3.call("FUNCTION", "STATS")
        self.assertEqual(kind, "%")
        self.assertEqual(fields[0][0], ("$", b"running_script"))
        self.assertEqual(fields[0][1][0], "%")
        self.assertEqual(fields[0][1][1][0], (("$", b"name"), ("$", b"spin")))
        self.assertTrue(c.function_kill())
        runner.join(30)
        self.assertIn("killed", str(outcome[0]))
        self.assertIsNone(c.function_stats()[1])

    @staticmethod
    def call(client, *args):
        try:
            return client.execute_command(*args)
        except redis.RedisError as e:
            return e

    @staticmethod
    def run_forever(server):
        try:
            server.client(socket_timeout=60).eval("while true do end", 0)
        except redis.RedisError:
            pass  # killed

    def test_script_exists_knows_a_script_sent_with_eval(self):
        # EVAL ran on one shard only, but EVALSHA of it works on every shard (the proxy has it).
        sha = hashlib.sha1(b"return 1+1").hexdigest()
        self.assertEqual(self.client.eval("return 1+1", 0), 2)
        self.assertEqual(self.client.script_exists(sha, "0" * 40), [True, False])
        for shard_keys in self.keys.values():
            self.assertEqual(self.client.evalsha(sha, 1, shard_keys[0]), 2)

    def test_a_server_restarted_empty_between_script_load_and_evalsha(self):
        sha = self.client.script_load(GET_SCRIPT)
        self.restart_empty(1)
        shard2 = self.cluster.server_of("shard2")
        self.assertEqual(shard2.client().script_exists(sha), [False])
        for k in self.keys["shard2"]:
            shard2.client().set(k, f"new-{k}")  # (it restarted empty)
        # EVALSHA on its keys: it goes as EVAL with the body, the client never sees NOSCRIPT.
        self.assertEqual([self.client.evalsha(sha, 1, k) for k in self.keys["shard2"]],
                         [f"new-{k}".encode() for k in self.keys["shard2"]])
        self.assertEqual(reloaded(self.cluster), 5)
        self.assertEqual(shard2.client().script_exists(sha), [True])  # (EVAL cached it there again)
        self.assertEqual(self.client.evalsha_ro(sha, 1, self.keys["shard2"][0]), f"new-{self.keys['shard2'][0]}".encode())
        wait_until(lambda: value(scrape(self.cluster.metrics_port), "ringproxy_evalsha_as_eval_total") == 6,
                   timeout=10, what="the metric")

    def test_a_server_down_while_the_script_is_loaded(self):
        self.cluster.redis[2].kill()
        wait_until(lambda: server_states(self.cluster)[2] == "down", timeout=20, what="down")
        sha = self.client.script_load(INCR_SCRIPT)  # the live servers take it
        self.cluster.redis[2].start()
        wait_until(lambda: server_states(self.cluster)[2] == "up", timeout=20, what="up again")
        key = self.keys["shard3"][0]
        self.assertEqual(self.client.evalsha(sha, 1, key), 1)  # (restarted empty: from 0)
        self.assertEqual(reloaded(self.cluster), 1)

    def test_what_the_proxy_does_not_know_is_the_servers_answer(self):
        with self.assertRaisesRegex(redis.exceptions.NoScriptError, "No matching script"):
            self.client.evalsha("0" * 40, 1, "k")
        sha = self.client.script_load(GET_SCRIPT)
        self.assertTrue(self.client.script_flush())
        for server in self.cluster.redis:
            self.assertEqual(server.client().script_exists(sha), [False])
        # Flushed everywhere, the proxy's copy too: EVALSHA says NOSCRIPT, as redis would.
        with self.assertRaises(redis.exceptions.NoScriptError):
            self.client.evalsha(sha, 1, self.keys["shard1"][0])
        self.assertEqual(reloaded(self.cluster), 0)

    def test_eval_is_remembered_too_and_redis_py_scripts_work(self):
        key = self.keys["shard1"][0]
        self.assertEqual(self.client.eval(GET_SCRIPT, 1, key), f"v-{key}".encode())  # caches it on shard1 only

        sha = hashlib.sha1(GET_SCRIPT.encode()).hexdigest()
        other = self.keys["shard3"][0]  # shard3 never saw it: EVALSHA goes as EVAL with the body
        self.assertEqual(self.client.evalsha(sha, 1, other), f"v-{other}".encode())
        self.assertEqual(reloaded(self.cluster), 1)
        incr = self.client.register_script(INCR_SCRIPT)  # EVALSHA, then SCRIPT LOAD on NOSCRIPT
        self.assertEqual([incr(keys=[k]) for k in ("{s}a", "{s}a", "{s}b")], [1, 2, 1])

    def test_scripts_without_keys_run_on_one_shard(self):
        self.assertEqual(self.client.eval("return 42", 0), 42)
        sha = self.client.script_load("return ARGV[1]")
        self.assertEqual(self.client.evalsha(sha, 0, "hello"), b"hello")

    def test_functions(self):
        self.assertEqual(self.client.function_load(LIBRARY), b"mylib")
        for server in self.cluster.redis:
            self.assertEqual(server.client().function_list()[0][1], b"mylib")
        self.assertEqual(self.client.fcall("echo_arg", 0, "hi"), b"hi")
        for shard_keys in self.keys.values():
            k = shard_keys[0]
            self.assertEqual(self.client.fcall_ro("get_key", 1, k), f"v-{k}".encode())
        self.assertEqual(self.client.function_list()[0][1], b"mylib")
        dump = self.client.function_dump()
        with self.assertRaisesRegex(redis.ResponseError, "already exists"):
            self.client.function_load(LIBRARY)  # every server says so: one answer
        self.assertTrue(self.client.function_delete("mylib"))
        for server in self.cluster.redis:
            self.assertEqual(server.client().function_list(), [])
        self.assertTrue(self.client.function_restore(dump))
        self.assertEqual(self.client.fcall("echo_arg", 0, "back"), b"back")
        self.assertTrue(self.client.function_flush())
        for server in self.cluster.redis:
            self.assertEqual(server.client().function_list(), [])

    def test_refused_forms(self):
        for command, reason in ((("SCRIPT", "KILL"), "NOTBUSY"), (("FUNCTION", "KILL"), "NOTBUSY"),
                                (("SCRIPT", "HELP"), "HELP")):
            with self.assertRaisesRegex(redis.ResponseError, reason, msg=command):
                self.client.execute_command(*command)


class ScriptPermissionsTest(unittest.TestCase):
    def test_flushing_or_replacing_what_every_server_runs_needs_admin(self):
        cluster, app = cluster_with_app_user(self, shards=2)
        self.assertEqual(len(app.script_load("return 1")), 40)
        with self.assertRaisesRegex(redis.exceptions.NoPermissionError, "no permissions"):
            app.script_flush()
        with self.assertRaisesRegex(redis.exceptions.NoPermissionError, "no permissions"):
            app.function_load(LIBRARY)
        self.assertTrue(cluster.client().script_flush())


class ReplicatedScriptsTest(unittest.TestCase):
    def test_evalsha_writes_through_a_replica_restarted_empty_and_resynced(self):
        cluster = Cluster(shards=1, servers=3, replication={"strategy": "primary-replica", "write_ack": "quorum"},
                          pool={"failure_limit": 1, "retry_interval_ms": 100})
        self.addCleanup(cluster.cleanup)
        client = cluster.client()
        sha = client.script_load(INCR_SCRIPT)
        stop, errors, acked = threading.Event(), [], []
        c = cluster.client()
        worker = threading.Thread(target=count_incrs, args=(c, stop, errors, acked),
                                  kwargs={"incr": lambda: c.evalsha(sha, 1, "counter")})
        worker.start()
        try:
            wait_until(lambda: len(acked) > 200, timeout=20, what="load")
            replica = cluster.sets[0][2]
            replica.kill()
            replica.start()  # empty: no data, no scripts
            wait_until(lambda: server_infos(cluster)[2]["resyncs"] >= 1 and server_states(cluster)[2] == "up",
                       timeout=60, what="a resync")
            before = len(acked)
            wait_until(lambda: len(acked) > before + 200, timeout=20, what="writes after the resync")
        finally:
            stop.set()
            worker.join()
        # The resynced replica got the data, not the script cache: its first EVALSHA was sent again.
        self.assertGreaterEqual(reloaded(cluster), 1)
        self.assertEqual(errors, [])
        for server in cluster.sets[0]:
            self.assertEqual(int(server.client().get("counter")), len(acked))  # every acknowledged INCR once
        self.assertEqual(len(set(digests(cluster.sets[0]))), 1)


if __name__ == "__main__":
    unittest.main()
