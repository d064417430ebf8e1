"""Hostile review of TLS to the servers (issue 12, server side; commits a6bd4a6..de32856).

Each test is a bug found in review (or a check that held up); helpers come from
test_server_tls (TlsRedisServer, ServerCerts, server_tls, ...)."""
import os
import re
import signal
import socket
import ssl
import threading
import unittest

import redis

import test_server_tls as st
from harness import (Proxy, free_port, scrape, server_infos, server_states, toml_config, wait_until)
from test_server_tls import Workdir, keys_on, reload_reply, rewrite, server_tls


def setUpModule():
    st.setUpModule()


def tearDownModule():
    st.tearDownModule()


def key(i):
    """Keys that spread over the shards ("m:N" alone lands on one of two shards here)."""
    return f"move-{i * 7919}-{i}"


def migration_info(proxy):
    return proxy.client().info("proxy")


class RemovedShardOwnTlsTest(Workdir, unittest.TestCase):
    """Keys move off a shard a reload removed: its side connections must use the TLS the removed
    shard was configured with (its own table), not the pool's."""

    def run_move(self, pool_tls, kept_tls, removed_tls, kept_server, removed_server):
        pool = {"migration": "move", "migration_keys_per_second": 100000, **st.FAST}
        if pool_tls is not None:
            pool["tls"] = pool_tls
        kept_more = {"tls": kept_tls} if kept_tls is not None else {}
        removed_more = {"tls": removed_tls} if removed_tls is not None else {}
        shards = [("kept", [kept_server.address], 1, kept_more), ("gone", [removed_server.address], 1, removed_more)]
        proxy = self.proxy(shards, pool)
        r = proxy.client()
        for i in range(200):
            r.set(key(i), i)
        on_removed = next(key(i) for i in range(200) if removed_server.client().exists(key(i)))
        self.assertGreater(removed_server.client().dbsize(), 0, "the shard to remove holds keys")
        rewrite(proxy, toml_config(proxy.port, shards[:1], metrics_port=proxy.metrics_port, pool=pool))
        self.assertIn("reloaded", reload_reply(proxy))
        try:
            wait_until(lambda: migration_info(proxy)["migration_state"] == "done", timeout=30, what="the move pass")
        except TimeoutError:
            info = {k: v for k, v in migration_info(proxy).items() if k.startswith("migration")}
            lines = [l for l in proxy.log().splitlines() if "migration" in l][-2:]
            try:
                got = r.get(on_removed)
            except redis.RedisError as e:
                got = e
            self.fail(f"the move pass never ends: {info}; GET {on_removed} (was on the removed shard) -> {got!r}; "
                      f"log: {lines}")
        info = migration_info(proxy)
        self.assertEqual(int(info["migration_keys_failed"]), 0, f"{info} / log: {proxy.log()[-3000:]}")
        self.assertEqual(removed_server.client().dbsize(), 0, "every key left the removed shard")
        self.assertEqual([r.get(key(i)) for i in range(200)], [str(i).encode() for i in range(200)])

    def test_control_removed_shard_with_the_pools_tls(self):
        # Holds: both shards on [pool.tls].
        kept, gone = self.server(), self.server()
        self.run_move(server_tls(), None, None, kept, gone)

    def test_removed_shard_with_its_own_tls_table_pool_plain(self):
        # The pool is plain; the removed shard's servers are TLS only (its own table).
        kept, gone = self.server(tls=False), self.server()
        self.run_move(None, None, server_tls(), kept, gone)

    def test_removed_plain_shard_pool_tls(self):
        # The pool is TLS; the removed shard turned it off (a plain server).
        kept, gone = self.server(), self.server(tls=False)
        self.run_move(server_tls(), None, {"enabled": False}, kept, gone)


class LargeValuesOnSideLinksTest(Workdir, unittest.TestCase):
    """Holds: side links read and write replies of several MiB over TLS (DUMP and RESTORE of a key
    moved off a removed shard; a repair's DUMP/RESTORE of a drifted big value)."""

    def test_a_6_mib_value_moves_over_tls(self):
        kept, gone = self.server(), self.server()
        pool = {"tls": server_tls(), "migration": "move", "migration_keys_per_second": 100000, **st.FAST}
        shards = [("kept", [kept.address]), ("gone", [gone.address])]
        proxy = self.proxy(shards, pool)
        big = os.urandom(6 * 1024 * 1024)
        k = keys_on(proxy, ["kept", "gone"], "big")[1]
        self.assertTrue(proxy.client().set(k, big))
        rewrite(proxy, toml_config(proxy.port, shards[:1], metrics_port=proxy.metrics_port, pool=pool))
        self.assertIn("reloaded", reload_reply(proxy))
        wait_until(lambda: migration_info(proxy)["migration_state"] == "done", timeout=60, what="the move pass")
        self.assertEqual(kept.client().get(k), big)
        self.assertEqual(proxy.client().get(k), big)

    def test_a_repair_of_a_6_mib_value_over_tls(self):
        a, b = self.server(), self.server()
        port = free_port()
        proxy = Proxy(self.workdir, toml_config(port, [("r", [a.address, b.address])], pool={"tls": server_tls(), **st.FAST},
                                                replication={"strategy": "primary-replica"}), port)
        self.addCleanup(proxy.stop)
        proxy.start(("--no-watch",))
        big = os.urandom(6 * 1024 * 1024)
        wait_until(lambda: settled(proxy, "bigrepair", big), timeout=20, what="SET")
        b.client().set("bigrepair", b"drifted")
        self.assertIn(b"started", proxy.client().execute_command("PROXY", "REPAIR", "r"))
        wait_until(lambda: b.client().get("bigrepair") == big, timeout=30, what="the primary's copy repaired onto b")


def established_to(pid, ports):
    """The proxy's established TCP connections to these server ports (ss -tnp)."""
    import subprocess
    out = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True, text=True).stdout
    count = 0
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 4 or f"pid={pid}," not in line:
            continue
        peer = fields[3] if fields[0].isdigit() else fields[4]
        if int(peer.rsplit(":", 1)[1]) in ports:
            count += 1
    return count


def settled(proxy, key, value):
    try:
        return proxy.client().set(key, value)
    except redis.RedisError:
        return False


def gauge(proxy):
    return st.metric(scrape(proxy.metrics_port), "ringproxy_tls_connections", side="servers") or 0


class GaugeUnderChurnTest(Workdir, unittest.TestCase):
    """ringproxy_tls_connections{side="servers"} equals the TLS connections open to the servers after
    kills, restarts, server-side kills of the proxy's connections (CLIENT KILL: the server closes,
    over TLS) and probes."""

    def test_gauge_matches_open_connections(self):
        servers = [self.server(auth_clients="yes") for _ in range(2)]
        proxy = self.proxy([(f"s{i}", [s.address]) for i, s in enumerate(servers)], {"tls": server_tls(), **st.FAST})
        keys = keys_on(proxy, ["s0", "s1"], "gauge")
        ports = {s.port for s in servers}
        for round_ in range(3):
            for k in keys:
                wait_until(lambda: settled(proxy, k, round_), timeout=20, what=f"SET {k}")
            servers[0].kill()
            wait_until(lambda: st.poke(proxy, keys[0]) or server_states(proxy)[0] == "down", timeout=20, what="down")
            servers[0].start()
            wait_until(lambda: server_states(proxy)[0] == "up", timeout=20, what="up again")
            servers[1].client().client_kill_filter(_type="normal", skipme=True)  # the server ends them
        for k in keys:
            wait_until(lambda: settled(proxy, k, "end"), timeout=20, what=f"SET {k}")
        wait_until(lambda: server_states(proxy) == ["up", "up"], timeout=20, what="both up")
        wait_until(lambda: gauge(proxy) == established_to(proxy.proc.pid, ports), timeout=10,
                   what=f"gauge {gauge(proxy)} == open TLS connections {established_to(proxy.proc.pid, ports)}")
        self.assertGreaterEqual(gauge(proxy), 2)


if __name__ == "__main__":
    unittest.main()
