"""Observability: the metrics a mixed load produces (linted by promtool), a real Prometheus
scraping them and evaluating the alert rules, the Grafana dashboard and the rules using only
metrics that exist, counters moving when things break, and the logs."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import redis
import yaml

from harness import (Cluster, Proxy, RedisServer, config_digest, free_port, scrape, server_states, toml_config, value,
                     wait_until)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DASHBOARD = os.path.join(ROOT, "metrics", "grafana-dashboard.json")
ALERTS = os.path.join(ROOT, "metrics", "alerts.yml")


def families(text):
    """Metric names a query may use: each family, and a histogram's _bucket/_sum/_count."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names.add(name)
        if kind == "histogram":
            names |= {name + "_bucket", name + "_sum", name + "_count"}
    return names


def mixed_load(client):
    pipe = client.pipeline(transaction=False)
    for i in range(200):
        pipe.set(f"obs:{i}", i)
        pipe.get(f"obs:{i}")
        pipe.incr("obs:counter")
    pipe.mset({f"obs:m{i}": i for i in range(20)})
    pipe.mget([f"obs:m{i}" for i in range(20)])
    pipe.delete("obs:m1", "obs:m2")
    pipe.hset("obs:h", "f", "v")
    pipe.execute()
    client.ping()
    client.info()
    for bad in (("NOSUCHCOMMAND",), ("GET",), ("LPUSH", "obs:1", "x")):  # rejected, rejected, WRONGTYPE
        try:
            client.execute_command(*bad)
        except redis.ResponseError:
            pass


class MetricsContent(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster(shards=2, metrics=True, pool={"failure_limit": 1, "retry_interval_ms": 200})
        self.addCleanup(lambda: self.assertEqual(self.cluster.cleanup(), 0))
        self.port = self.cluster.metrics_port

    def settled_scrape(self):
        """A scrape that counts all of mixed_load: request counters are published together on
        the proxy's sweep, so once its last command (the LPUSH) is in, every earlier one is."""
        texts = []

        def published():
            texts.append(scrape(self.port))
            return (value(texts[-1], "ringproxy_requests_total", '{command="lpush",outcome="error"}') or 0) >= 1
        wait_until(published, what="mixed_load's counters published")
        return texts[-1]

    def test_a_mixed_load_gives_every_metric_and_promtool_accepts_them(self):
        mixed_load(self.cluster.client())
        text = self.settled_scrape()
        lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        self.assertEqual((lint.returncode, lint.stdout + lint.stderr), (0, ""))
        self.assertEqual(value(text, "ringproxy_requests_total", '{command="set",outcome="ok"}'), 200)
        self.assertEqual(value(text, "ringproxy_requests_total", '{command="incrby",outcome="ok"}'), 200)  # redis-py
        self.assertEqual(value(text, "ringproxy_requests_total", '{command="unknown",outcome="rejected"}'), 1)
        self.assertEqual(value(text, "ringproxy_requests_total", '{command="get",outcome="rejected"}'), 1)
        self.assertEqual(value(text, "ringproxy_requests_total", '{command="lpush",outcome="error"}'), 1)
        self.assertGreaterEqual(value(text, "ringproxy_request_duration_seconds_count", '{class="read"}'), 201)
        self.assertGreaterEqual(value(text, "ringproxy_request_duration_seconds_count", '{class="write"}'), 403)
        self.assertGreaterEqual(value(text, "ringproxy_request_duration_seconds_count", '{class="local"}'), 2)
        self.assertGreater(value(text, "ringproxy_request_duration_seconds_sum", '{class="read"}'), 0)
        self.assertGreater(value(text, "ringproxy_client_received_bytes_total"), 5000)
        self.assertGreater(value(text, "ringproxy_client_sent_bytes_total"), 2000)
        for server, shard in zip(self.cluster.redis, self.cluster.names):
            labels = f'{{server="{server.address}",shard="{shard}"}}'
            self.assertEqual(value(text, "ringproxy_server_up", labels), 1)
            self.assertEqual(value(text, "ringproxy_server_connections", labels), 1)
            self.assertEqual(value(text, "ringproxy_server_pending_requests", labels), 0)
            self.assertGreater(value(text, "ringproxy_server_request_duration_seconds_count", labels), 100)
            self.assertEqual(value(text, "ringproxy_server_state",
                                   f'{{server="{server.address}",shard="{shard}",state="up"}}'), 1)
        self.assertGreater(value(text, "process_resident_memory_bytes"), 1e6)
        self.assertGreater(value(text, "process_open_fds"), 3)
        self.assertAlmostEqual(value(text, "process_start_time_seconds"), time.time(), delta=120)
        self.assertIsNotNone(value(text, "process_cpu_seconds_total"))
        self.assertEqual(value(text, "ringproxy_shards"), 2)
        digest = config_digest(self.cluster)
        self.assertEqual(value(text, "ringproxy_config_info", f'{{digest="{digest}"}}'), 1)
        # Bounded label sets: one series per command seen, never per key or argument.
        commands = set(re.findall(r'^ringproxy_requests_total\{command="([^"]+)"', text, re.M))
        self.assertLessEqual(commands, {"set", "get", "incrby", "mset", "mget", "del", "hset", "ping", "info", "unknown",
                                        "lpush", "proxy"})

    def test_the_dashboard_and_the_alert_rules_use_only_metrics_that_exist(self):
        mixed_load(self.cluster.client())
        text = self.settled_scrape()
        exported = families(text) | {"up"}  # `up` is Prometheus's own, per scrape target
        with open(DASHBOARD) as f:
            dashboard = json.load(f)
        exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        exprs += [v["query"] for v in dashboard["templating"]["list"] if v.get("type") == "query"]
        with open(ALERTS) as f:
            rules = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
        exprs += [r["expr"] for r in rules]
        self.assertGreater(len(exprs), 30)
        used = set()
        for expr in exprs:
            used |= set(re.findall(r"\b(?:ringproxy|process)_[a-z_]+", expr))
            used |= {"up"} if re.search(r"\bup\{", expr) else set()
        self.assertTrue(used)
        # Exported only with a [proxy.tls] listener (test_tls.py checks it is there then).
        with_tls_only = {"ringproxy_tls_certificate_expiry_timestamp_seconds"}
        self.assertEqual(sorted(used - exported - with_tls_only), [])
        # Every area the issue names has a panel: shard health, latency by command class,
        # per-server errors and latency, replication queues, reloads.
        titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
        for word in ("shard", "latency", "server errors", "replay", "reload", "migration"):
            self.assertIn(word, titles)
        check = subprocess.run(["promtool", "check", "rules", ALERTS], capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        names = {r["alert"] for r in rules}
        self.assertLessEqual({"RingproxyShardDown", "RingproxyReplayQueueDropping", "RingproxyReloadFailing",
                              "RingproxyHighErrorRate"}, names)

    def test_counters_move_when_a_server_dies_and_a_reload_fails(self):
        client = self.cluster.client()
        server = self.cluster.redis[0]
        labels = f'{{server="{server.address}",shard="shard1"}}'
        server.kill()
        key = next(f"x{i}" for i in range(1000) if self.cluster.route(f"x{i}") == "shard1")
        with self.assertRaises(redis.RedisError):
            client.get(key)
        wait_until(lambda: value(scrape(self.port), "ringproxy_server_up", labels) == 0, what="server_up 0")
        text = scrape(self.port)
        self.assertGreaterEqual(value(text, "ringproxy_server_errors_total", labels), 1)
        self.assertEqual(value(text, "ringproxy_server_state", labels[:-1] + ',state="down"}'), 1)
        self.assertEqual(value(text, "ringproxy_server_state", labels[:-1] + ',state="up"}'), 0)
        # A server's failure is an error; once the shard is down, the proxy rejects at once.
        wait_until(lambda: sum(value(scrape(self.port), "ringproxy_requests_total", f'{{command="get",outcome="{o}"}}')
                               or 0 for o in ("error", "rejected")) >= 1, what="the failed GET counted")
        with open(self.cluster.proxy.config_path, "a") as f:
            f.write("[bogus]\n")
        with self.assertRaises(redis.ResponseError):
            client.execute_command("PROXY", "RELOAD")
        self.assertGreaterEqual(value(scrape(self.port), "ringproxy_config_reloads_total", '{outcome="failed"}'), 1)


class MetricsHttp(unittest.TestCase):
    """The endpoint runs on the proxy's event loop: plain, bounded HTTP."""

    def test_only_get_metrics_and_bounded_requests(self):
        cluster = Cluster(shards=1, metrics=True)
        self.addCleanup(lambda: self.assertEqual(cluster.cleanup(), 0))
        port = cluster.metrics_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics?x=1", timeout=5) as response:
            self.assertEqual(response.status, 200)
            self.assertIn("text/plain; version=0.0.4", response.headers["Content-Type"])
            self.assertIn("ringproxy_shards 1", response.read().decode())
        for method, path, code in (("GET", "/", 404), ("POST", "/metrics", 405)):
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=b"" if method == "POST" else None)
            with self.assertRaises(urllib.error.HTTPError) as raised:
                urllib.request.urlopen(request, timeout=5)
            self.assertEqual(raised.exception.code, code)
        head = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", method="HEAD")
        with urllib.request.urlopen(head, timeout=5) as response:
            self.assertEqual(response.status, 200)
            self.assertEqual(response.read(), b"")
        # A request that never ends is cut off at 16 KiB; the proxy keeps serving.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            try:
                s.sendall(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 40000)
                answer = s.recv(100)
            except (ConnectionResetError, BrokenPipeError):
                answer = b""
            self.assertEqual(answer, b"")  # closed without an answer
        self.assertTrue(cluster.client().set("still", "served"))
        self.assertIn("ringproxy_shards", scrape(port))


class ReplicationCounters(unittest.TestCase):
    def test_the_replay_queue_fills_then_drops_and_the_server_goes_stale(self):
        cluster = Cluster(shards=1, servers=2, metrics=True,
                          pool={"failure_limit": 1, "retry_interval_ms": 100000},
                          replication={"strategy": "multi-primary", "write_ack": "one",
                                       "replay_queue_max_writes": 20})
        self.addCleanup(lambda: self.assertEqual(cluster.cleanup(), 0))
        port = cluster.metrics_port
        client = cluster.client()
        replica = cluster.sets[0][1]
        labels = f'{{server="{replica.address}",shard="shard1"}}'
        replica.kill()
        # Down (its connection closed), not stale: a write sent into the dying connection
        # could not be known applied or lost.
        wait_until(lambda: server_states(cluster)[1] == "down", what="the replica down")
        for i in range(10):
            client.set(f"q{i}", i)
        wait_until(lambda: value(scrape(port), "ringproxy_server_replay_queue_writes", labels) == 10,
                   what="10 writes queued for the dead server")
        text = scrape(port)
        self.assertGreaterEqual(value(text, "ringproxy_replication_acks_total", '{level="one",outcome="met"}'), 10)
        for i in range(10, 30):
            client.set(f"q{i}", i)
        wait_until(lambda: (value(scrape(port), "ringproxy_server_replay_dropped_total", labels) or 0) > 0,
                   what="the overflowing queue counted as dropped")
        text = scrape(port)
        self.assertEqual(value(text, "ringproxy_server_replay_queue_writes", labels), 0)
        self.assertEqual(value(text, "ringproxy_server_state", labels[:-1] + ',state="stale"}'), 1)


class RealPrometheus(unittest.TestCase):
    """Debian's prometheus, on loopback, scraping ringproxy every second with the alert rules."""

    def query(self, expr):
        url = f"http://127.0.0.1:{self.prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        self.assertEqual(body["status"], "success")
        return body["data"]["result"]

    def api(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.prom_port}/api/v1/{path}", timeout=5) as response:
            return json.load(response)["data"]

    def test_prometheus_scrapes_request_counts_and_server_states_and_evaluates_the_alerts(self):
        cluster = Cluster(shards=2, metrics=True, pool={"failure_limit": 1, "retry_interval_ms": 100000})
        self.addCleanup(lambda: self.assertEqual(cluster.cleanup(), 0))
        workdir = tempfile.mkdtemp(prefix="ringproxy-prometheus-")
        self.addCleanup(shutil.rmtree, workdir, True)
        shutil.copy(ALERTS, os.path.join(workdir, "alerts.yml"))
        with open(os.path.join(workdir, "prometheus.yml"), "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [alerts.yml]
scrape_configs:
  - job_name: ringproxy
    static_configs:
      - targets: ["127.0.0.1:{cluster.metrics_port}"]
""")
        self.prom_port = free_port()
        log = open(os.path.join(workdir, "prometheus.log"), "wb")
        self.addCleanup(log.close)
        prom = subprocess.Popen(["prometheus", f"--config.file={workdir}/prometheus.yml",
                                 f"--storage.tsdb.path={workdir}/data", f"--web.listen-address=127.0.0.1:{self.prom_port}"],
                                stdout=log, stderr=log, cwd=workdir)

        def stop():
            prom.send_signal(signal.SIGTERM)
            try:
                prom.wait(20)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
        self.addCleanup(stop)

        wait_until(lambda: self.api("targets")["activeTargets"][0]["health"] == "up", timeout=60,
                   what="prometheus to scrape ringproxy")
        client = cluster.client()
        for i in range(150):
            client.set(f"p{i}", i)
        for i in range(70):
            client.get(f"p{i}")

        def total(expr):
            result = self.query(expr)
            return float(result[0]["value"][1]) if result else 0.0
        wait_until(lambda: total('sum(ringproxy_requests_total{command="set",outcome="ok"})') == 150, timeout=60,
                   what="prometheus to see 150 SETs")
        wait_until(lambda: total('sum(ringproxy_requests_total{command="get",outcome="ok"})') == 70, timeout=60,
                   what="prometheus to see 70 GETs")
        self.assertEqual(total('count(ringproxy_server_up == 1)'), 2)
        groups = self.api("rules")["groups"]
        self.assertEqual(sum(len(g["rules"]) for g in groups), 13)
        wait_until(lambda: all(r["health"] == "ok" for g in self.api("rules")["groups"] for r in g["rules"]),
                   what="every rule evaluated without error")

        dead = cluster.redis[1]
        dead.kill()
        key = next(f"y{i}" for i in range(1000) if cluster.route(f"y{i}") == "shard2")
        with self.assertRaises(redis.RedisError):
            client.get(key)
        wait_until(lambda: total(f'ringproxy_server_state{{server="{dead.address}",state="down"}}') == 1, timeout=60,
                   what="prometheus to see the server down")
        self.assertEqual(total(f'ringproxy_server_up{{server="{dead.address}"}}'), 0)

        def shard_down_alert():
            alerts = self.api("alerts")["alerts"]
            return any(a["labels"]["alertname"] == "RingproxyShardDown" and a["labels"]["shard"] == "shard2"
                       for a in alerts)
        wait_until(shard_down_alert, timeout=60, what="the RingproxyShardDown alert (pending or firing)")

        # Every dashboard query is valid PromQL for this Prometheus, with Grafana's variables set.
        with open(DASHBOARD) as f:
            dashboard = json.load(f)
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$__rate_interval", "1m").replace("$job", ".*")
                self.query(expr)  # asserts status == success


class Logs(unittest.TestCase):
    def run_proxy(self, level):
        workdir = tempfile.mkdtemp(prefix="ringproxy-logs-")
        self.addCleanup(shutil.rmtree, workdir, True)
        server = RedisServer(workdir).start()
        self.addCleanup(server.stop)
        port = free_port()
        proxy = Proxy(workdir, toml_config(port, [("shard1", [server.address])], pool={"failure_limit": 1}), port)
        proxy.start(["--log-level", level])
        client = proxy.client()
        try:
            client.execute_command("AUTH", "default", "s3cret-passw0rd")
        except redis.ResponseError:
            pass
        client.execute_command("PROXY", "RELOAD")
        server.kill()
        try:
            client.get("k")
        except redis.RedisError:
            pass
        time.sleep(0.3)
        self.assertEqual(proxy.stop(), 0)
        return proxy.log()

    def test_levels_timestamps_and_no_secrets(self):
        info = self.run_proxy("info")
        lines = [line for line in info.splitlines() if line.strip()]
        stamp = r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] \[(trace|debug|info|warning|error|critical)\] "
        self.assertTrue(all(re.match(stamp, line) for line in lines), lines[:5])
        for event in ("listening on", "reloaded (PROXY RELOAD)", "is down", "stopping"):
            self.assertIn(event, info)
        self.assertNotIn("s3cret-passw0rd", info)
        warn = self.run_proxy("warn")
        self.assertNotIn("listening on", warn)       # info lines are filtered out
        self.assertIn("is down", warn)                # errors are not
        self.assertNotIn("s3cret-passw0rd", warn)


if __name__ == "__main__":
    unittest.main()
