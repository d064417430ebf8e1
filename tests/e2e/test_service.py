"""ringproxy as a service (issue 15): SIGTERM's drain, systemd's readiness notices, and a
restart without downtime (reuse_port), against real redis-servers.

The drain: no new connections; every request already read is answered and every copy of its
writes settled; then exit 0. A second SIGTERM exits at once (1); [proxy] shutdown_timeout_ms
bounds it, and what is left is logged.
"""
import os
import signal
import socket
import tempfile
import threading
import unittest

import redis

from harness import Cluster, Proxy, digests, pending_on_servers, resp, toml_config, wait_until


def read_until_closed(sock, timeout=20):
    """Everything the proxy sends until it closes; a reset (instead of a clean end) raises."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data.split(b"\r\n")[:-1]


class DrainTest(unittest.TestCase):
    def cluster(self, **kw):
        cluster = Cluster(**kw)
        self.addCleanup(cluster.cleanup)
        return cluster

    def test_every_request_read_is_answered_then_the_proxy_exits_0(self):
        cluster = self.cluster(shards=1, pool={"request_timeout_ms": 10000})
        server = cluster.redis[0]
        server.signal(signal.SIGSTOP)  # requests reach the proxy and wait for the server
        self.addCleanup(server.signal, signal.SIGCONT)
        sock = socket.create_connection(("127.0.0.1", cluster.proxy.port))
        self.addCleanup(sock.close)
        sock.sendall(b"".join(resp("INCR", "counter") for _ in range(2000)))
        # (1,024 in flight: max_pending_per_client; what the proxy read beyond waits in its buffer)
        wait_until(lambda: pending_on_servers(cluster) == 1024, what="the pipeline read and sent")
        cluster.proxy.proc.send_signal(signal.SIGTERM)
        # New connections are refused from now on.
        wait_until(lambda: connection_refused(cluster.proxy.port), what="the listener closed")
        server.signal(signal.SIGCONT)
        # Everything it read is answered, in order, and nothing it did not answer ran; then the
        # connection ends cleanly (a FIN: what the client sent and the proxy did not read is
        # read and dropped, not left to make the close a reset).
        replies = read_until_closed(sock)
        self.assertGreater(len(replies), 1024)
        self.assertEqual(replies, [b":%d" % i for i in range(1, len(replies) + 1)])
        self.assertEqual(cluster.proxy.proc.wait(10), 0)
        self.assertEqual(int(server.client().get("counter")), len(replies))
        self.assertIn("drained in", cluster.proxy.log())

    def test_a_second_sigterm_stops_at_once_and_the_timeout_bounds_the_drain(self):
        for second_signal in (True, False):
            cluster = self.cluster(shards=1, proxy={"shutdown_timeout_ms": 300 if not second_signal else 60000},
                                   pool={"request_timeout_ms": 60000})
            server = cluster.redis[0]
            server.signal(signal.SIGSTOP)
            self.addCleanup(server.signal, signal.SIGCONT)
            sock = socket.create_connection(("127.0.0.1", cluster.proxy.port))
            self.addCleanup(sock.close)
            sock.sendall(resp("INCR", "counter"))
            wait_until(lambda: pending_on_servers(cluster) == 1, what="a request in flight")
            cluster.proxy.proc.send_signal(signal.SIGTERM)
            if second_signal:
                wait_until(lambda: "draining" in cluster.proxy.log(), what="the drain started")
                cluster.proxy.proc.send_signal(signal.SIGTERM)
                self.assertEqual(cluster.proxy.proc.wait(10), 1)
                self.assertIn("second SIGTERM: stopping now", cluster.proxy.log())
            else:
                self.assertEqual(cluster.proxy.proc.wait(10), 0)
                self.assertRegex(cluster.proxy.log(), r"shutdown_timeout_ms \(\d+ ms\) reached; stopping with 1 "
                                                      r"clients with requests unanswered.*1 requests in flight")
            server.signal(signal.SIGCONT)

    def test_a_replay_queue_that_dies_with_the_process_is_logged_with_its_size(self):
        cluster = self.cluster(shards=1, servers=2, pool={"failure_limit": 1, "retry_interval_ms": 60000},
                               replication={"strategy": "multi-primary", "write_ack": "one"})
        down = cluster.sets[0][1]
        down.kill()
        c = cluster.client()
        # (writes find the failure: a write_ack = one write succeeds on the live server)
        wait_until(lambda: c.set("probe", 1) and cluster.client().info("proxy")["server1"]["state"] == "down",
                   what="the killed server marked down")
        for i in range(5):
            c.set(f"k{i}", i)
        wait_until(lambda: int(cluster.client().info("proxy")["server1"]["replay_queue"]) >= 5, what="writes queued")
        queued = int(cluster.client().info("proxy")["server1"]["replay_queue"])
        cluster.proxy.proc.send_signal(signal.SIGTERM)
        self.assertEqual(cluster.proxy.proc.wait(10), 0)
        self.assertRegex(cluster.proxy.log(), rf"server {down.address} of shard 'shard1' \(down\) has {queued} writes "
                                              r"queued for replay, lost with this process")

    def test_subscribers_and_clients_waiting_in_the_proxy_are_let_go(self):
        cluster = self.cluster(shards=1, servers=2, replication={"strategy": "multi-primary", "write_ack": "all"})
        subscriber = cluster.client().pubsub()
        subscriber.subscribe("news")
        self.assertEqual(subscriber.get_message(timeout=5)["type"], "subscribe")
        waiting = []
        blpop = threading.Thread(target=lambda: waiting.append(cluster.client(socket_timeout=30).blpop(["q"], 0)))
        blpop.start()
        self.addCleanup(blpop.join, 30)
        wait_until(lambda: int(cluster.client().info("clients")["blocked_in_proxy"]) == 1, what="BLPOP waiting")
        cluster.proxy.proc.send_signal(signal.SIGTERM)
        blpop.join(10)
        self.assertEqual(waiting, [None])  # its timeout reply
        self.assertEqual(cluster.proxy.proc.wait(10), 0)
        with self.assertRaises(redis.ConnectionError):
            subscriber.get_message(timeout=5)


class DrainBlockedTest(unittest.TestCase):
    def test_a_client_blocked_on_a_server_is_unblocked_there_and_answered(self):
        """BLPOP ... 0 on a plain shard blocks on the server: the drain unblocks it there (CLIENT
        UNBLOCK ... TIMEOUT, found by its connection's address), so the server answers nil as a
        timeout would, pops nothing for it, and the drain ends at once, not at its timeout."""
        cluster = Cluster(shards=1, proxy={"shutdown_timeout_ms": 60000})
        self.addCleanup(cluster.cleanup)
        server = cluster.redis[0].client()
        blocked = socket.create_connection(("127.0.0.1", cluster.proxy.port))
        self.addCleanup(blocked.close)
        blocked.sendall(resp("BLPOP", "jobs", "0"))
        wait_until(lambda: int(server.info("clients")["blocked_clients"]) == 1, what="BLPOP blocked on the server")
        cluster.proxy.proc.send_signal(signal.SIGTERM)
        self.assertEqual(read_until_closed(blocked), [b"*-1"])
        self.assertEqual(cluster.proxy.proc.wait(10), 0)
        server.rpush("jobs", "job-1")
        self.assertEqual(server.lrange("jobs", 0, -1), [b"job-1"])

    def test_a_client_blocked_on_a_server_that_leaves_during_the_drain_loses_no_element(self):
        """Where the server will not unblock it (its CLIENT command renamed away here), a client
        blocked on a server is still read during the drain: when it leaves, its server connection
        closes and the server cancels the block, so an element pushed afterwards stays in the list
        (not popped for nobody); the drain then ends at once."""
        cluster = Cluster(shards=1, proxy={"shutdown_timeout_ms": 60000}, server_args=("--rename-command", "CLIENT", ""))
        self.addCleanup(cluster.cleanup)
        server = cluster.redis[0].client()
        blocked = socket.create_connection(("127.0.0.1", cluster.proxy.port))
        blocked.sendall(resp("BLPOP", "jobs", "0"))
        wait_until(lambda: int(server.info("clients")["blocked_clients"]) == 1, what="BLPOP blocked on the server")
        cluster.proxy.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "cannot unblock a client blocked on a server" in cluster.proxy.log(), what="the unblock refused")
        blocked.close()
        wait_until(lambda: int(server.info("clients")["blocked_clients"]) == 0, what="the server cancelled the block")
        server.rpush("jobs", "job-1")
        self.assertEqual(cluster.proxy.proc.wait(10), 0)
        self.assertEqual(server.lrange("jobs", 0, -1), [b"job-1"])


def connection_refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


class PipelinedCounter(threading.Thread):
    """A client that INCRs its own key in pipelines of `depth` on a raw connection, and reconnects
    whenever the connection ends. Every reply it reads is an acknowledged INCR; the requests of
    a pipeline left without a reply when the connection ended are counted as not run (the
    drain's promise: what the old proxy read, it answered)."""

    def __init__(self, port, key, depth=20):
        super().__init__(daemon=True)
        self.port, self.key, self.depth = port, key, depth
        self.acked = 0            # INCRs answered (the key's value must end equal to this)
        self.connections = 0
        self.cut_pipelines = 0    # pipelines whose connection ended before every reply
        self.errors = []          # error replies, or a reply that is not the next count
        self.running = True

    def run(self):
        while self.running:
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            except OSError:
                continue  # (no listener for a moment: none expected, and counted below)
            self.connections += 1
            try:
                self.pipelines(sock)
            except OSError:
                pass
            finally:
                sock.close()

    def pipelines(self, sock):
        request = resp("INCR", self.key) * self.depth
        reader = sock.makefile("rb")
        while self.running:
            sock.sendall(request)
            for i in range(self.depth):
                line = reader.readline()
                if not line.endswith(b"\r\n"):
                    self.cut_pipelines += 1
                    return
                if line != b":%d\r\n" % (self.acked + 1):
                    self.errors.append(line)
                    self.running = False
                    return
                self.acked += 1


class RestartTest(unittest.TestCase):
    def test_a_new_proxy_takes_over_while_the_old_one_drains(self):
        """reuse_port: start the new ringproxy on the same address, SIGTERM the old one. Under a
        pipelined load on a replicated shard: no error, every acknowledged INCR exactly once
        (nothing the old proxy read was left unanswered), and the servers equal afterwards."""
        cluster = Cluster(shards=1, servers=3, proxy={"reuse_port": True}, metrics=True,
                          replication={"strategy": "multi-primary", "write_ack": "quorum"})
        self.addCleanup(cluster.cleanup)
        old = cluster.proxy
        clients = [PipelinedCounter(old.port, f"counter:{i}") for i in range(4)]
        for c in clients:
            c.start()
        self.addCleanup(lambda: [c.join(10) for c in clients])
        wait_until(lambda: all(c.acked > 200 for c in clients), what="load through the old proxy")

        notify = os.path.join(cluster.workdir, "notify.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener.bind(notify)
        listener.settimeout(10)
        self.addCleanup(listener.close)
        with open(old.config_path) as f:
            new = Proxy(cluster.workdir, f.read(), old.port)  # (the same file, rewritten as it was)
        new.log_path = os.path.join(cluster.workdir, "ringproxy-new.log")
        self.addCleanup(new.stop)
        new.start(env={"NOTIFY_SOCKET": notify})
        self.assertTrue(listener.recv(4096).startswith(b"READY=1"))  # listening (beside the old one)

        before = [c.acked for c in clients]
        old.proc.send_signal(signal.SIGTERM)
        self.assertEqual(old.proc.wait(20), 0)
        self.assertIn("drained in", old.log())
        # Every client goes on through the new proxy.
        wait_until(lambda: all(c.acked > b + 200 for c, b in zip(clients, before)), what="load through the new proxy")
        for c in clients:
            c.running = False
        for c in clients:
            c.join(10)
        self.assertEqual([c.errors for c in clients], [[]] * len(clients))
        self.assertTrue(all(c.connections >= 2 for c in clients))  # each was moved over
        wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, what="the servers equal")
        direct = cluster.sets[0][0].client()
        for c in clients:
            self.assertEqual(int(direct.get(c.key)), c.acked, c.key)


class NotifyTest(unittest.TestCase):
    def test_ready_reloading_and_stopping_reach_the_notify_socket(self):
        workdir = tempfile.mkdtemp(prefix="ringproxy-e2e-notify-")
        path = os.path.join(workdir, "notify.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener.bind(path)
        listener.settimeout(10)
        self.addCleanup(listener.close)
        cluster = Cluster(shards=1)
        self.addCleanup(cluster.cleanup)
        # A second proxy of the same servers, started as systemd would start it.
        proxy = Proxy(cluster.workdir, toml_config(free_port_for(cluster), [("s", [cluster.redis[0].address])]),
                      None)
        proxy.port = port_of(proxy)
        proxy.start(env={"NOTIFY_SOCKET": path})
        self.addCleanup(proxy.stop)
        ready = listener.recv(4096).decode()
        self.assertTrue(ready.startswith("READY=1\nSTATUS=serving on 127.0.0.1:"), ready)
        proxy.proc.send_signal(signal.SIGHUP)
        self.assertTrue(listener.recv(4096).decode().startswith("RELOADING=1"))
        self.assertTrue(listener.recv(4096).decode().startswith("READY=1\nSTATUS=serving; config reloaded"))
        proxy.proc.send_signal(signal.SIGTERM)
        self.assertTrue(listener.recv(4096).decode().startswith("STOPPING=1\nSTATUS=draining"))
        self.assertEqual(proxy.proc.wait(10), 0)


def free_port_for(cluster):
    from harness import free_port
    return free_port()


def port_of(proxy):
    with open(proxy.config_path) as f:
        for line in f:
            if line.startswith("listen"):
                return int(line.split(":")[-1].strip().strip('"'))
    raise AssertionError("no listen line")


if __name__ == "__main__":
    unittest.main()
