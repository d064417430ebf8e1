"""Review of 5d90f7a (backend credentials and server host names): tests that fail on it.

Host names are controlled per proxy: the proxy runs in its own mount namespace
(`unshare -m`) with a private /etc/hosts and /etc/resolv.conf bind-mounted over the
system's, so nothing outside the test sees them. The files are rewritten in place (the bind
keeps the inode), and glibc reads /etc/hosts on every lookup, so a test can move a name.
Needs root (unshare/mount); skipped otherwise."""
import os
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import redis

import harness
from harness import (Proxy, RedisServer, count_incrs, digests, stop_everything, server_infos, server_states, started, toml_config,
                     wait_until)

PASSWORD = "Backend-Secret-7f3a"


def can_unshare():
    try:
        return subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


CAN_UNSHARE = can_unshare()


def rewrite(path, text):
    """In place (same inode): a bind mount of the file sees the new text."""
    with open(path, "r+") as f:
        f.seek(0)
        f.write(text)
        f.truncate()


class NsProxy(Proxy):
    """A ringproxy that sees its own /etc/hosts and /etc/resolv.conf."""

    def __init__(self, workdir, config_text, port, hosts_path, resolv_path):
        super().__init__(workdir, config_text, port)
        self.hosts_path = hosts_path
        self.resolv_path = resolv_path

    def start(self, extra_args=()):
        script = 'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@"'
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(["unshare", "-m", "sh", "-c", script, "sh", self.hosts_path, self.resolv_path,
                                          harness.RINGPROXY_BIN, "--config", self.config_path, *extra_args],
                                         stdout=log, stderr=log)
        wait_until(started(self.proc, self.log_path, lambda: self.client().ping()), what=f"ringproxy on {self.port}")
        return self


class NamedCluster:
    """Like harness.Cluster, but the config names servers by host names (names[shard][server])
    that only the proxy resolves, through `hosts` (text of its /etc/hosts)."""

    def __init__(self, names, hosts, resolv="nameserver 127.0.0.1\n", pool=None, replication=None, server_args=(),
                 server_credentials=None, bind="127.0.0.1"):
        self.workdir = tempfile.mkdtemp(prefix="ringproxy-review-")
        self.sets = []
        for shard in names:
            servers = []
            for _ in shard:
                s = RedisServer(self.workdir)
                s.client_kwargs = dict(server_credentials or {})
                s.default_args = tuple(server_args)
                servers.append(s.start("--bind", *bind.split()))
            self.sets.append(servers)
        self.redis = [s[0] for s in self.sets]
        self.names = [f"shard{i + 1}" for i in range(len(names))]
        self.hosts_path = os.path.join(self.workdir, "hosts")
        self.resolv_path = os.path.join(self.workdir, "resolv.conf")
        with open(self.hosts_path, "w") as f:
            f.write(hosts)
        with open(self.resolv_path, "w") as f:
            f.write(resolv)
        port = harness.free_port()
        shards = [(n, [f"{host}:{s.port}" for host, s in zip(hs, rs)]) for n, hs, rs in zip(self.names, names, self.sets)]
        self.proxy = NsProxy(self.workdir, toml_config(port, shards, pool=pool, replication=replication), port,
                             self.hosts_path, self.resolv_path)
        try:
            self.proxy.start()
        except BaseException:
            self.cleanup()
            raise

    def client(self, **kw):
        return self.proxy.client(**kw)

    def cleanup(self):
        return stop_everything(self.proxy, self.sets, self.workdir)


@unittest.skipUnless(CAN_UNSHARE, "needs unshare -m (root)")
class NameResolutionTest(unittest.TestCase):
    def test_a_name_with_an_ipv6_and_an_ipv4_address_reaches_a_server_on_ipv4(self):
        """/etc/hosts gives the name ::1 first (getaddrinfo sorts it first), then 127.0.0.1;
        the server listens on 127.0.0.1 only. Resolver::finish keeps only the first address
        and BackendConnection::open_socket never tries another: every connect is refused
        forever, although the name has a working address."""
        cluster = NamedCluster([["rt-dual"]], hosts="::1 rt-dual\n127.0.0.1 rt-dual\n",
                               pool={"retry_interval_ms": 200, "connect_timeout_ms": 500})
        try:
            r = cluster.client()
            ok = False
            deadline = time.monotonic() + 10
            last = None
            while time.monotonic() < deadline and not ok:
                try:
                    ok = r.set("dual", "1") is True
                except redis.ResponseError as e:
                    last = e
                    time.sleep(0.2)
            self.assertTrue(ok, f"never served through rt-dual (which also resolves to 127.0.0.1): {last}")
        finally:
            self.assertEqual(cluster.cleanup(), 0)

    def test_sigterm_is_not_held_up_by_a_slow_dns_lookup(self):
        """A server named by a host name that the DNS answers slowly (a silent name server):
        the proxy's loop keeps running until the uv_getaddrinfo request is done
        (Resolver::~Resolver's uv_cancel cannot cancel a lookup already running on the thread
        pool, and main()'s uv_run waits for it), so SIGTERM takes the DNS timeout."""
        blackhole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a name server that never answers
        blackhole.bind(("127.0.0.77", 53))
        try:
            cluster = NamedCluster([["rt-slow.example"]], hosts="127.0.0.1 localhost\n",
                                   resolv="nameserver 127.0.0.77\noptions timeout:5 attempts:3\n",
                                   pool={"connect_timeout_ms": 500})
            try:
                time.sleep(0.5)  # the lookup is running
                started_at = time.monotonic()
                cluster.proxy.proc.terminate()
                try:
                    cluster.proxy.proc.wait(30)
                except subprocess.TimeoutExpired:
                    pass
                took = time.monotonic() - started_at
                self.assertLess(took, 3.0, f"SIGTERM took {took:.1f} s (the DNS lookup's timeout)")
            finally:
                cluster.cleanup()
        finally:
            blackhole.close()


@unittest.skipUnless(CAN_UNSHARE, "needs unshare -m (root)")
class NameMovesUnderWritesTest(unittest.TestCase):
    """A replicated server's name starts resolving to another address of the same process
    (the servers listen on 127.0.0.1 and 127.0.0.2; rt-c moves from one to the other) while
    INCRs run. BackendServer::on_resolved marks it down (so that a probe checks run_id, which
    is the same): but mark_down fails its connections with writes in flight ("a write in
    flight was lost" -> mark_stale), so a healthy, unchanged server gets a full resync. With a
    DNS name that has several A records in rotating order this happens on every refresh."""

    def load(self, cluster, stop, errors, acked):
        count_incrs(cluster.client(), stop, errors, acked)

    def test_same_server_new_address_is_probed_not_resynced(self):
        hosts = "127.0.0.1 rt-a\n127.0.0.1 rt-b\n127.0.0.1 rt-c\n"
        cluster = NamedCluster([["rt-a", "rt-b", "rt-c"]], hosts=hosts, bind="127.0.0.1 127.0.0.2",
                               pool={"failure_limit": 1, "retry_interval_ms": 200, "request_timeout_ms": 1000,
                                     "connect_timeout_ms": 500, "dns_refresh_ms": 100},
                               replication={"strategy": "primary-replica", "write_ack": "quorum"})
        stop, errors, acked = threading.Event(), [], []
        threads = [threading.Thread(target=self.load, args=(cluster, stop, errors, acked)) for _ in range(4)]
        try:
            for t in threads:
                t.start()
            wait_until(lambda: len(acked) > 500, timeout=60, what="load")
            for move in range(6):  # rt-c moves back and forth (a name with rotating A records)
                ip = "127.0.0.2" if move % 2 == 0 else "127.0.0.1"
                seen = cluster.proxy.log().count("now resolves to")
                rewrite(cluster.hosts_path, f"127.0.0.1 rt-a\n127.0.0.1 rt-b\n{ip} rt-c\n")
                wait_until(lambda: cluster.proxy.log().count("now resolves to") > seen, timeout=10,
                           what="the move seen")
                wait_until(lambda: server_states(cluster) == ["up"] * 3, timeout=30, what="all up again")
                target = len(acked) + 500
                wait_until(lambda: len(acked) > target, timeout=60, what="load after the move")
            stop.set()
            for t in threads:
                t.join(30)
            wait_until(lambda: server_states(cluster) == ["up"] * 3, timeout=30, what="all up")
            info = server_infos(cluster)[2]
            self.assertEqual(info["resyncs"], 0,
                             "the same process at a new address was fully resynced:\n" +
                             "\n".join(l for l in cluster.proxy.log().splitlines() if "rt-c" in l or "stale" in l)[-3000:])
            counts = {s.client().get("counter") for s in cluster.sets[0]}
            self.assertEqual(counts, {str(len(acked)).encode()})
        finally:
            stop.set()
            self.assertEqual(cluster.cleanup(), 0)


class ResyncConfigRefusedTest(unittest.TestCase):
    """The proxy's ACL user may not run CONFIG (a common hardening: +@all -config) and the
    servers already carry masteruser/masterauth in their own config. ResyncJob::start
    pipelines CONFIG SET masteruser/masterauth and REPLICAOF; the CONFIG SET is refused, the
    job finishes as failed ("it cannot be given the password for its peer") -- but REPLICAOF
    was already written and runs: the stale server becomes (and stays) a replica of the peer,
    and every retry fails the same way, so it is never promoted back and never serves again.
    Before 5d90f7a this resync worked (no CONFIG SET)."""

    def test_a_stale_replica_is_resynced_when_config_set_is_denied(self):
        users = ("--user", "default", "off",
                 "--user", "ringproxy", "on", ">" + PASSWORD, "~*", "&*", "+@all", "-config",
                 "--masteruser", "ringproxy", "--masterauth", PASSWORD)
        cluster = harness.Cluster(shards=1, servers=3,
                                  pool={"username": "ringproxy", "password": PASSWORD, "failure_limit": 1,
                                        "retry_interval_ms": 200, "request_timeout_ms": 1000,
                                        "connect_timeout_ms": 500},
                                  replication={"strategy": "primary-replica", "write_ack": "quorum"},
                                  server_args=users, server_credentials={"username": "ringproxy", "password": PASSWORD})
        try:
            r = cluster.client()
            for i in range(100):
                r.set(f"k{i}", i)
            victim = cluster.sets[0][2]
            victim.kill()
            wait_until(lambda: server_states(cluster)[2] != "up", timeout=20, what="the proxy sees it gone")
            victim.start()  # empty: stale, resynced from a peer
            try:
                wait_until(lambda: server_states(cluster) == ["up"] * 3, timeout=20, what="resynced and up")
            except TimeoutError:
                role = victim.client().execute_command("ROLE")[0]
                resync_lines = [l for l in cluster.proxy.log().splitlines() if "resync" in l][-3:]
                self.fail(f"never resynced: states {server_states(cluster)}, victim's ROLE {role!r} "
                          f"(REPLICAOF ran although the job failed); log: {resync_lines}")
            self.assertEqual(len(set(digests(cluster.sets[0]))), 1)
        finally:
            self.assertEqual(cluster.cleanup(), 0)


class MaxClientsIsNotALoginRefusalTest(unittest.TestCase):
    """redis-server greets a connection over maxclients with "-ERR max number of clients
    reached" and closes it. Without credentials that is a counted failure (failure_limit
    applies); with credentials BackendConnection::finish_login reads it as the reply to AUTH
    and calls on_login_refused: the server is down at once, "authentication failed: ERR max
    number of clients reached", and ringproxy_server_login_failures_total counts it."""

    def test_a_full_server_is_not_reported_as_a_wrong_password(self):
        cluster = harness.Cluster(shards=1, metrics=True,
                                  pool={"password": PASSWORD, "failure_limit": 1000, "retry_interval_ms": 200,
                                        "backend_connections": 4},
                                  server_args=("--requirepass", PASSWORD, "--maxclients", "2"),
                                  server_credentials={"password": PASSWORD})
        try:
            for i in range(40):  # client ids spread over the 4 connections: some are refused
                try:
                    cluster.client().get(f"x{i}")
                except redis.RedisError:
                    pass
            time.sleep(0.5)
            info = server_infos(cluster)[0]
            self.assertNotIn("authentication failed", info.get("last_error", ""),
                             f"a full server reported as a login refusal: {info}")
            self.assertEqual(server_states(cluster), ["up"], "failure_limit=1000, yet down at once")
        finally:
            cluster.cleanup()


if __name__ == "__main__":
    unittest.main()
