"""Second hostile review of backend credentials and host names (5d90f7a..73c1f8a): tests that
fail on 73c1f8a. Host names are controlled as in test_review_names_auth (NamedCluster: the proxy
runs in a mount namespace of its own with a private /etc/hosts and /etc/resolv.conf)."""
import os
import socket
import time
import unittest

import redis

import harness
from harness import server_infos, server_states, wait_until
from test_review_names_auth import CAN_UNSHARE, NamedCluster, rewrite

PASSWORD = "Backend-Secret-7f3a"
ADMIN_PASSWORD = "Admin-Secret-22b9"


def succeeds(call):
    try:
        call()
        return True
    except redis.RedisError:
        return False


class ProbeNeedsInfoRightsTest(unittest.TestCase):
    """The proxy's ACL user is the common application profile `+@all -@dangerous`, which
    every data command passes. INFO is in @dangerous, and ServerProbe asks `INFO server`
    (probe.cc on_reply: an error reply is a failed probe). So once the server is marked down
    (a restart, a network blip), every probe gets NOPERM and it is never up again: a
    permanent outage of the shard, although the server answers every command the proxy sends."""

    def test_a_server_comes_back_when_its_user_may_not_run_info(self):
        users = ("--user", "default", "on", ">" + ADMIN_PASSWORD, "~*", "&*", "+@all",
                 "--user", "app", "on", ">" + PASSWORD, "~*", "&*", "+@all", "-@dangerous")
        cluster = harness.Cluster(shards=1, pool={"username": "app", "password": PASSWORD, "failure_limit": 1,
                                                  "retry_interval_ms": 200, "connect_timeout_ms": 500},
                                  server_args=users, server_credentials={"password": ADMIN_PASSWORD})
        try:
            r = cluster.client()
            self.assertTrue(r.set("k", "1"))  # the data path works with this user
            server = cluster.redis[0]
            server.kill()
            wait_until(lambda: server_states(cluster) == ["down"], timeout=20, what="the proxy sees it down")
            server.start()
            self.assertTrue(server.client(username="app", password=PASSWORD).set("direct", "1"),
                            "the user may write")
            try:
                wait_until(lambda: succeeds(lambda: r.set("k", "2")), timeout=15, what="the shard serves again")
            except TimeoutError:
                self.fail(f"never up again: {server_infos(cluster)[0]}")
        finally:
            cluster.cleanup()


class ProbeMaxClientsIsNotALoginRefusalTest(unittest.TestCase):
    """The first review's maxclients fix (is_login_refusal) covers data connections only. Side
    connections (probe, resync, repair, key moves) log in through hiredis_uv.cc on_auth_reply,
    which takes ANY error reply to AUTH for a refusal: a full server's greeting "-ERR max number
    of clients reached" becomes "authentication failed: ERR max number of clients reached" in
    INFO last_error and the log, on_probe_result counts it in
    ringproxy_server_login_failures_total, and Migration::on_disconnect backs off as after a
    wrong password."""

    def test_a_probe_of_a_full_server_is_not_reported_as_a_wrong_password(self):
        cluster = harness.Cluster(shards=1, metrics=True,
                                  pool={"password": PASSWORD, "failure_limit": 1, "retry_interval_ms": 300,
                                        "connect_timeout_ms": 500},
                                  server_args=("--requirepass", PASSWORD, "--maxclients", "3"),
                                  server_credentials={"password": PASSWORD})
        held = []
        try:
            r = cluster.client()
            self.assertTrue(r.set("k", "1"))
            server = cluster.redis[0]
            server.kill()
            wait_until(lambda: not succeeds(lambda: r.get("k")) and server_states(cluster) == ["down"], timeout=20,
                       what="the server down")
            server.start()
            # Fill every client slot (the proxy's probe is the one turned away).
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                s = socket.create_connection(("127.0.0.1", server.port), timeout=2)
                s.sendall(b"PING\r\n")
                reply = s.recv(200)
                if b"max number of clients" in reply:
                    s.close()
                    break
                held.append(s)
            wait_until(lambda: "max number of clients" in server_infos(cluster)[0].get("last_error", ""), timeout=10,
                       what="a probe turned away by the full server")
            info = server_infos(cluster)[0]
            failures = harness.value(harness.scrape(cluster.metrics_port), "ringproxy_server_login_failures_total",
                                     '{server="%s",shard="shard1"}' % server.address)
            self.assertNotIn("authentication failed", info["last_error"],
                             f"a full server's greeting reported as a login refusal: {info}")
            self.assertFalse(failures, "a full server counted as a login failure")
        finally:
            for s in held:
                s.close()
            cluster.cleanup()


@unittest.skipUnless(CAN_UNSHARE, "needs unshare -m (root)")
class SilentDnsTest(unittest.TestCase):
    """README: 'a passing failure (DNS unreachable: EAI_AGAIN) keeps the last address, so a DNS
    outage does not take down servers that still answer'. That holds for a DNS server that
    refuses at once, not for one that does not answer (a blackholed resolver, the common
    outage): BackendConnection::connect() always waits for a fresh lookup before it opens a
    socket (backend_connection.cc connect -> resolve_name; on_name_resolved), the lookup takes
    resolv.conf's timeout x attempts, and check_timeouts fails the connection after
    connect_timeout_ms ("'name' not resolved after 500 ms", Failure::timeout). The address
    known a moment ago is never tried: every reconnect during the outage fails, the server
    goes down, and each probe (which also waits for the lookup, then succeeds) brings it up
    only for the next reconnect to fail again."""

    def test_a_dns_server_that_does_not_answer_does_not_take_down_a_healthy_server(self):
        blackhole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a name server that never answers
        blackhole.bind(("127.0.0.78", 53))
        try:
            cluster = NamedCluster([["rt-silent"]], hosts="127.0.0.1 localhost\n127.0.0.1 rt-silent\n",
                                   resolv="nameserver 127.0.0.78\noptions timeout:3 attempts:2\n",
                                   pool={"retry_interval_ms": 200, "connect_timeout_ms": 500, "failure_limit": 3})
            try:
                r = cluster.client()
                self.assertTrue(r.set("k", "1"))
                # The DNS outage: the name is now only in DNS, which is silent.
                if not os.environ.get("REVIEW2_CONTROL"):  # (the control: DNS fine, the test passes)
                    rewrite(cluster.hosts_path, "127.0.0.1 localhost\n")
                server = cluster.redis[0]
                # The server is fine; only the proxy's connection to it is closed (an idle
                # timeout, a server-side CLIENT KILL, a load balancer's reset).
                server.client().execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
                errors = []
                deadline = time.monotonic() + 4
                while time.monotonic() < deadline:
                    try:
                        r.get("k")
                    except redis.RedisError as e:
                        errors.append(str(e))
                    time.sleep(0.1)
                self.assertEqual(errors[:3], [], f"a server that answers failed {len(errors)} requests during the DNS "
                                                 f"outage; {server_infos(cluster)[0]}")
            finally:
                cluster.cleanup()
        finally:
            blackhole.close()


if __name__ == "__main__":
    unittest.main()
