"""Review of RESP3 (HELLO 3) and its meeting with transactions: one failing test per bug.

Each test states the correct behaviour (what a single redis-server does, or what the proxy's own
design says) and fails against the build under review. Wire-level checks use test_resp3's
Resp3Connection; nothing sleeps a fixed time to wait for a state.
"""
import unittest

from harness import Cluster, resp, wait_until
from test_resp3 import Resp3Connection

PASSWORD = "Review-Secret-42"


class Resp3ReviewTest(unittest.TestCase):
    def cluster(self, **kw):
        cluster = Cluster(**kw)
        self.addCleanup(cluster.cleanup)
        return cluster

    def conn(self, port, hello=True):
        c = Resp3Connection(port)
        self.addCleanup(c.close)
        if hello:
            self.assertEqual(c.call("HELLO", "3")[0], "%")
        return c

    # 1. HELLO (same protocol) while watching takes the client out of its transaction.
    def test_hello_while_watching_keeps_the_watch_and_its_dedicated_connection(self):
        cluster = self.cluster(shards=1, pool={"dedicated_connections": 1})
        a = self.conn(cluster.proxy.port, hello=False)  # RESP2 on the wire, as redis-py would
        self.assertEqual(a.call("WATCH", "k"), ("+", "OK"))
        cluster.client().set("k", "changed")  # the watched key changes
        self.assertEqual(a.call("HELLO")[0], "*")  # HELLO with no version: a no-op for the protocol
        self.assertEqual(a.call("MULTI"), ("+", "OK"))
        self.assertEqual(a.call("SET", "k", "mine"), ("+", "QUEUED"))
        # Redis: the watched key changed, EXEC runs nothing and answers nil.
        self.assertEqual(a.call("EXEC"), ("*", None))
        self.assertEqual(cluster.client().get("k"), b"changed")
        # ...and the dedicated connection went back to the pool with the transaction's end.
        b = self.conn(cluster.proxy.port, hello=False)
        self.assertEqual(b.call("WATCH", "k"), ("+", "OK"))

    # 2. RESP3 server connections log in with a dangling password/user view.
    def test_a_resp3_client_works_against_servers_with_a_password(self):
        cluster = self.cluster(shards=1, pool={"password": PASSWORD, "retry_interval_ms": 200},
                               server_args=("--requirepass", PASSWORD),
                               server_credentials={"password": PASSWORD})
        c = self.conn(cluster.proxy.port)
        # The RESP3 connection logs in with HELLO 3 AUTH default <password>: it must be accepted.
        self.assertEqual(c.call("SET", "k", "v"), ("+", "OK"))
        self.assertEqual(c.call("GET", "k"), ("$", b"v"))
        # and RESP2 clients are untouched (the server is not marked down by a RESP3 login).
        self.assertEqual(cluster.client().get("k"), b"v")

    # 3. HELLO mid-pipeline: requests after it go on another server connection and overtake.
    def test_a_read_after_hello_in_a_pipeline_sees_the_write_before_it(self):
        cluster = self.cluster(shards=1)
        c = self.conn(cluster.proxy.port, hello=False)
        self.assertEqual(c.call("PING"), ("+", "PONG"))
        # Writes on the server wait 1 s (reads do not): a read sent on another connection
        # would run before the client's earlier write.
        cluster.redis[0].client().execute_command("CLIENT", "PAUSE", "1000", "WRITE")
        c.sock.sendall(resp("SET", "k", "v") + resp("HELLO", "3") + resp("GET", "k"))
        self.assertEqual(c.read(), ("+", "OK"))
        self.assertEqual(c.read()[0], "%")
        # One redis-server runs a connection's commands in order: GET sees the SET before it.
        self.assertEqual(c.read(), ("$", b"v"))

    # 4. The dedicated pool counts an idle connection of the other protocol as held.
    def test_a_resp3_watch_is_not_refused_while_no_dedicated_connection_is_held(self):
        cluster = self.cluster(shards=1, pool={"dedicated_connections": 1})
        resp2 = self.conn(cluster.proxy.port, hello=False)
        self.assertEqual(resp2.call("WATCH", "k"), ("+", "OK"))
        self.assertEqual(resp2.call("UNWATCH"), ("+", "OK"))  # given back clean: nothing is held
        resp3 = self.conn(cluster.proxy.port)
        # No watching client holds the one dedicated connection: a RESP3 client may WATCH.
        self.assertEqual(resp3.call("WATCH", "k"), ("+", "OK"))
        self.assertEqual(resp3.call("MULTI"), ("+", "OK"))
        self.assertEqual(resp3.call("SET", "k", "v"), ("+", "QUEUED"))
        self.assertEqual(resp3.call("EXEC"), ("*", [("+", "OK")]))

    # 5. A push message on a RESP3 server connection is taken as the next request's reply.
    def test_a_push_message_from_a_server_is_never_a_reply(self):
        cluster = self.cluster(shards=1, pool={"retry_interval_ms": 200})
        c = self.conn(cluster.proxy.port)
        self.assertEqual(c.call("GET", "x"), ("_", None))  # the server's RESP3 connection is open
        server = cluster.redis[0]
        lines = server.client().execute_command("CLIENT", "LIST").decode().splitlines()
        resp3_ids = [line.split()[0][3:] for line in lines if " resp=3" in line]
        self.assertEqual(len(resp3_ids), 1, lines)
        # Someone else's client tracking, redirected to the proxy's connection: its invalidations
        # are RESP3 push messages, which may come at any time (here before the SET's own reply).
        tracker = Resp3Connection(server.port)
        self.addCleanup(tracker.close)
        self.assertEqual(tracker.call("CLIENT", "TRACKING", "ON", "REDIRECT", resp3_ids[0]), ("+", "OK"))
        self.assertEqual(tracker.call("GET", "foo"), ("$", None))
        # The SET's reply is +OK: an out-of-band push is not a reply to anything.
        self.assertEqual(c.call("SET", "foo", "1"), ("+", "OK"))
        self.assertEqual(c.call("GET", "foo"), ("$", b"1"))
        self.assertNotIn("reply without a request", cluster.proxy.log())

    # 6. CLIENT INFO / LIST say resp=2 for a RESP3 client.
    def test_client_info_and_list_report_the_clients_protocol(self):
        cluster = self.cluster(shards=1)
        c = self.conn(cluster.proxy.port)
        kind, info = c.call("CLIENT", "INFO")
        self.assertIn(b" resp=3 ", info)  # redis: resp=3 after HELLO 3
        kind, listing = c.call("CLIENT", "LIST", "ID", c.call("CLIENT", "ID")[1])
        self.assertIn(b" resp=3 ", listing)


if __name__ == "__main__":
    unittest.main()
