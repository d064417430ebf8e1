"""The load: concurrent pipelining clients running checkable writes, and their history.

Key families, one operation type each so every check stays sound:
  c:<i>           INCRBY (shared by all clients; deltas are summed), and GET through the proxy
  s:<i>           SADD of unique elements "<client>:<seq>"
  l:<i>           RPUSH of unique elements "<client>:<seq>"
  k:<client>:<j>  SET / MSET (split across shards) / DEL (multi-key, split) / EXPIRE, each
                  key written by one client only, with unique values "<client>:<seq>"
  c:{t<i>}, l:{t<i>}  MULTI / INCRBY / RPUSH / EXEC: one transaction on the pair's shard (a hash
                  tag), in the middle of the pipeline; all or nothing of it must be applied
  q:<i>           a work queue: RPUSH of unique elements, and BLPOP with a 20 ms timeout (on a
                  replicated shard the pop waits in the proxy): no element popped twice, none
                  both popped and still queued, none lost beyond what pops of unknown outcome took
Every operation is recorded with its outcome: "ok" (acknowledged), "fail" (an error the README
says wrote nothing), or "info" (anything else: an error that may have applied, a broken
connection, a timeout).
"""
import random
import threading
import time

import redis

COUNTERS = 8
SETS = 8
LISTS = 8
STRINGS_PER_CLIENT = 12
TRANSACTION_PAIRS = 4
QUEUES = 4

# Errors after which nothing was written (README, Replication / Failures): the planner refused
# the whole request before sending anything.
NOTHING_WRITTEN = ("nothing was written", "writes fail until it is back", "is unavailable: no usable server")

OP_WEIGHTS = [("incrby", 3), ("sadd", 2), ("rpush", 3), ("set", 3), ("mset", 1), ("del", 1), ("expire", 1),
              ("get", 1.5), ("multi", 1.5), ("qpush", 1.3), ("qpop", 1.3)]


def classify_error(e):
    text = str(e)
    if isinstance(e, redis.ResponseError) and any(m in text for m in NOTHING_WRITTEN):
        return "fail"
    return "info"


class Op:
    __slots__ = ("client", "seq", "kind", "keys", "args", "outcome", "error", "t0", "t1", "result")

    def __init__(self, client, seq, kind, keys, args):
        self.client, self.seq, self.kind, self.keys, self.args = client, seq, kind, keys, args
        self.outcome, self.error, self.t0, self.t1, self.result = None, None, None, None, None

    def to_json(self):
        return {"c": self.client, "seq": self.seq, "op": self.kind, "keys": self.keys, "args": self.args,
                "outcome": self.outcome, "error": self.error, "t0": self.t0, "t1": self.t1, "result": self.result}


class Client(threading.Thread):
    def __init__(self, workload, cid, seed):
        super().__init__(name=f"client{cid}", daemon=True)
        self.w = workload
        self.cid = cid
        self.rng = random.Random(seed)
        self.pace = random.Random(seed + 7919)  # pauses, kept apart from the operations drawn
        self.seq = 0
        self.ops = []
        self.batches = 0
        self.conn_errors = 0
        self.crash = None

    def next_op(self):
        self.seq += 1
        cid, seq, rng = self.cid, self.seq, self.rng
        kinds, weights = zip(*OP_WEIGHTS)
        kind = rng.choices(kinds, weights)[0]
        elem = f"{cid}:{seq}"
        own = [f"k:{cid}:{j}" for j in range(STRINGS_PER_CLIENT)]
        if kind == "incrby":
            return Op(cid, seq, kind, [f"c:{rng.randrange(COUNTERS)}"], [rng.randint(1, 9)])
        if kind == "get":
            return Op(cid, seq, kind, [f"c:{rng.randrange(COUNTERS)}"], [])
        if kind == "multi":
            pair = rng.randrange(TRANSACTION_PAIRS)
            return Op(cid, seq, kind, [f"c:{{t{pair}}}", f"l:{{t{pair}}}"], [rng.randint(1, 9), elem])
        if kind == "qpush":
            return Op(cid, seq, kind, [f"q:{rng.randrange(QUEUES)}"], [elem])
        if kind == "qpop":
            return Op(cid, seq, kind, [f"q:{rng.randrange(QUEUES)}"], [])
        if kind == "sadd":
            return Op(cid, seq, kind, [f"s:{rng.randrange(SETS)}"], [elem])
        if kind == "rpush":
            return Op(cid, seq, kind, [f"l:{rng.randrange(LISTS)}"], [elem])
        if kind == "set":
            return Op(cid, seq, kind, [rng.choice(own)], [elem])
        if kind == "mset":
            keys = rng.sample(own, rng.randint(2, 4))
            return Op(cid, seq, kind, keys, [f"{elem}:{n}" for n in range(len(keys))])
        if kind == "del":
            return Op(cid, seq, kind, rng.sample(own, rng.randint(1, 3)), [])
        return Op(cid, seq, "expire", [rng.choice(own)], [rng.randint(3600, 7200)])

    @staticmethod
    def queue(pipe, op):
        """Queues the op's commands; returns how many replies it gets."""
        k, a = op.keys, op.args
        if op.kind == "multi":
            for command in (("MULTI",), ("INCRBY", k[0], a[0]), ("RPUSH", k[1], a[1]), ("EXEC",)):
                pipe.execute_command(*command)
            return 4
        if op.kind == "incrby":
            pipe.incrby(k[0], a[0])
        elif op.kind in ("sadd", "rpush"):
            getattr(pipe, op.kind)(k[0], a[0])
        elif op.kind == "qpush":
            pipe.rpush(k[0], a[0])
        elif op.kind == "qpop":
            pipe.blpop([k[0]], timeout=0.02)
        elif op.kind == "set":
            pipe.set(k[0], a[0])
        elif op.kind == "get":
            pipe.get(k[0])
        elif op.kind == "mset":
            pipe.mset(dict(zip(k, a)))
        elif op.kind == "del":
            pipe.delete(*k)
        else:
            pipe.expire(k[0], a[0])
        return 1

    @staticmethod
    def transaction_reply(replies):
        """A transaction's replies (MULTI, INCRBY, RPUSH, EXEC) as one: EXEC's, or the error that
        says what happened (EXEC's error, else an earlier one)."""
        if isinstance(replies[-1], Exception) or not isinstance(replies[-1], list) or len(replies[-1]) != 2:
            return replies[-1] if isinstance(replies[-1], Exception) else redis.ResponseError(f"EXEC: {replies[-1]!r}")
        early = next((r for r in replies[:-1] if isinstance(r, Exception)), None)
        inner = next((r for r in replies[-1] if isinstance(r, Exception)), None)
        return early or inner or replies[-1]

    def run(self):
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - reported by the runner
            self.crash = repr(e)

    def _run(self):
        r = self.w.proxy.client(timeout=self.w.client_timeout)
        for name in ("INCRBY", "RPUSH"):  # inside MULTI their reply is +QUEUED, not an integer
            r.set_response_callback(name, lambda reply, **_: reply)
        while not self.w.stopping.is_set():
            batch = [self.next_op() for _ in range(self.rng.randint(1, 20))]
            pipe = r.pipeline(transaction=False)
            slots = [self.queue(pipe, op) for op in batch]
            t0 = time.time()
            for op in batch:
                op.t0 = t0
            self.ops.extend(batch)
            try:
                replies = pipe.execute(raise_on_error=False)
            except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
                t1 = time.time()
                self.conn_errors += 1
                for op in batch:
                    op.outcome, op.error, op.t1 = "info", f"connection: {e!r}"[:200], t1
                time.sleep(0.05)
                continue
            t1 = time.time()
            grouped, at = [], 0
            for n in slots:
                grouped.append(replies[at] if n == 1 else self.transaction_reply(replies[at:at + n]))
                at += n
            for op, reply in zip(batch, grouped):
                op.t1 = t1
                if isinstance(reply, Exception):
                    # A read that failed wrote nothing, whatever the error.
                    op.outcome = "fail" if op.kind == "get" else classify_error(reply)
                    op.error = str(reply)[:300]
                else:
                    op.outcome = "ok"
                    if op.kind == "get":
                        op.result = int(reply) if reply is not None else 0
                    elif op.kind == "qpop":
                        op.result = reply[1].decode() if reply else None
            self.batches += 1
            if any(op.outcome != "ok" for op in batch):
                time.sleep(0.01)  # a refused shard answers at once: do not spin on it
            elif self.w.pause:
                time.sleep(self.pace.uniform(0, self.w.pause))


class Workload:
    def __init__(self, proxy, clients, seed, client_timeout=15.0, pause=0.004):
        self.proxy = proxy
        self.pause = pause  # up to this long between a client's pipelines: a load the 2 cores can carry
        self.client_timeout = client_timeout
        self.stopping = threading.Event()
        self.clients = [Client(self, cid, seed * 1000 + cid) for cid in range(clients)]

    def start(self):
        for c in self.clients:
            c.start()

    def stop(self, timeout=60.0):
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for c in self.clients:
            c.join(max(0.1, deadline - time.monotonic()))
        return [c.name for c in self.clients if c.is_alive()]

    def ops(self):
        out = []
        for c in self.clients:
            out.extend(c.ops)
        return out

    def counts(self):
        ops = self.ops()
        by = {"ok": 0, "fail": 0, "info": 0, None: 0}
        for op in ops:
            by[op.outcome] = by.get(op.outcome, 0) + 1
        return len(ops), by
