"""CLIENT INFO | LIST | KILL | SETINFO | NO-EVICT answered for the proxy's own clients (issue 13):
the proxy's connections to the servers are shared, so a server's CLIENT LIST says nothing about
the applications behind it; the proxy's does."""
import socket
import unittest

import redis

from harness import Cluster, cluster_with_app_user, raw_exchange, wait_until


def closed_by_proxy(sock):
    """True once the proxy has closed this raw connection (a read returns end of file)."""
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


class ClientCommandsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(shards=2)

    @classmethod
    def tearDownClass(cls):
        cls.cluster.cleanup()

    def client(self, name=None):
        c = self.cluster.client()
        if name:
            c.client_setname(name)
        self.addCleanup(c.close)
        return c

    def test_client_info_and_setinfo(self):
        c = self.client("info-test")
        c.execute_command("CLIENT", "SETINFO", "LIB-NAME", "redis-py")
        c.execute_command("CLIENT", "SETINFO", "lib-ver", "4.3.4")
        info = c.client_info()
        self.assertEqual(info["id"], c.client_id())
        self.assertEqual(info["name"], "info-test")
        self.assertEqual(info["user"], "default")
        self.assertEqual(info["laddr"], f"127.0.0.1:{self.cluster.proxy.port}")
        self.assertTrue(info["addr"].startswith("127.0.0.1:"))
        self.assertEqual(info["lib-name"], "redis-py")
        self.assertEqual(info["lib-ver"].strip(), "4.3.4")
        with self.assertRaisesRegex(redis.ResponseError, "Unrecognized option 'LIB-COLOR'"):
            c.execute_command("CLIENT", "SETINFO", "LIB-COLOR", "blue")
        with self.assertRaisesRegex(redis.ResponseError, "lib-name cannot contain spaces"):
            c.execute_command("CLIENT", "SETINFO", "LIB-NAME", "my lib")
        self.assertTrue(c.execute_command("CLIENT", "NO-EVICT", "on"))
        with self.assertRaisesRegex(redis.ResponseError, "syntax error"):
            c.execute_command("CLIENT", "NO-EVICT", "maybe")

    def test_client_list_shows_the_proxys_clients(self):
        a, b = self.client("list-a"), self.client("list-b")
        listed = {c["name"]: c for c in a.client_list()}
        self.assertIn("list-a", listed)
        self.assertIn("list-b", listed)
        self.assertEqual(int(listed["list-b"]["id"]), b.client_id())
        only_b = a.client_list(client_id=[str(b.client_id())])
        self.assertEqual([c["name"] for c in only_b], ["list-b"])
        self.assertEqual(a.client_list(_type="pubsub"), [])
        self.assertGreaterEqual(len(a.client_list(_type="normal")), 2)
        # A server's own list has only the proxy's shared connections, none of these names.
        server_names = {c["name"] for c in self.cluster.redis[0].client().client_list()}
        self.assertNotIn("list-a", server_names)

    def test_client_kill_by_id_addr_and_the_old_form(self):
        killer = self.client("killer")
        for how in ("id", "addr", "old"):
            with self.subTest(how):
                victim = socket.create_connection(("127.0.0.1", self.cluster.proxy.port))
                self.addCleanup(victim.close)
                victim.sendall(b"CLIENT SETNAME victim\r\nCLIENT ID\r\n")
                reply = b""
                while not reply.endswith(b"\r\n") or reply.count(b"\r\n") < 2:
                    reply += victim.recv(100)
                victim_id = int(reply.split(b"\r\n")[1][1:])
                addr = f"127.0.0.1:{victim.getsockname()[1]}"
                if how == "id":
                    self.assertEqual(killer.client_kill_filter(_id=victim_id), 1)
                elif how == "addr":
                    self.assertEqual(killer.client_kill_filter(addr=addr), 1)
                else:
                    self.assertTrue(killer.client_kill(addr))
                self.assertTrue(closed_by_proxy(victim))
                wait_until(lambda: all(c["name"] != "victim" for c in killer.client_list()), timeout=10,
                           what="the victim gone from CLIENT LIST")
        with self.assertRaisesRegex(redis.ResponseError, "No such client"):
            killer.client_kill("127.0.0.1:1")
        self.assertEqual(killer.client_kill_filter(_type="pubsub"), 0)
        with self.assertRaisesRegex(redis.ResponseError, "syntax error"):
            killer.execute_command("CLIENT", "KILL", "ID", "1", "NOPE", "x")

    def test_skipme_no_kills_the_caller_after_its_reply(self):
        sock = socket.create_connection(("127.0.0.1", self.cluster.proxy.port))
        self.addCleanup(sock.close)
        sock.sendall(b"CLIENT ID\r\n")
        own_id = int(sock.recv(100).strip()[1:])
        sock.sendall(f"CLIENT KILL ID {own_id} SKIPME no\r\n".encode())
        self.assertEqual(sock.recv(100), b":1\r\n")  # the reply first, then the close
        self.assertTrue(closed_by_proxy(sock))
        # SKIPME yes (the default) spares it.
        other = self.client()
        self.assertEqual(other.client_kill_filter(_id=other.client_id()), 0)
        self.assertTrue(other.ping())


class ClientPermissionsTest(unittest.TestCase):
    def test_list_and_kill_need_admin(self):
        cluster, app = cluster_with_app_user(self)
        self.assertEqual(app.client_info()["user"], "app")
        for command in (("CLIENT", "LIST"), ("CLIENT", "KILL", "ID", "1")):
            with self.assertRaisesRegex(redis.exceptions.NoPermissionError, "no permissions", msg=command):
                app.execute_command(*command)
        admin = cluster.client()
        self.assertIn("app", {c["user"] for c in admin.client_list()})
        self.assertEqual(admin.client_kill_filter(user="app"), 1)
        self.assertEqual(raw_exchange(cluster.proxy.port, b"PING\r\n", expect_bytes=7)[:1], b"-")  # NOAUTH: still checked


if __name__ == "__main__":
    unittest.main()
