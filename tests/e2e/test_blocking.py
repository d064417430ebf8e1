"""Blocking commands through the proxy (issue 14): BLPOP & co. on a dedicated connection to a plain
shard's server, and waiting in the proxy for a pop on a replicated shard (routing/blocking.h);
IoredisTest: a real ioredis client blocking (tests/e2e/node/ioredis_blocking_check.js). BullMQ, an
application built on BZPOPMIN, is in test_bullmq.py.

Run: RINGPROXY_BIN=... /usr/bin/python3 -m unittest test_blocking
"""
import json
import os
import signal
import subprocess
import threading
import time
import unittest

import redis

from harness import REDIS_CLI, Cluster, digests, resp, scrape, shard_infos, toml_config, value, wait_until
from test_bullmq import command_calls, node_problem
from test_resp3 import Resp3Connection

IOREDIS_BLOCKING = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node", "ioredis_blocking_check.js")


def info(cluster, section):
    return cluster.client().info(section)


def blocked_here(cluster):
    return int(info(cluster, "clients")["blocked_clients"])


def server_blocked(server):
    return int(server.client().info("clients")["blocked_clients"])


def unblock_cases(test, cluster):
    """CLIENT UNBLOCK id [TIMEOUT|ERROR], as redis answers it, for a client blocked on a server or
    waiting in the proxy; the client and its list go on as usual after it."""
    c = Resp3Connection(cluster.proxy.port)  # (RESP2: no HELLO)
    test.addCleanup(c.close)
    (_, client_id) = c.call("CLIENT", "ID")
    admin = cluster.client()
    for how, expected in ((None, ("*", None)), ("TIMEOUT", ("*", None)),
                          ("ERROR", ("-", "UNBLOCKED client unblocked via CLIENT UNBLOCK"))):
        c.sock.sendall(resp("BLPOP", "{u}l", "0"))
        wait_until(lambda: blocked_here(cluster) == 1, what="blocked")
        test.assertEqual(admin.execute_command("CLIENT", "UNBLOCK", client_id, *([how] if how else [])), 1)
        test.assertEqual(c.read(), expected)
        wait_until(lambda: blocked_here(cluster) == 0, what="unblocked")
    test.assertEqual(admin.execute_command("CLIENT", "UNBLOCK", client_id), 0)  # not blocked
    with test.assertRaisesRegex(redis.ResponseError, "value is not an integer or out of range"):
        admin.execute_command("CLIENT", "UNBLOCK", "asd")
    with test.assertRaisesRegex(redis.ResponseError, "reason should be TIMEOUT or ERROR"):
        admin.execute_command("CLIENT", "UNBLOCK", client_id, "LATER")
    c.sock.sendall(resp("BLPOP", "{u}l", "0"))
    wait_until(lambda: blocked_here(cluster) == 1, what="blocked again")
    admin.lpush("{u}l", "foo")
    test.assertEqual(c.read(), ("*", [("$", b"{u}l"), ("$", b"foo")]))
    if len(cluster.sets[0]) > 1:  # a replicated shard's servers end equal
        wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, what="servers equal")


class PlainShardTest(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster(shards=2, pool={"hash_tag": "{}"})
        self.addCleanup(self.cluster.cleanup)

    def later(self, delay_until, action):
        """Runs `action` in a thread once `delay_until()` is true (polled)."""
        errors = []

        def run():
            try:
                wait_until(delay_until, what="the client to block")
                action()
            except Exception as e:  # reported by the test
                errors.append(e)

        thread = threading.Thread(target=run)
        thread.start()
        self.addCleanup(thread.join)
        return errors

    def test_blpop_is_woken_by_a_push_from_another_client(self):
        c = self.cluster.client()
        errors = self.later(lambda: blocked_here(self.cluster) == 1, lambda: self.cluster.client().rpush("q", "job1"))
        self.assertEqual(c.blpop(["q"], timeout=0), (b"q", b"job1"))
        self.assertEqual(errors, [])
        self.assertEqual(blocked_here(self.cluster), 0)
        self.assertEqual(c.llen("q"), 0)
        # The client's connection goes on as usual after the block.
        c.set("after", "1")
        self.assertEqual(c.get("after"), b"1")

    def test_a_timeout_answers_nil_and_a_bad_timeout_is_redis_error(self):
        c = self.cluster.client()
        started = time.monotonic()
        self.assertIsNone(c.blpop(["empty"], timeout=0.3))
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        self.assertIsNone(c.brpoplpush("{e}mpty", "{e}dst", timeout=0.1))
        direct = self.cluster.redis[0].client()
        self.assertEqual(c.xread({"nostream": "$"}, block=100), direct.xread({"nostream": "$"}, block=100))
        with self.assertRaisesRegex(redis.ResponseError, "timeout is negative"):
            c.blpop(["q"], timeout=-1)
        with self.assertRaisesRegex(redis.ResponseError, "timeout is not a float or out of range"):
            c.execute_command("BLPOP", "q", "soon")

    def test_every_blocking_command(self):
        c = self.cluster.client()
        producer = self.cluster.client()
        cases = [
            (lambda: c.brpop(["{a}1", "{a}2"], timeout=5), lambda: producer.rpush("{a}2", "x", "y"), (b"{a}2", b"y")),
            (lambda: c.blmove("{b}src", "{b}dst", 5, "LEFT", "RIGHT"), lambda: producer.rpush("{b}src", "m"), b"m"),
            (lambda: c.execute_command("BLMPOP", 5, 2, "{c}1", "{c}2", "LEFT", "COUNT", 2),
             lambda: producer.rpush("{c}1", "p", "q", "r"), [b"{c}1", [b"p", b"q"]]),
            (lambda: c.bzpopmin(["z"], timeout=5), lambda: producer.zadd("z", {"low": 1, "high": 2}), (b"z", b"low", 1.0)),
            (lambda: c.execute_command("BZMPOP", 5, 1, "z2", "MAX"), lambda: producer.zadd("z2", {"a": 1, "b": 2}),
             [b"z2", [[b"b", b"2"]]]),
        ]
        for call, feed, expected in cases:
            errors = self.later(lambda: blocked_here(self.cluster) == 1, feed)
            self.assertEqual(call(), expected)
            self.assertEqual(errors, [])
        self.assertEqual(producer.lrange("{b}dst", 0, -1), [b"m"])

    def test_streams_block_too(self):
        c = self.cluster.client()
        producer = self.cluster.client()
        producer.xgroup_create("s", "g", id="$", mkstream=True)
        # `$` means "after the last entry when the server reads the command": the entry is added
        # only once the server itself has blocked the reader (the proxy counting the client as
        # blocked is earlier, while the command may still be on its way).
        on_servers = lambda: sum(server_blocked(s) for s in self.cluster.redis) == 1
        errors = self.later(on_servers, lambda: producer.xadd("s", {"f": "1"}, id="1-1"))
        self.assertEqual(c.xread({"s": "$"}, block=5000), [[b"s", [(b"1-1", {b"f": b"1"})]]])
        self.assertEqual(errors, [])
        # The group had not seen 1-1 yet: XREADGROUP answers at once (it does not block, so a
        # producer waiting for it to block would wait in vain); then it blocks until 2-1 comes.
        self.assertEqual(c.xreadgroup("g", "consumer", {"s": ">"}, block=5000), [[b"s", [(b"1-1", {b"f": b"1"})]]])
        errors = self.later(lambda: blocked_here(self.cluster) == 1, lambda: producer.xadd("s", {"f": "2"}, id="2-1"))
        self.assertEqual(c.xreadgroup("g", "consumer", {"s": ">"}, block=5000), [[b"s", [(b"2-1", {b"f": b"2"})]]])
        self.assertEqual(errors, [])

    def test_requests_after_a_blocking_command_wait_for_it(self):
        c = self.cluster.client()
        pipe = c.pipeline(transaction=False)
        pipe.blpop(["q"], timeout=5)
        pipe.get("k")
        errors = self.later(lambda: blocked_here(self.cluster) == 1,
                            lambda: (self.cluster.client().set("k", "after"), self.cluster.client().rpush("q", "x")))
        # GET was sent before the push: run after BLPOP, it sees the SET made before the push.
        self.assertEqual(pipe.execute(), [(b"q", b"x"), b"after"])
        self.assertEqual(errors, [])

    def test_keys_on_two_shards_are_refused_with_a_hint(self):
        c = self.cluster.client()
        a, b = next((f"a{i}", f"b{i}") for i in range(1000) if self.cluster.route(f"a{i}") != self.cluster.route(f"b{i}"))
        with self.assertRaisesRegex(redis.ResponseError, "different shards.*hash tag"):
            c.blpop([a, b], timeout=1)

    def test_a_client_killed_while_blocked_loses_no_element(self):
        server = self.cluster.server_of(self.cluster.route("jobs"))
        cli = subprocess.Popen([REDIS_CLI, "-p", str(self.cluster.proxy.port), "BLPOP", "jobs", "0"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: server_blocked(server) == 1, what="redis-cli blocked on the server")
        cli.send_signal(signal.SIGKILL)
        cli.wait()
        # The proxy closed the dedicated connection: the server cancelled the block.
        wait_until(lambda: server_blocked(server) == 0 and blocked_here(self.cluster) == 0,
                   what="the block cancelled")
        self.cluster.client().rpush("jobs", "precious")
        self.assertEqual(self.cluster.client().lrange("jobs", 0, -1), [b"precious"])
        # No reply went to anyone: no error counted.
        self.assertEqual(int(info(self.cluster, "stats")["total_error_replies"]), 0)

    def test_the_dedicated_pool_is_bounded(self):
        self.cluster.cleanup()
        self.cluster = Cluster(shards=1, pool={"dedicated_connections": 1})
        self.addCleanup(self.cluster.cleanup)  # setUp's cleanup stops the first cluster only
        first = self.cluster.client()
        errors = []
        t = threading.Thread(target=lambda: errors.append(first.blpop(["q"], timeout=0)))
        t.start()
        self.addCleanup(t.join)
        wait_until(lambda: blocked_here(self.cluster) == 1, what="the first client blocked")
        with self.assertRaisesRegex(redis.ResponseError, "no dedicated connection free.*dedicated_connections"):
            self.cluster.client().blpop(["q"], timeout=0)
        self.cluster.client().rpush("q", "x")
        t.join(10)
        self.assertEqual(errors, [(b"q", b"x")])
        # Given back: the next one gets it.
        self.cluster.client().rpush("q", "y")
        self.assertEqual(self.cluster.client().blpop(["q"], timeout=1), (b"q", b"y"))

    def test_a_server_that_dies_under_a_blocked_client_answers_an_error(self):
        server = self.cluster.server_of(self.cluster.route("q"))
        c = self.cluster.client()
        result = []

        def block():
            try:
                result.append(c.blpop(["q"], timeout=0))
            except redis.RedisError as e:
                result.append(e)

        t = threading.Thread(target=block)
        t.start()
        wait_until(lambda: server_blocked(server) == 1, what="blocked on the server")
        server.kill()
        t.join(20)
        self.assertEqual(len(result), 1)
        self.assertIsInstance(result[0], redis.ResponseError)
        self.assertEqual(blocked_here(self.cluster), 0)

    def test_client_unblock_ends_a_block_with_nil_or_an_error(self):
        unblock_cases(self, self.cluster)

    def test_wait_and_the_redis_cli(self):
        c = self.cluster.client()
        self.assertEqual(c.execute_command("WAIT", 1, 10), 0)
        self.cluster.client().rpush("cli", "v")
        out = subprocess.run([REDIS_CLI, "-p", str(self.cluster.proxy.port), "BRPOP", "cli", "1"],
                             capture_output=True, text=True, timeout=20).stdout
        self.assertEqual(out.split(), ["cli", "v"])

    def test_resp3_clients_block_on_resp3_connections(self):
        c = Resp3Connection(self.cluster.proxy.port)
        self.addCleanup(c.close)
        self.assertEqual(c.call("HELLO", "3")[0], "%")
        errors = self.later(lambda: blocked_here(self.cluster) == 1,
                            lambda: self.cluster.client().zadd("z3", {"m": 1.5}))
        self.assertEqual(c.call("BZPOPMAX", "z3", "5"), ("*", [("$", b"z3"), ("$", b"m"), (",", "1.5")]))
        self.assertEqual(errors, [])
        self.assertEqual(c.call("BLPOP", "none", "0.1"), ("_", None))


class BlockingMetricsTest(unittest.TestCase):
    def test_blocked_clients_and_the_dedicated_pool_are_exported(self):
        cluster = Cluster(shards=1, metrics=True, pool={"dedicated_connections": 1})
        self.addCleanup(cluster.cleanup)
        server = cluster.redis[0]
        labels = f'{{server="{server.address}",shard="{cluster.names[0]}"}}'
        c = Resp3Connection(cluster.proxy.port)
        self.addCleanup(c.close)
        c.sock.sendall(resp("BLPOP", "q", "0"))
        wait_until(lambda: value(scrape(cluster.metrics_port), "ringproxy_blocked_clients", '{where="server"}') == 1,
                   what="the blocked client in the metrics")
        self.assertEqual(value(scrape(cluster.metrics_port), "ringproxy_server_dedicated_connections", labels), 1)
        with self.assertRaisesRegex(redis.ResponseError, "no dedicated connection free"):
            cluster.client().blpop(["q"], timeout=0.1)
        cluster.client().rpush("q", "x")
        self.assertEqual(c.read(), ("*", [("$", b"q"), ("$", b"x")]))
        wait_until(lambda: value(scrape(cluster.metrics_port), "ringproxy_blocked_clients", '{where="server"}') == 0,
                   what="no blocked client in the metrics")
        text = scrape(cluster.metrics_port)
        self.assertEqual(value(text, "ringproxy_server_dedicated_connections", labels), 0)
        self.assertEqual(value(text, "ringproxy_server_dedicated_exhausted_total", labels), 1)


class ReplicatedShardTest(unittest.TestCase):
    """A pop on a replicated shard waits in the proxy and runs as an ordered replicated write."""

    def cluster(self, strategy="primary-replica"):
        cluster = Cluster(shards=1, servers=3, replication={"strategy": strategy, "write_ack": "quorum"},
                          pool={"hash_tag": "{}"}, metrics=True)
        self.addCleanup(cluster.cleanup)
        return cluster

    def test_a_pop_waits_in_the_proxy_and_every_server_applies_it(self):
        cluster = self.cluster()
        c = cluster.client()
        errors = []
        t = threading.Thread(target=lambda: errors.append(c.blpop(["q"], timeout=0)))
        t.start()
        wait_until(lambda: int(info(cluster, "clients")["blocked_in_proxy"]) == 1, what="waiting in the proxy")
        cluster.client().rpush("q", "a", "b")
        t.join(10)
        self.assertEqual(errors, [(b"q", b"a")])
        wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, what="servers equal")
        for server in cluster.sets[0]:
            self.assertEqual(server.client().lrange("q", 0, -1), [b"b"])
        self.assertGreater(int(info(cluster, "stats")["proxy_pops"]), 0)
        wait_until(lambda: value(scrape(cluster.metrics_port), "ringproxy_proxy_pops_total", '{outcome="run"}') > 0,
                   what="the pops in the metrics")
        # Never blocked on a server.
        for server in cluster.sets[0]:
            self.assertEqual(server_blocked(server), 0)

    def test_a_wait_goes_on_after_a_reload_ends_the_shards_replication(self):
        """The pop the proxy runs is planned on the shards of its turn: on a shard that is no
        longer replicated it is an ordinary write, answered all the same."""
        cluster = Cluster(shards=1, servers=2, replication={"strategy": "primary-replica"}, pool={"hash_tag": "{}"},
                          proxy_args=("--no-watch",))
        self.addCleanup(cluster.cleanup)
        c = Resp3Connection(cluster.proxy.port)
        self.addCleanup(c.close)
        c.sock.sendall(resp("BLPOP", "q", "0"))
        wait_until(lambda: int(info(cluster, "clients")["blocked_in_proxy"]) == 1, what="waiting in the proxy")
        with open(cluster.proxy.config_path, "w") as f:
            f.write(toml_config(cluster.proxy.port, [(cluster.names[0], [cluster.sets[0][0].address])],
                                pool={"hash_tag": "{}"}))
        self.assertIn("ring unchanged", cluster.client().execute_command("PROXY", "RELOAD").decode())
        cluster.client().rpush("q", "x")
        self.assertEqual(c.read(), ("*", [("$", b"q"), ("$", b"x")]))
        self.assertEqual(cluster.sets[0][0].client().llen("q"), 0)

    def test_client_unblock_ends_a_wait_in_the_proxy(self):
        unblock_cases(self, self.cluster())

    def test_timeouts_and_shapes(self):
        cluster = self.cluster("multi-primary")
        c = cluster.client()
        self.assertIsNone(c.blpop(["nothing"], timeout=0.2))
        self.assertIsNone(c.blmove("{x}a", "{x}b", 0.2, "LEFT", "RIGHT"))
        cluster.client().zadd("z", {"m": 2})
        self.assertEqual(c.bzpopmin(["z"], timeout=1), (b"z", b"m", 2.0))
        cluster.client().rpush("{x}a", "e")
        self.assertEqual(c.blmove("{x}a", "{x}b", 1, "LEFT", "RIGHT"), b"e")
        c3 = Resp3Connection(cluster.proxy.port)
        self.addCleanup(c3.close)
        self.assertEqual(c3.call("HELLO", "3")[0], "%")
        cluster.client().zadd("z", {"n": 3})
        self.assertEqual(c3.call("BZPOPMAX", "z", "1"), ("*", [("$", b"z"), ("$", b"n"), (",", "3")]))
        self.assertEqual(c3.call("BRPOP", "nothing", "0.1"), ("_", None))
        cluster.client().zadd("zset", {"m": 1})
        with self.assertRaisesRegex(redis.ResponseError, "WRONGTYPE"):
            c.blpop(["zset"], timeout=1)
        wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, what="servers equal")

    def test_consumers_and_producers_every_element_exactly_once(self):
        cluster = self.cluster()
        n, consumers = 300, 4
        got = [[] for _ in range(consumers)]
        stop = threading.Event()

        def consume(i):
            c = cluster.client()
            while not stop.is_set():
                item = c.blpop(["{w}q1", "{w}q2"], timeout=0.2)
                if item:
                    got[i].append(item[1])

        threads = [threading.Thread(target=consume, args=(i,)) for i in range(consumers)]
        for t in threads:
            t.start()
        producer = cluster.client()
        for i in range(n):
            producer.rpush("{w}q1" if i % 2 else "{w}q2", f"job{i}")
        wait_until(lambda: sum(len(g) for g in got) >= n, what="every job consumed")
        stop.set()
        for t in threads:
            t.join(10)
        everything = sorted(x for g in got for x in g)
        self.assertEqual(everything, sorted(f"job{i}".encode() for i in range(n)))  # each exactly once
        wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, what="servers equal")

    def test_a_client_killed_while_waiting_loses_no_element(self):
        cluster = self.cluster()
        cli = subprocess.Popen([REDIS_CLI, "-p", str(cluster.proxy.port), "BLPOP", "jobs", "0"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: int(info(cluster, "clients")["blocked_in_proxy"]) == 1, what="waiting in the proxy")
        cli.send_signal(signal.SIGKILL)
        cli.wait()
        wait_until(lambda: int(info(cluster, "clients")["blocked_in_proxy"]) == 0, what="the wait dropped")
        cluster.client().rpush("jobs", "precious")
        wait_until(lambda: all(s.client().lrange("jobs", 0, -1) == [b"precious"] for s in cluster.sets[0]),
                   what="the element on every server")

    def test_blmove_with_a_killed_primary(self):
        """A work queue moved item by item while the primary is killed: every item ends in the
        destination exactly once (acknowledged moves), and the survivors agree."""
        cluster = Cluster(shards=1, servers=3, pool={"hash_tag": "{}"},
                          replication={"strategy": "primary-replica", "write_ack": "quorum",
                                       "on_primary_down": "promote"})
        self.addCleanup(cluster.cleanup)
        producer = cluster.client()
        n = 200
        producer.rpush("{j}todo", *[f"item{i}" for i in range(n)])
        moved = []
        failures = []
        killed = threading.Event()

        def mover():
            c = cluster.client()
            while len(moved) + len(failures) < n:
                try:
                    item = c.blmove("{j}todo", "{j}done", 0.5, "LEFT", "RIGHT")
                except redis.RedisError as e:
                    failures.append(e)
                    continue
                if item is None:
                    break
                moved.append(item)
                # Half the moves come after the kill: on an idle machine the mover could otherwise
                # finish before it, and with no write after it nothing would notice the kill.
                if len(moved) == n // 2:
                    killed.wait(30)

        t = threading.Thread(target=mover)
        t.start()
        wait_until(lambda: len(moved) >= n // 4, what="some moves")
        cluster.sets[0][0].kill()
        killed.set()
        t.join(60)
        live = cluster.sets[0][1:]
        wait_until(lambda: len(set(digests(live))) == 1, what="the live servers equal")
        done = live[0].client().lrange("{j}done", 0, -1)
        todo = live[0].client().lrange("{j}todo", 0, -1)
        # Nothing lost, nothing doubled, whatever the failed calls did.
        self.assertEqual(sorted(done + todo), sorted(f"item{i}".encode() for i in range(n)))
        self.assertEqual(len(done), len(set(done)))
        for item in moved:  # every acknowledged move is in the destination
            self.assertIn(item, done)
        # The path: the replica took the lead.
        self.assertGreaterEqual(sum(int(s.get("leader_changes", 0)) for s in shard_infos(cluster)), 1)


class IoredisTest(unittest.TestCase):
    """ioredis (Node.js) blocking through the proxy: tests/e2e/node/ioredis_blocking_check.js runs a
    consumer that blocks and a producer that pushes once the proxy counts the consumer as blocked."""

    def setUp(self):
        problem = node_problem(("ioredis",))
        if problem:
            self.skipTest(f"{problem}: run scripts/bootstrap (it installs Node.js, npm and tests/e2e/node's modules)")
        self.cluster = Cluster(shards=2, pool={"hash_tag": "{}"})
        self.addCleanup(self.cluster.cleanup)

    def test_blpop_brpoplpush_and_blmove(self):
        tag = "{io}"
        spec = json.dumps({"port": self.cluster.proxy.port, "tag": tag})
        result = subprocess.run(["node", IOREDIS_BLOCKING], input=spec, capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, f"ioredis_blocking_check.js failed: {result.stdout}{result.stderr}")
        output = json.loads(result.stdout)
        self.assertTrue(output["ioredis"].startswith("5."), output)
        self.assertEqual(output["errors"], [])
        cases = output["cases"]
        replies = {name: {k: v for k, v in case.items() if k != "ms"} for name, case in cases.items()}
        self.assertEqual(replies, {
            "blpop_woken": {"blocked_seen": True, "ok": [f"{tag}:jobs", "job1"]},
            "blpop_timeout": {"ok": None},
            "brpoplpush_woken": {"blocked_seen": True, "ok": "b"},
            "brpoplpush_timeout": {"ok": None},
            "blmove_ready": {"ok": "a"},
            "blmove_woken": {"blocked_seen": True, "ok": "m"},
            "blmove_timeout": {"ok": None},
            "after": {"ok": ["m", "b", "a"]},
        })
        # The timeouts waited (the clock's milliseconds may round a little down).
        self.assertGreaterEqual(cases["blpop_timeout"]["ms"], 190)
        self.assertGreaterEqual(cases["brpoplpush_timeout"]["ms"], 90)
        self.assertGreaterEqual(cases["blmove_timeout"]["ms"], 90)
        self.assertEqual(output["blocked_at_end"], 0)
        # Everything on the tag's shard: the pushes and moves reached its server.
        server = self.cluster.server_of(self.cluster.route(tag))
        self.assertEqual(server.client().lrange(f"{tag}:dst", 0, -1), [b"m", b"b", b"a"])
        self.assertEqual(server.client().llen(f"{tag}:jobs"), 0)
        self.assertEqual(server.client().llen(f"{tag}:src"), 0)
        # On a plain shard the blocking commands themselves ran on the server (dedicated connections).
        for command in ("blpop", "brpoplpush", "blmove"):
            self.assertGreater(command_calls(server, command), 0, command)


if __name__ == "__main__":
    unittest.main()
