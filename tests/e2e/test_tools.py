"""Real client tools against ringproxy: redis-cli and redis-benchmark."""
import re
import subprocess
import unittest

from harness import Cluster

BENCH_TESTS = "set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,lrange,mset"


def backend_calls(cluster):
    total = 0
    for server in cluster.redis:
        for name, stats in server.client().info("commandstats").items():
            if name not in ("cmdstat_info", "cmdstat_flushall", "cmdstat_ping", "cmdstat_keys"):
                total += stats["calls"]
    return total


class RedisBenchmarkTest(unittest.TestCase):
    def run_benchmark(self, cluster, extra=()):
        cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(cluster.proxy.port), "-t", BENCH_TESTS,
               "-n", "3000", "-c", "20", "-r", "10000", "-e", "-q", *extra]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        self.assertEqual(out.returncode, 0, out.stderr)
        # -e prints server error replies; CONFIG (asked by redis-benchmark at start) is
        # the one command it sends that a proxy refuses.
        errors = [line for line in (out.stdout + out.stderr).splitlines()
                  if ("ERR" in line or "WRONGTYPE" in line or "Error" in line) and "CONFIG" not in line]
        self.assertEqual(errors, [], out.stdout)
        return out.stdout

    def test_every_listed_test_runs_without_errors_through_split_and_tags(self):
        for pool in ({"hash_tag": ""}, {"hash_tag": "{}"}):
            cluster = Cluster(shards=3, pool=pool)
            try:
                before = cluster.client().info("stats")["total_error_replies"]
                output = self.run_benchmark(cluster)
                for name in ("SET", "GET", "INCR", "LPUSH", "RPUSH", "LPOP", "RPOP", "SADD", "HSET", "SPOP",
                             "ZADD", "LRANGE_100", "MSET"):
                    self.assertRegex(output, re.compile(rf"^{name}[^:]*: [\d.]+ requests per second", re.M))
                after = cluster.client().info("stats")["total_error_replies"]
                # Only redis-benchmark's CONFIG GET probes were refused (one or two per test).
                self.assertLessEqual(after - before, 2 * 16, "unexpected error replies")
                # The work reached the servers, spread over every shard.
                self.assertGreater(backend_calls(cluster), 13 * 3000)
                for server in cluster.redis:
                    self.assertGreater(server.client().dbsize(), 0)
                # Pipelined too.
                self.run_benchmark(cluster, ("-P", "16", "-t", "set,get,mset"))
            finally:
                self.assertEqual(cluster.cleanup(), 0)


class RedisCliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(shards=3)
        cls.port = str(cls.cluster.proxy.port)

    @classmethod
    def tearDownClass(cls):
        assert cls.cluster.cleanup() == 0

    def cli(self, *args, stdin=None):
        out = subprocess.run(["redis-cli", "-p", self.port, *args], input=stdin, capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def test_commands(self):
        self.assertEqual(self.cli("set", "cli:a", "hello world"), "OK\n")
        self.assertEqual(self.cli("get", "cli:a"), "hello world\n")
        self.assertEqual(self.cli("-r", "5", "incr", "cli:n").split(), ["1", "2", "3", "4", "5"])
        self.assertIn("shard", self.cli("proxy", "route", "cli:a"))
        self.assertIn("unknown command", self.cli("nosuchcommand"))

    def test_mass_insertion_with_pipe(self):
        lines = "".join(f"SET pipe:{i} {i}\r\n" for i in range(20000))
        out = self.cli("--pipe", stdin=lines)
        self.assertIn("errors: 0, replies: 20000", out)
        self.assertEqual(self.cli("get", "pipe:19999"), "19999\n")
        self.assertEqual(int(self.cli("dbsize")), sum(s.client().dbsize() for s in self.cluster.redis))


if __name__ == "__main__":
    unittest.main()
