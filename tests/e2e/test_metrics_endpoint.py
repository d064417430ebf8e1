"""The Prometheus endpoint: served on [metrics] listen, counters move with traffic."""
import re
import unittest

from harness import Cluster, scrape, value, wait_until


class MetricsEndpointTest(unittest.TestCase):
    def test_counters_follow_requests_connections_and_server_state(self):
        cluster = Cluster(shards=2, metrics=True, pool={"failure_limit": 1, "retry_interval_ms": 200})
        try:
            port = cluster.metrics_port
            r = cluster.client()
            for i in range(100):
                r.set(f"m{i}", i)
                r.get(f"m{i}")
            r.ping()
            # Per-request counters reach Prometheus on the proxy's sweep (<= 100 ms later),
            # together: a scrape with the last PING (the harness sent one at start) has the rest.
            texts = []

            def published():
                texts.append(scrape(port))
                return (value(texts[-1], "ringproxy_requests_total", '{command="ping",outcome="ok"}') or 0) >= 2
            wait_until(published, what="request counters published")
            text = texts[-1]
            self.assertEqual(value(text, "ringproxy_requests_total", '{command="set",outcome="ok"}'), 100)
            self.assertEqual(value(text, "ringproxy_requests_total", '{command="get",outcome="ok"}'), 100)
            self.assertGreaterEqual(value(text, "ringproxy_requests_total", '{command="ping",outcome="ok"}'), 1)
            self.assertGreaterEqual(value(text, "ringproxy_client_connections"), 1)
            self.assertGreaterEqual(value(text, "ringproxy_client_connections_accepted_total"), 1)
            sent = sum(float(v) for v in re.findall(r"^ringproxy_server_requests_total\{.*\} (\S+)$", text, re.M))
            self.assertGreaterEqual(sent, 200)
            server = cluster.redis[0].address
            self.assertIn(f'ringproxy_server_up{{server="{server}",shard="shard1"}} 1', text)

            cluster.redis[0].kill()
            key = next(f"x{i}" for i in range(1000) if cluster.route(f"x{i}") == "shard1")
            with self.assertRaises(Exception):
                r.get(key)
            wait_until(lambda: f'ringproxy_server_up{{server="{server}",shard="shard1"}} 0' in scrape(port),
                       what="server_up 0 after kill")
            wait_until(lambda: value(scrape(port), "ringproxy_error_replies_total") >= 1, what="error counted")
            text = scrape(port)
            errors = value(text, "ringproxy_server_errors_total", f'{{server="{server}",shard="shard1"}}')
            self.assertGreaterEqual(errors, 1)
        finally:
            self.assertEqual(cluster.cleanup(), 0)


if __name__ == "__main__":
    unittest.main()
