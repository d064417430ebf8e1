"""Transactions through the proxy (issue 13), against real redis-servers.

The proxy queues MULTI's commands itself (+QUEUED) and sends MULTI, the commands and EXEC in one
piece to the shard their keys map to; a command it cannot queue (a key on another shard, KEYS, an
unknown command) is a queuing error and EXEC answers -EXECABORT, as redis does. WATCH runs on a
dedicated connection (a bounded pool per server) until EXEC, DISCARD or UNWATCH. On a replicated
shard a transaction is one write: every server runs it, in the order of the shard's other writes,
and a server that was down gets it replayed whole.
"""
import signal
import subprocess
import threading
import unittest

import redis

from harness import (Cluster, digests, keys_by_shard, scrape, server_infos, server_states, value,
                     wait_until)


def stats(cluster):
    info = cluster.client().info("stats")
    return {k[len("transactions_"):]: int(v) for k, v in info.items() if k.startswith("transactions_")}


class RawClient:
    """One connection, replies read one by one (redis-py's pipeline hides the +QUEUED replies)."""

    def __init__(self, port):
        self.conn = redis.Connection(port=port, socket_timeout=10)
        self.conn.connect()

    def call(self, *args):
        self.conn.send_command(*args)
        try:
            return self.conn.read_response()
        except redis.ResponseError as e:
            return e

    def send(self, *commands):
        for c in commands:
            self.conn.send_command(*c)

    def read(self):
        try:
            return self.conn.read_response()
        except redis.ResponseError as e:
            return e

    def close(self):
        self.conn.disconnect()


class TransactionsTest(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster(shards=3, metrics=True, pool={"hash_tag": "{}", "failure_limit": 1,
                                                             "retry_interval_ms": 100})
        self.addCleanup(self.cluster.cleanup)
        self.client = self.cluster.client()
        self.keys = keys_by_shard(self.cluster, 4)

    def raw(self):
        c = RawClient(self.cluster.proxy.port)
        self.addCleanup(c.close)
        return c

    def test_a_transaction_runs_on_every_shard_with_hash_tags(self):
        for shard, keys in self.keys.items():
            tag = "{" + keys[0] + "}"
            pipe = self.client.pipeline(transaction=True)
            pipe.set(f"{tag}:a", 1).incr(f"{tag}:a").incrby(f"{tag}:b", 5).mget(f"{tag}:a", f"{tag}:b")
            pipe.expire(f"{tag}:a", 100).ttl(f"{tag}:a").lpush(f"{tag}:l", "x", "y").lrange(f"{tag}:l", 0, -1)
            self.assertEqual(pipe.execute(), [True, 2, 5, [b"2", b"5"], True, 100, 2, [b"y", b"x"]])
            server = self.cluster.server_of(shard).client()
            self.assertEqual(server.get(f"{tag}:a"), b"2")  # on the shard the keys map to
        self.assertEqual(stats(self.cluster)["exec"], 3)

    def test_the_queue_is_the_proxys_and_exec_gets_every_reply(self):
        c = self.raw()
        k = self.keys[self.cluster.names[0]]
        self.assertEqual(c.call("MULTI"), b"OK")
        self.assertEqual(c.call("SET", k[0], "v"), b"QUEUED")
        self.assertEqual(c.call("GET", k[0]), b"QUEUED")
        self.assertEqual(c.call("PING"), b"QUEUED")  # runs on the transaction's server
        self.assertEqual(c.call("ECHO", "hi"), b"QUEUED")
        self.assertIsNone(self.client.get(k[0]))  # nothing ran yet
        self.assertEqual(c.call("EXEC"), [b"OK", b"v", b"PONG", b"hi"])
        self.assertIn("EXEC without MULTI", str(c.call("EXEC")))  # it is over

    def test_exec_and_discard_without_multi_and_nesting(self):
        c = self.raw()
        self.assertIn("EXEC without MULTI", str(c.call("EXEC")))
        self.assertIn("DISCARD without MULTI", str(c.call("DISCARD")))
        self.assertEqual(c.call("UNWATCH"), b"OK")
        k = self.keys[self.cluster.names[1]]
        self.assertEqual(c.call("MULTI"), b"OK")
        self.assertIn("MULTI calls can not be nested", str(c.call("MULTI")))  # not a queuing error
        self.assertIn("WATCH inside MULTI is not allowed", str(c.call("WATCH", k[0])))
        self.assertEqual(c.call("INCR", k[0]), b"QUEUED")
        self.assertEqual(c.call("EXEC"), [1])
        self.assertEqual(c.call("MULTI"), b"OK")
        self.assertEqual(c.call("INCR", k[0]), b"QUEUED")
        self.assertEqual(c.call("DISCARD"), b"OK")
        self.assertEqual(self.client.get(k[0]), b"1")  # the discarded INCR never ran
        self.assertEqual(c.call("GET", k[0]), b"1")  # the client is out of the transaction
        self.assertEqual(stats(self.cluster)["discard"], 1)

    def test_queuing_errors_abort_the_transaction(self):
        a, b = self.keys[self.cluster.names[0]][0], self.keys[self.cluster.names[1]][0]
        cases = [
            (("SET", b, "x"), "a transaction runs on one shard: '%s' is on shard" % b),
            (("KEYS", "*"), "KEYS cannot be queued in a transaction through ringproxy: it runs on every shard"),
            (("NOSUCHCOMMAND",), "unknown command"),
            (("GET",), "wrong number of arguments for 'get' command"),
            (("MGET", a, b), "a transaction runs on one shard"),
            (("INFO",), "INFO cannot be queued in a transaction through ringproxy: the proxy answers it itself"),
            (("SUBSCRIBE", "ch"), "SUBSCRIBE"),
        ]
        for command, error in cases:
            with self.subTest(command=command):
                c = self.raw()
                self.assertEqual(c.call("MULTI"), b"OK")
                self.assertEqual(c.call("SET", a, "queued-before"), b"QUEUED")
                reply = c.call(*command)
                self.assertIsInstance(reply, redis.ResponseError)
                self.assertIn(error, str(reply))
                self.assertEqual(c.call("SET", a, "queued-after"), b"QUEUED")
                reply = c.call("EXEC")
                self.assertIsInstance(reply, redis.ResponseError)
                self.assertTrue(str(reply).startswith("Transaction discarded because of previous errors"), reply)
                self.assertIsNone(self.client.get(a))  # nothing of it ran
                self.assertEqual(c.call("PING"), b"PONG")  # and the client is out of it
        self.assertEqual(stats(self.cluster)["execabort"], len(cases))
        wait_until(lambda: value(scrape(self.cluster.metrics_port), "ringproxy_transactions_total",
                                 '{outcome="execabort"}') == len(cases), what="published")

    def test_redis_py_surfaces_a_cross_shard_transaction_as_its_queuing_error(self):
        a, b = self.keys[self.cluster.names[0]][0], self.keys[self.cluster.names[2]][0]
        pipe = self.client.pipeline(transaction=True)
        pipe.set(a, 1).set(b, 2)
        with self.assertRaisesRegex(redis.ResponseError, "a transaction runs on one shard"):
            pipe.execute()
        self.assertEqual((self.client.get(a), self.client.get(b)), (None, None))

    def test_a_server_refusal_at_exec_is_execabort_with_its_reason(self):
        # The server refuses a queued command the proxy accepted (its memory is full): EXEC says
        # why, since the client saw the proxy's +QUEUED.
        k = self.keys[self.cluster.names[0]]
        server = self.cluster.server_of(self.cluster.names[0]).client()
        server.set("filler", "x" * 200000)
        server.config_set("maxmemory", 1)
        self.addCleanup(server.config_set, "maxmemory", 0)
        c = self.raw()
        self.assertEqual(c.call("MULTI"), b"OK")
        self.assertEqual(c.call("SET", k[0], "v"), b"QUEUED")
        reply = c.call("EXEC")
        self.assertIsInstance(reply, redis.ResponseError)
        self.assertIn("Transaction discarded because of previous errors: the server refused a queued command: OOM",
                      str(reply))

    def test_runtime_errors_stay_inside_execs_reply(self):
        k = self.keys[self.cluster.names[2]]
        self.client.set(k[0], "not-a-list")
        pipe = self.client.pipeline(transaction=True)
        pipe.lpush(k[0], "x").set(k[1], "ok")
        results = pipe.execute(raise_on_error=False)
        self.assertIsInstance(results[0], redis.ResponseError)
        self.assertIn("WRONGTYPE", str(results[0]))
        self.assertTrue(results[1])
        self.assertEqual(self.client.get(k[1]), b"ok")

    def test_evalsha_inside_a_transaction_runs_where_the_script_is_missing(self):
        k = self.keys[self.cluster.names[1]]
        sha = self.client.script_load("return redis.call('INCR', KEYS[1])")
        self.cluster.server_of(self.cluster.names[1]).client().script_flush()
        pipe = self.client.pipeline(transaction=True)
        pipe.evalsha(sha, 1, k[0]).evalsha(sha, 1, k[0])
        self.assertEqual(pipe.execute(), [1, 2])

    def test_watch_commits_when_nothing_changed_and_aborts_when_a_key_did(self):
        k = self.keys[self.cluster.names[0]]
        self.client.set(k[0], 10)
        with self.client.pipeline() as pipe:
            pipe.watch(k[0], k[1])
            current = int(pipe.get(k[0]))
            pipe.multi()
            pipe.set(k[0], current + 1)
            self.assertEqual(pipe.execute(), [True])
        self.assertEqual(self.client.get(k[0]), b"11")

        other = self.cluster.client()
        with self.client.pipeline() as pipe:
            pipe.watch(k[0])
            pipe.get(k[0])
            other.set(k[0], "changed by another client")  # through the proxy, another connection
            pipe.multi()
            pipe.set(k[0], "mine")
            with self.assertRaises(redis.WatchError):
                pipe.execute()
        self.assertEqual(self.client.get(k[0]), b"changed by another client")

        # The redis-py helper that retries: a counter incremented by 20 racing threads.
        def incr_with_watch():
            def body(pipe):
                value_now = int(pipe.get(k[2]) or 0)
                pipe.multi()
                pipe.set(k[2], value_now + 1)
            self.cluster.client().transaction(body, k[2])

        threads = [threading.Thread(target=lambda: [incr_with_watch() for _ in range(10)]) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(self.client.get(k[2]), b"40")
        wait_until(lambda: value(scrape(self.cluster.metrics_port), "ringproxy_server_dedicated_connections",
                                 f'{{server="{self.cluster.server_of(self.cluster.names[0]).address}",'
                                 f'shard="{self.cluster.names[0]}"}}') == 0, what="dedicated connections back")

    def test_watch_sees_the_clients_earlier_writes_and_its_later_reads_see_exec(self):
        # Pipelined without waiting: SET, WATCH, GET, MULTI, INCR, EXEC, GET. The WATCH goes on
        # another connection, after the SET; the last GET on the shared one, after EXEC.
        k = self.keys[self.cluster.names[1]][0]
        for _ in range(20):
            c = self.raw()
            c.send(("SET", k, 5), ("WATCH", k), ("GET", k), ("MULTI",), ("INCR", k), ("EXEC",), ("GET", k))
            replies = [c.read() for _ in range(7)]
            self.assertEqual(replies, [b"OK", b"OK", b"5", b"OK", b"QUEUED", [6], b"6"])
            c.close()

    def test_watch_keys_on_two_shards_are_refused(self):
        a, b = self.keys[self.cluster.names[0]][0], self.keys[self.cluster.names[2]][0]
        c = self.raw()
        self.assertIn("a transaction runs on one shard", str(c.call("WATCH", a, b)))
        self.assertEqual(c.call("WATCH", a), b"OK")
        self.assertIn("a transaction runs on one shard", str(c.call("WATCH", b)))
        self.assertEqual(c.call("MULTI"), b"OK")
        self.assertIn("a transaction runs on one shard", str(c.call("SET", b, 1)))
        self.assertIsInstance(c.call("EXEC"), redis.ResponseError)

    def test_unwatch_discard_and_disconnect_give_the_connection_back(self):
        server = self.cluster.server_of(self.cluster.names[0])
        label = f'{{server="{server.address}",shard="{self.cluster.names[0]}"}}'
        k = self.keys[self.cluster.names[0]][0]

        def held():
            return value(scrape(self.cluster.metrics_port), "ringproxy_server_dedicated_connections", label)

        clients_before = len(server.client().client_list())
        c = self.raw()
        self.assertEqual(c.call("WATCH", k), b"OK")
        self.assertEqual(held(), 1)
        self.assertEqual(c.call("UNWATCH"), b"OK")
        wait_until(lambda: held() == 0, what="given back after UNWATCH")
        self.assertEqual(c.call("WATCH", k), b"OK")
        self.assertEqual(c.call("MULTI"), b"OK")
        self.assertEqual(c.call("DISCARD"), b"OK")
        wait_until(lambda: held() == 0, what="given back after DISCARD")
        self.assertEqual(c.call("WATCH", k), b"OK")
        c.close()
        wait_until(lambda: held() == 0, what="given back when the client left")
        # One idle dedicated connection is kept for the next watcher, no more.
        wait_until(lambda: len(server.client().client_list()) <= clients_before + 1, what="extra closed")

    def test_the_pool_is_bounded_and_says_so(self):
        cluster = Cluster(shards=1, metrics=True, pool={"dedicated_connections": 2})
        self.addCleanup(cluster.cleanup)
        watchers = [RawClient(cluster.proxy.port) for _ in range(3)]
        for w in watchers:
            self.addCleanup(w.close)
        self.assertEqual(watchers[0].call("WATCH", "a"), b"OK")
        self.assertEqual(watchers[1].call("WATCH", "b"), b"OK")
        refused = watchers[2].call("WATCH", "c")
        self.assertIsInstance(refused, redis.ResponseError)
        self.assertIn("no dedicated connection free to server", str(refused))
        self.assertIn("[pool] dedicated_connections", str(refused))
        self.assertEqual(watchers[2].call("GET", "c"), None)  # not in a transaction: served as usual
        address = cluster.redis[0].address
        text = scrape(cluster.metrics_port)
        self.assertEqual(value(text, "ringproxy_server_dedicated_exhausted_total",
                               f'{{server="{address}",shard="shard1"}}'), 1)
        self.assertEqual(watchers[0].call("MULTI"), b"OK")
        self.assertEqual(watchers[0].call("SET", "a", 1), b"QUEUED")
        self.assertEqual(watchers[0].call("EXEC"), [b"OK"])
        wait_until(lambda: watchers[2].call("WATCH", "c") == b"OK", what="a freed connection taken")

    def test_a_watch_whose_server_restarted_makes_exec_answer_nil(self):
        name = self.cluster.names[0]
        k = self.keys[name][0]
        c = self.raw()
        self.assertEqual(c.call("WATCH", k), b"OK")
        server = self.cluster.server_of(name)
        server.kill()
        wait_until(lambda: server_states(self.cluster)[0] == "down", what="down")
        server.start()
        wait_until(lambda: server_states(self.cluster)[0] == "up", what="up")
        self.assertEqual(c.call("MULTI"), b"OK")
        self.assertEqual(c.call("SET", k, "lost"), b"QUEUED")
        self.assertIsNone(c.call("EXEC"))  # the watch could not be kept: aborted, to be retried
        self.assertIsNone(self.client.get(k))
        self.assertEqual(stats(self.cluster)["watch_lost"], 1)
        self.assertEqual(c.call("WATCH", k), b"OK")  # a new watch works
        self.assertEqual(c.call("MULTI"), b"OK")
        self.assertEqual(c.call("SET", k, "kept"), b"QUEUED")
        self.assertEqual(c.call("EXEC"), [b"OK"])

    def test_a_blocking_command_in_a_transaction_does_not_block(self):
        # Inside MULTI redis runs BLPOP at once (nil on an empty list): queued like any command.
        k = self.keys[self.cluster.names[0]]
        self.client.rpush(k[1], "x")
        c = self.raw()
        self.assertEqual(c.call("MULTI"), b"OK")
        self.assertEqual(c.call("BLPOP", k[0], 0), b"QUEUED")
        self.assertEqual(c.call("BLPOP", k[1], 0), b"QUEUED")
        self.assertEqual(c.call("EXEC"), [None, [k[1].encode(), b"x"]])
        self.assertIsNone(c.call("BLPOP", k[0], "0.1"))  # outside MULTI it blocks (issue 14)

    def test_redis_cli(self):
        k = self.keys[self.cluster.names[2]][0]
        script = f"MULTI\nSET {k} 1\nINCR {k}\nEXEC\n"
        out = subprocess.run(["redis-cli", "-p", str(self.cluster.proxy.port)], input=script, capture_output=True,
                             text=True, timeout=30)
        self.assertEqual(out.stdout.split(), ["OK", "QUEUED", "QUEUED", "OK", "2"])  # (not a terminal: raw replies)


class ReplicatedTransactionsTest(unittest.TestCase):
    """A transaction on a replicated shard is one write: the same MULTI ... EXEC on every server."""

    def run_incr_transactions(self, cluster, stop, errors, acked):
        r = cluster.client()
        while not stop.is_set():
            try:
                pipe = r.pipeline(transaction=True)
                pipe.incr("{t}:a").incr("{t}:b").expire("{t}:a", 3600)
                result = pipe.execute()
                acked.append(result[0])
            except redis.RedisError as e:
                errors.append(repr(e))

    def test_every_server_runs_it_and_a_down_server_gets_it_replayed(self):
        for strategy in ("primary-replica", "multi-primary"):
            with self.subTest(strategy=strategy):
                cluster = Cluster(shards=1, servers=3, metrics=True,
                                  pool={"failure_limit": 1, "retry_interval_ms": 200},
                                  replication={"strategy": strategy, "write_ack": "quorum"})
                try:
                    stop, errors, acked = threading.Event(), [], []
                    worker = threading.Thread(target=self.run_incr_transactions, args=(cluster, stop, errors, acked))
                    worker.start()
                    wait_until(lambda: len(acked) > 200, what="transactions")
                    victim = cluster.sets[0][2]
                    victim.signal(signal.SIGSTOP)
                    wait_until(lambda: server_states(cluster)[2] != "up", what="victim not live")
                    n = len(acked)
                    wait_until(lambda: len(acked) > n + 200, what="transactions without it")
                    victim.signal(signal.SIGCONT)
                    wait_until(lambda: server_states(cluster) == ["up"] * 3, timeout=60, what="caught up")
                    n = len(acked)
                    wait_until(lambda: len(acked) > n + 100, what="transactions after")
                    stop.set()
                    worker.join()
                    self.assertEqual(errors, [])
                    info = server_infos(cluster)[2]
                    self.assertGreaterEqual(int(info["replays"]) + int(info["resyncs"]), 1, info)
                    wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, what="servers equal")
                    # Every acknowledged transaction exactly once, on every server.
                    for server in cluster.sets[0]:
                        c = server.client()
                        self.assertEqual((int(c.get("{t}:a")), int(c.get("{t}:b"))), (len(acked), len(acked)))
                        self.assertGreater(c.ttl("{t}:a"), 3000)
                    self.assertEqual(sorted(acked), list(range(1, len(acked) + 1)))
                finally:
                    stop.set()
                    cluster.sets[0][2].signal(signal.SIGCONT)
                    self.assertEqual(cluster.cleanup(), 0)

    def test_a_read_only_transaction_is_served_by_one_server(self):
        cluster = Cluster(shards=1, servers=3, replication={"strategy": "primary-replica", "read_from": "replica"})
        try:
            r = cluster.client()
            r.set("{r}:a", 1)
            wait_until(lambda: all(s.client().get("{r}:a") == b"1" for s in cluster.sets[0]), what="copied")
            pipe = r.pipeline(transaction=True)
            pipe.get("{r}:a").exists("{r}:a")
            self.assertEqual(pipe.execute(), [b"1", 1])
            execs = [s.client().info("commandstats").get("cmdstat_exec", {}).get("calls", 0) for s in cluster.sets[0]]
            self.assertEqual(execs[0], 0, execs)  # not the primary (read_from = replica)
            self.assertEqual(sorted(execs[1:]), [0, 1], execs)  # one replica ran it
        finally:
            self.assertEqual(cluster.cleanup(), 0)

    def test_what_a_replicated_shard_refuses(self):
        cluster = Cluster(shards=1, servers=2, replication={"strategy": "multi-primary", "write_ack": "all"})
        try:
            c = RawClient(cluster.proxy.port)
            self.assertEqual(c.call("MULTI"), b"OK")
            self.assertIn("SPOP cannot be queued in a transaction on replicated shard 'shard1'",
                          str(c.call("SPOP", "s")))
            self.assertIsInstance(c.call("EXEC"), redis.ResponseError)
            c.close()
        finally:
            self.assertEqual(cluster.cleanup(), 0)

    def test_watch_on_a_replicated_shard(self):
        """WATCH runs on the shard's write leader; a watched EXEC runs there first, alone on the
        shard, and the other servers get it only if it committed."""
        for strategy in ("primary-replica", "multi-primary"):
            with self.subTest(strategy=strategy):
                cluster = Cluster(shards=1, servers=3, replication={"strategy": strategy, "write_ack": "all",
                                                                    "read_from": "any" if strategy == "multi-primary"
                                                                    else "prefer-replica"})
                try:
                    r, other = cluster.client(), cluster.client()
                    r.set("k", 1)
                    with r.pipeline() as pipe:  # the watch fires: nothing runs anywhere
                        pipe.watch("k")
                        pipe.get("k")
                        other.set("k", "theirs")
                        pipe.multi()
                        pipe.set("k", "mine")
                        with self.assertRaises(redis.WatchError):
                            pipe.execute()
                    for server in cluster.sets[0]:
                        self.assertEqual(server.client().get("k"), b"theirs")

                    def incr_with_watch():
                        def body(pipe):
                            value_now = int(pipe.get("n") or 0)
                            pipe.multi()
                            pipe.set("n", value_now + 1)
                            pipe.xadd("log", {"v": value_now + 1})  # '*': the leader's ID everywhere
                        cluster.client().transaction(body, "n")

                    threads = [threading.Thread(target=lambda: [incr_with_watch() for _ in range(15)])
                               for _ in range(4)]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
                    for server in cluster.sets[0]:
                        self.assertEqual(server.client().get("n"), b"60")
                        self.assertEqual(server.client().xlen("log"), 60)
                    wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, what="servers equal")
                    self.assertEqual(sum(int(s.client().info("commandstats").get("cmdstat_watch", {}).get("calls", 0))
                                         for s in cluster.sets[0][1:]), 0)  # only the leader is watched on
                finally:
                    self.assertEqual(cluster.cleanup(), 0)

    def test_xadd_with_a_server_chosen_id_is_replicated_by_its_effect(self):
        for strategy in ("primary-replica", "multi-primary"):
            with self.subTest(strategy=strategy):
                cluster = Cluster(shards=1, servers=3, replication={"strategy": strategy, "write_ack": "all"})
                try:
                    r = cluster.client()
                    ids = [r.xadd("s", {"i": i}) for i in range(50)]
                    ids += [r.xadd("s", {"i": i}, maxlen=40, approximate=False) for i in range(10)]
                    pipe = r.pipeline(transaction=True)
                    for i in range(5):
                        pipe.xadd("s", {"tx": i})
                    ids += pipe.execute()
                    self.assertIsNone(r.xadd("absent", {"x": 1}, nomkstream=True))
                    for server in cluster.sets[0]:
                        entries = server.client().xrange("s")
                        self.assertEqual([e[0] for e in entries], ids[-45:])
                        self.assertEqual(server.client().exists("absent"), 0)
                    wait_until(lambda: len(set(digests(cluster.sets[0]))) == 1, what="servers equal")
                finally:
                    self.assertEqual(cluster.cleanup(), 0)


if __name__ == "__main__":
    unittest.main()
