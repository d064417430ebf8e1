"""Bugs in proxy/*.cc found while fuzzing (tests/fuzz): each test failed before its fix."""
import signal
import socket
import time
import unittest

from harness import Cluster


def read_for(sock, seconds):
    """Everything the socket delivers within `seconds` (or until it closes)."""
    data = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    return data


class QuorumReadTest(unittest.TestCase):
    # Was a bug (fixed in DataPath::answer_quorum_read): a read_from = "quorum" group whose first outcome is an error reply is decided at
    # once by its WriteTracker (the majority can no longer agree), with reply_from = the
    # server that erred. DataPath::on_group_outcome passes `reply_from >= 0` to
    # answer_quorum_read as "all replied", which then compares every server's reply,
    # including those still in flight (empty), and picks the primary's: the client is
    # answered with an empty reply, and every later reply on its connection is taken for the
    # one before. Seen by tests/fuzz/routing_fuzz's model of the dispatcher. Now a group
    # decided before every server replied answers with the reply that decided it.
    def test_an_error_first_is_not_answered_with_a_reply_still_in_flight(self):
        cluster = Cluster(shards=1, servers=2,
                          replication={"strategy": "primary-replica", "write_ack": "all", "read_from": "quorum"})
        primary, replica = cluster.sets[0]
        try:
            primary.client().set("k", "v")  # diverged: a string on the primary,
            replica.client().rpush("k", "x")  # a list on the replica (WRONGTYPE for GET)
            primary.signal(signal.SIGSTOP)  # the replica's error comes first
            with socket.create_connection(("127.0.0.1", cluster.proxy.port), timeout=5) as s:
                s.sendall(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$4\r\nECHO\r\n$6\r\nmarker\r\n")
                data = read_for(s, 0.5)
                primary.signal(signal.SIGCONT)
                data += read_for(s, 3)
            # Two replies: the GET's (an error or the primary's value), then the ECHO's.
            self.assertTrue(data.endswith(b"$6\r\nmarker\r\n"), data)
            self.assertNotEqual(data, b"$6\r\nmarker\r\n", "the GET was answered with nothing")
        finally:
            primary.signal(signal.SIGCONT)
            self.assertEqual(cluster.cleanup(), 0)


if __name__ == "__main__":
    unittest.main()
