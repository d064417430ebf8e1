"""Pub/sub through the proxy (issue 14): channels placed on shards like keys, patterns on every
shard, subscribers on links of their own, PUBSUB merged, a dead server's subscribers told and
closed (proxy/pubsub/).

Run: RINGPROXY_BIN=... /usr/bin/python3 -m unittest test_pubsub
"""
import json
import os
import subprocess
import unittest

import redis

from harness import REDIS_CLI, Cluster, Proxy, free_port, scrape, toml_config, value, wait_until
from test_bullmq import node_problem
from test_resp3 import Resp3Connection

IOREDIS_PUBSUB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node", "ioredis_pubsub_check.js")


def next_message(pubsub, timeout=10):
    """The next message (not a confirmation), polled."""
    got = []

    def poll():
        m = pubsub.get_message(timeout=0.05)
        if m is not None and m["type"] in ("message", "pmessage", "smessage"):
            got.append(m)
        return bool(got)

    wait_until(poll, timeout=timeout, what="a message")
    return got[0]


def told_and_closed(test, conn):
    """A subscriber whose server died reads an error naming it, then the end of its connection."""
    conn._sock.settimeout(30)
    with test.assertRaisesRegex(redis.ResponseError, "is gone .*subscribe again"):
        conn.read_response()
    with test.assertRaises(redis.ConnectionError):
        conn.read_response()


def subscribed_connection(test, cluster, channel):
    conn = cluster.client().connection_pool.get_connection("_")
    test.addCleanup(conn.disconnect)
    conn.send_command("SUBSCRIBE", channel)
    test.assertEqual(conn.read_response()[0], b"subscribe")
    return conn


def channels_on_each_shard(cluster):
    """One channel name per shard."""
    found = {}
    for i in range(1000):
        found.setdefault(cluster.route(f"ch{i}"), f"ch{i}")
        if len(found) == len(cluster.names):
            return [found[n] for n in cluster.names]
    raise AssertionError("no channel for every shard")


class PubSubTest(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster(shards=3, metrics=True)
        self.addCleanup(self.cluster.cleanup)

    def subscriber(self, client=None):
        p = (client or self.cluster.client()).pubsub()
        self.addCleanup(p.close)
        return p

    def test_a_message_reaches_the_subscriber_and_counts_are_the_clients(self):
        channels = channels_on_each_shard(self.cluster)
        p = self.subscriber()
        p.subscribe(*channels)
        confirmations = [p.get_message(timeout=5) for _ in channels]
        self.assertEqual([m["type"] for m in confirmations], ["subscribe"] * 3)
        self.assertEqual([m["data"] for m in confirmations], [1, 2, 3])  # the client's own count
        pub = self.cluster.client()
        for i, channel in enumerate(channels):
            self.assertEqual(pub.publish(channel, f"hello{i}"), 1)  # one receiver, on its shard's server
            m = next_message(p)
            self.assertEqual((m["channel"], m["data"]), (channel.encode(), f"hello{i}".encode()))
        # Every channel lives on its shard's server only.
        for channel, server in zip(channels, self.cluster.redis):
            self.assertEqual(server.client().pubsub_numsub(channel), [(channel.encode(), 1)])
        p.unsubscribe(channels[0])
        m = p.get_message(timeout=5)
        self.assertEqual((m["type"], m["data"]), ("unsubscribe", 2))
        self.assertEqual(pub.publish(channels[0], "nobody"), 0)
        self.assertEqual(int(self.cluster.client().info("clients")["pubsub_clients"]), 1)
        self.assertGreaterEqual(int(self.cluster.client().info("stats")["pubsub_messages_forwarded"]), 3)
        wait_until(lambda: value(scrape(self.cluster.metrics_port), "ringproxy_pubsub_messages_total") >= 3,
                   what="the messages in the metrics")
        self.assertEqual(value(scrape(self.cluster.metrics_port), "ringproxy_pubsub_subscribers"), 1)

    def test_patterns_listen_on_every_shard(self):
        channels = channels_on_each_shard(self.cluster)
        p = self.subscriber()
        p.psubscribe("ch*")
        self.assertEqual(p.get_message(timeout=5)["data"], 1)  # one confirmation for the client
        pub = self.cluster.client()
        for channel in channels:
            pub.publish(channel, "x")
            m = next_message(p)
            self.assertEqual((m["type"], m["pattern"], m["channel"]), ("pmessage", b"ch*", channel.encode()))
        self.assertEqual(pub.pubsub_numpat(), 1)
        # No message twice: each is published on one server.
        self.assertIsNone(p.get_message(timeout=0.2))

    def test_pubsub_introspection_is_merged(self):
        channels = channels_on_each_shard(self.cluster)
        p = self.subscriber()
        p.subscribe(*channels)
        for _ in channels:
            p.get_message(timeout=5)
        c = self.cluster.client()
        self.assertEqual(sorted(c.pubsub_channels()), sorted(ch.encode() for ch in channels))
        self.assertEqual(c.pubsub_channels("nomatch*"), [])
        self.assertEqual(c.pubsub_numsub(*channels, "none"),
                         [(ch.encode(), 1) for ch in channels] + [(b"none", 0)])
        self.assertEqual(c.pubsub_numpat(), 0)

    def test_subscribed_mode_rules_for_resp2(self):
        conn = self.cluster.client().connection_pool.get_connection("_")
        self.addCleanup(conn.disconnect)
        conn.send_command("SUBSCRIBE", "a")
        self.assertEqual(conn.read_response(), [b"subscribe", b"a", 1])
        conn.send_command("GET", "k")
        with self.assertRaisesRegex(redis.ResponseError,
                                    "Can't execute 'get': only \\(P\\|S\\)SUBSCRIBE / \\(P\\|S\\)UNSUBSCRIBE"):
            conn.read_response()
        conn.send_command("PING")
        self.assertEqual(conn.read_response(), [b"pong", b""])
        conn.send_command("UNSUBSCRIBE")
        self.assertEqual(conn.read_response(), [b"unsubscribe", b"a", 0])
        conn.send_command("GET", "k")  # out of subscribed mode
        self.assertIsNone(conn.read_response())
        conn.send_command("UNSUBSCRIBE")  # nothing to end: redis's answer
        self.assertEqual(conn.read_response(), [b"unsubscribe", None, 0])

    def test_resp3_clients_get_pushes_and_keep_issuing_commands(self):
        c = Resp3Connection(self.cluster.proxy.port)
        self.addCleanup(c.close)
        self.assertEqual(c.call("HELLO", "3")[0], "%")
        self.assertEqual(c.call("SUBSCRIBE", "news"), (">", [("$", b"subscribe"), ("$", b"news"), (":", 1)]))
        self.assertEqual(c.call("SET", "k", "v"), ("+", "OK"))
        self.assertEqual(self.cluster.client().publish("news", "flash"), 1)
        self.assertEqual(c.read(), (">", [("$", b"message"), ("$", b"news"), ("$", b"flash")]))
        self.assertEqual(c.call("GET", "k"), ("$", b"v"))

    def test_subscribers_on_two_proxies_meet_a_publisher_on_a_third(self):
        proxies = []
        for _ in range(2):
            port = free_port()
            config = toml_config(port, [(n, [s.address for s in rs]) for n, rs in zip(self.cluster.names,
                                                                                      self.cluster.sets)])
            proxy = Proxy(self.cluster.workdir, config, port).start()
            self.addCleanup(proxy.stop)
            proxies.append(proxy)
        channels = channels_on_each_shard(self.cluster)
        subs = [self.subscriber(proxy.client()) for proxy in proxies]
        for p in subs:
            p.subscribe(*channels)
            for _ in channels:
                p.get_message(timeout=5)
        for channel in channels:
            self.assertEqual(self.cluster.client().publish(channel, "to-all"), 2)
            for p in subs:
                self.assertEqual(next_message(p)["channel"], channel.encode())

    def test_a_dead_server_closes_its_subscribers_who_subscribe_again(self):
        channels = channels_on_each_shard(self.cluster)
        conn = subscribed_connection(self, self.cluster, channels[0])
        self.cluster.redis[0].kill()
        told_and_closed(self, conn)
        self.assertEqual(int(self.cluster.client().info("stats")["pubsub_subscribers_dropped"]), 1)
        # Another shard still serves subscribers.
        q = self.subscriber()
        q.subscribe(channels[1])
        q.get_message(timeout=5)
        self.assertEqual(self.cluster.client().publish(channels[1], "still"), 1)
        self.assertEqual(next_message(q)["data"], b"still")

    def test_redis_cli_subscribes(self):
        cli = subprocess.Popen([REDIS_CLI, "-p", str(self.cluster.proxy.port), "SUBSCRIBE", "cli-ch"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.addCleanup(cli.kill)
        wait_until(lambda: self.cluster.client().pubsub_numsub("cli-ch") == [(b"cli-ch", 1)], what="subscribed")
        self.assertEqual(self.cluster.client().publish("cli-ch", "hi-cli"), 1)
        lines = []
        wait_until(lambda: lines.append(cli.stdout.readline().strip()) or "hi-cli" in lines, what="the message")


class IoredisPubSubTest(unittest.TestCase):
    """ioredis (Node.js): SUBSCRIBE to a channel on every shard and PSUBSCRIBE a pattern, messages
    from a publisher through the proxy, then out of subscribed mode (ioredis_pubsub_check.js)."""

    def test_subscribe_psubscribe_and_messages(self):
        problem = node_problem(("ioredis",))
        if problem:
            self.skipTest(f"{problem}: run scripts/bootstrap (it installs Node.js, npm and tests/e2e/node's modules)")
        cluster = Cluster(shards=3)
        self.addCleanup(cluster.cleanup)
        channels = channels_on_each_shard(cluster)
        cluster.client().set("after-pubsub", "yes")
        spec = json.dumps({"port": cluster.proxy.port, "channels": channels})
        result = subprocess.run(["node", IOREDIS_PUBSUB], input=spec, capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, f"ioredis_pubsub_check.js failed: {result.stdout}{result.stderr}")
        out = json.loads(result.stdout)
        self.assertEqual(out["errors"], [])
        self.assertEqual((out["subscribed"], out["psubscribed"]), (3, 4))  # the client's own counts
        self.assertEqual(out["published"], [2] * 3)  # the channel's subscriber and the pattern's
        self.assertEqual(sorted(out["messages"]), sorted([ch, f"to-{ch}"] for ch in channels))
        self.assertEqual(sorted(out["pmessages"]), sorted(["ch*", ch, f"to-{ch}"] for ch in channels))
        self.assertEqual((out["unsubscribed"], out["punsubscribed"]), (1, 0))
        self.assertEqual(out["after"], "yes")


class ReplicatedPubSubTest(unittest.TestCase):
    def test_the_shards_leader_carries_its_channels_and_a_new_one_takes_over(self):
        cluster = Cluster(shards=1, servers=3, replication={"strategy": "primary-replica",
                                                            "on_primary_down": "promote"})
        self.addCleanup(cluster.cleanup)
        conn = subscribed_connection(self, cluster, "events")
        primary, replica = cluster.sets[0][0], cluster.sets[0][1]
        self.assertEqual(primary.client().pubsub_numsub("events"), [(b"events", 1)])  # on the leader
        self.assertEqual(cluster.client().publish("events", "one"), 1)
        self.assertEqual(conn.read_response(), [b"message", b"events", b"one"])
        primary.kill()
        told_and_closed(self, conn)
        # Subscribing again lands on the replica that leads now, where PUBLISH goes too.
        q = cluster.client().pubsub()
        self.addCleanup(q.close)

        def subscribed_again():
            try:
                q.subscribe("events")
                return q.get_message(timeout=1) is not None
            except redis.RedisError:
                return False

        wait_until(subscribed_again, timeout=20, what="subscribed on the new leader")
        self.assertEqual(replica.client().pubsub_numsub("events"), [(b"events", 1)])
        self.assertEqual(cluster.client().publish("events", "two"), 1)
        self.assertEqual(next_message(q)["data"], b"two")


if __name__ == "__main__":
    unittest.main()
