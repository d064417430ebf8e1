"""Commands through ringproxy with real redis-servers and redis-py / raw RESP."""
import socket
import unittest

import redis

from harness import Cluster, raw_exchange


class CommandsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(shards=3, pool={"hash_tag": "{}"})
        cls.r = cls.cluster.client()

    @classmethod
    def tearDownClass(cls):
        status = cls.cluster.cleanup()
        assert status == 0, f"ringproxy exit status {status}"

    def setUp(self):
        for server in self.cluster.redis:
            server.client().flushall()

    def keys_on_every_shard(self, prefix="k", per_shard=2):
        """Keys covering every shard (so fan-out paths are really exercised)."""
        found = {n: [] for n in self.cluster.names}
        i = 0
        while any(len(v) < per_shard for v in found.values()):
            key = f"{prefix}{i}"
            shard = self.cluster.route(key)
            if len(found[shard]) < per_shard:
                found[shard].append(key)
            i += 1
        return [k for keys in found.values() for k in keys]

    def test_single_key_commands_of_every_type(self):
        r = self.r
        self.assertTrue(r.set("s", "v"))
        self.assertEqual(r.get("s"), b"v")
        self.assertEqual(r.incrby("n", 5), 5)
        self.assertEqual(r.append("s", "w"), 2)
        self.assertEqual(r.getrange("s", 0, 0), b"v")
        self.assertEqual(r.hset("h", mapping={"a": 1, "b": 2}), 2)
        self.assertEqual(r.hgetall("h"), {b"a": b"1", b"b": b"2"})
        self.assertEqual(r.rpush("l", 1, 2, 3), 3)
        self.assertEqual(r.lrange("l", 0, -1), [b"1", b"2", b"3"])
        self.assertEqual(r.lpop("l"), b"1")
        self.assertEqual(r.sadd("set", "a", "b"), 2)
        self.assertEqual(r.smembers("set"), {b"a", b"b"})
        self.assertEqual(r.zadd("z", {"a": 1, "b": 2}), 2)
        self.assertEqual(r.zrange("z", 0, -1, withscores=True), [(b"a", 1.0), (b"b", 2.0)])
        self.assertEqual(r.setbit("bits", 7, 1), 0)
        self.assertEqual(r.bitcount("bits"), 1)
        self.assertEqual(r.pfadd("hll", "a", "b", "c"), 1)
        self.assertEqual(r.pfcount("hll"), 3)
        self.assertEqual(r.geoadd("geo", (13.361389, 38.115556, "Palermo")), 1)
        self.assertEqual(len(r.geopos("geo", "Palermo")), 1)
        self.assertTrue(r.expire("s", 100))
        self.assertTrue(0 < r.ttl("s") <= 100)
        self.assertTrue(r.persist("s"))
        self.assertEqual(r.ttl("s"), -1)
        self.assertEqual(r.type("h"), b"hash")
        self.assertEqual(r.getset("s", "x"), b"vw")
        self.assertEqual(r.getdel("s"), b"x")
        self.assertEqual(r.xadd("stream", {"f": "v"}, id="1-1"), b"1-1")
        self.assertEqual(r.xlen("stream"), 1)
        self.assertEqual(r.object("encoding", "n"), b"int")

    def test_every_key_lives_on_the_server_its_ring_names(self):
        keys = [f"placement:{i}" for i in range(2000)]
        pipe = self.r.pipeline(transaction=False)
        for k in keys:
            pipe.set(k, k)
        pipe.execute()
        expected = {n: set() for n in self.cluster.names}
        for k in keys:
            expected[self.cluster.route(k)].add(k.encode())
        for name, server in zip(self.cluster.names, self.cluster.redis):
            held = set(server.client().keys("*"))
            self.assertEqual(held, expected[name], name)
            self.assertGreater(len(held), 300, "ketama spreads keys over every shard")

    def test_mget_keeps_order_across_shards(self):
        keys = self.keys_on_every_shard("mget", 3)
        for k in keys:
            self.r.set(k, "v-" + k)
        wanted = keys + ["missing-key"] + list(reversed(keys))
        expected = [("v-" + k).encode() for k in keys] + [None] + [("v-" + k).encode() for k in reversed(keys)]
        self.assertEqual(self.r.mget(wanted), expected)

    def test_mset_del_exists_touch_unlink_are_split_and_merged(self):
        keys = self.keys_on_every_shard("multi", 2)
        self.assertTrue(self.r.mset({k: k for k in keys}))
        for k in keys:
            self.assertEqual(self.cluster.server_of(self.cluster.route(k)).client().get(k), k.encode())
        self.assertEqual(self.r.exists(*keys, "nope"), len(keys))
        self.assertEqual(self.r.touch(*keys), len(keys))
        self.assertEqual(self.r.delete(*keys[:3]), 3)
        self.assertEqual(self.r.unlink(*keys), len(keys) - 3)
        self.assertEqual(self.r.exists(*keys), 0)

    def test_dbsize_sums_every_shard(self):
        for i in range(100):
            self.r.set(f"size:{i}", 1)
        self.assertEqual(self.r.dbsize(), 100)

    def test_multi_key_commands_on_one_shard_with_hash_tags(self):
        r = self.r
        r.sadd("{u1}:a", "x", "y")
        r.sadd("{u1}:b", "y", "z")
        self.assertEqual(r.sinter("{u1}:a", "{u1}:b"), {b"y"})
        self.assertTrue(r.rename("{u1}:a", "{u1}:c"))
        self.assertEqual(r.smove("{u1}:c", "{u1}:b", "x"), True)
        self.assertEqual(r.msetnx({"{u2}:a": 1, "{u2}:b": 2}), True)
        self.assertEqual(r.eval("return redis.call('GET', KEYS[1])", 1, "{u2}:a"), b"1")
        self.assertEqual(self.cluster.route("{u1}:a"), self.cluster.route("{u1}:zzz"))

    def test_multi_key_commands_across_shards_are_refused_clearly(self):
        a, b = None, None
        for i in range(100):
            if self.cluster.route(f"x{i}") != self.cluster.route("x0"):
                a, b = "x0", f"x{i}"
                break
        with self.assertRaisesRegex(redis.ResponseError, "map to different shards.*hash tag"):
            self.r.sinter(a, b)
        with self.assertRaisesRegex(redis.ResponseError, "different shards"):
            self.r.rename(a, b)
        # A script without keys runs on one shard (issue 13), as on a Redis Cluster node.
        self.assertEqual(self.r.eval("return 1", 0), 1)

    def test_unsupported_commands_name_the_reason(self):
        cases = {
            ("MONITOR",): "administration",
            ("CONFIG", "GET", "x"): "allow_admin_commands",
            ("DEBUG", "SLEEP", "0"): "administration",
            ("FLUSHALL",): "allow_admin_commands",
        }
        for command, reason in cases.items():
            with self.assertRaisesRegex(redis.ResponseError, reason, msg=command):
                self.r.execute_command(*command)
        self.assertEqual(self.r.xread({"nostream": "0"}), [])

    def test_bad_key_counts_get_the_servers_own_errors(self):
        """A key count redis refuses (0, negative, not a number, more than the arguments) goes to
        one server, which refuses it in its own words (each command has its own)."""
        direct = self.cluster.redis[0].client()
        for command in (("LMPOP", 0, "l", "LEFT"), ("LMPOP", "a", "l", "LEFT"), ("ZMPOP", -1, "z", "MAX"),
                        ("SINTERCARD", 2, "s"), ("ZUNION", 0, "k"), ("ZUNIONSTORE", "d", 0, "k"),
                        ("ZINTERCARD", 0, "k"), ("EVAL", "return 1", -1), ("EVAL", "return 1", 3, "a"),
                        ("FCALL", "f", "bad_arg"), ("BLMPOP", 0, 0, "l", "LEFT"), ("BZMPOP", 0, "x", "z", "MIN")):
            with self.subTest(command=command):
                with self.assertRaises(redis.ResponseError) as expected:
                    direct.execute_command(*command)
                with self.assertRaises(redis.ResponseError) as got:
                    self.r.execute_command(*command)
                self.assertEqual(str(got.exception), str(expected.exception))

    def test_unknown_command_and_wrong_arity_look_like_redis(self):
        with self.assertRaisesRegex(redis.ResponseError, "unknown command 'NOSUCH'"):
            self.r.execute_command("NOSUCH", "a")
        with self.assertRaisesRegex(redis.ResponseError, "wrong number of arguments for 'get' command"):
            self.r.execute_command("GET")
        with self.assertRaisesRegex(redis.ResponseError, "unknown subcommand"):
            self.r.execute_command("OBJECT", "NOPE", "k")

    def test_commands_answered_by_the_proxy(self):
        r = self.r
        self.assertTrue(r.ping())
        self.assertEqual(r.echo("hi"), b"hi")
        self.assertTrue(r.execute_command("SELECT", "0"))
        with self.assertRaisesRegex(redis.ResponseError, "database 0 only"):
            r.execute_command("SELECT", "1")
        self.assertTrue(r.client_setname("worker-1"))
        self.assertEqual(r.client_getname(), "worker-1")
        self.assertIsInstance(r.client_id(), int)
        hello = r.execute_command("HELLO", "2")
        fields = dict(zip(hello[0::2], hello[1::2]))
        self.assertEqual(fields[b"proto"], 2)
        with self.assertRaisesRegex(redis.ResponseError, "NOPROTO"):
            r.execute_command("HELLO", "4")  # (HELLO 3 is RESP3: test_resp3.py)
        count = r.command_count()
        self.assertGreater(count, 150)
        commands = r.command()  # redis-py parses every entry (name, arity, flags, keys)
        self.assertEqual(len(commands), count)
        self.assertEqual(commands["get"]["arity"], 2)
        self.assertIn("keys", commands)  # (issue 13: the keyspace across shards)
        self.assertIn("multi", commands)  # (issue 13: transactions)
        getkeys = raw_exchange(self.cluster.proxy.port, b"COMMAND GETKEYS MSET a 1 b 2\r\n", expect_bytes=18)
        self.assertEqual(getkeys, b"*2\r\n$1\r\na\r\n$1\r\nb\r\n")
        info = r.info()
        self.assertEqual(info["loading"], 0)
        self.assertEqual(info["shards"], 3)
        self.assertIn("shard0", info)
        route = r.execute_command("PROXY", "ROUTE", "{u1}:x")
        fields = dict(zip(route[0::2], route[1::2]))
        self.assertEqual(fields[b"hashed"], b"u1")
        self.assertIn(fields[b"shard"].decode(), self.cluster.names)

    def test_quit_answers_then_closes(self):
        data = raw_exchange(self.cluster.proxy.port, b"PING\r\nQUIT\r\nPING\r\n", read_until_close=True)
        self.assertEqual(data, b"+PONG\r\n+OK\r\n")

    def test_inline_commands_are_forwarded(self):
        data = raw_exchange(self.cluster.proxy.port, b'SET inl "a b"\r\nGET inl\r\n', expect_bytes=14)
        self.assertEqual(data, b"+OK\r\n$3\r\na b\r\n")

    def test_pipelined_replies_come_back_in_request_order(self):
        keys = self.keys_on_every_shard("order", 5)
        payload = b""
        expected = b""
        for i in range(300):
            k = keys[i % len(keys)].encode()
            v = str(i).encode()
            payload += b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v)
            payload += b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(k), k)
            payload += b"*1\r\n$4\r\nPING\r\n"
            expected += b"+OK\r\n$%d\r\n%s\r\n+PONG\r\n" % (len(v), v)
        # Dribble the bytes in odd-sized pieces: requests split at arbitrary boundaries.
        with socket.create_connection(("127.0.0.1", self.cluster.proxy.port), timeout=10) as s:
            for i in range(0, len(payload), 7):
                s.sendall(payload[i:i + 7])
            data = b""
            while len(data) < len(expected):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        self.assertEqual(data, expected)

    def test_redis_py_pipeline_across_shards(self):
        pipe = self.r.pipeline(transaction=False)
        for i in range(500):
            pipe.set(f"p:{i}", i)
            pipe.incr(f"c:{i % 7}")
        pipe.mget([f"p:{i}" for i in range(0, 500, 50)])
        results = pipe.execute()
        self.assertEqual(results[-1], [str(i).encode() for i in range(0, 500, 50)])
        self.assertEqual(self.r.get("c:3"), b"71")

    def test_large_values_round_trip(self):
        big = b"x" * (3 * 1024 * 1024 + 17)
        self.assertTrue(self.r.set("big", big))
        self.assertEqual(self.r.get("big"), big)
        values = {f"big{i}": bytes([65 + i]) * (200_000 + i) for i in range(10)}
        self.r.mset(values)
        self.assertEqual(self.r.mget(list(values)), list(values.values()))


class AdminCommandsTest(unittest.TestCase):
    def test_flushall_fans_out_when_allowed(self):
        cluster = Cluster(shards=3, proxy={"allow_admin_commands": True})
        try:
            r = cluster.client()
            for i in range(50):
                r.set(f"f{i}", 1)
            self.assertEqual(r.dbsize(), 50)
            self.assertTrue(r.flushall())
            self.assertEqual(r.dbsize(), 0)
            for server in cluster.redis:
                self.assertEqual(server.client().dbsize(), 0)
        finally:
            self.assertEqual(cluster.cleanup(), 0)


if __name__ == "__main__":
    unittest.main()


class SeveralBackendConnectionsTest(unittest.TestCase):
    """With several connections per server, each client still reads its own writes in order."""

    def test_read_your_writes_and_order_with_four_connections_per_server(self):
        import threading
        cluster = Cluster(shards=2, pool={"backend_connections": 4})
        errors = []

        def worker(n):
            try:
                r = cluster.client()
                for i in range(300):
                    pipe = r.pipeline(transaction=False)
                    pipe.set(f"w{n}", i)
                    pipe.get(f"w{n}")
                    pipe.incr(f"c{n}")
                    _, got, count = pipe.execute()
                    if got != str(i).encode() or count != i + 1:
                        errors.append((n, i, got, count))
                        return
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append((n, repr(e)))

        try:
            threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            self.assertEqual(errors, [])
        finally:
            self.assertEqual(cluster.cleanup(), 0)
