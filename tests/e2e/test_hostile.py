"""Hostile review: clients and servers that misbehave, odd but legal input, edge replies.

Tests that were marked expectedFailure demonstrated a bug found in review, since fixed (see the comment
above each); the file stays green until the bug is fixed and the marker removed.
"""
import os
import signal
import socket
import threading
import time
import unittest

import harness

import redis

from harness import Cluster, raw_exchange, rss_kb, wait_until


# ------------------------------------------------------------------------ helpers --

class RespReader:
    """Reads RESP2 replies from a socket (enough for tests: no RESP3)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("connection closed by the proxy")
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return Error(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self._exact(n + 2)
            assert data[-2:] == b"\r\n", data[-10:]
            return data[:-2]
        if t == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self.read() for _ in range(n)]
        raise AssertionError(f"bad reply line {line[:80]!r}")


class Error(str):
    """An error reply (distinct from a status reply)."""


def cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def connect(port, timeout=20):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def keys_by_shard(cluster, count, prefix="hk"):
    return harness.keys_by_shard(cluster, count, prefix)


def proxy_info(cluster):
    return cluster.client().info("proxy")


def server_failures(cluster, name):
    info = proxy_info(cluster)
    return info[f"server{cluster.names.index(name)}"]["failures"]


class ClusterTestCase(unittest.TestCase):
    """One cluster per class; every test starts with empty servers."""
    shards = 3
    pool = {"hash_tag": "{}"}
    proxy = None

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(shards=cls.shards, pool=cls.pool, proxy=cls.proxy)
        cls.port = cls.cluster.proxy.port

    @classmethod
    def tearDownClass(cls):
        for server in cls.cluster.redis:
            if server.proc and server.proc.poll() is None:
                server.signal(signal.SIGCONT)
        status = cls.cluster.cleanup()
        assert status == 0, f"ringproxy exit status {status}"

    def setUp(self):
        for server in self.cluster.redis:
            if server.proc.poll() is None:
                server.signal(signal.SIGCONT)
        for server in self.cluster.redis:
            server.client().flushall()
        self.r = self.cluster.client()

    def assert_alive(self):
        wait_until(lambda: self.cluster.client().ping(), timeout=10, what="proxy answers PING")
        self.assertIsNone(self.cluster.proxy.proc.poll(), "ringproxy exited")


# ------------------------------------------------------------------ edge replies --

class FreshCluster(unittest.TestCase):
    """A cluster per test: for tests that may leave a shard marked down."""
    pool = {"hash_tag": "{}", "failure_limit": 3}

    def setUp(self):
        self.cluster = Cluster(shards=3, pool=self.pool)
        self.port = self.cluster.proxy.port
        self.r = self.cluster.client()

    def tearDown(self):
        self.assertEqual(self.cluster.cleanup(), 0)


class ReplyFramingBugsTest(FreshCluster):

    # BUG: routing/resp/reply_scanner.cc parse_int() rejects 19-digit integers
    # ("if (end - begin > 18) return false"), but a redis integer reply can be any int64,
    # e.g. ":9223372036854775807" or ":-9223372036854775808". The legal reply is taken as
    # a protocol error from the server: the client gets "-ERR ... invalid integer reply",
    # the backend connection is closed (failing every other client's requests queued on
    # it) and a failure is counted; three such replies mark the whole shard DOWN.
    # Regression of commit 6c273cc (the UBSan overflow fix).
    def test_int64_extreme_integer_replies(self):
        r = self.r
        r.set("max", "9223372036854775807")
        r.set("min", "-9223372036854775808")
        self.assertEqual(r.incrby("max", 0), 9223372036854775807)
        self.assertEqual(r.incrby("min", 0), -9223372036854775808)
        self.assertEqual(r.incrby("max", -1000000000000000000), 8223372036854775807)

    def test_int64_integer_replies_do_not_mark_the_shard_down(self):
        # Same bug as above, seen from the other clients of the shard.
        r = self.r
        r.set("{m}max", "9223372036854775807")
        for _ in range(4):
            try:
                r.incrby("{m}max", 0)
            except redis.ResponseError:
                pass
        self.assertEqual(r.get("{m}max"), b"9223372036854775807")  # shard still served
        shard = self.cluster.route("{m}max")
        self.assertEqual(server_failures(self.cluster, shard), 0)

    # BUG: routing/resp/reply_scanner.cc limits array nesting to kMaxDepth = 32 and treats a
    # deeper reply as a protocol error of the server. Redis can legally send deeper replies
    # (EVAL returning nested tables; Lua allows far more than 32 levels). The proxy closes
    # the backend connection (failing other clients' in-flight requests on it) and counts
    # a failure, so any client can mark a shard down with three EVALs. Framing needs no
    # depth stack: one "elements still expected" counter suffices.
    def test_deeply_nested_eval_reply(self):
        script = "local t = {1} for i = 1, 40 do t = {t} end return t"
        reply = self.r.eval(script, 1, "{n}k")
        for _ in range(40):
            self.assertEqual(len(reply), 1)
            reply = reply[0]
        self.assertEqual(reply, [1])

    def test_deeply_nested_eval_does_not_mark_the_shard_down(self):
        script = "local t = {1} for i = 1, 40 do t = {t} end return t"
        for _ in range(4):
            try:
                self.r.eval(script, 1, "{d}k")
            except redis.ResponseError:
                pass
        self.r.set("{d}x", 1)  # raises "shard ... is unavailable" once marked down
        self.assertEqual(server_failures(self.cluster, self.cluster.route("{d}k")), 0)



class ReplyEdgesTest(ClusterTestCase):

    def test_nesting_just_under_the_old_limit_and_mixed_types(self):
        script = ("local t = {1, 'x', false} for i = 1, 30 do t = {t, i} end "
                  "return {t, 'tail', {}, {err='boom'}}")
        reply = self.r.eval(script, 1, "{n2}k")
        self.assertEqual(reply[1], b"tail")
        self.assertEqual(reply[2], [])
        self.assertIsInstance(reply[3], redis.ResponseError)

    def test_empty_and_null_replies_in_one_pipeline(self):
        s = connect(self.port)
        try:
            payload = (cmd("SET", "", "") + cmd("GET", "") + cmd("GET", "nokey") + cmd("LRANGE", "nol", 0, -1)
                       + cmd("MGET", "", "nokey", "a", "b", "c") + cmd("EXISTS", "", "", "nokey")
                       + cmd("ECHO", ""))
            s.sendall(payload)
            rd = RespReader(s)
            self.assertEqual(rd.read(), "OK")
            self.assertEqual(rd.read(), b"")
            self.assertIsNone(rd.read())
            self.assertEqual(rd.read(), [])
            self.assertEqual(rd.read(), [b"", None, None, None, None])
            self.assertEqual(rd.read(), 2)
            self.assertEqual(rd.read(), b"")
        finally:
            s.close()

    def test_binary_keys_with_crlf(self):
        keys = [b"a\r\nb", b"\r\n", b"*1\r\n$4\r\nPING\r\n", b"\x00\xff\r", b"{x}\n"]
        for i, k in enumerate(keys):
            self.r.set(k, b"v\r\n%d" % i)
        self.assertEqual(self.r.mget(keys), [b"v\r\n%d" % i for i in range(len(keys))])
        self.assertEqual(self.r.delete(*keys), len(keys))


# ------------------------------------------------------------- client behaviour --

class PipelineTest(ClusterTestCase):
    pool = {"hash_tag": "{}", "request_timeout_ms": 5000}

    def test_big_and_small_replies_mixed_keep_order(self):
        sizes = {"s": 3, "k16": 16 * 1024 + 7, "k1m": 1024 * 1024 + 13, "k4m": 4 * 1024 * 1024 + 1}
        for k, n in sizes.items():
            self.r.set(k, os.urandom(n // 2).hex()[:n].ljust(n, "z"))
        values = {k: self.r.get(k) for k in sizes}
        order = ["s", "k1m", "s", "k16", "k4m", "s", "s", "k16", "k1m", "s"] * 3
        s = connect(self.port)
        try:
            payload = b""
            expect = []
            for i, k in enumerate(order):
                payload += cmd("GET", k) + cmd("PING") + cmd("MGET", k, "s", f"x{i}")
                expect += [values[k], "PONG", [values[k], values["s"], None]]
            s.sendall(payload)
            rd = RespReader(s)
            for e in expect:
                self.assertEqual(rd.read(), e)
        finally:
            s.close()

    def test_pipeline_split_at_every_byte(self):
        self.r.set("a", "1")
        payload = (cmd("SET", "b", "x" * 40) + b"GET a\r\n" + cmd("MGET", "a", "b", "c", "d")
                   + b"ECHO \"q\\x41\\n\"\r\nECHO 'it\\'s'\r\n" + cmd("PING") + b"*0\r\n\r\n" + cmd("DEL", "b", "zz")
                   + b"  get   a  \r\n" + b"*-1\r\n" + cmd("EXISTS", "a", "b", "c"))
        s = connect(self.port)
        try:
            for i in range(len(payload)):
                s.sendall(payload[i:i + 1])
            rd = RespReader(s)
            self.assertEqual(rd.read(), "OK")
            self.assertEqual(rd.read(), b"1")
            self.assertEqual(rd.read(), [b"1", b"x" * 40, None, None])
            self.assertEqual(rd.read(), b"qA\n")
            self.assertEqual(rd.read(), b"it's")
            self.assertEqual(rd.read(), "PONG")
            self.assertEqual(rd.read(), 1)
            self.assertEqual(rd.read(), b"1")
            self.assertEqual(rd.read(), 1)
        finally:
            s.close()

    def test_inline_quotes_and_escapes(self):
        cases = [
            (b'SET "a b" "c\\td\\x41"\r\nGET "a b"\r\n', ["OK", b"c\tdA"]),
            (b"ECHO 'it\\'s'\r\n", [b"it's"]),
            (b'ECHO "\\xZZ"\r\n', [b"xZZ"]),
            (b'ECHO ""\r\n', [b""]),
            (b"ECHO '' \r\n", [b""]),
            (b'ECHO "\\\\"\r\n', [b"\\"]),
            (b"   \r\n\r\n\nPING\n", ["PONG"]),
        ]
        for payload, expect in cases:
            s = connect(self.port)
            try:
                s.sendall(payload)
                rd = RespReader(s)
                for e in expect:
                    self.assertEqual(rd.read(), e, payload)
            finally:
                s.close()

    def test_empty_multibulk_and_null_array_are_skipped(self):
        data = raw_exchange(self.port, b"*0\r\n*-1\r\n" + cmd("PING") + b"*0\r\n" + cmd("ECHO", "x"),
                            expect_bytes=len(b"+PONG\r\n$1\r\nx\r\n"))
        self.assertEqual(data, b"+PONG\r\n$1\r\nx\r\n")

    def test_quit_in_the_middle_of_a_pipeline(self):
        keys = keys_by_shard(self.cluster, 3)
        allkeys = [k for ks in keys.values() for k in ks]
        payload = cmd("MSET", *[x for k in allkeys for x in (k, k)]) + cmd("MGET", *allkeys) + cmd("QUIT") \
            + cmd("SET", "after-quit", "1")
        data = raw_exchange(self.port, payload, read_until_close=True, timeout=10)
        expect = b"+OK\r\n*%d\r\n" % len(allkeys) + b"".join(b"$%d\r\n%s\r\n" % (len(k), k.encode()) for k in allkeys) \
            + b"+OK\r\n"
        self.assertEqual(data, expect)
        self.assertIsNone(self.r.get("after-quit"))

    def test_ten_thousand_pipelined_mgets_across_shards(self):
        keys = keys_by_shard(self.cluster, 4)
        allkeys = [k for ks in keys.values() for k in ks]
        self.r.mset({k: k for k in allkeys})
        s = connect(self.port, timeout=60)
        try:
            n = 10000
            reqs = []
            for i in range(n):
                ks = [allkeys[(i + j) % len(allkeys)] for j in range(5)] + [f"missing{i}"]
                reqs.append(ks)
            payload = b"".join(cmd("MGET", *ks) for ks in reqs)
            sender = threading.Thread(target=s.sendall, args=(payload,))
            sender.start()
            rd = RespReader(s)
            for ks in reqs:
                self.assertEqual(rd.read(), [k.encode() for k in ks[:-1]] + [None])
            sender.join()
        finally:
            s.close()

    def test_many_clients_connect_and_leave_quickly(self):
        keys = keys_by_shard(self.cluster, 2)
        allkeys = [k for ks in keys.values() for k in ks]
        for i in range(300):
            s = socket.create_connection(("127.0.0.1", self.port))
            if i % 3 == 0:
                s.sendall(cmd("MGET", *allkeys) * 20)
            elif i % 3 == 1:
                s.sendall(cmd("MGET", *allkeys) * 5 + cmd("MGET", "partial")[:-3])
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()  # RST
        self.assert_alive()
        wait_until(lambda: proxy_clients(self.cluster) <= 2, what="closed clients forgotten")


def proxy_clients(cluster):
    return cluster.client().info("clients")["connected_clients"]


# ------------------------------------------------------- slow and dying servers --

class StreamingReplyTest(ClusterTestCase):
    pool = {"hash_tag": "{}", "request_timeout_ms": 3000, "failure_limit": 100}

    def test_a_reply_still_streaming_after_the_timeout_is_not_a_timeout(self):
        # A 128 MB reply; once the server has built it (MGET done), the server is stopped for
        # 0.3 s and let run for 5 ms, over and over (6 s of stops at most, then it runs
        # freely): it never falls silent for the timeout (3 s: ten windows in a row would have
        # to pass without the server being scheduled), but its reply takes longer than that.
        value = b"x" * (1 << 20)
        keys = [f"{{big}}:{i}" for i in range(128)]
        pipe = self.r.pipeline(transaction=False)
        for k in keys:
            pipe.set(k, value)
        pipe.execute()
        server = self.cluster.redis[self.cluster.names.index(self.cluster.route("{big}"))]
        direct = server.client()
        direct.config_resetstat()
        result = {}
        reader = threading.Thread(target=lambda: result.update(reply=self.cluster.client(socket_timeout=60).mget(keys)))
        reader.start()
        # INFO is served between commands: once it counts the MGET, the reply is being written.
        wait_until(lambda: "cmdstat_mget" in direct.info("commandstats"), timeout=20, what="the MGET executed")
        stopped_for = 0.0
        try:
            while reader.is_alive() and stopped_for < 6.0:
                server.signal(signal.SIGSTOP)
                time.sleep(0.3)
                stopped_for += 0.3
                server.signal(signal.SIGCONT)
                time.sleep(0.005)
        finally:
            server.signal(signal.SIGCONT)
            reader.join()
        self.assertTrue(result.get("reply") == [value] * len(keys), "the reply is not the 128 values")
        if stopped_for <= 3.0:
            self.skipTest("the reply arrived before the server could be slowed down")


class ProxyStallTest(ClusterTestCase):
    pool = {"hash_tag": "{}", "request_timeout_ms": 1000, "failure_limit": 100}

    def test_a_stalled_proxy_does_not_blame_the_server(self):
        # The server works 0.3 s on the script; meanwhile the proxy itself is stopped for 2 s
        # (as a preempted or throttled process would be). Its reply waits in the socket: on
        # resuming, the proxy reads it rather than calling the server timed out.
        spin = ("local t0 = redis.call('TIME') local start = t0[1] * 1000000 + t0[2] "
                "repeat local t = redis.call('TIME') until t[1] * 1000000 + t[2] - start >= 300000 "
                "return redis.call('INCR', KEYS[1])")
        s = connect(self.port)
        s.sendall(cmd("EVAL", spin, "1", "stall-counter"))
        time.sleep(0.1)  # forwarded: the server is busy with it
        proxy = self.cluster.proxy.proc
        proxy.send_signal(signal.SIGSTOP)
        try:
            time.sleep(2.0)
        finally:
            proxy.send_signal(signal.SIGCONT)
        self.assertEqual(RespReader(s).read(), 1)
        s.close()
        self.assertNotIn("timed out", self.cluster.proxy.log())


class SlowServerTest(ClusterTestCase):
    pool = {"hash_tag": "{}", "request_timeout_ms": 800, "connect_timeout_ms": 500,
            "failure_limit": 100, "retry_interval_ms": 200}

    def test_client_leaves_mid_pipeline_while_server_is_stopped(self):
        keys = keys_by_shard(self.cluster, 3)
        victim_name = "shard2"
        victim = self.cluster.server_of(victim_name)
        allkeys = [k for ks in keys.values() for k in ks]
        self.r.mset({k: k for k in allkeys})
        victim.signal(signal.SIGSTOP)
        try:
            for i in range(20):
                s = socket.create_connection(("127.0.0.1", self.port))
                s.sendall((cmd("MGET", *allkeys) + cmd("GET", keys[victim_name][0]) + cmd("PING")
                           + cmd("SET", keys[victim_name][1], f"v{i}")) * 10)
                s.close()
        finally:
            victim.signal(signal.SIGCONT)
        self.assert_alive()
        wait_until(lambda: self.r.get(keys[victim_name][0]) == keys[victim_name][0].encode(),
                   what="victim shard served again")
        got = self.r.get(keys[victim_name][1])
        self.assertTrue(got == keys[victim_name][1].encode() or got.startswith(b"v"), got)

    def test_server_stopped_around_the_timeout_other_clients_get_ordered_replies(self):
        keys = keys_by_shard(self.cluster, 2)
        victim = self.cluster.server_of("shard1")
        s = connect(self.port)
        try:
            victim.signal(signal.SIGSTOP)
            s.sendall(cmd("SET", keys["shard1"][0], "a") + cmd("PING") + cmd("GET", keys["shard2"][0])
                      + cmd("MGET", keys["shard1"][0], keys["shard3"][0]) + cmd("ECHO", "end"))
            rd = RespReader(s)
            first = rd.read()
            self.assertIsInstance(first, Error)
            self.assertIn("timed out", first)
            self.assertEqual(rd.read(), "PONG")
            self.assertIsNone(rd.read())
            self.assertIsInstance(rd.read(), Error)
            self.assertEqual(rd.read(), b"end")
        finally:
            victim.signal(signal.SIGCONT)
            s.close()
        wait_until(lambda: self.r.set(keys["shard1"][1], 1), what="shard1 back")

    def test_server_killed_during_large_split_mget(self):
        keys = keys_by_shard(self.cluster, 200)
        allkeys = [k for ks in keys.values() for k in ks]
        value = "v" * 20000
        pipe = self.r.pipeline(transaction=False)
        for k in allkeys:
            pipe.set(k, value)
        pipe.execute()
        victim = self.cluster.server_of("shard3")
        try:
            s = connect(self.port)
            s.sendall(cmd("MGET", *allkeys) * 5 + cmd("PING"))
            victim.kill()
            rd = RespReader(s)
            for _ in range(5):
                reply = rd.read()
                if isinstance(reply, Error):
                    self.assertIn("shard3", reply)
                else:
                    self.assertEqual(reply, [value.encode()] * len(allkeys))
            self.assertEqual(rd.read(), "PONG")
            s.close()
            self.assertEqual(self.r.get(keys["shard1"][0]), value.encode())
        finally:
            victim.start()
        wait_until(lambda: self.r.get(keys["shard3"][0]) is None, timeout=15, what="shard3 back (empty)")

    def test_timeout_while_a_large_request_is_still_being_written(self):
        keys = keys_by_shard(self.cluster, 2)
        victim = self.cluster.server_of("shard2")
        big = b"b" * (30 << 20)  # far more than the socket buffers: the write is in flight
        s = connect(self.port, timeout=60)
        try:
            victim.signal(signal.SIGSTOP)
            s.sendall(cmd("SET", keys["shard2"][0], big) + cmd("GET", keys["shard1"][0]) + cmd("ECHO", "end"))
            rd = RespReader(s)
            first = rd.read()
            self.assertIsInstance(first, Error)
            self.assertIn("shard2", first)
            self.assertIsNone(rd.read())
            self.assertEqual(rd.read(), b"end")
        finally:
            victim.signal(signal.SIGCONT)
            s.close()
        wait_until(lambda: self.r.set(keys["shard2"][1], 1), timeout=15, what="shard2 back")
        self.assertIn(self.r.strlen(keys["shard2"][0]), (0, len(big)))

    def test_server_restarted_while_requests_are_queued(self):
        keys = keys_by_shard(self.cluster, 2)
        victim = self.cluster.server_of("shard2")
        victim.signal(signal.SIGSTOP)
        s = connect(self.port)
        try:
            s.sendall(b"".join(cmd("INCR", keys["shard2"][0]) for _ in range(50)) + cmd("ECHO", "done"))
            victim.signal(signal.SIGCONT)
            victim.kill()
            victim.start()
            rd = RespReader(s)
            replies = [rd.read() for _ in range(50)]
            self.assertEqual(rd.read(), b"done")
            # Every INCR either failed with an error or was applied exactly once, in order.
            ints = [x for x in replies if isinstance(x, int)]
            self.assertEqual(ints, list(range(1, len(ints) + 1)))
        finally:
            victim.signal(signal.SIGCONT)
            s.close()
        wait_until(lambda: self.r.set(keys["shard2"][1], 1), timeout=15, what="shard2 back")

    def test_sigterm_with_requests_queued_on_a_stopped_server(self):
        cluster = Cluster(shards=2, pool={"request_timeout_ms": 60000})
        try:
            keys = keys_by_shard(cluster, 1)
            cluster.server_of("shard1").signal(signal.SIGSTOP)
            s = connect(cluster.proxy.port)
            s.sendall(cmd("GET", keys["shard1"][0]) * 100 + cmd("MGET", keys["shard1"][0], keys["shard2"][0]))
            wait_until(lambda: cluster.client().info("proxy")["server0"]["pending"] > 0 or
                       cluster.client().info("proxy")["server1"]["pending"] > 0, what="queued")
        finally:
            cluster.server_of("shard1").signal(signal.SIGCONT)
            status = cluster.proxy.stop()
            cluster.cleanup()
        self.assertEqual(status, 0)


class MaxPendingOneTest(ClusterTestCase):
    proxy = {"max_pending_per_client": 1}

    def test_pipeline_with_one_request_in_flight(self):
        keys = keys_by_shard(self.cluster, 2)
        allkeys = [k for ks in keys.values() for k in ks]
        s = connect(self.port)
        try:
            payload = b""
            expect = []
            for i in range(300):
                k = allkeys[i % len(allkeys)]
                payload += cmd("SET", k, i) + cmd("GET", k) + cmd("MGET", *allkeys[:3]) + b"PING\r\n"
                expect += ["OK", str(i).encode(), None, "PONG"]
            payload += cmd("QUIT")
            s.sendall(payload)
            rd = RespReader(s)
            for e in expect:
                got = rd.read()
                if e is None:
                    self.assertIsInstance(got, list)
                else:
                    self.assertEqual(got, e)
            self.assertEqual(rd.read(), "OK")
        finally:
            s.close()

    def test_protocol_error_after_backpressure(self):
        data = raw_exchange(self.port, cmd("PING") * 50 + b"*1\r\n:1\r\n" + cmd("PING"), read_until_close=True)
        self.assertEqual(data, b"+PONG\r\n" * 50 + b"-ERR Protocol error: expected '$', got ':'\r\n")


# ----------------------------------------------------------------------- memory --



class PinnedBlocksTest(unittest.TestCase):
    # BUG (memory amplification): a reply is forwarded as a view into the backend
    # connection's read block (proxy/backend/backend_connection.cc handle_replies: fragment->reply_block =
    # input_.block()), and proxy/net/buffer.cc ReadBuffer::prepare() keeps reading into the
    # free tail of a shared block. After a large reply (MGET of many keys: the block grows
    # by doubling to ~2x the reply), the next small replies land in the tail of that big
    # block. A client that does not read its replies holds up to max_pending_per_client of
    # them, each pinning a whole block of hundreds of kB: here ~800 pending 100-byte
    # replies keep ~240 MB alive (about 300 kB per reply). The README promises memory
    # stays bounded for clients that do not read; the bound is max_pending x the largest
    # block, not the reply bytes. Fix idea: copy small replies out of big blocks (or start
    # a fresh block after a large reply), or count pinned bytes in the backpressure.
    @unittest.skipIf(harness.SANITIZED, "RSS is meaningless under AddressSanitizer (quarantine)")
    def test_slow_client_small_replies_do_not_pin_large_blocks(self):
        cluster = Cluster(shards=1)
        try:
            r = cluster.client()
            keys = [f"k{i}" for i in range(3000)]
            pipe = r.pipeline(transaction=False)
            for k in keys:
                pipe.set(k, "v" * 100)
            pipe.execute()
            r.set("huge", "h" * (8 << 20))
            pid = cluster.proxy.proc.pid
            slow = socket.create_connection(("127.0.0.1", cluster.proxy.port))
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.sendall(cmd("GET", "huge") * 2)  # fills the socket buffers; never reads
            fast = connect(cluster.proxy.port)
            rd = RespReader(fast)
            fast.sendall(cmd("PING"))
            rd.read()
            wait_until(lambda: cluster.client().info("proxy")["server0"]["pending"] == 0, what="GETs answered")
            before = rss_kb(pid)
            mget = cmd("MGET", *keys)
            for _ in range(800):
                fast.sendall(mget)
                self.assertEqual(len(rd.read()), len(keys))
                slow.sendall(cmd("GET", "k1"))  # 100-byte reply, held: the client does not read
                fast.sendall(cmd("PING"))       # same backend connection: k1's reply is in by now
                rd.read()
            grown_mb = (rss_kb(pid) - before) / 1024
            slow.close()
            fast.close()
            # 800 held replies of ~110 bytes: anything near 64 MB is amplification.
            self.assertLess(grown_mb, 64, f"proxy RSS grew by {grown_mb:.0f} MB for ~90 kB of pending replies")
        finally:
            self.assertEqual(cluster.cleanup(), 0)


# ---------------------------------------------------------- local command edges --

class LocalCommandsTest(ClusterTestCase):

    def exchange(self, *commands):
        s = connect(self.port)
        try:
            s.sendall(b"".join(c if isinstance(c, bytes) else cmd(*c) for c in commands))
            rd = RespReader(s)
            return [rd.read() for _ in commands]
        finally:
            s.close()

    def test_select_hello_client_proxy_edges(self):
        replies = self.exchange(("SELECT", "0"), ("SELECT", "abc"), ("SELECT", ""), ("SELECT", "1"),
                                ("HELLO",), ("HELLO", "4"), ("HELLO", "x"), ("HELLO", "2", "SETNAME"),
                                ("CLIENT", "SETNAME", "a b"), ("CLIENT", "SETNAME", "ok"), ("CLIENT", "GETNAME"),
                                ("PROXY", "route"), ("PROXY", "nope"), ("PROXY", "ROUTE", ""), ("PROXY", "help"),
                                ("CLIENT", "nope"), ("COMMAND", "INFO", "get", "nosuch", ""), ("ECHO", "x"))
        self.assertEqual(replies[0], "OK")
        for i in (1, 2, 3, 5, 6, 7, 8, 11, 12, 15):
            self.assertIsInstance(replies[i], Error, (i, replies[i]))
        self.assertIsInstance(replies[4], list)
        self.assertEqual(replies[9], "OK")
        self.assertEqual(replies[10], b"ok")
        self.assertEqual(replies[13][0:2], [b"key", b""])
        self.assertIsInstance(replies[14], list)
        self.assertEqual(len(replies[16]), 3)
        self.assertEqual(replies[16][1], None)
        self.assertEqual(replies[17], b"x")

    # BUG (minor, wrong reply): HELLO's SETNAME option skips the name check CLIENT SETNAME
    # does (proxy/admin/local_commands.cc LocalCommands::answer "hello": client.set_name without
    # valid_client_name), so "HELLO 2 SETNAME 'a b'" answers the HELLO map and stores a name
    # with a space; redis answers "-ERR Client names cannot contain spaces...". Also, the
    # name is set before later options are checked: "HELLO 2 SETNAME x BAD" fails with a
    # syntax error but has renamed the client (redis applies nothing on error).
    def test_hello_setname_is_validated_like_client_setname(self):
        replies = self.exchange(("HELLO", "2", "SETNAME", "a b"), ("CLIENT", "GETNAME"),
                                ("HELLO", "2", "SETNAME", "x", "BAD"), ("CLIENT", "GETNAME"))
        self.assertIsInstance(replies[0], Error)
        self.assertIsNone(replies[1])
        self.assertIsInstance(replies[2], Error)
        self.assertIsNone(replies[3])

    def test_command_getkeys_edges(self):
        replies = self.exchange(("COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"),
                                ("COMMAND", "GETKEYS", "EVAL", "return 1", "0"),
                                ("COMMAND", "GETKEYS", "EVAL", "return 1", "-1"),
                                ("COMMAND", "GETKEYS", "EVAL", "return 1", "5", "a"),
                                ("COMMAND", "GETKEYS", "nosuch", "a"),
                                ("COMMAND", "GETKEYS", "XREAD", "STREAMS", "s1", "s2", "0", "0"),
                                ("COMMAND", "GETKEYS", "OBJECT", "ENCODING", "k"),
                                ("COMMAND", "GETKEYS", "OBJECT"),
                                ("COMMAND", "GETKEYS", "SORT", "l", "STORE", "d"),
                                ("COMMAND", "GETKEYS", "GET", "a"),
                                ("PING",))
        self.assertEqual(replies[0], [b"a", b"b"])
        self.assertIsInstance(replies[2], Error)
        self.assertIsInstance(replies[3], Error)
        self.assertIsInstance(replies[4], Error)
        self.assertEqual(replies[5], [b"s1", b"s2"])
        self.assertEqual(replies[6], [b"k"])
        self.assertEqual(replies[8], [b"l", b"d"])
        self.assertEqual(replies[9], [b"a"])
        self.assertEqual(replies[10], "PONG")

    def test_eval_numkeys_edges(self):
        replies = self.exchange(("EVAL", "return 1", "0"), ("EVAL", "return 1", "-1"),
                                ("EVAL", "return 1", "x"), ("EVAL", "return 1", "2", "k"),
                                ("EVAL", "return 1", "01", "k"), ("EVAL", "return KEYS[1]", "1", "k"),
                                ("EVAL", "return #KEYS", "2", "{t}a", "{t}b"),
                                ("EVAL", "return 1", "99999999999999999999999", "k"),
                                ("EVALSHA", "0" * 40, "1", "k"), ("PING",))
        self.assertEqual(replies[0], 1)  # no keys: one shard runs it (issue 13)
        for i in (1, 2, 3, 4, 7, 8):
            self.assertIsInstance(replies[i], Error, (i, replies[i]))
        self.assertEqual(replies[5], b"k")
        self.assertEqual(replies[6], 2)
        self.assertEqual(replies[9], "PONG")

    def test_xread_block_in_odd_places(self):
        self.r.xadd("{s}1", {"f": "v"}, id="1-1")
        replies = self.exchange(("XREAD", "BLOCK", "0", "STREAMS", "{s}1", "0"),
                                ("XREAD", "COUNT", "1", "BLOCK", "10", "STREAMS", "{s}1", "0"),
                                ("XREAD", "STREAMS", "block", "0"),
                                ("XREAD", "COUNT", "1", "STREAMS", "{s}1", "0"),
                                ("XREAD", "block", "STREAMS", "{s}1", "0"),
                                ("XREADGROUP", "GROUP", "block", "c", "STREAMS", "{s}1", ">"),
                                ("PING",))
        self.assertEqual(replies[0][0][0], b"{s}1")  # (issue 14: it blocks, and finds the entry at once)
        self.assertEqual(replies[1][0][0], b"{s}1")
        self.assertIsNone(replies[2])
        self.assertEqual(replies[3][0][0], b"{s}1")
        self.assertIsInstance(replies[4], Error)
        self.assertIsInstance(replies[5], Error)
        self.assertNotIn("BLOCK", replies[5])  # NOGROUP from redis, not refused as blocking
        self.assertEqual(replies[6], "PONG")


if __name__ == "__main__":
    unittest.main()
