"""TLS from the proxy to its servers (issue 12, server side): [pool.tls] and a shard's own `tls`
table, against real redis-servers that speak TLS only (`--port 0 --tls-port P`).

Every connection the proxy opens to a server (data, probes, resyncs, repairs, key moves) must be
TLS: the servers here have no plain port, so a plain connection cannot succeed. Covered: commands
across shards with TLS on both sides (redis-py, redis-cli) and with a password; mutual TLS;
handshake failures (wrong CA, the system's CAs, an expired certificate, a wrong name, a wrong IP,
no client certificate, TLS 1.3 only against a TLS 1.2 server, a plaintext server that answers
the ClientHello and one that never does), each marking its server down with OpenSSL's reason;
verify = false; SNI as sent, and the name checked on probes as on data connections (a recording
TLS listener); metrics; a shard's own table (or TLS off) beside the pool's; bad tables at start
and at reload; certificates changed by reload (new connections use them, open ones stay); a
kill -9 + empty restart resynced over TLS (`tls-replication` set by the proxy) under INCR load,
then a repair; keys moved off a removed shard by a reload. Certificates are made with the
openssl command (test_tls.Certs and a few more).
"""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import unittest

import redis

from harness import (RINGPROXY_BIN, Cluster, Proxy, RedisServer, count_incrs, digests, free_port, scrape,
                     server_infos, server_states, shard_infos, toml_config, wait_until)
from test_tls import Certs, tls_client, tls_table

PASSWORD = "Tls-Backend-Secret-5d2e"


class ServerCerts(Certs):
    """test_tls's certificates (a CA "ca"; "server" for localhost/127.0.0.1; "expired"; "client";
    "other-ca" and its "stranger"), plus: "dns-only", a server certificate with a DNS name and no
    IP address; "client90" (the CA's, 90 days) and "stranger60" (other-ca's, 60 days): client
    certificates whose expiry tells them apart from "client" (30 days) in the expiry metric."""

    def __init__(self):
        super().__init__()
        self.issue_with("dns-only", self.ca, "localhost", 30, "subjectAltName=DNS:localhost\n")
        self.issue_with("client90", self.ca, "ringproxy-test-client-90", 90, "extendedKeyUsage=clientAuth\n")
        self.issue_with("stranger60", self.other_ca, "stranger-60", 60, "extendedKeyUsage=clientAuth\n")

    def issue_with(self, name, ca, cn, days, extensions):
        self.openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                     "-subj", f"/CN={cn}")
        with open(self.path(f"{name}.ext"), "w") as f:
            f.write(extensions)
        self.openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                     "-CAcreateserial", "-out", f"{name}.crt", "-days", str(days), "-extfile", f"{name}.ext")

    def not_after(self, path):
        """A certificate's notAfter in Unix seconds, as `openssl x509 -enddate` prints it."""
        out = subprocess.run(["openssl", "x509", "-enddate", "-noout", "-in", path], capture_output=True, text=True,
                             check=True).stdout.strip()
        return ssl.cert_time_to_seconds(out.split("=", 1)[1])

    def key_lines(self):
        """The base64 lines of every private key made here: none may reach a log."""
        lines = set()
        for name in os.listdir(self.dir):
            if name.endswith(".key"):
                with open(self.path(name)) as f:
                    lines.update(line.strip() for line in f if line.strip() and not line.startswith("-----"))
        return lines


CERTS = None


def setUpModule():
    global CERTS
    CERTS = ServerCerts()


def tearDownModule():
    CERTS.cleanup()


class TlsRedisServer(RedisServer):
    """A redis-server with TLS only: no plain port, `tls-port` = self.port. `cert`: its certificate
    (the names of ServerCerts); `trust`: the CA it checks client certificates (and, as a replica,
    its master's) with; `auth_clients`: redis's tls-auth-clients (yes = a client certificate is
    required). Our own clients (its readiness ping, client()) use TLS with a client certificate
    `trust` signed, and do not check the server's (not what is tested here)."""

    def __init__(self, workdir, cert="server", trust="ca", auth_clients="optional", more=()):
        super().__init__(workdir)
        self.cert, self.auth_clients, self.more = cert, auth_clients, tuple(more)
        self.trust(trust)

    def trust(self, ca):
        """Which CA signs accepted client certificates from the next start on."""
        self.trusted = ca
        client = "client" if ca == "ca" else "stranger60"
        self.client_kwargs.update(ssl=True, ssl_cert_reqs="none", ssl_certfile=CERTS.path(f"{client}.crt"),
                                  ssl_keyfile=CERTS.path(f"{client}.key"))

    def start(self, *extra_args):
        # The harness's own --port comes first: redis reads its options in order, the last wins.
        return super().start("--port", "0", "--tls-port", str(self.port),
                             "--tls-cert-file", CERTS.path(f"{self.cert}.crt"),
                             "--tls-key-file", CERTS.path(f"{self.cert}.key"),
                             "--tls-ca-cert-file", CERTS.path(f"{self.trusted}.crt"),
                             "--tls-auth-clients", self.auth_clients, *self.more, *extra_args)


class TlsCluster(Cluster):
    """harness.Cluster whose servers are TlsRedisServers (auth_clients for all of them)."""

    def __init__(self, auth_clients="optional", **kw):
        self.auth_clients = auth_clients
        self.started = []
        try:
            super().__init__(**kw)
        except BaseException:  # (a proxy that did not start): nothing is left running
            proxy = getattr(self, "proxy", None)
            if proxy is not None and proxy.proc is not None and proxy.proc.poll() is None:
                proxy.proc.kill()
                proxy.proc.wait()
            for server in self.started:
                server.stop()
            if not os.environ.get("RINGPROXY_E2E_KEEP"):
                shutil.rmtree(self.workdir, ignore_errors=True)
            raise

    def _server(self, credentials):
        server = TlsRedisServer(self.workdir, auth_clients=self.auth_clients)
        server.client_kwargs.update(credentials or {})
        server.default_args = self.server_args
        self.started.append(server)
        return server.start()


def server_tls(client="client", **more):
    """A [pool.tls] (or a shard's tls) table: our CA, and the client certificate `client` (None: none)."""
    table = {"ca_file": CERTS.path("ca.crt")}
    if client:
        table.update(cert_file=CERTS.path(f"{client}.crt"), key_file=CERTS.path(f"{client}.key"))
    table.update(more)
    return table


FAST = {"failure_limit": 1, "retry_interval_ms": 200, "connect_timeout_ms": 1000, "request_timeout_ms": 2000}


def metric(text, name, **labels):
    """The sum of the samples of `name` whose labels include `labels`, whatever their order;
    None when there is no such sample."""
    total = None
    for m in re.finditer(rf"^{re.escape(name)}(?:\{{([^}}]*)\}})? (\S+)$", text, re.M):
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total = (total or 0) + float(m.group(2))
    return total


def handshakes(metrics_port, outcome):
    return metric(scrape(metrics_port), "ringproxy_tls_handshakes_total", side="servers", outcome=outcome) or 0


def route(proxy, key):
    reply = proxy.client().execute_command("PROXY", "ROUTE", key)
    return dict(zip(reply[0::2], reply[1::2]))[b"shard"].decode()


def keys_on(proxy, names, prefix):
    """One key per shard name (PROXY ROUTE), in the order of `names`."""
    found, i = {}, 0
    while len(found) < len(names):
        key = f"{prefix}:{i}"
        found.setdefault(route(proxy, key), key)
        i += 1
    return [found[n] for n in names]


def poke(proxy, key="k"):
    """A request for `key` (it opens a data connection to its server if none is open); errors
    ignored."""
    try:
        proxy.client().get(key)
    except redis.ResponseError:
        pass


def rewrite(proxy, text):
    """Replaces a proxy's config file the way editors do (a new file renamed over it)."""
    tmp = proxy.config_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, proxy.config_path)


def reload_reply(proxy):
    """PROXY RELOAD's answer, or its error's text."""
    try:
        return proxy.client().execute_command("PROXY", "RELOAD").decode()
    except redis.ResponseError as rejected:
        return str(rejected)


class Workdir:
    """A test's own directory, servers and proxies, all stopped by PID (addCleanup) and removed."""

    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="ringproxy-e2e-")
        if not os.environ.get("RINGPROXY_E2E_KEEP"):
            self.addCleanup(shutil.rmtree, self.workdir, True)

    def server(self, tls=True, **kw):
        server = TlsRedisServer(self.workdir, **kw) if tls else RedisServer(self.workdir)
        self.addCleanup(server.stop)
        return server.start()

    def proxy(self, shards, pool, metrics=True, proxy=None, args=("--no-watch",)):
        """A ringproxy for `shards` ([(name, [addresses], weight, {more keys})]) with these [pool]
        keys; its metrics port is proxy.metrics_port."""
        port = free_port()
        metrics_port = free_port() if metrics else None
        proxy_ = Proxy(self.workdir, toml_config(port, shards, metrics_port=metrics_port, pool=pool, proxy=proxy), port)
        proxy_.metrics_port = metrics_port
        self.addCleanup(proxy_.stop)  # by PID, even when the start fails
        proxy_.start(args)
        self.addCleanup(lambda: self.assertEqual(proxy_.stop(), 0, "ringproxy exits cleanly on SIGTERM"))
        return proxy_


class TlsBothSidesTest(unittest.TestCase):
    """Three shards of TLS-only servers that require a client certificate and a password (a
    managed service's shape); the proxy has a TLS listener too."""

    @classmethod
    def setUpClass(cls):
        cls.tls_port = free_port()
        cls.cluster = TlsCluster(shards=3, metrics=True, auth_clients="yes",
                                 proxy={"tls": tls_table(cls.tls_port, CERTS)},
                                 pool={"tls": server_tls(), "password": PASSWORD},
                                 server_args=("--requirepass", PASSWORD), server_credentials={"password": PASSWORD})

    @classmethod
    def tearDownClass(cls):
        assert cls.cluster.cleanup() == 0

    def keys(self, prefix):
        return keys_on(self.cluster.proxy, self.cluster.names, prefix)

    def test_commands_reach_every_shard_over_tls(self):
        r = self.cluster.client()
        keys = self.keys("both")
        for i, key in enumerate(keys):
            self.assertTrue(r.set(key, i))
            self.assertEqual(self.cluster.redis[i].client().get(key), str(i).encode(), f"{key} on its shard's server")
        self.assertEqual(r.mget(keys), [str(i).encode() for i in range(3)])
        self.assertEqual(r.delete(*keys), 3)
        self.assertEqual(server_states(self.cluster), ["up"] * 3)

    def test_tls_clients_through_tls_servers_redis_py_and_redis_cli(self):
        r = tls_client(self.tls_port, CERTS)
        keys = self.keys("tls2") + [f"tls2:more:{i}" for i in range(20)]
        for i, key in enumerate(keys):
            self.assertTrue(r.set(key, i))
        self.assertEqual(r.mget(keys), [str(i).encode() for i in range(len(keys))])
        cli = ["redis-cli", "--tls", "--cacert", CERTS.path("ca.crt"), "-h", "127.0.0.1", "-p", str(self.tls_port)]

        def run(*args):
            out = subprocess.run(cli + list(args), capture_output=True, text=True, timeout=10)
            return out.stdout.strip() + out.stderr.strip()

        for i, key in enumerate(keys[:3]):
            self.assertEqual(run("SET", key, f"cli{i}"), "OK")
        self.assertEqual(run("MGET", *keys[:3]).split("\n"), ["cli0", "cli1", "cli2"])

    def test_large_values_and_a_pipeline(self):
        """Replies that span many TLS records, and many requests in one write."""
        r = tls_client(self.tls_port, CERTS)
        big = os.urandom(3 * 1024 * 1024)
        key = self.keys("big")[1]
        self.assertTrue(r.set(key, big))
        self.assertEqual(self.cluster.redis[1].client().strlen(key), len(big))
        self.assertEqual(r.get(key), big)
        pipe = self.cluster.client().pipeline(transaction=False)
        for i in range(500):
            pipe.incr(f"pipe:{i % 7}")
        self.assertEqual(sum(pipe.execute()[-7:]), 500, "the last INCR of each of 7 keys adds up to 500")

    def test_metrics(self):
        self.cluster.client().mget(self.keys("metrics"))  # every server's data connection is open
        text = scrape(self.cluster.metrics_port)
        ok = metric(text, "ringproxy_tls_handshakes_total", side="servers", outcome="ok")
        self.assertIsNotNone(ok, "ringproxy_tls_handshakes_total{side=\"servers\",outcome=\"ok\"} is exported")
        self.assertGreaterEqual(ok, 3, "at least one handshake per server")
        self.assertEqual(metric(text, "ringproxy_tls_handshakes_total", side="servers", outcome="failed") or 0, 0,
                         "no failed handshake to servers that accept the proxy")
        self.assertGreaterEqual(metric(text, "ringproxy_tls_connections", side="servers") or 0, 3,
                                "one open TLS data connection per server at least")
        cert = CERTS.path("client.crt")
        expiry = metric(text, "ringproxy_tls_certificate_expiry_timestamp_seconds", side="servers", file=cert)
        self.assertIsNotNone(expiry, f"an expiry sample for {cert}:\n" +
                             "\n".join(line for line in text.splitlines() if "expiry" in line))
        self.assertAlmostEqual(expiry, CERTS.not_after(cert), delta=1)

    def test_no_key_or_password_in_the_log_info_or_metrics(self):
        self.cluster.client().set("secret:probe", "1")
        texts = {"log": self.cluster.proxy.log(), "INFO": str(self.cluster.client().info("everything")),
                 "metrics": scrape(self.cluster.metrics_port)}
        for where, text in texts.items():
            self.assertNotIn(PASSWORD, text, f"the password is in the {where}")
            self.assertNotIn("PRIVATE KEY", text, f"a key is in the {where}")
            leaked = [line for line in CERTS.key_lines() if line in text]
            self.assertEqual(leaked, [], f"lines of a key file are in the {where}")


class ProbeOverTlsTest(Workdir, unittest.TestCase):
    def test_a_killed_server_is_probed_over_tls_and_used_again(self):
        servers = [self.server(auth_clients="yes") for _ in range(2)]
        proxy = self.proxy([(f"s{i}", [s.address]) for i, s in enumerate(servers)], {"tls": server_tls(), **FAST})
        key = keys_on(proxy, ["s0", "s1"], "probe")[0]
        r = proxy.client()
        self.assertTrue(r.set(key, "before"))
        failed = handshakes(proxy.metrics_port, "failed")
        ok = handshakes(proxy.metrics_port, "ok")
        servers[0].kill()
        wait_until(lambda: poke(proxy, key) or server_states(proxy)[0] == "down", timeout=20,
                   what="the killed server down")
        with self.assertRaises(redis.ResponseError):
            r.get(key)
        servers[0].start()  # same port, TLS only, empty
        wait_until(lambda: r.set(key, "after") is True, timeout=20, what="s0 served again")
        self.assertEqual(servers[0].client().get(key), b"after")
        self.assertGreater(handshakes(proxy.metrics_port, "ok"), ok, "the probe and new connection shook hands")
        self.assertEqual(handshakes(proxy.metrics_port, "failed"), failed,
                         "a refused connect (the server was dead) is not a failed handshake")


class HandshakeFailuresTest(Workdir, unittest.TestCase):
    """Each bad pairing of the proxy's table and a server marks the server down with OpenSSL's
    reason in INFO's last_error and the log, counts a failed handshake, and fails the shard's
    requests; the proxy keeps running. Each good counterpart serves."""

    def down_with(self, server, table, *reasons, prefix="TLS handshake failed"):
        """Starts a proxy with [pool.tls] = table for `server`; asserts it is down with one of `reasons`."""
        proxy = self.proxy([("s", [server.address])], {"tls": table, **FAST})
        wait_until(lambda: poke(proxy) or server_states(proxy) == ["down"], timeout=20, what="the server marked down")
        error = server_infos(proxy)[0]["last_error"]
        if prefix:
            self.assertTrue(error.startswith(prefix), f"last_error starts with {prefix!r}: {error!r}")
        self.assertTrue(any(reason in error for reason in reasons), f"one of {reasons} in last_error: {error!r}")
        with self.assertRaises(redis.ResponseError) as refused:
            proxy.client().get("k")
        self.assertIn("shard 's'", str(refused.exception))
        if prefix:  # (a refusal after a TLS 1.3 handshake may come as an alert on the first read)
            wait_until(lambda: handshakes(proxy.metrics_port, "failed") >= 1, timeout=10,
                       what="a failed handshake counted")
        self.assertTrue(any(reason in proxy.log() for reason in reasons), f"one of {reasons} in the log")
        self.assertIsNone(proxy.proc.poll(), "the proxy is running")
        return proxy

    def up_with(self, server, table, address=None):
        """Starts a proxy with [pool.tls] = table for `server`; asserts it serves."""
        proxy = self.proxy([("s", [address or server.address])], {"tls": table, **FAST})
        wait_until(lambda: proxy.client().set("k", "v") is True, timeout=20, what="a SET through the proxy")
        self.assertEqual(server.client().get("k"), b"v")
        self.assertEqual(server_states(proxy), ["up"])
        self.assertGreaterEqual(handshakes(proxy.metrics_port, "ok"), 1)
        return proxy

    def test_a_certificate_another_ca_signed(self):
        server = self.server()
        self.down_with(server, server_tls(client=None, ca_file=CERTS.path("other-ca.crt")),
                       "unable to get local issuer certificate", "self-signed certificate")
        self.up_with(server, server_tls(client=None, ca_file=CERTS.path("other-ca.crt"), verify=False))

    def test_without_ca_file_the_systems_cas_are_used(self):
        server = self.server()
        self.down_with(server, {}, "unable to get local issuer certificate", "self-signed certificate")
        self.up_with(server, {"verify": False})

    def test_an_expired_certificate(self):
        server = self.server(cert="expired")
        self.down_with(server, server_tls(client=None), "certificate has expired")
        self.up_with(server, server_tls(client=None, verify=False))

    def test_a_name_the_certificate_does_not_have(self):
        server = self.server()
        self.down_with(server, server_tls(client=None, server_name="cache.example"), "hostname mismatch")
        self.up_with(server, server_tls(client=None, server_name="localhost"))

    def test_an_ip_address_the_certificate_does_not_have(self):
        server = self.server(cert="dns-only")  # DNS:localhost, no IP SAN
        self.down_with(server, server_tls(client=None), "IP address mismatch")
        self.up_with(server, server_tls(client=None, server_name="localhost"))

    def test_a_server_that_requires_a_client_certificate(self):
        server = self.server(auth_clients="yes")
        # TLS 1.3: the server refuses after the client's Finished ("certificate required" alert).
        self.down_with(server, server_tls(client=None), "certificate", prefix=None)
        self.up_with(server, server_tls())

    def fake_down(self, fake, *reasons, prefix):
        """A proxy with TLS to `fake` (a PlainServer); once a probe has failed too (3 connections:
        the data connection's and two probes', so the second has ended), the server is down with
        one of `reasons` and each failure was counted."""
        self.addCleanup(fake.close)
        pool = {"tls": server_tls(client=None), **FAST, "connect_timeout_ms": 500, "request_timeout_ms": 500}
        proxy = self.proxy([("s", [fake.address])], pool)
        wait_until(lambda: poke(proxy) or fake.connections >= 3, timeout=20, what="3 connections to the server")
        self.assertEqual(server_states(proxy), ["down"])
        error = server_infos(proxy)[0]["last_error"]
        self.assertTrue(error.startswith(prefix), f"last_error (a probe's) starts with {prefix!r}: {error!r}")
        self.assertTrue(any(reason in error for reason in reasons), f"one of {reasons} in last_error: {error!r}")
        self.assertGreaterEqual(handshakes(proxy.metrics_port, "failed"), 2,
                                "the data connection's failed handshake and the first probe's, counted")

    def test_a_plain_server_that_answers_the_hello_with_an_error(self):
        # What redis without TLS does when the ClientHello's random bytes hold a newline.
        self.fake_down(PlainServer(answer=b"-ERR unknown command\r\n"), "wrong version number",
                       "packet length too long", "record layer failure", prefix="TLS handshake failed")

    def test_a_server_that_never_answers_the_hello(self):
        # What redis without TLS does with most ClientHellos: it waits for the end of a line.
        self.fake_down(PlainServer(answer=None), "timed out", prefix="TLS handshake")

    def test_a_plain_redis_server(self):
        server = self.server(tls=False)
        proxy = self.proxy([("s", [server.address])], {"tls": server_tls(client=None), **FAST})
        wait_until(lambda: poke(proxy) or server_states(proxy) == ["down"], timeout=20, what="down")
        self.assertIn("TLS handshake", server_infos(proxy)[0]["last_error"])
        proxy = self.proxy([("s", [server.address])], dict(FAST))
        self.assertTrue(proxy.client().set("plain", "1"), "the same server without [pool.tls]")

    def test_tls_1_3_only_against_a_tls_1_2_server(self):
        server = self.server(more=("--tls-protocols", "TLSv1.2"))
        self.down_with(server, server_tls(client=None, min_version="1.3"), "protocol")
        self.up_with(server, server_tls(client=None))  # min_version 1.2 by default


class PlainServer:
    """A plaintext server (not redis) that counts connections; to whatever a connection sends
    first it writes `answer` and closes (None: it never answers, and closes when the peer does)."""

    def __init__(self, answer):
        self.answer = answer
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.open = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            self.connections += 1
            self.open.append(conn)
            threading.Thread(target=self.talk, args=(conn,), daemon=True).start()

    def talk(self, conn):
        try:
            while conn.recv(65536):
                if self.answer is not None:
                    conn.sendall(self.answer)
                    break
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        except OSError:
            pass
        self.sock.close()
        for conn in self.open:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class TlsRecorder:
    """A TLS listener (not redis) that records, for each connection, the server name of the
    ClientHello (None: no SNI) and whether the handshake completed ("ok": the proxy accepted
    the certificate and sent its Finished; else the error, e.g. the proxy's alert), then closes
    it. Probes retry every retry_interval_ms, so data and side connections both show up."""

    def __init__(self, cert="server", host="127.0.0.1"):
        self.events = []
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(CERTS.path(f"{cert}.crt"), CERTS.path(f"{cert}.key"))
        self.context.sni_callback = self.on_sni
        self.sni = None
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def on_sni(self, sock, name, context):
        self.sni = name

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            conn.settimeout(5)
            self.sni = None
            try:
                with self.context.wrap_socket(conn, server_side=True):
                    outcome = "ok"
            except (ssl.SSLError, OSError) as e:
                outcome = repr(e)
            finally:
                conn.close()
            self.events.append((self.sni, outcome))

    def names(self):
        return {name for name, _ in self.events}

    def completed(self):
        return [e for e in self.events if e[1] == "ok"]

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        except OSError:
            pass
        self.sock.close()
        self.thread.join(10)


def loopback_name():
    """This machine's host name and the loopback address it resolves to, or None (not every
    machine maps its name to 127.x in /etc/hosts)."""
    name = socket.gethostname()
    try:
        addresses = {a[4][0] for a in socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)}
    except OSError:
        return None
    if name == "localhost" or len(addresses) != 1 or not next(iter(addresses)).startswith("127."):
        return None
    return name, addresses.pop()


class ServerNameTest(Workdir, unittest.TestCase):
    """SNI as sent and the name checked, on every connection to a server: its data connection
    (opened by a request) and its probes (every retry_interval_ms while it is down)."""

    def recorders(self, shards, pool_table, at_least=3):
        """shards: [(name, recorder, address or None, {more keys})]; runs a proxy until each
        recorder saw `at_least` connections."""
        for _, recorder, _, _ in shards:
            self.addCleanup(recorder.close)
        proxy = self.proxy([(name, [address or f"127.0.0.1:{recorder.port}"], 1, more)
                            for name, recorder, address, more in shards], {"tls": pool_table, **FAST})
        keys = keys_on(proxy, [name for name, _, _, _ in shards], "sni")
        for (name, recorder, _, _), key in zip(shards, keys):
            wait_until(lambda: poke(proxy, key) or len(recorder.events) >= at_least, timeout=20,
                       what=f"{at_least} connections to shard {name}: {recorder.events}")
        return proxy

    def test_sni_is_server_name_and_none_for_an_ip(self):
        by_ip, named = TlsRecorder(), TlsRecorder()
        self.recorders([("ip", by_ip, None, {}),
                        ("named", named, None, {"tls": server_tls(server_name="cache.example")})], server_tls())
        self.assertEqual(by_ip.names(), {None}, f"no SNI for an IP address: {by_ip.events}")
        self.assertTrue(by_ip.completed(), "the IP is in the certificate: handshakes complete")
        self.assertEqual(named.names(), {"cache.example"}, f"server_name as SNI on every connection: {named.events}")

    def test_every_connection_checks_the_servers_name(self):
        """Not only data connections: a probe that skipped the check would bring a server
        that fails it back up (and a resync or repair would talk to it)."""
        dns_only, control = TlsRecorder(cert="dns-only"), TlsRecorder()
        named = TlsRecorder()
        self.recorders([("ip", dns_only, None, {}), ("control", control, None, {}),
                        ("named", named, None, {"tls": server_tls(server_name="cache.example")})], server_tls())
        self.assertEqual(dns_only.completed(), [],
                         f"a certificate without the server's IP is refused on every connection: {dns_only.events}")
        self.assertEqual(named.completed(), [],
                         f"a certificate without server_name is refused on every connection: {named.events}")
        self.assertTrue(control.completed(), f"the control's handshakes complete: {control.events}")

    def test_a_host_name_address_is_sent_and_checked(self):
        found = loopback_name()
        if found is None:
            self.skipTest("this machine's host name does not resolve to a loopback address")
        name, ip = found
        cert = f"host-{name}"
        if not os.path.exists(CERTS.path(f"{cert}.crt")):
            CERTS.issue_with(cert, CERTS.ca, name, 30, f"subjectAltName=DNS:{name}\n")
        right, wrong = TlsRecorder(cert=cert, host=ip), TlsRecorder(cert="dns-only", host=ip)  # DNS:localhost
        self.recorders([("right", right, f"{name}:{right.port}", {}), ("wrong", wrong, f"{name}:{wrong.port}", {})],
                       server_tls())
        for recorder in (right, wrong):
            self.assertEqual(recorder.names(), {name}, f"the address's host name as SNI: {recorder.events}")
        self.assertTrue(right.completed(), f"a certificate for {name} is accepted: {right.events}")
        self.assertEqual(wrong.completed(), [], f"a certificate for another name is refused: {wrong.events}")


class PerShardTlsTest(Workdir, unittest.TestCase):
    def test_a_shard_with_tls_off_and_a_shard_with_its_own_table(self):
        pooled, own, plain = self.server(auth_clients="yes"), self.server(auth_clients="yes"), self.server(tls=False)
        names = ["pooled", "own", "plain"]
        # "own" replaces the pool's whole table: no client certificate, which its server requires.
        proxy = self.proxy([("pooled", [pooled.address]),
                            ("own", [own.address], 1, {"tls": server_tls(client=None)}),
                            ("plain", [plain.address], 1, {"tls": {"enabled": False}})],
                           {"tls": server_tls(), **FAST})
        keys = keys_on(proxy, names, "shard")
        r = proxy.client()
        self.assertTrue(r.set(keys[0], "tls"))
        self.assertTrue(r.set(keys[2], "plain"))
        self.assertEqual(pooled.client().get(keys[0]), b"tls")
        self.assertEqual(plain.client().get(keys[2]), b"plain")
        wait_until(lambda: server_states(proxy)[1] == "down", timeout=20,
                   what="'own' down: its table has no client certificate (not merged with the pool's)")
        self.assertIn("certificate", server_infos(proxy)[1]["last_error"])
        self.assertEqual(r.mget(keys[0], keys[2]), [b"tls", b"plain"])

    def test_tls_off_for_the_pool_and_on_for_one_shard(self):
        tls, plain = self.server(), self.server(tls=False)
        proxy = self.proxy([("tls", [tls.address], 1, {"tls": server_tls()}), ("plain", [plain.address])],
                           {"tls": server_tls(enabled=False), **FAST})
        keys = keys_on(proxy, ["tls", "plain"], "off")
        r = proxy.client()
        for key in keys:
            self.assertTrue(r.set(key, key))
        self.assertEqual(tls.client().get(keys[0]), keys[0].encode())
        self.assertEqual(plain.client().get(keys[1]), keys[1].encode())


class BadTablesAtStartTest(Workdir, unittest.TestCase):
    def start_fails(self, table, *words):
        """ringproxy with [pool.tls] = table exits non-zero at start, naming each of `words` (a
        tuple: one of them); so does --check-config (it loads the certificates and keys as the
        start does, not only the file's syntax)."""
        port = free_port()
        path = os.path.join(self.workdir, f"bad-{port}.toml")
        with open(path, "w") as f:
            f.write(toml_config(port, [("s", [f"127.0.0.1:{free_port()}"])], pool={"tls": table}))
        for extra in ([], ["--check-config"]):
            try:
                out = subprocess.run([RINGPROXY_BIN, "--config", path, *extra], capture_output=True, text=True,
                                     timeout=10)
            except subprocess.TimeoutExpired:
                self.fail(f"ringproxy {extra} started with [pool.tls] = {table}")
            text = out.stdout + out.stderr
            self.assertNotEqual(out.returncode, 0, f"{extra}: {text}")
            for word in words:
                alternatives = word if isinstance(word, tuple) else (word,)
                self.assertTrue(any(w in text for w in alternatives), f"{extra}: one of {alternatives} in: {text}")
            self.assertNotIn("PRIVATE KEY", text)

    def test_bad_tables_stop_the_start_with_the_reason(self):
        missing = os.path.join(self.workdir, "missing-ca.crt")
        cases = {
            "cert_file without key_file": ({"cert_file": CERTS.path("client.crt")}, ["cert_file", "key_file"]),
            "key_file without cert_file": ({"key_file": CERTS.path("client.key")}, ["cert_file", "key_file"]),
            "an unreadable ca_file": ({"ca_file": missing}, ["ca_file", missing]),
            "an unreadable cert_file": ({"cert_file": missing, "key_file": CERTS.path("client.key")}, [missing]),
            "a key that does not match": (server_tls(key_file=CERTS.path("stranger.key")),
                                          [("key_file", CERTS.path("stranger.key"))]),
            "a file that is not a certificate": (server_tls(ca_file=CERTS.path("client.ext")), ["ca_file"]),
            "TLS 1.1": ({"min_version": "1.1"}, ["min_version"]),
            "verify as a string": ({"verify": "no"}, ["verify"]),
        }
        for case, (table, words) in cases.items():
            with self.subTest(case):
                self.start_fails(table, *words)


class ReloadTest(Workdir, unittest.TestCase):
    def write(self, proxy, servers, table):
        rewrite(proxy, toml_config(proxy.port, [("s", [s.address for s in servers])],
                                   metrics_port=proxy.metrics_port, pool={"tls": table, **FAST}))

    def copy_cert(self, name, to):
        """Copies certificate `name` and its key to workdir/to.crt and to.key; returns their paths."""
        paths = [os.path.join(self.workdir, f"{to}.{ext}") for ext in ("crt", "key")]
        for ext, path in zip(("crt", "key"), paths):
            shutil.copy(CERTS.path(f"{name}.{ext}"), path)
        return paths

    def expiry(self, proxy, path):
        return metric(scrape(proxy.metrics_port), "ringproxy_tls_certificate_expiry_timestamp_seconds",
                      side="servers", file=path)

    def test_a_new_ca_file_by_reload(self):
        server = self.server()
        proxy = self.proxy([("s", [server.address])], {"tls": server_tls(ca_file=CERTS.path("other-ca.crt")), **FAST})
        wait_until(lambda: poke(proxy) or server_states(proxy) == ["down"], timeout=20,
                   what="down: the proxy does not trust the server's CA")
        error = server_infos(proxy)[0]["last_error"]
        self.assertTrue("unable to get local issuer certificate" in error or "self-signed certificate" in error, error)
        self.write(proxy, [server], server_tls())
        self.assertIn("reloaded", reload_reply(proxy))
        wait_until(lambda: proxy.client().set("k", "ca") is True, timeout=20, what="served with the new CA")
        self.assertEqual(server.client().get("k"), b"ca")

    def test_a_new_client_certificate_is_used_by_new_connections_and_open_ones_stay(self):
        server = self.server(auth_clients="yes")  # trusts "ca"
        first = self.copy_cert("client", "first")
        proxy = self.proxy([("s", [server.address])],
                           {"tls": server_tls(cert_file=first[0], key_file=first[1]), **FAST})
        r = proxy.client()
        wait_until(lambda: r.set("k", "1") is True, timeout=20, what="served with the first certificate")
        self.assertAlmostEqual(self.expiry(proxy, first[0]), CERTS.not_after(first[0]), delta=1)
        admin = server.client(single_connection_client=True)
        mine = admin.client_id()
        before = {c["id"] for c in admin.client_list() if int(c["id"]) != mine}
        self.assertTrue(before, "the proxy's connections")

        # By path, with SIGHUP: another CA's certificate (not accepted by the server yet).
        second = self.copy_cert("stranger60", "second")
        self.write(proxy, [server], server_tls(cert_file=second[0], key_file=second[1]))
        proxy.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reloaded (SIGHUP)" in proxy.log(), timeout=10, what="the SIGHUP reload")
        self.assertAlmostEqual(self.expiry(proxy, second[0]), CERTS.not_after(second[0]), delta=1)
        self.assertEqual(r.get("k"), b"1", "the open connection serves on")
        after = {c["id"] for c in admin.client_list() if int(c["id"]) != mine}
        self.assertTrue(before <= after, f"the open connections stay: {before} then {after}")
        admin.close()
        # The server now trusts only other-ca: only a connection with the new certificate gets in.
        server.kill()
        server.trust("other-ca")
        server.start()
        wait_until(lambda: r.set("k", "2") is True, timeout=20, what="served again with the second certificate")

        # In place (the same paths, new contents), with PROXY RELOAD: the CA's 90-day certificate.
        shutil.copy(CERTS.path("client90.crt"), second[0])
        shutil.copy(CERTS.path("client90.key"), second[1])
        self.assertIn("reloaded", reload_reply(proxy))
        self.assertAlmostEqual(self.expiry(proxy, second[0]), CERTS.not_after(CERTS.path("client90.crt")), delta=1)
        server.kill()
        server.trust("ca")
        server.start()
        wait_until(lambda: r.set("k", "3") is True, timeout=20, what="served again with the rotated certificate")
        self.assertNotIn("PRIVATE KEY", proxy.log())

    def test_a_bad_certificate_by_reload_is_rejected_and_changes_nothing(self):
        server = self.server(auth_clients="yes")
        proxy = self.proxy([("s", [server.address])], {"tls": server_tls(), **FAST})
        r = proxy.client()
        wait_until(lambda: r.set("k", "1") is True, timeout=20, what="served")
        missing = os.path.join(self.workdir, "missing.crt")
        cases = {
            "a key that does not match": (server_tls(key_file=CERTS.path("stranger.key")),
                                          ("key_file", CERTS.path("stranger.key"))),
            "an unreadable certificate": (server_tls(cert_file=missing), (missing,)),
            "cert_file without key_file": ({"ca_file": CERTS.path("ca.crt"), "cert_file": CERTS.path("client.crt")},
                                           ("key_file",)),
        }
        for case, (table, words) in cases.items():
            with self.subTest(case):
                self.write(proxy, [server], table)
                reply = reload_reply(proxy)
                self.assertIn("reload rejected", reply)
                self.assertTrue(any(w in reply for w in words), f"one of {words} in the reply: {reply}")
                error = str(proxy.client().info("proxy")["config_last_reload_error"])
                self.assertTrue(any(w in error for w in words), f"INFO says why: {error}")
        # SIGHUP with the mismatched key: rejected and logged.
        self.write(proxy, [server], server_tls(key_file=CERTS.path("stranger.key")))
        proxy.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload (SIGHUP) rejected" in proxy.log(), timeout=10, what="the SIGHUP reload rejected")
        self.assertGreaterEqual(int(proxy.client().info("proxy")["config_reloads_failed"]), 4)
        self.assertEqual(r.get("k"), b"1", "still serving")
        # Nothing changed: new connections still present the first certificate, which the server wants.
        server.kill()
        server.start()
        wait_until(lambda: r.set("k", "2") is True, timeout=20, what="served again after a restart")
        self.assertNotIn("PRIVATE KEY", proxy.log())


class ResyncOverTlsTest(unittest.TestCase):
    """A replica killed (kill -9) under INCR load and restarted empty, TLS only, is resynced from
    a TLS peer: the proxy sets its tls-replication first. Every acknowledged INCR counts once on
    every server; the path was a resync. Then a repair, over TLS too."""

    def test_kill_restart_empty_resync_and_repair(self):
        cluster = TlsCluster(shards=1, servers=3, auth_clients="optional", proxy_args=("--no-watch",),
                             pool={"tls": server_tls(), **FAST, "request_timeout_ms": 1000, "connect_timeout_ms": 500},
                             replication={"strategy": "primary-replica", "write_ack": "quorum"})
        stop, errors, acked = threading.Event(), [], []
        threads = [threading.Thread(target=count_incrs, args=(cluster.client(), stop, errors, acked))
                   for _ in range(2)]
        try:
            for t in threads:
                t.start()
            wait_until(lambda: len(acked) > 500, timeout=60, what="load")
            victim = cluster.sets[0][2]
            self.assertEqual(victim.client().config_get("tls-replication")["tls-replication"], "no",
                             "not preset: the proxy must set it")
            victim.kill()
            wait_until(lambda: server_states(cluster)[2] != "up", timeout=20, what="the proxy sees it gone")
            victim.start()  # same port, TLS only, empty
            wait_until(lambda: server_infos(cluster)[2]["resyncs"] >= 1, timeout=60,
                       what=f"a resync ({server_infos(cluster)[2]})")
            self.assertEqual(victim.client().config_get("tls-replication")["tls-replication"], "yes")
            resynced_at = len(acked)
            wait_until(lambda: len(acked) > resynced_at + 1000, timeout=60, what="load after the resync")
            stop.set()
            for t in threads:
                t.join(30)
            self.assertEqual(errors, [], "a quorum of 3 survives one replica")
            wait_until(lambda: server_states(cluster) == ["up"] * 3, timeout=30, what="all up")
            wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, timeout=10, what="digests equal")
            counts = [s.client().get("counter") for s in cluster.sets[0]]
            self.assertEqual(counts, [str(len(acked)).encode()] * 3, "every acknowledged INCR once on every server")
            # A repair's side connections are TLS too.
            cluster.sets[0][1].client().set("drifted", "x")
            self.assertIn(b"started", cluster.client().execute_command("PROXY", "REPAIR", "shard1"))
            wait_until(lambda: shard_infos(cluster)[0]["repairs_finished"] >= 1, timeout=30, what="repair")
            self.assertEqual(shard_infos(cluster)[0]["repairs_failed"], 0)
            wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, timeout=10, what="repaired")
            self.assertIsNone(cluster.sets[0][1].client().get("drifted"), "the primary's copy (none) wins")
        finally:
            stop.set()
            for t in threads:
                t.join(30)
            self.assertEqual(cluster.cleanup(), 0)


class MigrationOverTlsTest(unittest.TestCase):
    def test_keys_move_off_a_removed_tls_shard(self):
        pool = {"tls": server_tls(), "migration": "move", "migration_keys_per_second": 100000}
        cluster = TlsCluster(shards=3, auth_clients="yes", pool=pool, proxy_args=("--no-watch",))
        try:
            r = cluster.client()
            for i in range(300):
                r.set(f"m:{i}", i)
            self.assertGreater(cluster.redis[2].client().dbsize(), 0, "shard3 holds keys")
            shards = [(n, [rs[0].address]) for n, rs in zip(cluster.names[:2], cluster.sets[:2])]
            rewrite(cluster.proxy, toml_config(cluster.proxy.port, shards, pool=pool))
            self.assertIn("reloaded", reload_reply(cluster.proxy))
            wait_until(lambda: cluster.client().info("proxy")["migration_state"] == "done", timeout=60,
                       what="the move pass")
            self.assertEqual(int(cluster.client().info("proxy")["migration_keys_failed"]), 0)
            self.assertEqual(cluster.redis[2].client().dbsize(), 0, "every key left shard3")
            self.assertEqual([r.get(f"m:{i}") for i in range(300)], [str(i).encode() for i in range(300)])
        finally:
            self.assertEqual(cluster.cleanup(), 0)


if __name__ == "__main__":
    unittest.main()
