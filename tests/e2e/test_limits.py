"""Bad input and limits: clear errors, never a crash, a hang or unbounded memory."""
import os
import socket
import time
import unittest

import harness

import redis

from harness import Cluster, raw_exchange, rss_kb, wait_until




class LimitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(shards=2, proxy={"max_clients": 20, "max_request_bytes": 1048576,
                                               "max_arguments": 1000, "max_pending_per_client": 64})
        cls.port = cls.cluster.proxy.port

    @classmethod
    def tearDownClass(cls):
        assert cls.cluster.cleanup() == 0

    def assert_alive(self):
        # Polls: clients a test just closed count against max_clients until the proxy
        # has read their FIN.
        wait_until(lambda: self.cluster.client().ping(), timeout=5, what="proxy answers PING")

    def test_garbage_gets_protocol_error_and_close(self):
        for garbage in (b"*1\r\n+PING\r\n", b"*x\r\n", b"*1\r\n$-5\r\n", b"*1\r\n$3\r\nGETxx",
                        b'SET a "unterminated\r\n'):
            data = raw_exchange(self.port, garbage, read_until_close=True)
            self.assertTrue(data.startswith(b"-ERR Protocol error"), (garbage, data))
        self.assert_alive()

    def test_replies_before_a_protocol_error_are_delivered(self):
        data = raw_exchange(self.port, b"PING\r\nECHO hi\r\n*1\r\n:1\r\n", read_until_close=True)
        self.assertTrue(data.startswith(b"+PONG\r\n$2\r\nhi\r\n-ERR Protocol error"), data)

    def test_request_and_argument_limits(self):
        big = b"x" * (2 * 1024 * 1024)
        data = raw_exchange(self.port, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % len(big), read_until_close=True)
        self.assertIn(b"max_request_bytes", data)
        data = raw_exchange(self.port, b"*5000\r\n", read_until_close=True)
        self.assertIn(b"max_arguments", data)
        self.assert_alive()

    def test_endless_line_is_cut_off(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            try:
                for _ in range(100):
                    s.sendall(b"A" * 4096)
            except (BrokenPipeError, ConnectionResetError):
                pass
            data = s.recv(1000)
        self.assertIn(b"too big inline request", data)
        self.assert_alive()

    def test_max_clients(self):
        held = []
        try:
            for _ in range(20):
                c = socket.create_connection(("127.0.0.1", self.port))
                c.sendall(b"PING\r\n")
                self.assertEqual(c.recv(100), b"+PONG\r\n")
                held.append(c)
            extra = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            self.assertIn(b"max number of clients", extra.recv(100))
            extra.close()
        finally:
            for c in held:
                c.close()
        time.sleep(0.2)
        self.assert_alive()

    def test_pipeline_flood_without_reading_keeps_memory_bounded(self):
        """A client that sends without reading replies is paused, not buffered without limit."""
        pid = self.cluster.proxy.proc.pid
        self.cluster.client().set("flood", b"v" * 100_000)
        before = rss_kb(pid)
        request = b"*2\r\n$3\r\nGET\r\n$5\r\nflood\r\n"
        s = socket.create_connection(("127.0.0.1", self.port))
        s.settimeout(1.0)  # sendall blocks once the proxy stops reading
        sent = 0
        chunk = request * 1000
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                s.sendall(chunk)
                sent += len(chunk)
            except socket.timeout:
                break
        grown = 0 if harness.SANITIZED else rss_kb(pid) - before  # ASan quarantines freed memory
        # Each GET asks for 100 kB: without backpressure 10 s of sending would queue GBs.
        self.assertLess(sent, 20 * 1024 * 1024, "the proxy never stopped reading")
        self.assertLess(grown, 64 * 1024, f"proxy RSS grew by {grown} kB")
        # Replies flow again as soon as the client reads (the first ones, in order).
        s.settimeout(10)
        reply = b"$100000\r\n" + b"v" * 100_000 + b"\r\n"
        buf = b""
        while len(buf) < 20 * len(reply):
            chunk = s.recv(1 << 20)
            self.assertTrue(chunk, "connection closed")
            buf += chunk
        got = 0
        while len(buf) >= len(reply):
            self.assertEqual(buf[:len(reply)], reply)
            buf = buf[len(reply):]
            got += 1
        s.close()
        self.assertGreater(got, 0)
        self.assert_alive()

    def test_client_gone_with_requests_in_flight(self):
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", self.port))
            s.sendall(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n" * 50)
            s.close()
        self.assert_alive()


if __name__ == "__main__":
    unittest.main()
