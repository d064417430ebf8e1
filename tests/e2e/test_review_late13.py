"""Review findings (late, issue 13's new features): each test states the correct behaviour and
fails against the binary it was written for."""
import threading
import unittest

import redis

from harness import Cluster, raw_exchange, server_states, wait_until
from test_resp3 import Resp3Connection
from test_transactions import RawClient


class ConfigGetSecretsTest(unittest.TestCase):
    def test_passwords_stay_hidden_whatever_the_casing_of_the_name_asked(self):
        """Redis echoes a CONFIG GET name in the client's casing: REQUIREPASS comes back as
        'REQUIREPASS', which hide_secrets (a case-sensitive comparison) lets through."""
        cluster = Cluster(shards=1, proxy={"allow_admin_commands": True}, pool={"password": "s3rver-Secret"},
                          server_args=("--requirepass", "s3rver-Secret", "--masterauth", "m4ster-Secret"),
                          server_credentials={"password": "s3rver-Secret"})
        self.addCleanup(cluster.cleanup)
        r = cluster.client()
        for name in ("REQUIREPASS", "RequirePass", "MASTERAUTH", "masterAuth"):
            with self.subTest(name=name):
                got = repr(r.execute_command("CONFIG", "GET", name))
                self.assertNotIn("s3rver-Secret", got)
                self.assertNotIn("m4ster-Secret", got)
                self.assertIn("(hidden by ringproxy)", got)
        c = Resp3Connection(cluster.proxy.port)
        self.addCleanup(c.close)
        c.call("HELLO", "3")
        got = repr(c.call("CONFIG", "GET", "REQUIREPASS"))
        self.assertNotIn("s3rver-Secret", got)


class ScriptKillTest(unittest.TestCase):
    def test_script_kill_reaches_a_server_marked_down_because_its_script_keeps_it_busy(self):
        """A server running a long script answers -BUSY (or nothing) to the proxy, which soon
        marks it down; SCRIPT KILL is then the one thing that can bring it back, but the proxy
        skips servers that are not up or recovering and answers NOTBUSY."""
        cluster = Cluster(shards=1, pool={"failure_limit": 1, "retry_interval_ms": 100},
                          server_args=("--busy-reply-threshold", "100"))
        server = cluster.sets[0][0]

        def unblock():
            try:
                server.client().script_kill()
            except redis.RedisError:
                pass
        self.addCleanup(cluster.cleanup)
        self.addCleanup(unblock)
        outcome = []

        def run():
            try:
                outcome.append(cluster.client(socket_timeout=30).eval("while true do end", 0))
            except redis.RedisError as e:
                outcome.append(e)
        worker = threading.Thread(target=run)
        worker.start()
        self.addCleanup(worker.join, 30)
        wait_until(lambda: b"BUSY" in raw_exchange(server.port, b"PING\r\n", timeout=1), what="script running")
        wait_until(lambda: server_states(cluster) == ["down"], what="marked down")
        try:
            killed = cluster.client().script_kill()
        except redis.ResponseError as e:
            killed = e
        self.assertIs(killed, True)
        wait_until(lambda: raw_exchange(server.port, b"PING\r\n", timeout=1) == b"+PONG\r\n", timeout=10,
                   what="the script killed")


class QueuedInMultiTest(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster(shards=1, servers=3, replication={"strategy": "multi-primary", "write_ack": "all"})
        self.addCleanup(self.cluster.cleanup)

    def test_blmpop_and_bzmpop_are_queued_as_blpop_is(self):
        """Blocking commands do not block inside MULTI (redis queues them all); BLPOP and
        BZPOPMIN are queued, but BLMPOP and BZMPOP (keys after numkeys: first_key 0) are
        refused with the 'blocking commands are not supported' error, aborting the transaction."""
        r = self.cluster.client()
        r.rpush("l", "a", "b", "c")
        r.zadd("z", {"x": 1, "y": 2})
        c = RawClient(self.cluster.proxy.port)
        self.addCleanup(c.close)
        self.assertEqual(c.call("MULTI"), b"OK")
        self.assertEqual(c.call("BLMPOP", "0", "1", "l", "RIGHT"), b"QUEUED")
        self.assertEqual(c.call("BZMPOP", "0", "1", "z", "MAX"), b"QUEUED")
        self.assertEqual(c.call("EXEC"), [[b"l", [b"c"]], [b"z", [[b"y", b"2"]]]])
        for server in self.cluster.sets[0]:
            self.assertEqual(server.client().lrange("l", 0, -1), [b"a", b"b"])

    def test_time_is_queued_inside_multi(self):
        """TIME (answered by any one server) runs inside MULTI on redis; through the proxy it is
        refused as 'it runs on every shard', which it does not, and the transaction aborts."""
        c = RawClient(self.cluster.proxy.port)
        self.addCleanup(c.close)
        self.assertEqual(c.call("MULTI"), b"OK")
        self.assertEqual(c.call("SET", "k", "v"), b"QUEUED")
        self.assertEqual(c.call("TIME"), b"QUEUED")
        got = c.call("EXEC")
        self.assertIsInstance(got, list, got)
        self.assertEqual(got[0], b"OK")
        self.assertGreater(int(got[1][0]), 1_700_000_000)


if __name__ == "__main__":
    unittest.main()
