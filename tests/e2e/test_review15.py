"""Review 15: bugs in the SIGTERM drain and `ringproxy import-twemproxy`, each shown by a test
that fails on the reviewed binary."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

import redis

from harness import (RINGPROXY_BIN, Cluster, Proxy, RedisServer, free_port, pending_on_servers, placement_after_writing,
                     resp, wait_until)

NUTCRACKER = shutil.which("nutcracker") or "/usr/sbin/nutcracker"


class DrainReviewTest(unittest.TestCase):
    def cluster(self, **kw):
        cluster = Cluster(**kw)
        self.addCleanup(cluster.cleanup)
        return cluster

    def test_a_pop_read_before_sigterm_but_dispatched_after_it_still_gets_its_timeout_reply(self):
        """Blocking::end_waits_in_proxy() runs once, when the drain starts. A BLPOP 0 the proxy had
        already read (buffered behind max_pending_per_client) is dispatched only after that, and
        then waits in the proxy with nothing to end it: the drain runs to shutdown_timeout_ms and
        cuts the client off without a reply, though the README promises that clients waiting in
        the proxy for a pop get their timeout reply and that every request read is answered."""
        cluster = self.cluster(shards=1, servers=2, replication={"strategy": "multi-primary", "write_ack": "all"},
                               proxy={"max_pending_per_client": 1, "shutdown_timeout_ms": 8000},
                               pool={"request_timeout_ms": 20000})
        for server in cluster.sets[0]:
            server.signal(signal.SIGSTOP)
            self.addCleanup(server.signal, signal.SIGCONT)
        sock = socket.create_connection(("127.0.0.1", cluster.proxy.port))
        self.addCleanup(sock.close)
        # The INCR goes out (and waits for the stopped servers); the BLPOP is read into the
        # proxy's buffer behind it (max_pending_per_client = 1).
        sock.sendall(resp("INCR", "n") + resp("BLPOP", "q", "0"))
        wait_until(lambda: pending_on_servers(cluster) >= 1, what="the INCR in flight")
        # (both came in one segment: the read that took the INCR took the BLPOP too)
        cluster.proxy.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "draining" in cluster.proxy.log(), what="the drain started")
        for server in cluster.sets[0]:
            server.signal(signal.SIGCONT)
        sock.settimeout(20)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        self.assertEqual(cluster.proxy.proc.wait(20), 0)
        self.assertEqual(data, b":1\r\n*-1\r\n", "the BLPOP read before SIGTERM was not answered")
        self.assertIn("drained in", cluster.proxy.log())

    def test_subscribers_are_closed_with_a_fin_not_a_reset_that_destroys_their_messages(self):
        """PubSub::close_subscribers() uses close_after_replies(): the socket is closed as soon as
        the last write is handed to the kernel, without the drain's linger. If the subscriber sent
        anything the proxy has not read (a PING, an UNSUBSCRIBE), that close is a reset, and the
        kernel throws away the messages still in the proxy's send buffer: a subscriber loses
        messages that were published (and counted as delivered) before the SIGTERM, exactly what
        ClientSession::linger() was written to prevent for other clients."""
        cluster = self.cluster(shards=1, pool={"request_timeout_ms": 20000})
        sub = socket.socket()
        sub.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sub.connect(("127.0.0.1", cluster.proxy.port))
        self.addCleanup(sub.close)
        sub.sendall(resp("SUBSCRIBE", "news"))
        confirmation = b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
        got = b""
        sub.settimeout(10)
        while len(got) < len(confirmation):
            got += sub.recv(len(confirmation) - len(got))
        self.assertEqual(got, confirmation)
        payload = b"x" * 1000
        publisher = cluster.client()
        published = 0
        for _ in range(40):  # 8 MB the subscriber does not read yet
            pipe = publisher.pipeline(transaction=False)
            for _ in range(200):
                pipe.publish("news", payload)
            published += sum(pipe.execute())
        self.assertEqual(published, 8000)
        cluster.proxy.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "draining" in cluster.proxy.log(), what="the drain started")
        sub.sendall(resp("PING"))  # input the proxy no longer reads
        message = b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$1000\r\n" + payload + b"\r\n"
        received = 0
        sub.settimeout(20)
        error = None
        try:
            while chunk := sub.recv(1 << 20):
                received += len(chunk)
        except OSError as e:
            error = e
        self.assertEqual(cluster.proxy.proc.wait(20), 0)
        self.assertIsNone(error, "the subscriber's connection ended with a reset")
        self.assertEqual(received // len(message), published, "messages published before SIGTERM were lost")


class ImportReviewTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ringproxy-review15-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def write(self, text, name="nutcracker.yml"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def import_(self, path):
        return subprocess.run([RINGPROXY_BIN, "import-twemproxy", path], capture_output=True, text=True, timeout=30)

    def check_config(self, toml):
        path = self.write(toml, "imported.toml")
        return subprocess.run([RINGPROXY_BIN, "--check-config", "-c", path], capture_output=True, text=True,
                              timeout=30)

    def assert_imports_to_a_loadable_config_or_refuses(self, yml):
        nutcracker = subprocess.run([NUTCRACKER, "-t", "-c", self.write(yml)], capture_output=True, text=True)
        self.assertEqual(nutcracker.returncode, 0, "nutcracker accepts this file: " + nutcracker.stderr)
        imported = self.import_(self.write(yml))
        self.assertIn(imported.returncode, (0, 1), "import-twemproxy crashed: " + imported.stderr[-300:])
        if imported.returncode == 0:
            checked = self.check_config(imported.stdout)
            self.assertEqual(checked.returncode, 0, "import-twemproxy printed a config ringproxy refuses: " +
                             checked.stderr + "\n" + imported.stdout)

    def test_a_server_line_ending_in_a_space_does_not_crash_the_import(self):
        """parse_server(): a quoted server line with a trailing space ("127.0.0.1:6379:1 ") has a
        space but no name after it; line.find_first_not_of(' ', space) is npos and substr(npos)
        throws std::out_of_range, which import_twemproxy() does not catch: the command aborts
        (SIGABRT, a core dump) instead of importing (nutcracker accepts the file) or saying why."""
        self.assert_imports_to_a_loadable_config_or_refuses(
            'alpha:\n  listen: 127.0.0.1:22121\n  redis: true\n  servers:\n   - "127.0.0.1:6379:1 "\n')

    def test_a_password_with_a_control_character_makes_a_loadable_toml(self):
        """quoted() escapes only bytes below 0x20: DEL (0x7f) is copied raw into a TOML basic
        string, where TOML forbids it. A redis_auth containing it imports with status 0 and the
        printed config does not load ('unescaped control characters ... prohibited')."""
        self.assert_imports_to_a_loadable_config_or_refuses(
            'alpha:\n  listen: 127.0.0.1:22121\n  redis: true\n  redis_auth: "pass\\x7fword"\n'
            '  servers:\n   - 127.0.0.1:6379:1\n')

    def test_a_pool_or_server_name_with_a_line_break_cannot_inject_toml(self):
        """The pool's name and each server's line are copied raw into TOML comments ('# From
        twemproxy's pool '<name>'', '# - <line>'): a line break in them ends the comment and the
        rest is read as TOML (here a table header; any key could be injected). nutcracker accepts
        both files; the import exits 0 with a config that does not load."""
        self.assert_imports_to_a_loadable_config_or_refuses(
            '"alpha\\n[proxy.x]":\n  listen: 127.0.0.1:22121\n  redis: true\n  servers:\n   - 127.0.0.1:6379:1\n')
        self.assert_imports_to_a_loadable_config_or_refuses(
            'alpha:\n  listen: 127.0.0.1:22121\n  redis: true\n  servers:\n   - "127.0.0.1:6379:1 a\\rb"\n')

    def test_servers_sharing_an_address_under_different_names_are_refused_not_printed(self):
        """twemproxy checks only names for duplicates when servers are named, so two named
        servers may share host:port (nutcracker -t accepts it). The import prints a TOML for it
        with exit status 0, and that TOML does not load ('duplicate server address'): the
        README promises an error that says why for what cannot be carried over."""
        self.assert_imports_to_a_loadable_config_or_refuses(
            'alpha:\n  listen: 127.0.0.1:22121\n  redis: true\n  servers:\n'
            '   - 127.0.0.1:6379:1 a\n   - 127.0.0.1:6379:1 b\n')


class ImportPlacementReviewTest(unittest.TestCase):
    def test_an_unnamed_server_written_with_a_zero_padded_port_keeps_its_keys(self):
        """twemproxy's ketama hashes an unnamed server by the host:port text as written in the
        file ('127.0.0.1:06379'); parse_server() rebuilds it from the parsed number
        (host + ":" + std::to_string(port) = '127.0.0.1:6379'), so the ring's points differ and
        keys land on other servers than under nutcracker: a switch loses them (silently: the
        import says every key stays on its server)."""
        workdir = tempfile.mkdtemp(prefix="ringproxy-review15-")
        self.addCleanup(shutil.rmtree, workdir, True)
        servers = [RedisServer(workdir).start() for _ in range(3)]
        for s in servers:
            self.addCleanup(s.stop)
        port = free_port()
        yml = os.path.join(workdir, "nutcracker.yml")
        with open(yml, "w") as f:
            f.write(f"alpha:\n  listen: 127.0.0.1:{port}\n  redis: true\n  timeout: 5000\n  servers:\n")
            for s in servers:
                f.write(f"   - 127.0.0.1:0{s.port}:1\n")
        keys = [f"user:{i}" for i in range(500)]

        def placement():
            return placement_after_writing(port, servers, keys)

        proc = subprocess.Popen([NUTCRACKER, "-c", yml, "-s", str(free_port()), "-o",
                                 os.path.join(workdir, "nc.log")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: redis.Redis(port=port, socket_timeout=2).set("probe", 1), what="nutcracker")
            expected = placement()
        finally:
            proc.terminate()
            proc.wait(10)
        imported = subprocess.run([RINGPROXY_BIN, "import-twemproxy", yml], capture_output=True, text=True,
                                  timeout=30)
        self.assertEqual(imported.returncode, 0, imported.stderr)
        proxy = Proxy(workdir, imported.stdout + '\n[metrics]\nlisten = ""\n', port).start()  # (metrics off: no port clash)
        self.addCleanup(proxy.stop)
        actual = placement()
        self.assertEqual(sum(len(k) for k in expected), len(keys))
        self.assertEqual(actual, expected, "keys land on other servers than under nutcracker")
