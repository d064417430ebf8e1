"""CONFIG and other edges redis's own test suite found (issue 13): CONFIG through the proxy: only with [proxy]
allow_admin_commands = true and for admin users. CONFIG SET and RESETSTAT go to every server
(refused while one is down: it would come back without the change), CONFIG GET is answered by
one, with the servers' passwords hidden, and what the proxy relies on to reach its servers
cannot be set through it. Also TIME (any server's clock) and redis's wording for an unbalanced
MSET."""
import unittest

import redis

from harness import Cluster, server_states, wait_until


class ConfigTest(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster(shards=3, proxy={"allow_admin_commands": True},
                               pool={"password": "s3rver-Secret", "failure_limit": 1, "retry_interval_ms": 100},
                               server_args=("--requirepass", "s3rver-Secret"),
                               server_credentials={"password": "s3rver-Secret"})
        self.addCleanup(self.cluster.cleanup)
        self.r = self.cluster.client()

    def test_set_reaches_every_server_and_get_answers_from_one(self):
        self.assertTrue(self.r.config_set("hash-max-listpack-entries", 17))
        for server in self.cluster.redis:
            self.assertEqual(server.client().config_get("hash-max-listpack-entries"),
                             {"hash-max-listpack-entries": "17"})
        self.assertEqual(self.r.config_get("hash-max-listpack-entries"), {"hash-max-listpack-entries": "17"})
        self.assertTrue(self.r.config_resetstat())

    def test_the_servers_passwords_stay_hidden(self):
        got = self.r.config_get("*pass*")
        self.assertEqual(got["requirepass"], "(hidden by ringproxy)")
        self.assertNotIn("s3rver-Secret", repr(self.r.execute_command("CONFIG", "GET", "*")))

    def test_what_the_proxy_relies_on_cannot_be_set(self):
        for name, value in (("requirepass", "x"), ("port", "1"), ("masterauth", "x"), ("dir", "/tmp")):
            with self.assertRaisesRegex(redis.ResponseError, f"CONFIG SET {name} is refused through ringproxy"):
                self.r.config_set(name, value)
        with self.assertRaisesRegex(redis.ResponseError, "CONFIG SET requirepass is refused"):
            self.r.execute_command("CONFIG", "SET", "maxmemory-samples", "5", "REQUIREPASS", "x")
        self.assertEqual(self.r.ping(), True)  # the servers still let the proxy in

    def test_set_is_refused_while_a_server_is_down(self):
        self.cluster.redis[1].kill()
        wait_until(lambda: server_states(self.cluster)[1] == "down", what="down")
        with self.assertRaisesRegex(redis.ResponseError, "CONFIG SET is refused while server"):
            self.r.config_set("hash-max-listpack-entries", 18)

    def test_time_and_wording(self):
        seconds, micros = self.r.time()
        self.assertGreater(seconds, 1_700_000_000)
        with self.assertRaisesRegex(redis.ResponseError, "^wrong number of arguments for 'mset' command$"):
            self.r.execute_command("MSET", "a", "1", "b")
        with self.assertRaisesRegex(redis.ResponseError, "^wrong number of arguments for 'xgroup|help' command$"):
            self.r.execute_command("XGROUP", "HELP", "x")  # (redis 7.0's name for a subcommand)
        # INFO: the version of the command set (what RQ and others check), the proxy's cpu and memory.
        self.assertEqual(self.r.info("server")["redis_version"], "7.0.15")
        self.assertGreater(self.r.info("memory")["used_memory_rss"], 1_000_000)
        self.assertIn("used_cpu_user", self.r.info("cpu"))


class ConfigOffTest(unittest.TestCase):
    def test_config_needs_allow_admin_commands(self):
        cluster = Cluster(shards=1)
        try:
            with self.assertRaisesRegex(redis.ResponseError, "allow_admin_commands"):
                cluster.client().config_get("maxmemory")
        finally:
            cluster.cleanup()


if __name__ == "__main__":
    unittest.main()
