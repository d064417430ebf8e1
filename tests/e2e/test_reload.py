"""Live reconfiguration: reloads (SIGHUP, file change, PROXY RELOAD) and moving the keys a
ring change moved ([pool] migration = warm | move), against real redis-servers."""
import os
import signal
import subprocess
import threading
import time
import unittest

import redis

from harness import Cluster, Proxy, RedisServer, config_digest, free_port, scrape, toml_config, value, wait_until


def proxy_info(cluster):
    return cluster.client().info("proxy")


def reloads_ok(cluster):
    return int(proxy_info(cluster)["config_reloads_ok"])


def owners(servers, key):
    """Which of `servers` hold `key` (directly, not through the proxy)."""
    return [i for i, s in enumerate(servers) if s.client().exists(key)]


class ReloadCase(unittest.TestCase):
    shards = 3
    pool = None
    replication = None
    servers = 1

    metrics = False
    # Off except where the watch is what is tested: it would race the explicit reloads.
    watch = False

    def setUp(self):
        self.cluster = Cluster(shards=self.shards, pool=self.pool, servers=self.servers, replication=self.replication,
                               metrics=self.metrics, proxy_args=() if self.watch else ("--no-watch",))
        self.addCleanup(self.stop_cluster)
        self.extra = []  # servers a test starts later
        self.addCleanup(lambda: [s.stop() for s in self.extra])

    def stop_cluster(self):
        # A clean exit (0) also means no leak or error under the sanitizers.
        status = self.cluster.proxy.stop()
        log = self.cluster.proxy.log()
        self.cluster.cleanup()
        self.assertEqual(status, 0, log[-3000:])

    def shard_list(self, names=None, servers=None):
        names = names or self.cluster.names
        servers = servers or self.cluster.sets
        return [(n, [r.address for r in rs]) for n, rs in zip(names, servers)]

    def write_config(self, shards, pool=None, proxy=None, replication=None, port=None):
        text = toml_config(port or self.cluster.proxy.port, shards, pool=pool, proxy=proxy,
                           replication=replication or self.replication, metrics_port=self.cluster.metrics_port)
        tmp = self.cluster.proxy.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.cluster.proxy.config_path)  # never seen half-written

    def reload(self):
        return self.cluster.client().execute_command("PROXY", "RELOAD").decode()

    def new_server(self):
        server = RedisServer(self.cluster.workdir).start()
        self.extra.append(server)
        return server


class TestReloadTriggers(ReloadCase):
    def test_proxy_reload_swaps_the_config_and_reports_it(self):
        before = proxy_info(self.cluster)
        digest_before = config_digest(self.cluster)
        self.write_config(self.shard_list(), pool={"request_timeout_ms": 1500})
        message = self.reload()
        self.assertIn("reloaded (PROXY RELOAD)", message)
        self.assertIn("3 kept, 0 added, 0 removed", message)
        self.assertIn("ring unchanged", message)
        after = proxy_info(self.cluster)
        self.assertNotEqual(digest_before, config_digest(self.cluster))
        digest = subprocess.run(["sha256sum", self.cluster.proxy.config_path], capture_output=True,
                                text=True).stdout[:16]
        self.assertEqual(config_digest(self.cluster), digest)
        self.assertEqual(int(after["config_reloads_ok"]), 1)
        self.assertEqual(int(after["config_reloads_failed"]), 0)

    def test_sighup_reloads(self):
        self.write_config(self.shard_list(), pool={"request_timeout_ms": 1700})
        self.cluster.proxy.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reloaded (SIGHUP)" in self.cluster.proxy.log(), what="a reload after SIGHUP")
        self.assertEqual(reloads_ok(self.cluster), 1)

    def test_with_no_watch_a_changed_file_waits_for_a_reload(self):
        self.write_config(self.shard_list(), pool={"request_timeout_ms": 1900})
        time.sleep(1.5)  # longer than the watch's debounce could last
        self.assertEqual(reloads_ok(self.cluster), 0)
        self.assertIn("reloaded (PROXY RELOAD)", self.reload())

    def test_a_changed_listen_address_is_reported_as_needing_a_restart(self):
        other = free_port()
        self.write_config(self.shard_list(), port=other)
        message = self.reload()
        self.assertIn("needs a restart to apply: [proxy] listen", message)
        info = proxy_info(self.cluster)
        self.assertIn(f"the file says 127.0.0.1:{other}", info["config_restart_needed"])
        self.assertTrue(self.cluster.client().set("still", "served"))  # on the old address
        self.assertIn("needs a restart", self.cluster.proxy.log())


class TestFileWatch(ReloadCase):
    watch = True

    def test_a_changed_file_is_reloaded_including_when_replaced_by_rename(self):
        with open(self.cluster.proxy.config_path, "w") as f:  # written in place
            f.write(toml_config(self.cluster.proxy.port, self.shard_list(), pool={"request_timeout_ms": 1600}))
        wait_until(lambda: reloads_ok(self.cluster) >= 1, what="a reload after the file changed")
        # What editors do: write a new file, rename it over the old one.
        tmp = self.cluster.proxy.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(toml_config(self.cluster.proxy.port, self.shard_list(), pool={"request_timeout_ms": 1800}))
        os.rename(tmp, self.cluster.proxy.config_path)
        wait_until(lambda: reloads_ok(self.cluster) >= 2, what="a reload after a rename")
        self.assertIn("reloaded (file change)", self.cluster.proxy.log())
        # Touching it without changing it reloads nothing.
        os.utime(self.cluster.proxy.config_path)
        time.sleep(0.6)
        self.assertEqual(reloads_ok(self.cluster), 2)

    def test_a_directory_that_never_goes_quiet_does_not_put_the_reload_off(self):
        # A log written next to the config, every 50 ms: the debounce still ends within 1 s.
        stop = threading.Event()

        def noise():
            with open(os.path.join(self.cluster.workdir, "noise.log"), "a") as f:
                while not stop.is_set():
                    f.write("x\n")
                    f.flush()
                    time.sleep(0.05)
        thread = threading.Thread(target=noise)
        thread.start()
        try:
            time.sleep(0.3)
            self.write_config(self.shard_list(), pool={"request_timeout_ms": 1600})
            wait_until(lambda: reloads_ok(self.cluster) >= 1, timeout=20, what="a reload despite the noise")
        finally:
            stop.set()
            thread.join()


class TestReloadMetrics(ReloadCase):
    metrics = True

    def test_the_metrics_show_the_digest_and_count_reloads(self):
        port = self.cluster.metrics_port
        text = scrape(port)
        digest = config_digest(self.cluster)
        self.assertEqual(value(text, "ringproxy_config_info", '{digest="%s"}' % digest), 1)
        self.assertEqual(value(text, "ringproxy_shards"), 3)
        self.assertEqual(value(text, "ringproxy_servers"), 3)
        with open(self.cluster.proxy.config_path, "a") as f:
            f.write("bogus = 1\n")
        with self.assertRaises(redis.ResponseError):
            self.cluster.client().execute_command("PROXY", "RELOAD")
        new = self.new_server()
        self.write_config(self.shard_list() + [("shard4", [new.address])])
        self.reload()
        text = scrape(port)
        self.assertGreaterEqual(value(text, "ringproxy_config_reloads_total", '{outcome="failed"}'), 1)
        self.assertEqual(value(text, "ringproxy_config_reloads_total", '{outcome="ok"}'), 1)
        new_digest = config_digest(self.cluster)
        self.assertEqual(value(text, "ringproxy_config_info", '{digest="%s"}' % new_digest), 1)
        self.assertIsNone(value(text, "ringproxy_config_info", '{digest="%s"}' % digest))  # only the running one
        self.assertGreater(value(text, "ringproxy_config_last_reload_success_timestamp_seconds"), time.time() - 60)
        self.assertEqual(value(text, "ringproxy_shards"), 4)
        self.assertEqual(value(text, "ringproxy_config_restart_needed"), 0)
        self.assertIsNotNone(value(text, "ringproxy_migration_keys_total", '{outcome="moved"}'))
        # A removed server's series leave /metrics once it has drained.
        self.write_config(self.shard_list())
        self.reload()
        wait_until(lambda: f'server="{new.address}"' not in scrape(port), what="the removed server's series to go")


class TestBadFiles(ReloadCase):
    BAD = {
        "syntax error": ('[pool\nhash = "md5"\n', ":1:"),
        "unknown key": (None, "unknown key 'hashing'"),
        "duplicate shard": (None, "duplicate shard name"),
        "bad address": (None, "not-an-address"),
    }

    def bad_text(self, kind):
        good = toml_config(self.cluster.proxy.port, self.shard_list())
        if kind == "syntax error":
            return "[pool\n" + good
        if kind == "unknown key":
            return good.replace("[pool]\n", "[pool]\nhashing = \"md5\"\n")
        if kind == "duplicate shard":
            return good.replace('name = "shard2"', 'name = "shard1"')
        return good.replace(self.cluster.sets[0][0].address, "not-an-address")

    def test_bad_files_change_nothing_and_say_where(self):
        client = self.cluster.client()
        client.set("before", "1")
        digest = config_digest(self.cluster)
        failed = 0
        for kind in ("syntax error", "unknown key", "duplicate shard", "bad address"):
            with self.subTest(kind=kind):
                with open(self.cluster.proxy.config_path, "w") as f:
                    f.write(self.bad_text(kind))
                with self.assertRaises(redis.ResponseError) as raised:
                    client.execute_command("PROXY", "RELOAD")
                failed += 1
                error = str(raised.exception)
                self.assertIn("reload rejected, the running config stays", error)
                self.assertRegex(error, self.cluster.proxy.config_path.replace(".", r"\.") + r":\d+:\d+: ")
                self.assertIn(self.BAD[kind][1], error)
                self.assertEqual(client.get("before"), b"1")  # still serving, same ring
                self.assertTrue(client.set(f"after-{kind}", "x"))
        info = proxy_info(self.cluster)
        self.assertEqual(config_digest(self.cluster), digest)
        self.assertEqual(int(info["config_reloads_failed"]), failed)
        self.assertEqual(int(info["config_reloads_ok"]), 0)
        self.assertIn("reload (PROXY RELOAD) rejected", self.cluster.proxy.log())
        # SIGHUP with a bad file: rejected, counted, logged.
        self.cluster.proxy.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload (SIGHUP) rejected" in self.cluster.proxy.log(), what="the SIGHUP reload to fail")
        self.assertEqual(int(proxy_info(self.cluster)["config_reloads_failed"]), failed + 1)


class TestReloadUnderLoad(ReloadCase):
    pool = {"migration": "move", "migration_keys_per_second": 100000}

    def test_fifty_reloads_under_load_drop_nothing(self):
        """The ring changes 50 times (a 4th shard comes and goes, its keys moving each time)
        under redis-benchmark and a writer/reader that checks every read."""
        stop = threading.Event()
        errors = []
        checked = [0]

        def writer_reader():
            client = redis.Redis(host="127.0.0.1", port=self.cluster.proxy.port, socket_timeout=10,
                                 single_connection_client=True)
            my_id = client.client_id()
            i = 0
            while not stop.is_set():
                try:
                    key = f"load:{i % 5000}"
                    pipe = client.pipeline(transaction=False)
                    pipe.set(key, i)
                    pipe.get(key)
                    pipe.mget([f"load:{(i + j) % 5000}" for j in range(8)])
                    pipe.incr("load:counter")
                    _, value, _, counter = pipe.execute()
                    if value != str(i).encode():
                        errors.append(f"{key}: read {value!r}, wrote {i}")
                    if counter != i + 1:  # an INCR on a key that keeps moving loses nothing
                        errors.append(f"counter {counter}, expected {i + 1}")
                    checked[0] += 1
                except Exception as e:  # noqa: BLE001 - every error is a failure
                    errors.append(repr(e))
                i += 1
            if client.client_id() != my_id:
                errors.append("the connection was dropped and re-established")
            client.close()

        thread = threading.Thread(target=writer_reader)
        thread.start()
        bench = subprocess.Popen(
            ["redis-benchmark", "-p", str(self.cluster.proxy.port), "-c", "20", "-n", "100000000", "-r", "10000",
             "-P", "4", "-t", "set,get", "-e", "-q", "--csv", "-l"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        extra = self.new_server()
        try:
            time.sleep(0.3)
            client = self.cluster.client()
            for n in range(50):
                shards = self.shard_list() + ([("shard4", [extra.address])] if n % 2 == 0 else [])
                self.write_config(shards, pool=dict(self.pool, request_timeout_ms=2000 + n))
                if n % 2 == 0:
                    self.assertIn("reloaded", client.execute_command("PROXY", "RELOAD").decode())
                else:
                    self.cluster.proxy.proc.send_signal(signal.SIGHUP)
                    wait_until(lambda n=n: reloads_ok(self.cluster) >= n + 1, what=f"reload {n + 1}")
                time.sleep(0.05)
            wait_until(lambda: reloads_ok(self.cluster) >= 50, what="50 reloads")
            wait_until(lambda: checked[0] > 50 or errors, timeout=60, what="the writer/reader to check 50 rounds")
        finally:
            stop.set()
            thread.join(60)
            bench.send_signal(signal.SIGINT)
            try:
                out, _ = bench.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                bench.kill()
                out, _ = bench.communicate()
        self.assertEqual(errors[:5], [])
        self.assertGreater(checked[0], 50)
        self.assertNotIn("Error", out)
        self.assertNotIn("ERR", out)
        info = proxy_info(self.cluster)
        self.assertGreaterEqual(int(info["config_reloads_ok"]), 50)
        self.assertEqual(int(info["config_reloads_failed"]), 0)
        wait_until(lambda: int(proxy_info(self.cluster)["servers_draining"]) == 0, what="removed servers to drain")
        wait_until(lambda: proxy_info(self.cluster)["migration_state"] == "done", timeout=60,
                   what="the last move")
        self.assertEqual(extra.client().dbsize(), 0)  # shard4 is gone: its keys all moved back
        self.assertEqual(self.cluster.proxy.proc.poll(), None)


class MigrationCase(ReloadCase):
    migration = "move"
    KEYS = 3000

    def setUp(self):
        self.pool = {"migration": self.migration, "migration_keys_per_second": 100000, "hash": "murmur3"}
        super().setUp()

    def fill(self):
        client = self.cluster.client()
        pipe = client.pipeline(transaction=False)
        for i in range(self.KEYS):
            pipe.set(f"key:{i}", f"value:{i}")
            if i % 10 == 0:
                pipe.expire(f"key:{i}", 3600)
        pipe.hset("hash:1", mapping={"a": "1", "b": "2"})
        pipe.execute()

    def check_all_readable(self):
        client = self.cluster.client()
        values = client.mget([f"key:{i}" for i in range(self.KEYS)])
        missing = [i for i, v in enumerate(values) if v != f"value:{i}".encode()]
        self.assertEqual(missing[:10], [])
        self.assertEqual(client.hgetall("hash:1"), {b"a": b"1", b"b": b"2"})

    def wait_migration_done(self):
        wait_until(lambda: proxy_info(self.cluster)["migration_state"] == "done", timeout=60,
                   what="the migration to finish")

    def check_placement(self, servers_by_name):
        """Every key is on the shard the ring names, and nowhere else."""
        misplaced = []
        for i in range(0, self.KEYS, 7):
            key = f"key:{i}"
            shard = self.cluster.route(key)
            holders = [name for name, server in servers_by_name.items() if server.client().exists(key)]
            if holders != [shard]:
                misplaced.append((key, shard, holders))
        self.assertEqual(misplaced[:10], [])


class TestMove(MigrationCase):
    def test_adding_a_shard_moves_about_one_in_four_keys_and_only_those(self):
        self.fill()
        names = dict(zip(self.cluster.names, self.cluster.redis))
        before = {f"key:{i}": self.cluster.route(f"key:{i}") for i in range(0, self.KEYS, 7)}
        new = self.new_server()
        self.write_config(self.shard_list() + [("shard4", [new.address])],
                          pool=self.pool)
        message = self.reload()
        self.assertIn("ring changed, migration move", message)
        # Reads during the move find every key; writes during it win over the old copies.
        self.check_all_readable()
        client = self.cluster.client()
        moved_keys = [k for k, s in before.items() if self.cluster.route(k) != s]
        self.assertTrue(moved_keys)
        client.set(moved_keys[0], "newer")
        self.wait_migration_done()
        self.assertEqual(client.get(moved_keys[0]), b"newer")
        client.set(moved_keys[0], f"value:{moved_keys[0][4:]}")
        self.check_all_readable()
        names["shard4"] = new
        self.check_placement(names)
        info = proxy_info(self.cluster)
        moved = int(info["migration_keys_moved"])
        self.assertEqual(int(info["migration_keys_failed"]), 0)
        self.assertAlmostEqual(moved / (self.KEYS + 1), 0.25, delta=0.08)
        self.assertTrue(all(self.cluster.route(k) == "shard4" for k in moved_keys))  # only to the new shard
        # TTLs came along.
        for i in range(0, self.KEYS, 10):
            self.assertGreater(client.ttl(f"key:{i}"), 3000)

    def test_removing_a_shard_moves_its_keys_to_the_others(self):
        self.fill()
        removed = self.cluster.redis[2]
        self.assertGreater(removed.client().dbsize(), 0)
        self.write_config(self.shard_list()[:2], pool=self.pool)
        self.assertIn("1 removed and draining", self.reload())
        self.check_all_readable()
        self.wait_migration_done()
        self.assertEqual(removed.client().dbsize(), 0)
        self.check_all_readable()
        self.check_placement(dict(zip(self.cluster.names[:2], self.cluster.redis[:2])))

    def test_a_command_on_a_key_not_moved_yet_sees_its_old_value(self):
        client = self.cluster.client()
        client.set("counter", 41)
        client.rpush("list", "a", "b")
        new = self.new_server()
        self.write_config(self.shard_list() + [("shard4", [new.address])],
                          pool=dict(self.pool, migration_keys_per_second=1))  # the pass barely moves
        self.reload()
        self.assertEqual(client.incr("counter"), 42)
        self.assertEqual(client.rpush("list", "c"), 3)
        self.assertEqual(client.lrange("list", 0, -1), [b"a", b"b", b"c"])

    def test_a_clients_pipelined_requests_keep_their_order_while_keys_move(self):
        client = self.cluster.client()
        before = {f"k{i}": self.cluster.route(f"k{i}") for i in range(400)}
        new = self.new_server()
        self.write_config(self.shard_list() + [("shard4", [new.address])],
                          pool=dict(self.pool, migration_keys_per_second=1))
        self.reload()
        moved = [k for k, s in before.items() if self.cluster.route(k) != s]
        stay = [k for k, s in before.items() if self.cluster.route(k) == s]
        self.assertGreater(len(moved), 20)
        pipe = client.pipeline(transaction=False)
        for round_ in range(10):
            a, b = moved[2 * round_], moved[2 * round_ + 1]
            # A request waiting for two keys, then one for one of them, then one for a key
            # that never moved: each must run after the one before it.
            pipe.mset({a: "first", b: "first"})
            pipe.set(a, "second")
            pipe.set(stay[round_], "third")
            pipe.get(a)
            pipe.get(stay[round_])
        replies = pipe.execute()
        self.assertEqual(replies[3::5], [b"second"] * 10)
        self.assertEqual(replies[4::5], [b"third"] * 10)
        for round_ in range(10):  # and nothing ran late behind the reads
            self.assertEqual(client.get(moved[2 * round_]), b"second")
            self.assertEqual(client.get(moved[2 * round_ + 1]), b"first")

    def test_a_reload_during_a_move_is_handled(self):
        self.fill()
        new4, new5 = self.new_server(), self.new_server()
        slow = dict(self.pool, migration_keys_per_second=200)
        self.write_config(self.shard_list() + [("shard4", [new4.address])], pool=slow)
        self.reload()
        time.sleep(0.3)  # part of the keys moved
        self.write_config(self.shard_list() + [("shard4", [new4.address]), ("shard5", [new5.address])],
                          pool=self.pool)
        self.reload()
        self.check_all_readable()
        self.wait_migration_done()
        names = dict(zip(self.cluster.names, self.cluster.redis))
        names.update(shard4=new4, shard5=new5)
        self.check_placement(names)
        self.check_all_readable()

    def test_a_changed_hash_moves_keys_and_loses_none(self):
        self.fill()
        self.write_config(self.shard_list(), pool=dict(self.pool, hash="fnv1a_64"))
        self.assertIn("ring changed", self.reload())
        self.check_all_readable()
        self.wait_migration_done()
        self.assertGreater(int(proxy_info(self.cluster)["migration_keys_moved"]), self.KEYS // 3)
        self.check_placement(dict(zip(self.cluster.names, self.cluster.redis)))

    def test_a_changed_weight_moves_some_keys(self):
        self.fill()
        shards = self.shard_list()
        shards[0] = (shards[0][0], shards[0][1], 3)
        self.write_config(shards, pool=self.pool)
        self.assertIn("ring changed", self.reload())
        self.wait_migration_done()
        moved = int(proxy_info(self.cluster)["migration_keys_moved"])
        self.assertGreater(moved, self.KEYS // 10)
        self.assertLess(moved, self.KEYS * 0.6)
        self.check_all_readable()
        self.check_placement(dict(zip(self.cluster.names, self.cluster.redis)))

    def test_a_new_address_under_the_same_name_moves_no_key(self):
        self.fill()
        routes = {f"key:{i}": self.cluster.route(f"key:{i}") for i in range(0, self.KEYS, 11)}
        replacement = self.new_server()
        sets = [list(s) for s in self.cluster.sets]
        sets[1] = [replacement]
        message = self.reload_with(self.shard_list(servers=sets))
        self.assertIn("2 kept, 1 added, 1 removed", message)
        self.assertIn("ring unchanged, migration none", message)
        self.assertEqual({k: self.cluster.route(k) for k in routes}, routes)
        wait_until(lambda: int(proxy_info(self.cluster)["servers_draining"]) == 0, what="the old server to drain")
        self.cluster.client().set("fresh", "1")
        key_on_2 = next(k for k, s in routes.items() if s == "shard2")
        self.cluster.client().set(key_on_2, "new")
        self.assertEqual(replacement.client().get(key_on_2), b"new")

    def reload_with(self, shards):
        self.write_config(shards, pool=self.pool)
        return self.reload()


class TestMoveFailures(MigrationCase):
    """Regressions from a hostile review: reloads and dead servers in the middle of moves."""

    def routes(self, shards, keys):
        """Where a throwaway proxy with `shards` sends each key (the ring, not the data)."""
        port = free_port()
        proxy = Proxy(self.cluster.workdir, toml_config(port, shards, pool=self.pool), port).start(("--no-watch",))
        try:
            client = proxy.client()
            return {k: dict(zip(*[iter(client.execute_command("PROXY", "ROUTE", k))] * 2))[b"shard"].decode()
                    for k in keys}
        finally:
            proxy.stop()

    def test_a_request_waiting_on_a_move_planned_before_a_reload_finds_the_key(self):
        # The key goes shard1 -> shard4 -> shard5 over two reloads. Its first move is still
        # writing it to shard4 (stopped) when the second reload comes; a GET sent after that
        # waits for the first move, then must find the key (moved on to shard5), not miss it.
        new4, new5 = self.new_server(), self.new_server()
        ring1 = self.shard_list() + [("shard4", [new4.address])]
        ring2 = ring1 + [("shard5", [new5.address])]
        candidates = [f"hop:{i}" for i in range(300)]
        r0, r1, r2 = (self.routes(s, candidates) for s in (self.shard_list(), ring1, ring2))
        key = next(k for k in candidates if (r0[k], r1[k], r2[k]) == ("shard1", "shard4", "shard5"))
        client = self.cluster.client()
        client.set(key, "v")
        source = self.cluster.server_of("shard1").client()
        source.config_resetstat()
        pool = dict(self.pool, migration_keys_per_second=1, request_timeout_ms=8000)
        results = {}

        def get(name):
            results[name] = self.cluster.client(socket_timeout=30).get(key)
        first = threading.Thread(target=get, args=("first",))
        second = threading.Thread(target=get, args=("second",))
        new4.signal(signal.SIGSTOP)
        try:
            self.write_config(ring1, pool=pool)
            self.reload()
            first.start()  # parks; its move reads shard1, then writes to the stopped shard4
            wait_until(lambda: "cmdstat_dump" in source.info("commandstats"), what="the first move reading")
            time.sleep(0.2)
            self.write_config(ring2, pool=pool)
            self.reload()
            second.start()
            time.sleep(0.3)  # it waits for the first move
        finally:
            new4.signal(signal.SIGCONT)
        first.join(30)
        second.join(30)
        self.assertEqual((results.get("first"), results.get("second")), (b"v", b"v"))
        self.wait_migration_done()
        self.assertEqual([s.client().exists(key) for s in (self.cluster.redis[0], new4, new5)], [0, 0, 1])

    def test_a_reload_while_a_key_is_being_moved_loses_nothing(self):
        client = self.cluster.client()
        before = {f"k{i}": self.cluster.route(f"k{i}") for i in range(200)}
        for key in before:
            client.set(key, "precious")
        ring1 = self.shard_list()
        new = self.new_server()
        slow = dict(self.pool, migration_keys_per_second=1)
        self.write_config(ring1 + [("shard4", [new.address])], pool=slow)
        self.reload()
        key = next(k for k, s in before.items() if self.cluster.route(k) == "shard4")
        sleeper = threading.Thread(target=lambda: new.client().execute_command("DEBUG", "SLEEP", "1.5"))
        sleeper.start()
        time.sleep(0.2)
        result = {}
        reader = threading.Thread(target=lambda: result.update(v=self.cluster.client().get(key)))
        reader.start()
        time.sleep(0.2)  # the GET is parked: its key was read, the RESTORE waits on the sleeping server
        self.write_config(ring1, pool=self.pool)  # roll back while the key is in flight
        self.reload()
        sleeper.join()
        reader.join()
        self.assertEqual(result["v"], b"precious")
        self.assertEqual(client.get(key), b"precious")
        self.wait_migration_done()
        self.assertEqual(client.get(key), b"precious")
        self.assertIsNone(new.client().get(key))

    def test_a_previous_owner_down_when_the_move_starts_is_used_once_it_is_back(self):
        client = self.cluster.client()
        before = {f"k{i}": self.cluster.route(f"k{i}") for i in range(300)}
        for key in before:
            client.set(key, "v")
        first = self.cluster.redis[0]
        first.kill()
        new = self.new_server()
        self.write_config(self.shard_list() + [("shard4", [new.address])],
                          pool=dict(self.pool, retry_interval_ms=300, connect_timeout_ms=300))
        self.reload()
        moved_from_1 = [k for k, s in before.items() if s == "shard1" and self.cluster.route(k) == "shard4"]
        moved_from_2 = [k for k, s in before.items() if s == "shard2" and self.cluster.route(k) == "shard4"]
        self.assertEqual(client.get(moved_from_2[0]), b"v")  # other shards move as usual
        with self.assertRaisesRegex(redis.ResponseError, "TRYAGAIN"):  # the key may be on shard1: unknown
            client.get(moved_from_1[0])
        # Back, with one key (written while it was away from the proxy) there from its first
        # moment: set after the start, a background pass could scan the server before it.
        seed = RedisServer(self.cluster.workdir).start("--dbfilename", "seed.rdb")
        seed.client().set(moved_from_1[1], "kept")
        seed.client().save()
        seed.stop()
        first.start("--dbfilename", "seed.rdb")
        wait_until(lambda: client.get(moved_from_1[1]) == b"kept", timeout=20, what="shard1 to be used again")
        self.wait_migration_done()
        self.assertEqual(new.client().get(moved_from_1[1]), b"kept")

    def test_a_removed_shard_that_is_dead_fails_fast_and_migration_none_gives_up(self):
        client = self.cluster.client()
        keys = [f"k{i}" for i in range(300)]
        for key in keys:
            client.set(key, "v")
        on3 = [k for k in keys if self.cluster.route(k) == "shard3"]
        self.cluster.redis[2].kill()
        # A long request timeout: a move that waited for its deadline would take 21 s.
        self.write_config(self.shard_list()[:2], pool=dict(self.pool, retry_interval_ms=30000,
                                                           request_timeout_ms=20000))
        self.reload()
        with self.assertRaisesRegex(redis.ResponseError, "TRYAGAIN"):
            client.get(on3[0])
        started = time.monotonic()
        with self.assertRaisesRegex(redis.ResponseError, "TRYAGAIN"):
            client.set(on3[1], "new")
        self.assertLess(time.monotonic() - started, 10.0)  # not another deadline: fails at once
        self.write_config(self.shard_list()[:2], pool=dict(self.pool, migration="none"))
        self.assertIn("migration none", self.reload())
        self.assertTrue(client.set(on3[1], "new"))  # given up: the keys start afresh on their new shard
        self.assertEqual(client.get(on3[1]), b"new")


class TestWarm(MigrationCase):
    migration = "warm"

    def test_reads_bring_moved_keys_forward_and_the_rest_stay(self):
        self.fill()
        old = dict(zip(self.cluster.names, self.cluster.redis))
        before = {f"key:{i}": self.cluster.route(f"key:{i}") for i in range(self.KEYS)}
        new = self.new_server()
        self.write_config(self.shard_list() + [("shard4", [new.address])], pool=self.pool)
        self.assertIn("migration warm", self.reload())
        moved = [k for k, s in before.items() if self.cluster.route(k) != s]
        self.assertAlmostEqual(len(moved) / self.KEYS, 0.25, delta=0.08)
        read, unread = moved[: len(moved) // 2], moved[len(moved) // 2:]
        client = self.cluster.client()
        for key in read:
            self.assertEqual(client.get(key), f"value:{key[4:]}".encode())
            self.assertTrue(new.client().exists(key))             # copied forward
            self.assertFalse(old[before[key]].client().exists(key))  # and gone from its old shard
        self.assertFalse(any(new.client().exists(k) for k in unread[:50]))  # nobody asked for these
        self.assertEqual(new.client().ttl(next(k for k in read if int(k[4:]) % 10 == 0)) > 3000, True)
        self.assertEqual(proxy_info(self.cluster)["migration_state"], "moving")


class TestMoveReplicated(MigrationCase):
    servers = 2
    replication = {"strategy": "multi-primary", "write_ack": "all"}

    def test_a_move_writes_every_server_of_the_new_shard(self):
        self.fill()
        new = [self.new_server(), self.new_server()]
        self.write_config(self.shard_list() + [("shard4", [s.address for s in new])], pool=self.pool)
        self.reload()
        self.wait_migration_done()
        self.check_all_readable()
        on_new = [set(s.client().keys("key:*")) for s in new]
        self.assertGreater(len(on_new[0]), self.KEYS // 8)
        self.assertEqual(on_new[0], on_new[1])
        for rs in self.cluster.sets:  # the old copies left every server of their shard
            self.assertEqual(set(rs[0].client().keys("key:*")), set(rs[1].client().keys("key:*")))
            self.assertFalse(on_new[0] & set(rs[0].client().keys("key:*")))


class TestReloadDuringResync(ReloadCase):
    """A reload that removes the peer a stale server is being resynced from."""
    shards = 1
    servers = 3
    pool = {"failure_limit": 1, "retry_interval_ms": 200, "request_timeout_ms": 500, "connect_timeout_ms": 300}
    replication = {"strategy": "multi-primary", "write_ack": "one"}

    def test_the_resync_starts_again_from_a_peer_that_stays(self):
        s0, s1, s2 = self.cluster.sets[0]
        s0.client().config_set("repl-diskless-sync-delay", 30)  # the copy from s0 waits: a window
        s1.client().config_set("repl-diskless-sync-delay", 0)
        r = self.cluster.client()
        for i in range(200):
            r.set(f"key:{i}", i)
        s2.kill()
        s2.start()  # empty: stale until resynced
        s2.client().config_set("repl-diskless-sync-delay", 0)

        def poke():
            r.set("poke", 1)  # a write notices the restart
            return f"from {s0.address} starting" in self.cluster.proxy.log()
        wait_until(poke, timeout=20, what="resync from s0")

        self.write_config([("shard1", [s1.address, s2.address])], pool=self.pool)
        self.assertIn("reloaded", self.reload())
        wait_until(lambda: f"from {s1.address} starting" in self.cluster.proxy.log(), timeout=20,
                   what="resync from s1")
        wait_until(lambda: proxy_info(self.cluster)["server1"]["state"] == "up", timeout=30, what="s2 live")
        for i in range(200):
            self.assertEqual(s2.client().get(f"key:{i}"), str(i).encode())
        self.assertEqual(s2.client().info("replication")["role"], "master")
        r.set("after", 1)
        self.assertEqual(s2.client().get("after"), b"1")


if __name__ == "__main__":
    unittest.main()
