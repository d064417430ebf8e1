"""RESP3 through the proxy (issue 13): HELLO 3 switches a client to RESP3.

Its requests go over the servers' RESP3 connections (a second set per server, opened when first
used), so replies come back as RESP3 (maps, sets, doubles, nulls) and are forwarded unchanged; on a
replicated shard its commands go on the RESP2 connection every write shares, between HELLO 3 and
HELLO 2, so the servers still take writes in one order. The proxy's own replies and merged replies
follow the client's protocol. RESP2 clients are untouched. Checked on the wire (a small RESP3
reader) and with node-redis speaking RESP3 (tests/e2e/node/node_redis_check.js).
"""
import json
import os
import shutil
import socket
import subprocess
import threading
import unittest

import redis

from harness import Cluster, digests, keys_by_shard, scrape, value, wait_until

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")


class Resp3Connection:
    """A socket speaking RESP3, replies parsed into (type byte, value)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _bytes(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        kind, rest = chr(line[0]), line[1:]
        if kind in "+-,(#":
            return kind, rest.decode()
        if kind == ":":
            return kind, int(rest)
        if kind == "_":
            return kind, None
        if kind in "$=!":
            n = int(rest)
            return kind, None if n < 0 else self._bytes(n)
        if kind in "*~>":
            n = int(rest)
            return kind, None if n < 0 else [self.read() for _ in range(n)]
        if kind == "%":
            return kind, [(self.read(), self.read()) for _ in range(int(rest))]
        raise AssertionError(f"unknown reply type {line!r}")

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self.read()


def node_redis_problem():
    if shutil.which("node") is None:
        return "node is not installed"
    with open(os.path.join(NODE_DIR, "package.json")) as f:
        pinned = json.load(f)["dependencies"]["redis"]
    installed = os.path.join(NODE_DIR, "node_modules", "redis", "package.json")
    if not os.path.exists(installed):
        return f"node-redis is not installed in {NODE_DIR}/node_modules"
    with open(installed) as f:
        version = json.load(f)["version"]
    if version != pinned:
        return f"{NODE_DIR}/node_modules has redis {version}, package.json pins {pinned}"
    return None


def run_node_redis(port, keys):
    problem = node_redis_problem()
    if problem:
        raise AssertionError(f"{problem}: run scripts/bootstrap (it installs tests/e2e/node's modules)")
    out = subprocess.run(["node", os.path.join(NODE_DIR, "node_redis_check.js"), str(port), json.dumps(keys)],
                         capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def expected_node_redis(a_value, b_value):
    return {"set": "OK", "get": a_value, "missing": None, "mget": [a_value, b_value, None], "exists": 2,
            "hgetall": {"f1": "1", "f2": "2"}, "zscore": 1.5, "smembers": ["x", "y"], "incrbyfloat": "0.5",
            "multi": ["OK", 2, {"f1": "1", "f2": "2"}], "eval": ["{t}:e", "arg"],
            "scan": ["{t}:f", "{t}:h", "{t}:m", "{t}:s", "{t}:z"], "clientName": None, "ping": "PONG"}


class Resp3Test(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster(shards=3, metrics=True, pool={"hash_tag": "{}"})
        self.addCleanup(self.cluster.cleanup)
        self.keys = keys_by_shard(self.cluster, 3)

    def conn(self, hello=True):
        c = Resp3Connection(self.cluster.proxy.port)
        self.addCleanup(c.close)
        if hello:
            kind, fields = c.call("HELLO", "3")
            self.assertEqual(kind, "%")
            fields = {k[1]: v[1] for k, v in fields}
            self.assertEqual(fields[b"proto"], 3)
        return c

    def test_node_redis_speaks_resp3_through_the_proxy(self):
        names = self.cluster.names
        keys = {"a": self.keys[names[0]][0], "b": self.keys[names[2]][0], "tag": "{t}"}
        out = run_node_redis(self.cluster.proxy.port, keys)
        self.assertNotIn("fatal", out, out)
        self.assertEqual(out["hello"]["proto"], 3)
        got = {k: out[k] for k in expected_node_redis("va", "vb")}
        self.assertEqual(got, expected_node_redis("va", "vb"))
        self.assertEqual(out["dbsize"], 7)

    def test_replies_are_resp3_on_the_wire(self):
        c = self.conn()
        k = self.keys[self.cluster.names[0]]
        self.assertEqual(c.call("GET", k[0]), ("_", None))  # RESP3's null, from the server
        c.call("HSET", "{h}:1", "f", "v")
        self.assertEqual(c.call("HGETALL", "{h}:1"), ("%", [(("$", b"f"), ("$", b"v"))]))
        c.call("ZADD", "{h}:z", "2.5", "m")
        self.assertEqual(c.call("ZSCORE", "{h}:z", "m"), (",", "2.5"))
        c.call("SADD", "{h}:s", "x")
        self.assertEqual(c.call("SMEMBERS", "{h}:s"), ("~", [("$", b"x")]))
        # Merged across shards: RESP3's nulls stay nulls.
        c.call("SET", k[1], "v1")
        other = self.keys[self.cluster.names[1]][0]
        self.assertEqual(c.call("MGET", k[1], other), ("*", [("$", b"v1"), ("_", None)]))
        # The proxy's own answers.
        self.assertEqual(c.call("CLIENT", "GETNAME"), ("_", None))
        self.assertEqual(c.call("PING"), ("+", "PONG"))
        self.assertEqual(c.call("COMMAND", "INFO", "nosuchcommand"), ("*", [("_", None)]))
        # HELLO 2 switches back.
        kind, _ = c.call("HELLO", "2")
        self.assertEqual(kind, "*")
        self.assertEqual(c.call("GET", k[2]), ("$", None))  # RESP2's null
        self.assertEqual(c.call("HGETALL", "{h}:1")[0], "*")

    def test_reset_goes_back_to_resp2(self):
        c = self.conn()
        k = self.keys[self.cluster.names[0]][0]
        self.assertEqual(c.call("GET", k), ("_", None))
        self.assertEqual(c.call("RESET"), ("+", "RESET"))
        self.assertEqual(c.call("GET", k), ("$", None))

    def test_an_empty_keyspace_answers_resp3_nulls(self):
        c = self.conn()
        self.assertEqual(c.call("RANDOMKEY"), ("_", None))  # merged from every shard's null

    def test_resp2_clients_are_untouched(self):
        c = self.conn()
        plain = self.cluster.client()
        k = self.keys[self.cluster.names[1]][0]
        for i in range(50):
            c.call("SET", k, i)
            self.assertEqual(plain.get(k), str(i).encode())
            self.assertIsNone(plain.get(k + "-missing"))
        plain.hset("{h}:2", "f", "v")
        self.assertEqual(plain.hgetall("{h}:2"), {b"f": b"v"})

    def test_hello_versions_and_transactions(self):
        c = self.conn(hello=False)
        self.assertEqual(c.call("HELLO", "4"), ("-", "NOPROTO unsupported protocol version"))
        self.assertEqual(c.call("HELLO", "3")[0], "%")
        k = self.keys[self.cluster.names[2]][0]
        self.assertEqual(c.call("WATCH", k), ("+", "OK"))
        self.assertEqual(c.call("HELLO", "2")[0], "-")  # not while watching
        self.assertEqual(c.call("MULTI"), ("+", "OK"))
        self.assertEqual(c.call("HSET", k, "f", "v"), ("+", "QUEUED"))
        self.assertEqual(c.call("HGETALL", k), ("+", "QUEUED"))
        self.assertEqual(c.call("EXEC"), ("*", [(":", 1), ("%", [(("$", b"f"), ("$", b"v"))])]))

    def test_resp3_connections_are_counted(self):
        c = self.conn()
        k = self.keys[self.cluster.names[0]][0]
        c.call("GET", k)

        def gauge(side):
            return value(scrape(self.cluster.metrics_port), "ringproxy_resp3_connections", f'{{side="{side}"}}')

        wait_until(lambda: gauge("clients") == 1 and gauge("servers") >= 1, what="counted")
        c.call("HELLO", "2")
        wait_until(lambda: gauge("clients") == 0, what="back to RESP2")
        c.call("HELLO", "3")
        wait_until(lambda: gauge("clients") == 1, what="RESP3 again")
        c.close()
        wait_until(lambda: gauge("clients") == 0, what="closed")


class Resp3ReplicatedTest(unittest.TestCase):
    def test_node_redis_on_a_replicated_shard(self):
        for strategy in ("primary-replica", "multi-primary"):
            with self.subTest(strategy=strategy):
                cluster = Cluster(shards=1, servers=3, pool={"hash_tag": "{}"},
                                  replication={"strategy": strategy, "write_ack": "all"})
                try:
                    out = run_node_redis(cluster.proxy.port, {"a": "ka", "b": "kb", "tag": "{t}"})
                    self.assertNotIn("fatal", out, out)
                    got = {k: out[k] for k in expected_node_redis("va", "vb")}
                    self.assertEqual(got, expected_node_redis("va", "vb"))
                    wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, what="servers equal")
                finally:
                    self.assertEqual(cluster.cleanup(), 0)

    def test_resp2_and_resp3_writers_keep_the_servers_equal(self):
        # Both clients INCR and APPEND to the same keys at once: every server must take their
        # writes in one order (the RESP3 client's go on the shared connection, in HELLO 3/2).
        cluster = Cluster(shards=1, servers=3, replication={"strategy": "multi-primary", "write_ack": "all"})
        try:
            errors = []

            def resp3_writer():
                try:
                    c = Resp3Connection(cluster.proxy.port)
                    c.call("HELLO", "3")
                    for i in range(400):
                        assert c.call("INCR", "n")[0] == ":"
                        assert c.call("APPEND", "log", f"3:{i},")[0] == ":"
                        if i % 50 == 0:
                            assert c.call("GET", "missing")[0] == "_"
                    c.close()
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))

            def resp2_writer():
                try:
                    r = cluster.client()
                    for i in range(400):
                        r.incr("n")
                        r.append("log", f"2:{i},")
                        if i % 50 == 0:
                            assert r.get("missing") is None
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))

            threads = [threading.Thread(target=resp3_writer), threading.Thread(target=resp2_writer)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(errors, [])
            for server in cluster.sets[0]:
                self.assertEqual(server.client().get("n"), b"800")
            wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, what="servers equal")
        finally:
            self.assertEqual(cluster.cleanup(), 0)


if __name__ == "__main__":
    unittest.main()
