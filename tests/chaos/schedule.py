"""A schedule: everything one seed decides (topology, config, load shape and the faults), drawn from
random.Random(seed) in a fixed order, so `--seed S` with the same restrictions replays it."""
import random
from dataclasses import dataclass, field

STRATEGIES = ["primary-replica/fail", "primary-replica/promote", "multi-primary"]
ACKS = {"primary-replica": ["primary", "one", "quorum", "all"], "multi-primary": ["one", "quorum", "all"]}

PROCESS_KINDS = ["kill9_restart_empty", "stop_short", "stop_medium", "stop_long", "partition"]
RELOAD_KINDS = ["reload_remove_replica", "reload_add_replica"]
FAULT_KINDS = PROCESS_KINDS + RELOAD_KINDS + ["overlap"]
WEIGHTS = {"kill9_restart_empty": 2.0, "stop_short": 1.2, "stop_medium": 1.5, "stop_long": 2.0, "partition": 2.0,
           "reload_remove_replica": 1.0, "reload_add_replica": 0.5, "overlap": 1.2}


@dataclass
class Component:
    kind: str
    victim: int          # index in the replicated shard "r1" (0 = servers[0], the primary for primary-replica)
    start: float         # seconds after the faults begin
    duration: float      # how long it lasts (0 for reload_add_replica: the added server stays)

    def describe(self):
        return f"{self.kind}(r1[{self.victim}] at {self.start:.1f}s for {self.duration:.1f}s)"


@dataclass
class Fault:
    kind: str            # one of FAULT_KINDS
    components: list = field(default_factory=list)

    @property
    def start(self):
        return min(c.start for c in self.components)

    @property
    def end(self):
        return max(c.start + c.duration for c in self.components)


@dataclass
class Plan:
    seed: int
    strategy: str        # "primary-replica" | "multi-primary"
    on_primary_down: str  # "fail" | "promote" | "" (multi-primary)
    ack: str
    second: str          # "" | "unreplicated" | "replicated"
    pool: dict
    replication: dict
    clients: int
    duration: float
    faults: list
    partitions: bool
    password: str = ""   # --passwords: servers require it (requirepass); the proxy logs in with it
    tls: bool = False    # --tls: servers listen on TLS only; the proxy reaches them with [pool.tls]

    @property
    def label(self):
        return self.strategy + (f"/{self.on_primary_down}" if self.on_primary_down else "")

    @property
    def strong_reads(self):
        """Whether a read must see every write acknowledged before it was sent: every acknowledged
        write is on every server that serves reads (write_ack = all: a server that missed one is
        not live), or reads go to the primary, which applied every acknowledged write first
        (primary-replica, on_primary_down = fail, read_from = primary)."""
        return self.ack == "all" or (self.strategy == "primary-replica" and self.on_primary_down == "fail"
                                     and self.replication.get("read_from") == "primary")

    @property
    def request_timeout(self):
        return self.pool["request_timeout_ms"] / 1000.0


def parse_strategies(text):
    """--strategy: comma list of primary-replica[/fail|/promote], multi-primary."""
    if not text:
        return list(STRATEGIES)
    out = []
    for item in text.split(","):
        item = item.strip()
        matches = [s for s in STRATEGIES if s == item or s.startswith(item + "/")]
        if not matches:
            raise ValueError(f"unknown strategy {item!r} (one of: {', '.join(STRATEGIES)}, primary-replica)")
        out += [m for m in matches if m not in out]
    return out


def parse_list(text, allowed, what):
    if not text:
        return list(allowed)
    out = [x.strip() for x in text.split(",") if x.strip()]
    for x in out:
        if x not in allowed:
            raise ValueError(f"unknown {what} {x!r} (one of: {', '.join(allowed)})")
    return out


def make_plan(seed, strategies, acks, kinds, duration, partitions, clients=None):
    rng = random.Random(seed)
    choice = rng.choice(strategies)
    strategy, _, on_down = choice.partition("/")
    valid = [a for a in ACKS[strategy] if a in acks]
    if not valid:
        raise ValueError(f"no --ack among {acks} is valid for {strategy}")
    ack = rng.choice(valid)
    second = rng.choice(["", "unreplicated", "replicated"])
    pool = {
        "hash_tag": "{}",  # (the transactions' key pairs; the other keys have no tag)
        "connect_timeout_ms": 300,
        "request_timeout_ms": rng.choice([500, 600, 750, 1000]),
        "retry_interval_ms": 200,
        "failure_limit": rng.choice([1, 2, 2, 3]),
    }
    replication = {"strategy": strategy, "write_ack": ack}
    if strategy == "primary-replica":
        replication["on_primary_down"] = on_down
    replication["replay_queue_max_writes"] = rng.choice([200, 200, 1000, 100000])
    if strategy == "primary-replica":
        replication["read_from"] = rng.choice(["primary", "primary", "prefer-replica", "quorum"])
    else:
        replication["read_from"] = rng.choice(["any", "quorum"])
    n_clients = clients or rng.randint(4, 8)

    usable = [k for k in kinds if k != "partition" or partitions]
    if not partitions and "overlap" in usable and not [k for k in PROCESS_KINDS if k in usable and k != "partition"]:
        usable.remove("overlap")
    T = pool["request_timeout_ms"] / 1000.0
    faults = []
    added = False

    def component(kind, victim, start, cap=None):
        if kind == "kill9_restart_empty":
            d = rng.uniform(0.2, 4.0)
        elif kind == "stop_short":
            d = rng.uniform(0.2, 0.7) * T
        elif kind == "stop_medium":
            d = rng.uniform(2.0, 5.0) * T
        elif kind == "stop_long":
            d = rng.uniform(4.0, 9.0)
        elif kind == "partition":
            d = rng.uniform(0.5, 6.0)
        elif kind == "reload_remove_replica":
            d = rng.uniform(1.0, 5.0)
        else:  # reload_add_replica
            d = 0.0
        if cap is not None:
            d = min(d, cap)
        return Component(kind, victim, start, d)

    def victim_any():
        # The primary (servers[0]) a third of the time (half with promote), so leader changes happen.
        return 0 if rng.random() < (0.5 if on_down == "promote" else 0.35) else rng.choice([1, 2])

    t = rng.uniform(0.5, 1.5)
    while usable and t < duration - 1.0:
        weights = [WEIGHTS[k] for k in usable]
        kind = rng.choices(usable, weights)[0]
        if kind == "reload_add_replica" and added:
            kind = "stop_medium" if "stop_medium" in usable else usable[0]
            if kind == "reload_add_replica":
                break
        if kind == "overlap":
            pool_kinds = [k for k in PROCESS_KINDS if k in kinds and (k != "partition" or partitions)] or \
                [k for k in PROCESS_KINDS if k != "partition" or partitions]
            a, b = rng.sample([0, 1, 2], 2)
            first = component(rng.choice(pool_kinds), a, t, cap=3.0)
            second_c = component(rng.choice(pool_kinds), b, t + rng.uniform(0.0, 1.0), cap=3.0)
            fault = Fault("overlap", [first, second_c])
        elif kind == "reload_remove_replica":
            victim = rng.choice([1, 2]) if strategy == "primary-replica" else rng.choice([0, 1, 2])
            fault = Fault(kind, [component(kind, victim, t)])
        elif kind == "reload_add_replica":
            added = True
            fault = Fault(kind, [component(kind, 3, t)])
        else:
            fault = Fault(kind, [component(kind, victim_any(), t)])
        faults.append(fault)
        t = fault.end + rng.uniform(0.3, 2.5)

    return Plan(seed=seed, strategy=strategy, on_primary_down=on_down if strategy == "primary-replica" else "",
                ack=ack, second=second, pool=pool, replication=replication, clients=n_clients,
                duration=duration, faults=faults, partitions=partitions)
