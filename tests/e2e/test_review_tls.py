"""Hostile review of TLS for clients (e6f93f0). Each test shows one bug; see the docstrings.

Run: RINGPROXY_BIN=... /usr/bin/python3 -m unittest test_review_tls
"""
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import unittest

import redis

from harness import (RINGPROXY_BIN, SANITIZED, Cluster, Proxy, RedisServer, free_port, resp, rss_kb, scrape,
                     toml_config, value, wait_until)
from test_tls import Certs, tls_client, tls_table


class MemoryTls:
    """A TLS client on memory BIOs over a raw socket, so that the test decides which records
    go out together, in one segment."""

    def __init__(self, port, certs, version=ssl.TLSVersion.TLSv1_3):
        context = ssl.create_default_context(cafile=certs.path("ca.crt"))
        context.minimum_version = context.maximum_version = version
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)

    def handshake(self):
        """Runs the handshake, but keeps the client's last flight (its Finished) unsent: it is
        left in self.outgoing for the caller to send with whatever comes next."""
        while True:
            try:
                self.obj.do_handshake()
                return
            except ssl.SSLWantReadError:
                pending = self.outgoing.read()
                if pending:
                    self.sock.sendall(pending)
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("closed during the handshake")
                self.incoming.write(data)

    def send(self, plain):
        self.obj.write(plain)
        self.sock.sendall(self.outgoing.read())

    def read_reply(self, until, limit=1 << 20):
        """Plaintext until `until` is in it, the peer closes, or the socket times out."""
        plain = b""
        while until not in plain and len(plain) < limit:
            try:
                chunk = self.obj.read(65536)
                if not chunk:
                    break  # the peer's close_notify
                plain += chunk
                continue
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:  # (an unexpected EOF: closed without close_notify)
                break
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, ConnectionError):
                break
            if not data:
                self.incoming.write_eof()
                continue
            self.incoming.write(data)
        return plain


class Frozen:
    """SIGSTOP/SIGCONT around a block: what the client sends meanwhile is one read for the
    proxy (no sleeping, no race)."""

    def __init__(self, pid):
        self.pid = pid

    def __enter__(self):
        os.kill(self.pid, signal.SIGSTOP)

    def __exit__(self, *exc):
        os.kill(self.pid, signal.SIGCONT)


class CloseNotifyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = Certs()
        cls.tls_port = free_port()
        cls.cluster = Cluster(shards=1, metrics=True, proxy={"tls": tls_table(cls.tls_port, cls.certs)})

    @classmethod
    def tearDownClass(cls):
        assert cls.cluster.cleanup() == 0
        cls.certs.cleanup()

    def test_requests_sent_with_a_close_notify_are_executed_and_answered(self):
        """BUG: on_tls_read (client_session.cc:148-157) reads every record of one socket read
        into input_, and when the last one is a close_notify (SSL_read -1, ZERO_RETURN) it
        returns close_after_replies() without ever calling parse_requests(): the requests read
        in the same socket read (a client that writes its commands then closes the TLS session
        cleanly, e.g. `printf 'SET k v\\r\\n' | openssl s_client -quiet`) are dropped silently,
        neither executed nor answered. Over plain TCP the same client's SET is executed (data
        and FIN are separate reads), as redis-server does over TLS."""
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            with self.subTest(version=version.name):
                key = f"review:cn:{version.name}"
                client = MemoryTls(self.tls_port, self.certs, version)
                client.handshake()
                client.sock.sendall(client.outgoing.read())
                client.send(resp("PING"))
                self.assertIn(b"+PONG", client.read_reply(b"+PONG"))
                client.obj.write(resp("SET", key, "v"))
                try:
                    client.obj.unwrap()  # our close_notify, after the SET, in the same flight
                except ssl.SSLWantReadError:
                    pass
                with Frozen(self.cluster.proxy.proc.pid):
                    client.sock.sendall(client.outgoing.read())
                reply = client.read_reply(b"+OK")
                client.sock.close()
                # redis-server 7 (--tls-port) executes and answers it (+OK), TLS 1.2 and 1.3.
                try:
                    wait_until(lambda: self.cluster.client().get(key) == b"v", timeout=5, what="the SET")
                except TimeoutError:
                    self.fail(f"the SET sent before the close_notify was never executed (reply: {reply!r})")
                self.assertIn(b"+OK", reply, "and answered")


class ValgrindProxy(Proxy):
    """The same binary under valgrind memcheck: an invalid read of freed memory is reported
    (the binary is not built with AddressSanitizer)."""

    def start(self, extra_args=()):
        self.vg_log = os.path.join(self.workdir, "valgrind.log")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(["valgrind", "-q", "--error-exitcode=77", f"--log-file={self.vg_log}",
                                          RINGPROXY_BIN, "--config", self.config_path, *extra_args],
                                         stdout=log, stderr=log)
        wait_until(lambda: self.client().ping(), timeout=120, what="ringproxy under valgrind")
        return self

    def stop(self):
        self.proc.terminate()
        return self.proc.wait(120)


@unittest.skipUnless(shutil.which("valgrind") and not SANITIZED, "needs valgrind")
class ClosedInsideTlsReadTest(unittest.TestCase):
    def test_a_session_closed_by_its_own_handshake_output_write_does_not_dispatch_requests(self):
        """BUG (use after free): on_tls_read calls send_tls_output() (client_session.cc:167)
        before parse_requests() (172). When that write fails at once (uv_try_write ECONNRESET:
        the client reset the connection after its last bytes), write_batch -> written_out ->
        close() closes the session; on_tls_read does not look and goes on to parse_requests(),
        which dispatches the requests of that read with request->client = the closed session
        (queued on head_ after close() emptied the queue). on_close deletes the session at the
        end of the loop iteration; the server's reply then comes back to
        DataPath -> request.client->on_request_done() on freed memory (data_path.cc:625/640).

        TLS 1.3 makes the write happen: the server's NewSessionTickets are produced by the same
        SSL_read that reads the client's Finished and the first request."""
        certs = Certs()
        workdir = tempfile.mkdtemp(prefix="ringproxy-review-")
        server = RedisServer(workdir).start()
        tls_port, port = free_port(), free_port()
        proxy = ValgrindProxy(workdir, toml_config(port, [("s", [server.address])],
                                                   proxy={"tls": tls_table(tls_port, certs)}), port)
        try:
            proxy.start()
            for i in range(3):
                client = MemoryTls(tls_port, certs)
                client.handshake()
                client.obj.write(resp("SET", f"review:rst:{i}", "v"))
                with Frozen(proxy.proc.pid):
                    client.sock.sendall(client.outgoing.read())  # Finished + the SET, one segment
                    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    client.sock.close()  # RST
                # Fixed: the session closed by its own failed write hands nothing on (the client
                # reset the connection: no reply could reach it). Before, the SET was dispatched
                # on the closed session and its reply read freed memory.
                admin = proxy.client(single_connection_client=True)
                wait_until(lambda: admin.info("clients")["connected_clients"] <= 1, timeout=60,
                           what="the reset session closed")
                admin.close()
            self.assertTrue(proxy.client().ping())  # the reply path has run (and the proxy lives)
            status = proxy.stop()
            with open(proxy.vg_log) as f:
                report = f.read()
            self.assertNotIn("Invalid read", report, report[:2500])
            self.assertEqual(status, 0, report[:6000])
        finally:
            if proxy.proc and proxy.proc.poll() is None:
                proxy.proc.kill()
                proxy.proc.wait()
            server.stop()
            certs.cleanup()
            shutil.rmtree(workdir, ignore_errors=True)


class ProtectedModeReloadTest(unittest.TestCase):
    def test_a_reload_cannot_drop_client_certificates_on_a_public_tls_listener(self):
        """BUG: protected mode at reload (reloader.cc:142-153) only checks the plain listener.
        The TLS listener's address is a restart's: a file that says 127.0.0.1 for it keeps the
        running 0.0.0.0, and the loader's own check (loader.cc:711) judged the file's loopback
        address. So a reload that sets require_client_cert = false (or removes the last
        password) leaves a public TLS port open to anyone, which start-up refuses."""
        certs = Certs()
        port = free_port()
        public = {"listen": f"0.0.0.0:{port}", "cert_file": certs.path("server.crt"),
                  "key_file": certs.path("server.key"), "ca_file": certs.path("ca.crt"),
                  "require_client_cert": True}
        cluster = Cluster(shards=1, proxy={"tls": public})
        try:
            with self.assertRaises(redis.ConnectionError):
                tls_client(port, certs).ping()  # no client certificate: refused
            with open(cluster.proxy.config_path) as f:
                text = f.read()
            text = text.replace(f'listen = "0.0.0.0:{port}"', f'listen = "127.0.0.1:{port}"')
            text = text.replace("require_client_cert = true", "require_client_cert = false")
            with open(cluster.proxy.config_path, "w") as f:
                f.write(text)
            try:
                reply = cluster.client().execute_command("PROXY", "RELOAD")
            except redis.ResponseError as rejected:
                reply = str(rejected).encode()
            # Whatever the reload says, the public port must still require a certificate.
            with self.assertRaises(redis.ConnectionError, msg=f"reload said: {reply!r}"):
                tls_client(port, certs).ping()
        finally:
            self.assertEqual(cluster.cleanup(), 0)
            certs.cleanup()


@unittest.skipIf(SANITIZED, "RSS means nothing under AddressSanitizer")
class IdleTlsMemoryTest(unittest.TestCase):
    def test_idle_tls_sessions_do_not_keep_their_largest_reply(self):
        """BUG: seal() copies a whole batch's ciphertext into WriteBatch::sealed and the batch
        goes back to spare_batches_ with sealed.clear(), which keeps its capacity; the session's
        output memory BIO (tls.cc) keeps its peak size too. So every TLS session keeps about
        twice the largest reply it ever received for as long as it stays open, although the
        README says idle TLS sessions hold no buffers. A plain session keeps nothing. Here: 6
        sessions that each read one 8 MiB value then sit idle pin ~100 MB."""
        certs = Certs()
        port = free_port()
        cluster = Cluster(shards=1, proxy={"tls": tls_table(port, certs)})
        try:
            big = os.urandom(8 << 20)
            cluster.client().set("review:big", big)
            pid = cluster.proxy.proc.pid
            # Plain clients first: the allocator's own retention, measured.
            plain = [cluster.client(single_connection_client=True) for _ in range(6)]
            for r in plain:
                self.assertEqual(len(r.get("review:big")), len(big))
            before = rss_kb(pid)
            sessions = [tls_client(port, certs, single_connection_client=True) for _ in range(6)]
            for r in sessions:
                self.assertEqual(len(r.get("review:big")), len(big))
            for r in sessions:
                self.assertTrue(r.ping())  # a small reply: the big one is long written
            grown_mb = (rss_kb(pid) - before) / 1024
            self.assertLess(grown_mb, 24, f"6 idle TLS sessions keep {grown_mb:.0f} MB")
        finally:
            self.assertEqual(cluster.cleanup(), 0)
            certs.cleanup()


class EncryptedKeyReloadTest(unittest.TestCase):
    def test_a_reload_with_a_passphrase_protected_key_does_not_block_the_loop(self):
        """BUG: TlsContext::for_listener (tls.cc:50) calls SSL_CTX_use_PrivateKey_file with no
        password callback, so for an encrypted PEM key OpenSSL's default callback opens the
        controlling terminal and waits for "Enter PEM pass phrase:" - inside the event loop.
        A proxy with a terminal (foreground, tmux/screen, `nohup ... &` from a shell, `docker
        run -t`) that reloads after a key was replaced by an encrypted one stops serving every
        client, plain and TLS, until someone types at that terminal. It should be a reload
        error (SSL_CTX_set_default_passwd_cb returning 0)."""
        import pty
        certs = Certs()
        workdir = tempfile.mkdtemp(prefix="ringproxy-review-")
        server = RedisServer(workdir).start()
        port, tls_port = free_port(), free_port()
        config = os.path.join(workdir, "ringproxy.toml")
        with open(config, "w") as f:
            f.write(toml_config(port, [("s", [server.address])], proxy={"tls": tls_table(tls_port, certs)}))
        pid, tty = pty.fork()  # the proxy with a controlling terminal
        if pid == 0:
            os.execv(RINGPROXY_BIN, [RINGPROXY_BIN, "--config", config])
        try:
            wait_until(lambda: redis.Redis(port=port, socket_timeout=2).ping(), what="ringproxy")
            subprocess.run(["openssl", "pkey", "-in", certs.path("server.key"), "-aes256", "-passout", "pass:secret",
                            "-out", certs.path("encrypted.key")], check=True, capture_output=True)
            shutil.copy(certs.path("encrypted.key"), certs.path("server.key"))
            try:
                reply = redis.Redis(port=port, socket_timeout=5).execute_command("PROXY", "RELOAD")
            except redis.ResponseError as rejected:
                reply = str(rejected)
            except redis.TimeoutError:
                reply = None
            terminal = os.read(tty, 65536).decode(errors="replace")
            self.assertIsNotNone(reply, f"PROXY RELOAD never answered; the terminal shows: {terminal[-200:]!r}")
            self.assertTrue(redis.Redis(port=port, socket_timeout=5).ping())
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(tty)
            server.stop()
            certs.cleanup()
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
