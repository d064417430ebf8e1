"""Backend credentials (issue 11): [pool] / [[pool.shards]] username and password (or
password_file / password_env) against real redis-servers started with --requirepass and with
ACL users; a wrong password; resync, repair and key moves on password-protected servers. The
password never reaches a log, INFO, /metrics or a reply."""
import os
import shutil
import tempfile
import threading
import time
import unittest

import redis

from harness import Cluster, count_incrs, digests, scrape, server_infos, server_states, shard_infos, toml_config, value, wait_until

PASSWORD = "Backend-Secret-7f3a"
OTHER_PASSWORD = "Other-Secret-91c2"
ACL_ARGS = ("--user", "default", "off",
            "--user", "ringproxy", "on", ">" + PASSWORD, "~*", "&*", "+@all",
            "--user", "ring2", "on", ">" + OTHER_PASSWORD, "~*", "&*", "+@all")


def assert_no_secret(test, cluster, *secrets):
    texts = {"log": cluster.proxy.log(), "INFO": str(cluster.client().info("everything"))}
    if cluster.metrics_port:
        texts["metrics"] = scrape(cluster.metrics_port)
    for secret in secrets:
        for where, text in texts.items():
            test.assertNotIn(secret, text, f"the password is in the {where}")


def keys_on_every_shard(cluster, prefix):
    """One key per shard, found with PROXY ROUTE."""
    found, i = {}, 0
    while len(found) < len(cluster.names):
        key = f"{prefix}:{i}"
        found.setdefault(cluster.route(key), key)
        i += 1
    return [found[n] for n in cluster.names]


def reload_with(cluster, **pool):
    """Rewrites the proxy's config with these [pool] keys and reloads it."""
    shards = [(n, [r.address for r in rs]) for n, rs in zip(cluster.names, cluster.sets)]
    text = toml_config(cluster.proxy.port, shards, metrics_port=cluster.metrics_port, pool=pool)
    tmp = cluster.proxy.config_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, cluster.proxy.config_path)
    return cluster.client().execute_command("PROXY", "RELOAD").decode()


class RequirepassTest(unittest.TestCase):
    """Servers with requirepass: the proxy logs in as the default user."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(shards=3, metrics=True, pool={"password": PASSWORD, "retry_interval_ms": 200},
                              server_args=("--requirepass", PASSWORD), server_credentials={"password": PASSWORD})

    @classmethod
    def tearDownClass(cls):
        assert cls.cluster.cleanup() == 0

    def test_commands_reach_every_shard(self):
        r = self.cluster.client()
        keys = keys_on_every_shard(self.cluster, "rp")
        for i, key in enumerate(keys):
            self.assertTrue(r.set(key, i))
            self.assertEqual(self.cluster.redis[i].client().get(key), str(i).encode())  # on its shard
        self.assertEqual(r.mget(keys), [str(i).encode() for i in range(len(keys))])
        self.assertEqual(server_states(self.cluster), ["up"] * 3)
        assert_no_secret(self, self.cluster, PASSWORD)

    def test_a_restarted_server_is_probed_and_used_again_with_the_password(self):
        r = self.cluster.client()
        key = keys_on_every_shard(self.cluster, "restart")[0]
        server = self.cluster.redis[0]
        server.kill()
        with self.assertRaises(redis.ResponseError):
            r.get(key)
        server.start()
        wait_until(lambda: r.set(key, "back") is True, timeout=20, what="shard1 answers again")
        self.assertEqual(server.client().get(key), b"back")
        assert_no_secret(self, self.cluster, PASSWORD)


class AclUsersTest(unittest.TestCase):
    """Servers whose default user is off: the proxy logs in as a named user, per shard."""

    def test_pool_and_shard_credentials_from_environment_and_file(self):
        secret_file = tempfile.NamedTemporaryFile("w", suffix=".pw", delete=False)
        secret_file.write(OTHER_PASSWORD + "\n")
        secret_file.close()
        os.environ["RINGPROXY_TEST_BACKEND_PASSWORD"] = PASSWORD
        try:
            cluster = Cluster(shards=2, metrics=True,
                              pool={"username": "ringproxy", "password_env": "RINGPROXY_TEST_BACKEND_PASSWORD"},
                              shard_keys={1: {"username": "ring2", "password_file": secret_file.name}},
                              server_args=ACL_ARGS, server_credentials={"username": "ringproxy", "password": PASSWORD})
        finally:
            del os.environ["RINGPROXY_TEST_BACKEND_PASSWORD"]
        try:
            r = cluster.client()
            keys = keys_on_every_shard(cluster, "acl")
            for i, key in enumerate(keys):
                self.assertTrue(r.set(key, i))
            self.assertEqual(r.mget(keys), [b"0", b"1"])
            # shard1 logs in with [pool]'s user, shard2 with its own (our own client is "ringproxy").
            self.assertEqual({c["user"] for c in cluster.redis[0].client().client_list()}, {"ringproxy"})
            self.assertEqual({c["user"] for c in cluster.redis[1].client().client_list()} - {"ringproxy"}, {"ring2"})
            assert_no_secret(self, cluster, PASSWORD, OTHER_PASSWORD)
        finally:
            self.assertEqual(cluster.cleanup(), 0)
            os.unlink(secret_file.name)


def failed_logins(server):
    """Failed AUTHs the server counted (ACL LOG aggregates them in one entry per user)."""
    return sum(int(e["count"]) for e in server.client().acl_log() if e["reason"] == "auth")


class WrongPasswordTest(unittest.TestCase):
    def test_the_server_is_down_with_its_own_error_and_tried_once_per_retry_interval(self):
        retry_ms = 300
        cluster = Cluster(shards=2, metrics=True, pool={"password": "Wrong-Secret-0000", "retry_interval_ms": retry_ms},
                          server_args=("--requirepass", PASSWORD), server_credentials={"password": PASSWORD})
        try:
            r = cluster.client()
            key = keys_on_every_shard(cluster, "wrong")[0]
            wait_until(lambda: server_states(cluster) == ["down", "down"], what="both servers down")
            with self.assertRaises(redis.ResponseError) as refused:
                r.get(key)
            self.assertIn("shard 'shard1'", str(refused.exception))
            info = server_infos(cluster)[0]
            self.assertIn("WRONGPASS", info["last_error"])
            self.assertIn("authentication failed", info["last_error"])
            self.assertIn("WRONGPASS", cluster.proxy.log())
            text = scrape(cluster.metrics_port)
            server = cluster.redis[0]
            labels = f'{{server="{server.address}",shard="shard1"}}'
            self.assertGreaterEqual(value(text, "ringproxy_server_login_failures_total", labels), 1)
            # Not faster than retry_interval_ms: 4 more attempts take at least 3 intervals.
            first = failed_logins(server)
            started = time.monotonic()
            wait_until(lambda: failed_logins(server) >= first + 4, timeout=20, what="4 more login attempts")
            self.assertGreaterEqual(time.monotonic() - started, 3 * retry_ms / 1000.0 * 0.9)
            self.assertEqual(cluster.proxy.proc.poll(), None, "the proxy is running")
            # The right password, by reload: the next probe logs in and the servers serve again.
            self.assertTrue(reload_with(cluster, password=PASSWORD, retry_interval_ms=retry_ms).startswith("reloaded"))
            wait_until(lambda: server_states(cluster) == ["up", "up"], timeout=20, what="servers up")
            self.assertTrue(r.set(key, "ok"))
            self.assertEqual(server.client().get(key), b"ok")
            assert_no_secret(self, cluster, PASSWORD, "Wrong-Secret-0000")
        finally:
            self.assertEqual(cluster.cleanup(), 0)


class RotatedPasswordFileTest(unittest.TestCase):
    """A password_file rotated in place (a Kubernetes Secret): the proxy notices within a
    second, reloads, and its next login uses the new password."""

    def test_a_rotated_password_file_is_read_again(self):
        workdir = tempfile.mkdtemp(prefix="ringproxy-secret-")
        secret = os.path.join(workdir, "redis-password")
        with open(secret, "w") as f:
            f.write(PASSWORD + "\n")
        cluster = Cluster(shards=1, metrics=True, pool={"password_file": secret, "retry_interval_ms": 200},
                          server_args=("--requirepass", PASSWORD), server_credentials={"password": PASSWORD})
        try:
            r = cluster.client()
            self.assertTrue(r.set("k", "1"))
            reloads = int(cluster.client().info("proxy")["config_reloads_ok"])
            # The server restarts with a new password; the proxy's old one is refused.
            server = cluster.redis[0]
            server.kill()
            server.default_args = ("--requirepass", OTHER_PASSWORD)
            server.client_kwargs = {"password": OTHER_PASSWORD}
            server.start()
            wait_until(lambda: "WRONGPASS" in server_infos(cluster)[0]["last_error"], timeout=20, what="refused login")
            # The secret is rotated the way Kubernetes does it: a new file renamed over the old.
            tmp = secret + ".new"
            with open(tmp, "w") as f:
                f.write(OTHER_PASSWORD + "\n")
            os.replace(tmp, secret)
            wait_until(lambda: int(cluster.client().info("proxy")["config_reloads_ok"]) > reloads, timeout=20,
                       what="a reload for the password file")
            self.assertIn("password file change", cluster.proxy.log())
            wait_until(lambda: server_states(cluster) == ["up"], timeout=20, what="logged in with the new password")
            self.assertTrue(r.set("k", "2"))
            assert_no_secret(self, cluster, PASSWORD, OTHER_PASSWORD)
        finally:
            self.assertEqual(cluster.cleanup(), 0)
            shutil.rmtree(workdir, ignore_errors=True)


class ReplicationUnderPasswordsTest(unittest.TestCase):
    """A replica killed and restarted empty is resynced from its peer, which wants a password:
    the proxy gives it masteruser/masterauth before REPLICAOF. Every acknowledged INCR counts
    once on every server; the path was a resync. Then a repair, also logged in."""

    def load(self, cluster, stop, errors, acked):
        count_incrs(cluster.client(), stop, errors, acked)

    def test_kill_restart_empty_resync_and_repair(self):
        cluster = Cluster(shards=1, servers=3,
                          pool={"username": "ringproxy", "password": PASSWORD, "failure_limit": 1,
                                "retry_interval_ms": 200, "request_timeout_ms": 1000, "connect_timeout_ms": 500},
                          replication={"strategy": "primary-replica", "write_ack": "quorum"},
                          server_args=ACL_ARGS, server_credentials={"username": "ringproxy", "password": PASSWORD})
        stop, errors, acked = threading.Event(), [], []
        threads = [threading.Thread(target=self.load, args=(cluster, stop, errors, acked)) for _ in range(2)]
        try:
            for t in threads:
                t.start()
            wait_until(lambda: len(acked) > 500, timeout=60, what="load")
            victim = cluster.sets[0][2]
            victim.kill()
            wait_until(lambda: server_states(cluster)[2] != "up", timeout=20, what="the proxy sees it gone")
            victim.start()  # same port, same users, empty
            wait_until(lambda: server_infos(cluster)[2]["resyncs"] >= 1, timeout=60, what="a resync")
            self.assertEqual(victim.client().config_get("masteruser")["masteruser"], "ringproxy")
            wait_until(lambda: len(acked) > 2000, timeout=60, what="load after the resync")
            stop.set()
            for t in threads:
                t.join(30)
            self.assertEqual(errors, [], "a quorum of 3 survives one replica")
            wait_until(lambda: server_states(cluster) == ["up"] * 3, timeout=30, what="all up")
            wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, timeout=10, what="digests equal")
            counts = {s.client().get("counter") for s in cluster.sets[0]}
            self.assertEqual(counts, {str(len(acked)).encode()})
            # A repair's side connections log in too.
            cluster.sets[0][1].client().set("drifted", "x")
            self.assertIn(b"started", cluster.client().execute_command("PROXY", "REPAIR", "shard1"))
            wait_until(lambda: shard_infos(cluster)[0]["repairs_finished"] >= 1, timeout=30, what="repair")
            self.assertEqual(shard_infos(cluster)[0]["repairs_failed"], 0)
            wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, timeout=10, what="repaired")
            self.assertNotIn(PASSWORD, cluster.proxy.log())
        finally:
            stop.set()
            self.assertEqual(cluster.cleanup(), 0)


class MigrationUnderPasswordsTest(unittest.TestCase):
    def test_keys_move_to_a_new_password_protected_shard(self):
        cluster = Cluster(shards=3, pool={"password": PASSWORD, "migration": "move",
                                          "migration_keys_per_second": 100000},
                          server_args=("--requirepass", PASSWORD), server_credentials={"password": PASSWORD})
        try:
            r = cluster.client()
            for i in range(300):
                r.set(f"m:{i}", i)
            # Drop shard3 from the ring: its keys move to shard1 and shard2.
            shards = [(n, [rs[0].address]) for n, rs in zip(cluster.names[:2], cluster.sets[:2])]
            text = toml_config(cluster.proxy.port, shards, pool={"password": PASSWORD, "migration": "move",
                                                                 "migration_keys_per_second": 100000})
            with open(cluster.proxy.config_path, "w") as f:
                f.write(text)
            self.assertTrue(cluster.client().execute_command("PROXY", "RELOAD").decode().startswith("reloaded"))
            wait_until(lambda: cluster.client().info("proxy")["migration_state"] == "done", timeout=60,
                       what="the move pass")
            self.assertEqual(cluster.redis[2].client().dbsize(), 0, "every key left shard3")
            self.assertEqual([r.get(f"m:{i}") for i in range(300)], [str(i).encode() for i in range(300)])
            self.assertNotIn(PASSWORD, cluster.proxy.log())
        finally:
            self.assertEqual(cluster.cleanup(), 0)


if __name__ == "__main__":
    unittest.main()
