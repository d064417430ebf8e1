"""Servers named by host name (issue 11), with real resolution: each test runs in a network
namespace of its own, whose /etc/hosts is /etc/netns/<ns>/hosts (`ip netns exec` mounts it) and
whose nsswitch.conf resolves hosts from that file only. The test maps a name, starts servers and
the proxy, then changes the mapping and starts the server elsewhere (a restarted pod), or takes
the name away.

The outer process (this file, as CTest runs it) creates the namespace and runs the tests inside
it (`--in-netns`); whatever is left in the namespace is killed by PID and the namespace removed.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import unittest

import redis

from harness import Proxy, RedisServer, digests, free_port, toml_config, wait_until

IN_NETNS = os.environ.get("RINGPROXY_NAMES_NETNS")


def hosts_path():
    return f"/etc/netns/{IN_NETNS}/hosts"


def map_names(mapping):
    """Rewrites the namespace's /etc/hosts in place (the bind mount follows the same inode)."""
    with open(hosts_path(), "w") as f:
        f.write("127.0.0.1 localhost\n")
        for name, ip in mapping.items():
            f.write(f"{ip} {name}\n")


def resolve_with(sources):
    """The namespace's nsswitch.conf hosts line: "files" (a name not in hosts does not exist), or
    "files dns" (its resolv.conf names a DNS server that is not there: a passing failure)."""
    with open(f"/etc/netns/{IN_NETNS}/nsswitch.conf", "w") as f:
        f.write(f"hosts: {sources}\n")


class NamesCase(unittest.TestCase):
    def setUp(self):
        if not IN_NETNS:
            self.skipTest("runs inside its namespace (see test_in_a_namespace)")
        resolve_with("files")
        self.workdir = tempfile.mkdtemp(prefix="ringproxy-names-")
        self.servers = []
        self.proxy = None

    def tearDown(self):
        if not IN_NETNS:
            return
        if self.proxy is not None:
            self.assertEqual(self.proxy.stop(), 0)
        for s in self.servers:
            s.stop()
        if not os.environ.get("RINGPROXY_E2E_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def server(self, ip, port):
        s = RedisServer(self.workdir, port=port, host=ip).start()
        self.servers.append(s)
        return s

    def start_proxy(self, shards, replication=None, **pool):
        port = free_port()
        pool = {"dns_refresh_ms": 200, "retry_interval_ms": 200, "connect_timeout_ms": 500, **pool}
        self.proxy = Proxy(self.workdir, toml_config(port, shards, pool=pool, replication=replication), port).start()
        return self.proxy.client()

    def info(self, index=0):
        return self.proxy.client().info("proxy")[f"server{index}"]


class PlainCacheNamesTest(NamesCase):
    def test_a_server_restarted_at_a_new_address_is_found(self):
        port = free_port()
        map_names({"cache-a": "127.0.0.2"})
        old = self.server("127.0.0.2", port)
        r = self.start_proxy([("a", [f"cache-a:{port}"])])
        self.assertTrue(r.set("k", "1"))
        self.assertEqual(old.client().get("k"), b"1")
        # The pod restarts elsewhere: a new server at 127.0.0.3, the name moves, the old one dies.
        new = self.server("127.0.0.3", port)
        map_names({"cache-a": "127.0.0.3"})
        old.kill()

        def lands_on_new():
            try:
                r.set("k2", "2")
            except redis.RedisError:
                return False
            return new.client().get("k2") == b"2"
        wait_until(lands_on_new, timeout=20, what="writes reach the server at its new address")
        self.assertIn("now resolves to 127.0.0.3 (was 127.0.0.2)", self.proxy.log())
        self.assertEqual(self.info()["resolved"], f"127.0.0.3:{port}")
        self.assertEqual(server_states_of(self.proxy), ["up"])

    def test_a_name_that_stops_resolving_marks_its_server_down_until_it_resolves_again(self):
        port = free_port()
        map_names({"cache-b": "127.0.0.2"})
        self.server("127.0.0.2", port)
        r = self.start_proxy([("b", [f"cache-b:{port}"])])
        self.assertTrue(r.set("k", "1"))
        map_names({})
        wait_until(lambda: self.info()["state"] == "down", timeout=20, what="the server down")
        self.assertIn("cannot resolve 'cache-b'", self.info()["last_error"])
        self.assertEqual(self.info()["resolved"], "none")
        with self.assertRaises(redis.ResponseError):
            r.get("k")
        self.assertIn("cannot resolve 'cache-b'", self.proxy.log())
        map_names({"cache-b": "127.0.0.2"})
        wait_until(lambda: self.info()["state"] == "up", timeout=20, what="the server up again")
        self.assertEqual(r.get("k"), b"1")

    def test_a_passing_lookup_failure_keeps_the_last_address(self):
        port = free_port()
        map_names({"cache-d": "127.0.0.2"})
        self.server("127.0.0.2", port)
        r = self.start_proxy([("d", [f"cache-d:{port}"])])
        self.assertTrue(r.set("k", "1"))
        resolve_with("files dns")  # DNS is asked, and does not answer: EAI_AGAIN
        map_names({})
        wait_until(lambda: "Temporary failure" in self.info()["last_error"], timeout=20, what="a failed lookup")
        self.assertIn("still using its last address 127.0.0.2", self.proxy.log())
        self.assertEqual(self.info()["state"], "up")
        self.assertEqual(self.info()["resolved"], f"127.0.0.2:{port}")
        self.assertEqual(r.get("k"), b"1")

    def test_a_name_that_never_resolved_fails_its_requests_with_the_reason(self):
        port = free_port()
        map_names({})
        r = self.start_proxy([("c", [f"cache-c:{port}"])])
        wait_until(lambda: self.info()["state"] == "down", timeout=20, what="the server down")
        with self.assertRaises(redis.ResponseError) as failed:
            r.get("k")
        self.assertIn("shard 'c'", str(failed.exception))
        self.assertIn("cannot resolve 'cache-c'", self.info()["last_error"])
        # It comes: the next probe finds it.
        map_names({"cache-c": "127.0.0.2"})
        self.server("127.0.0.2", port)
        wait_until(lambda: self.info()["state"] == "up", timeout=20, what="the server up")
        self.assertTrue(r.set("k", "v"))


def server_states_of(proxy):
    info = proxy.client().info("proxy")
    return [v["state"] for k, v in sorted(info.items()) if k.startswith("server") and k[6:].isdigit()]


class ReplicatedNamesTest(NamesCase):
    """A replica whose pod restarts empty at a new address: the name moves, the proxy probes it
    (a new run_id: its data is gone), resyncs it, and every acknowledged write counts once."""

    def test_a_replica_restarted_empty_elsewhere_is_resynced(self):
        port_p, port_r = free_port(), free_port()
        map_names({"cache-p": "127.0.0.2", "cache-r": "127.0.0.3"})
        primary = self.server("127.0.0.2", port_p)
        replica = self.server("127.0.0.3", port_r)
        r = self.start_proxy([("s", [f"cache-p:{port_p}", f"cache-r:{port_r}"])],
                             replication={"strategy": "primary-replica", "write_ack": "primary"},
                             failure_limit=1, request_timeout_ms=1000)
        acked, errors, stop = [], [], threading.Event()

        def load():
            c = self.proxy.client()
            while not stop.is_set():
                try:
                    c.incr("counter")
                    acked.append(1)
                except redis.RedisError as e:
                    errors.append(repr(e))
        thread = threading.Thread(target=load)
        thread.start()
        try:
            wait_until(lambda: len(acked) > 300, timeout=30, what="load")
            moved = self.server("127.0.0.4", port_r)  # empty
            map_names({"cache-p": "127.0.0.2", "cache-r": "127.0.0.4"})
            replica.kill()
            wait_until(lambda: self.info(1)["resyncs"] >= 1, timeout=60, what="the moved replica resynced")
            wait_until(lambda: len(acked) > 1500, timeout=60, what="load after the resync")
        finally:
            stop.set()
            thread.join(30)
        self.assertEqual(errors, [], "the primary took every write")
        wait_until(lambda: server_states_of(self.proxy) == ["up", "up"], timeout=30, what="both up")
        wait_until(lambda: len(set(digests([primary, moved]))) == 1, timeout=10, what="digests equal")
        self.assertEqual({s.client().get("counter") for s in (primary, moved)}, {str(len(acked)).encode()})
        self.assertIn("now resolves to 127.0.0.4 (was 127.0.0.3)", self.proxy.log())


class OuterTest(unittest.TestCase):
    """Runs this file's tests inside a fresh network namespace (root: CI and scripts/test are)."""

    def test_in_a_namespace(self):
        if IN_NETNS:
            self.skipTest("already inside")
        ns = f"rpnames{os.getpid()}"
        made = subprocess.run(["ip", "netns", "add", ns], capture_output=True, text=True)
        self.assertEqual(made.returncode, 0, f"ip netns add: {made.stderr} (network namespaces need root)")
        etc = f"/etc/netns/{ns}"
        try:
            os.makedirs(etc, exist_ok=True)
            with open(f"{etc}/hosts", "w") as f:
                f.write("127.0.0.1 localhost\n")
            with open(f"{etc}/nsswitch.conf", "w") as f:
                f.write("hosts: files\n")  # a name not in hosts does not exist (no DNS server to wait for)
            with open(f"{etc}/resolv.conf", "w") as f:
                f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")  # nobody answers there
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True, capture_output=True)
            env = dict(os.environ, RINGPROXY_NAMES_NETNS=ns)
            child = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "unittest", "-v", "test_names"],
                                   cwd=os.path.dirname(os.path.abspath(__file__)), env=env,
                                   capture_output=True, text=True, timeout=600)
            sys.stderr.write(child.stderr[-20000:])
            self.assertEqual(child.returncode, 0, "the tests inside the namespace failed (above)")
            self.assertNotIn("skipped 'runs inside", child.stderr)
        finally:
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            shutil.rmtree(etc, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
