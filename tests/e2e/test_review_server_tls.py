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
from harness import (free_port, scrape, server_infos, server_states, toml_config, wait_until)
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


if __name__ == "__main__":
    unittest.main()
