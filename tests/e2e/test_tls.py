"""TLS for clients (issue 12, client side): [proxy.tls] beside the plain listener, or alone;
mutual TLS; a plaintext client on the TLS port; expired and wrong-CA certificates; a reload
that changes the certificate (and one that cannot). Certificates are made by the test with the
openssl command; clients are redis-py (ssl=True) and redis-cli --tls."""
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import unittest

import redis

from harness import Cluster, Proxy, RedisServer, free_port, scrape, toml_config, value, wait_until


class Certs:
    """A CA, a server certificate for localhost/127.0.0.1, a client certificate it signed, an
    expired server certificate, and another CA with a client certificate of its own."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ringproxy-tls-")
        self.ca = self.authority("ca")
        self.other_ca = self.authority("other-ca")
        self.server = self.issue("server", self.ca, "localhost", days=30, server=True)
        self.server2 = self.issue("server2", self.ca, "localhost", days=60, server=True)
        self.expired = self.issue("expired", self.ca, "localhost", days=-1, server=True)
        self.client = self.issue("client", self.ca, "ringproxy-test-client", days=30)
        self.stranger = self.issue("stranger", self.other_ca, "stranger", days=30)

    def path(self, name):
        return os.path.join(self.dir, name)

    def openssl(self, *args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=self.dir)

    def authority(self, name):
        self.openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt",
                     "-days", "30", "-subj", f"/CN=ringproxy test {name}")
        return name

    def issue(self, name, ca, cn, days, server=False):
        self.openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                     "-subj", f"/CN={cn}")
        with open(self.path(f"{name}.ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n" if server else "extendedKeyUsage=clientAuth\n")
        self.openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                     "-CAcreateserial", "-out", f"{name}.crt", "-days", str(days), "-extfile", f"{name}.ext")
        return name

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def tls_client(port, certs, cert=None, **kw):
    kw.setdefault("socket_timeout", 10)
    if cert:
        kw.update(ssl_certfile=certs.path(f"{cert}.crt"), ssl_keyfile=certs.path(f"{cert}.key"))
    return redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=certs.path("ca.crt"), **kw)


def tls_table(port, certs, server="server", **more):
    return {"listen": f"127.0.0.1:{port}", "cert_file": certs.path(f"{server}.crt"),
            "key_file": certs.path(f"{server}.key"), **more}


def served_certificate_serial(port):
    """The serial number of the certificate the listener presents (no verification)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
    return ssl.DER_cert_to_PEM_cert(der)


class TlsListenerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = Certs()
        cls.tls_port = free_port()
        cls.cluster = Cluster(shards=2, metrics=True, proxy={"tls": tls_table(cls.tls_port, cls.certs)})

    @classmethod
    def tearDownClass(cls):
        assert cls.cluster.cleanup() == 0
        cls.certs.cleanup()

    def metric(self, name, labels):
        return value(scrape(self.cluster.metrics_port), name, labels) or 0

    def test_redis_py_over_tls_reaches_every_shard(self):
        r = tls_client(self.tls_port, self.certs)
        keys = [f"tls:{i}" for i in range(20)]
        for i, key in enumerate(keys):
            self.assertTrue(r.set(key, i))
        self.assertEqual(r.mget(keys), [str(i).encode() for i in range(20)])
        # The same data through the plain listener: one proxy, two doors.
        self.assertEqual(self.cluster.client().get("tls:7"), b"7")
        self.assertGreater(sum(s.client().dbsize() > 0 for s in self.cluster.redis), 1, "keys on both shards")
        pipe = r.pipeline(transaction=False)
        for i in range(500):
            pipe.incr("tls:counter")
        self.assertEqual(pipe.execute()[-1], 500)
        self.assertEqual(int(self.cluster.client().info("server")["tls_port"]), self.tls_port)
        self.assertGreaterEqual(self.metric("ringproxy_tls_handshakes_total", '{outcome="ok",side="clients"}'), 1)
        self.assertGreaterEqual(self.metric("ringproxy_tls_connections", '{side="clients"}'), 1)

    def test_large_values_both_ways(self):
        r = tls_client(self.tls_port, self.certs)
        big = os.urandom(3 * 1024 * 1024)
        self.assertTrue(r.set("tls:big", big))
        self.assertEqual(r.get("tls:big"), big)

    def test_redis_cli_tls(self):
        cli = ["redis-cli", "--tls", "--cacert", self.certs.path("ca.crt"), "-h", "127.0.0.1", "-p", str(self.tls_port)]
        self.assertEqual(subprocess.run(cli + ["SET", "tls:cli", "v"], capture_output=True, text=True,
                                        timeout=10).stdout.strip(), "OK")
        self.assertEqual(subprocess.run(cli + ["GET", "tls:cli"], capture_output=True, text=True,
                                        timeout=10).stdout.strip(), "v")

    def test_a_plaintext_client_on_the_tls_port_is_closed_and_counted(self):
        failed = self.metric("ringproxy_tls_handshakes_total", '{outcome="failed",side="clients"}')
        with socket.create_connection(("127.0.0.1", self.tls_port), timeout=10) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            data = b""
            while True:  # an alert at most, then the close
                try:
                    chunk = s.recv(4096)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                data += chunk
            self.assertNotIn(b"PONG", data)
        wait_until(lambda: self.metric("ringproxy_tls_handshakes_total", '{outcome="failed",side="clients"}') > failed,
                   what="the failed handshake counted")
        self.assertIn("TLS handshake failed", self.cluster.proxy.log())
        self.assertTrue(tls_client(self.tls_port, self.certs).ping(), "still serving")

    def test_an_expired_certificate_is_refused_by_a_verifying_client(self):
        port = free_port()
        cluster = Cluster(shards=1, proxy={"tls": tls_table(port, self.certs, server="expired")})
        try:
            with self.assertRaises(redis.ConnectionError) as refused:
                tls_client(port, self.certs).ping()
            self.assertIn("certificate has expired", str(refused.exception))
        finally:
            self.assertEqual(cluster.cleanup(), 0)


class MutualTlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = Certs()
        cls.tls_port = free_port()
        cls.cluster = Cluster(shards=1, metrics=True, proxy={"tls": tls_table(
            cls.tls_port, cls.certs, ca_file=cls.certs.path("ca.crt"), require_client_cert=True)})

    @classmethod
    def tearDownClass(cls):
        assert cls.cluster.cleanup() == 0
        cls.certs.cleanup()

    def test_a_client_certificate_the_ca_signed_is_accepted(self):
        r = tls_client(self.tls_port, self.certs, cert="client")
        self.assertTrue(r.set("m", "1"))
        self.assertEqual(r.get("m"), b"1")

    def test_no_client_certificate_or_another_cas_is_refused(self):
        failed = value(scrape(self.cluster.metrics_port), "ringproxy_tls_handshakes_total",
                       '{outcome="failed",side="clients"}') or 0
        for cert in (None, "stranger"):
            with self.subTest(cert=cert):
                with self.assertRaises(redis.ConnectionError):
                    tls_client(self.tls_port, self.certs, cert=cert).ping()
        wait_until(lambda: (value(scrape(self.cluster.metrics_port), "ringproxy_tls_handshakes_total",
                                  '{outcome="failed",side="clients"}') or 0) >= failed + 2, what="two refusals counted")
        self.assertIn("certificate", self.cluster.proxy.log())


class TlsOnlyAndReloadTest(unittest.TestCase):
    def test_a_new_certificate_by_reload_and_a_bad_one_refused(self):
        certs = Certs()
        port = free_port()
        cluster = Cluster(shards=1, metrics=True, proxy={"tls": tls_table(port, certs)})
        try:
            # A new certificate in the file: a reload makes new sessions use it; an open one stays.
            r = tls_client(port, certs, single_connection_client=True)
            self.assertTrue(r.set("k", "1"))
            first = served_certificate_serial(port)
            shutil.copy(certs.path("server2.crt"), certs.path("server.crt"))
            shutil.copy(certs.path("server2.key"), certs.path("server.key"))
            self.assertIn(b"reloaded", cluster.client().execute_command("PROXY", "RELOAD"))
            self.assertNotEqual(served_certificate_serial(port), first)
            self.assertEqual(r.get("k"), b"1", "the open session goes on")
            expiry = value(scrape(cluster.metrics_port), "ringproxy_tls_certificate_expiry_timestamp_seconds",
                           f'{{file="{certs.path("server.crt")}",side="clients"}}')
            self.assertGreater(expiry, 0)
            # A key that does not match: the reload is refused and changes nothing.
            shutil.copy(certs.path("client.key"), certs.path("server.key"))
            with self.assertRaises(redis.ResponseError) as rejected:
                cluster.client().execute_command("PROXY", "RELOAD")
            self.assertIn("reload rejected", str(rejected.exception))
            self.assertIn("does not match", str(rejected.exception))
            self.assertNotIn("PRIVATE KEY", cluster.proxy.log())
            self.assertTrue(tls_client(port, certs).ping())
        finally:
            self.assertEqual(cluster.cleanup(), 0)
            certs.cleanup()

    def test_the_plain_listener_can_be_off(self):
        certs = Certs()
        port = free_port()
        try:
            workdir = tempfile.mkdtemp(prefix="ringproxy-e2e-")
            server = RedisServer(workdir).start()
            text = toml_config(port, [("s", [server.address])], proxy={"tls": tls_table(port, certs)})
            text = text.replace(f'listen = "127.0.0.1:{port}"\n', 'listen = ""\n', 1)
            proxy = Proxy(workdir, text, port)
            proxy.client_kwargs = {"ssl": True, "ssl_ca_certs": certs.path("ca.crt")}
            proxy.start()
            self.assertTrue(proxy.client().set("only", "tls"))
            self.assertEqual(int(proxy.client().info("server")["tcp_port"]), 0)
            self.assertEqual(proxy.stop(), 0)
            server.stop()
            shutil.rmtree(workdir, ignore_errors=True)
        finally:
            certs.cleanup()


if __name__ == "__main__":
    unittest.main()
