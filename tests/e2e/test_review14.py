"""Hostile review of blocking commands and pub/sub (issue 14): each test names the correct
behaviour and fails against the build under review; its docstring says what is wrong and what
redis-server (7.0) does.

Run: RINGPROXY_BIN=... /usr/bin/python3 -m unittest test_review14
"""
import signal
import socket
import time
import unittest

from harness import (Cluster, RedisServer, SANITIZED, digests, resp, rss_kb, toml_config,
                     wait_until)
from test_resp3 import Resp3Connection


def connect(test, port):
    """A raw connection (RESP2 until HELLO 3), closed when the test ends."""
    conn = Resp3Connection(port)
    test.addCleanup(conn.close)
    return conn


def send(conn, *commands):
    """Several commands in one write (a pipeline)."""
    conn.sock.sendall(b"".join(resp(*c) for c in commands))


def clients_info(cluster):
    return cluster.client().info("clients")


class PubSubReview(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster(shards=2)
        self.addCleanup(self.cluster.cleanup)

    def test_unsubscribe_without_channels_counts_the_patterns_left(self):
        """PSUBSCRIBE p*, then UNSUBSCRIBE (no channel subscribed): redis answers
        [unsubscribe, nil, 1] (the client's count, its pattern included). The proxy answers
        [unsubscribe, nil, 0]: it writes 0 for the 'nothing to end' case whenever the client
        has no channel, ignoring its patterns."""
        c = connect(self, self.cluster.proxy.port)
        self.assertEqual(c.call("PSUBSCRIBE", "p*"), ("*", [("$", b"psubscribe"), ("$", b"p*"), (":", 1)]))
        self.assertEqual(c.call("UNSUBSCRIBE"), ("*", [("$", b"unsubscribe"), ("$", None), (":", 1)]))

    def test_a_resp3_subscriber_can_block(self):
        """A RESP3 client in subscribed mode may send any command (README: 'RESP3 clients get
        pushes and may send anything'); on redis, HELLO 3 / SUBSCRIBE ch / RPUSH l a / BLPOP l 1
        answers [l, a]. The proxy answers 'ERR BLPOP cannot block while a WATCH holds the
        client's connection': Blocking::start takes any handler but the data path's for a WATCH."""
        c = connect(self, self.cluster.proxy.port)
        c.call("HELLO", "3")
        self.assertEqual(c.call("SUBSCRIBE", "ch")[0], ">")
        self.assertEqual(c.call("RPUSH", "l", "a"), (":", 1))
        self.assertEqual(c.call("BLPOP", "l", "1"), ("*", [("$", b"l"), ("$", b"a")]))

    def test_a_resp3_subscriber_may_switch_back_to_resp2(self):
        """HELLO 3 / SUBSCRIBE ch / HELLO 2: redis switches the client (any command is allowed
        in RESP3's subscribed mode) and its next messages are RESP2 arrays. The proxy refuses
        with 'ERR HELLO cannot change the protocol inside a transaction or a WATCH' (the
        subscriber's handler is taken for a transaction's); and had it switched, PubSub keeps
        the protocol of the SUBSCRIBE and would push RESP3 '>' frames to a RESP2 client."""
        c = connect(self, self.cluster.proxy.port)
        c.call("HELLO", "3")
        self.assertEqual(c.call("SUBSCRIBE", "ch")[0], ">")
        kind, _ = c.call("HELLO", "2")
        self.assertEqual(kind, "*", "HELLO 2 refused for a RESP3 subscriber")
        self.assertEqual(self.cluster.client().publish("ch", "m"), 1)
        self.assertEqual(c.read(), ("*", [("$", b"message"), ("$", b"ch"), ("$", b"m")]))

    def test_a_resp3_subscriber_that_ran_multi_is_forgotten_when_it_closes(self):
        """HELLO 3 / SUBSCRIBE ch / MULTI / EXEC, then close: the transactions take the client's
        handler over from PubSub (and give it back to the data path), so PubSub is never told the
        client closed. Its state stays: pubsub_clients stays 1, the server keeps the subscription
        (PUBLISH counts 1 receiver), and PubSub keeps a pointer to the freed ClientSession: the
        next messages go to whatever client reuses that memory (seen: a new client's PUBLISH
        read '>3', a message push, as its reply). On redis the subscription ends with the
        connection: PUBLISH answers 0."""
        c = Resp3Connection(self.cluster.proxy.port)
        c.call("HELLO", "3")
        self.assertEqual(c.call("SUBSCRIBE", "ch")[0], ">")
        self.assertEqual(c.call("MULTI"), ("+", "OK"))
        self.assertEqual(c.call("EXEC"), ("*", []))
        c.close()
        wait_until(lambda: int(clients_info(self.cluster)["connected_clients"]) == 1, what="the subscriber gone")
        publisher = connect(self, self.cluster.proxy.port)  # (may reuse the freed session)
        replies = [publisher.call("PUBLISH", "ch", f"m{i}") for i in range(3)]
        self.assertEqual(replies, [(":", 0)] * 3, "a message of the closed subscriber went to another client")
        wait_until(lambda: int(clients_info(self.cluster)["pubsub_clients"]) == 0, timeout=5,
                   what="pubsub_clients back to 0")

    def test_a_watching_client_that_subscribes_gives_back_its_watch_connection_when_it_closes(self):
        """WATCH k / SUBSCRIBE ch, then close (redis allows SUBSCRIBE after WATCH): PubSub takes
        the client's handler over from the transactions, so they are never told the client
        closed: the WATCH's dedicated connection stays held (the server still shows it, cmd=watch)
        for good. With [pool] dedicated_connections = 2, two later clients cannot both WATCH:
        'ERR no dedicated connection free ... all 2 are held'."""
        cluster = Cluster(shards=1, pool={"dedicated_connections": 2})
        self.addCleanup(cluster.cleanup)
        c = Resp3Connection(cluster.proxy.port)
        self.assertEqual(c.call("WATCH", "k"), ("+", "OK"))
        self.assertEqual(c.call("SUBSCRIBE", "ch"), ("*", [("$", b"subscribe"), ("$", b"ch"), (":", 1)]))
        c.close()
        wait_until(lambda: int(clients_info(cluster)["connected_clients"]) == 1, what="the client gone")
        wait_until(lambda: int(clients_info(cluster)["pubsub_clients"]) == 0, what="its subscription gone")
        a, b = connect(self, cluster.proxy.port), connect(self, cluster.proxy.port)
        self.assertEqual(a.call("WATCH", "k"), ("+", "OK"))
        self.assertEqual(b.call("WATCH", "k"), ("+", "OK"))

    def test_publish_and_pubsub_are_refused_in_resp2_subscribed_mode(self):
        """A RESP2 subscriber may only (un)subscribe, PING, QUIT and RESET; redis answers PUBLISH
        and PUBSUB there with "ERR Can't execute 'publish': only (P|S)SUBSCRIBE / ... are allowed
        in this context". PubSub::dispatch hands PUBLISH, SPUBLISH and PUBSUB ... to command()
        before checking the mode: PUBLISH runs (and the client's own subscription then gets the
        message, out of step with its replies)."""
        c = connect(self, self.cluster.proxy.port)
        c.call("SUBSCRIBE", "ch")
        for command in (("PUBLISH", "other", "x"), ("SPUBLISH", "other", "x"), ("PUBSUB", "NUMSUB", "ch")):
            kind, text = c.call(*command)
            self.assertEqual(kind, "-", f"{command[0]} ran in RESP2 subscribed mode")
            self.assertIn("only (P|S)SUBSCRIBE", text)

    def test_pubsub_numsub_and_channels_are_arrays_in_resp3(self):
        """In RESP3, redis 7.0 answers PUBSUB NUMSUB / SHARDNUMSUB with a flat array
        [ch, 1, other, 0] and PUBSUB CHANNELS with an array. The proxy answers a map ('%') and a
        set ('~'): a client that decodes the array (redis-py's parse_pubsub_numsub pairs it up)
        gets another shape than from redis."""
        sub = connect(self, self.cluster.proxy.port)
        sub.call("SUBSCRIBE", "ch")
        c = connect(self, self.cluster.proxy.port)
        c.call("HELLO", "3")
        self.assertEqual(c.call("PUBSUB", "NUMSUB", "ch", "other"),
                         ("*", [("$", b"ch"), (":", 1), ("$", b"other"), (":", 0)]))
        self.assertEqual(c.call("PUBSUB", "SHARDNUMSUB", "ch"), ("*", [("$", b"ch"), (":", 0)]))
        self.assertEqual(c.call("PUBSUB", "CHANNELS"), ("*", [("$", b"ch")]))

    def test_commands_after_a_pipelined_unsubscribe_run_outside_subscribed_mode(self):
        """Pipelined SUBSCRIBE ch / UNSUBSCRIBE ch / GET k (RESP2): after the UNSUBSCRIBE the
        client has no subscription and redis runs GET ('v'). The proxy keeps the client in
        subscribed mode until the servers' confirmations come back, so the GET parsed meanwhile
        is refused: "ERR Can't execute 'get': only (P|S)SUBSCRIBE ...". Same with PSUBSCRIBE p* /
        PUNSUBSCRIBE / GET k."""
        self.cluster.client().set("k", "v")
        c = connect(self, self.cluster.proxy.port)
        send(c, ("SUBSCRIBE", "ch"), ("UNSUBSCRIBE", "ch"), ("GET", "k"))
        replies = [c.read() for _ in range(3)]
        self.assertEqual(replies[1], ("*", [("$", b"unsubscribe"), ("$", b"ch"), (":", 0)]))
        self.assertEqual(replies[2], ("$", b"v"))
        send(c, ("PSUBSCRIBE", "p*"), ("PUNSUBSCRIBE",), ("GET", "k"))
        replies = [c.read() for _ in range(3)]
        self.assertEqual(replies[2], ("$", b"v"))

    def test_a_subscriber_that_stops_reading_is_closed_before_the_proxy_buffers_hundreds_of_mb(self):
        """A subscriber that stops reading: redis closes it past its pub/sub output limit
        (client-output-buffer-limit pubsub 32mb 8mb 60). The proxy reads the server's side link
        at full speed and queues every message for the client, closing it only past 100,000
        messages whatever their size: 160 messages of 1 MiB, paced so that redis's own limit on
        the side link never trips, grow the proxy by ~160 MB and the subscriber stays."""
        if SANITIZED:
            self.skipTest("RSS means nothing under AddressSanitizer")
        cluster = Cluster(shards=1)
        self.addCleanup(cluster.cleanup)
        s = socket.create_connection(("127.0.0.1", cluster.proxy.port))
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(resp("SUBSCRIBE", "ch"))
        server = cluster.redis[0].client()
        wait_until(lambda: server.pubsub_numsub("ch")[0][1] == 1, what="the subscription on the server")
        before = rss_kb(cluster.proxy.proc.pid)
        big = b"x" * (1 << 20)
        for _ in range(160):
            if server.publish("ch", big) == 0:
                break  # dropped: what redis does
            time.sleep(0.01)
        grown_mb = (rss_kb(cluster.proxy.proc.pid) - before) / 1024
        self.assertLess(grown_mb, 96, "the proxy buffers a non-reading subscriber's messages without bound")
        wait_until(lambda: server.pubsub_numsub("ch")[0][1] == 0, timeout=5, what="the subscriber dropped")


class ReloadReview(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster(shards=1, proxy_args=("--no-watch",))
        self.addCleanup(self.cluster.cleanup)
        self.new = RedisServer(self.cluster.workdir).start()
        self.addCleanup(self.new.stop)

    def replace_the_server(self):
        with open(self.cluster.proxy.config_path, "w") as f:
            f.write(toml_config(self.cluster.proxy.port, [("shard1", [self.new.address])]))
        reply = self.cluster.client().execute_command("PROXY", "RELOAD").decode()
        self.assertIn("1 removed", reply)

    def test_a_reload_that_removes_the_subscribers_server_tells_and_closes_it(self):
        """README: 'When a server dies (or a reload removes it ...) its subscribers get an error
        naming it and are closed, so that their library reconnects and subscribes again'. A
        reload replacing shard1's server leaves the subscriber listening on the old server: it
        gets no error and is not closed, and the channel's messages (PUBLISH now goes to the new
        server, 0 receivers) never reach it."""
        c = connect(self, self.cluster.proxy.port)
        c.call("SUBSCRIBE", "ch")
        self.replace_the_server()
        c.sock.settimeout(5)
        try:
            kind, text = c.read()
        except socket.timeout:
            self.fail("the subscriber of a removed server was neither told nor closed "
                      f"(PUBLISH now reaches {self.cluster.client().publish('ch', 'lost')} receivers)")
        self.assertEqual(kind, "-")
        self.assertIn("subscribe again", text)

    def test_a_removed_server_drains_once_its_subscriber_leaves(self):
        """A subscriber's slot on a server a reload removed is never given back
        (PubSub::drop gives it back only to a server still current), so the removed server's
        dedicated_in_use stays 1 and it stays draining for ever: servers_draining stays 1 after
        the subscriber unsubscribed (and after it closed)."""
        c = connect(self, self.cluster.proxy.port)
        c.call("SUBSCRIBE", "ch")
        self.replace_the_server()
        c.sock.settimeout(5)
        try:
            c.call("UNSUBSCRIBE")
        except (socket.timeout, ConnectionError):
            pass  # (told and closed: also fine)
        c.close()
        wait_until(lambda: int(self.cluster.client().info("proxy")["servers_draining"]) == 0, timeout=10,
                   what="the removed server drained")


class ReplicatedPopReview(unittest.TestCase):
    def test_an_undone_brpop_puts_the_element_back_at_the_right_end_even_for_a_key_named_left(self):
        """A BRPOP whose client left while its pop (LMPOP 1 left RIGHT) was in flight is undone
        by pushing the element back. undo_pop picks LPUSH when any word of the pop equals
        'LEFT' (case-insensitive), keys included: for a list named 'left', BRPOP's element c
        of [a, b, c] goes back with LPUSH, giving [c, a, b] on every server instead of
        [a, b, c]."""
        cluster = Cluster(shards=1, servers=3, replication={"strategy": "primary-replica", "write_ack": "all"},
                          pool={"request_timeout_ms": 10000})
        self.addCleanup(cluster.cleanup)
        client = cluster.client()
        client.rpush("left", "a", "b", "c")
        replicas = cluster.sets[0][1:]
        for server in replicas:
            server.signal(signal.SIGSTOP)
        self.addCleanup(lambda: [s.signal(signal.SIGCONT) for s in replicas])
        sock = socket.create_connection(("127.0.0.1", cluster.proxy.port))
        sock.sendall(resp("BRPOP", "left", "0"))
        wait_until(lambda: int(client.info("stats")["proxy_pops"]) >= 1, what="the pop sent")
        sock.close()  # while the pop waits for the stopped replicas
        wait_until(lambda: int(clients_info(cluster)["blocked_in_proxy"]) == 0, what="the wait dropped")
        for server in replicas:
            server.signal(signal.SIGCONT)
        wait_until(lambda: int(client.info("stats")["proxy_pops_undone"]) == 1, what="the pop undone")
        wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, what="servers equal")
        for server in cluster.sets[0]:
            self.assertEqual(server.client().lrange("left", 0, -1), [b"a", b"b", b"c"])


if __name__ == "__main__":
    unittest.main()
