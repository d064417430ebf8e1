"""One schedule: start the cluster, run the load, inject the seeded faults, heal, check."""
import gzip
import json
import os
import re
import shutil
import tempfile
import threading
import time
import traceback
from collections import Counter

import checks
from env import Firewall, Proxy, Server, free_port, make_certs, render_config, stamp, wait_for
from workload import Workload

WARMUP = 1.0          # load before the first fault
AFTER_HEAL_LOAD = 1.5  # load after healing, before it stops
HEAL_DEADLINE = 60.0   # every server up again
CONVERGE = 10.0        # digests equal (asynchronous copies may still be in flight)


class Result:
    def __init__(self, plan):
        self.plan = plan
        self.violations = []
        self.fault_counts = Counter()
        self.faults_injected = 0
        self.ops = 0
        self.outcomes = {}
        self.transactions = (0, 0)  # MULTI blocks run, acknowledged
        self.pops = (0, 0)          # BLPOPs run, those that took an element
        self.paths = ""
        self.workdir = None
        self.kept = False
        self.notes = []


class Cluster:
    """The servers of the schedule: shard r1 (3 servers, maybe a 4th added by a reload), maybe a
    second shard (u1: one unreplicated server, or r2: 3 replicated servers)."""

    def __init__(self, plan, workdir, binary, netns):
        self.plan = plan
        self.workdir = workdir
        self.netns = netns
        octet = iter(range(2, 250))
        self.certs = make_certs(os.path.join(workdir, "certs")) if plan.tls else None

        def server(name):
            host = f"127.0.0.{next(octet)}"
            return Server(name, host, 6379 if netns else free_port(host), workdir, password=plan.password,
                          certs=self.certs)

        self.r1 = [server(f"r1-{i}") for i in range(3)]
        self.spare = server("r1-3")  # the fresh 4th server of reload_add_replica
        self.second = []
        if plan.second == "unreplicated":
            self.second = [server("u1-0")]
        elif plan.second == "replicated":
            self.second = [server(f"r2-{i}") for i in range(3)]
        self.proxy = Proxy(binary, workdir, 7000 if netns else free_port("127.0.0.1"))
        self.firewall = Firewall(netns and plan.partitions)
        self.removed = set()   # r1 indexes a reload took out
        self.added = False     # the spare is in the config
        self.events = []
        self.lock = threading.Lock()

    def all_servers(self):
        return self.r1 + [self.spare] + self.second

    def r1_members(self):
        members = [s for i, s in enumerate(self.r1) if i not in self.removed]
        if self.added:
            members.append(self.spare)
        return members

    def shard_members(self):
        """{shard name: [servers]} as the current config has them."""
        out = {"r1": self.r1_members()}
        if self.second:
            out["u1" if self.plan.second == "unreplicated" else "r2"] = list(self.second)
        return out

    def config_text(self):
        shards = [("r1", [s.address for s in self.r1_members()], None)]
        if self.plan.second == "unreplicated":
            shards.append(("u1", [self.second[0].address], {"strategy": "none"}))
        elif self.plan.second == "replicated":
            shards.append(("r2", [s.address for s in self.second], None))
        pool = dict(self.plan.pool, **({"password": self.plan.password} if self.plan.password else {}))
        return render_config(self.proxy.port, shards, pool, self.plan.replication, certs=self.certs)

    def event(self, text):
        line = f"[{stamp()}] {text}"
        with self.lock:
            self.events.append(line)

    def start(self):
        for s in self.r1 + self.second:
            s.start()
        self.firewall.setup()
        self.proxy.write_config(self.config_text())
        self.proxy.start()
        self.event("cluster started: " + ", ".join(f"{n}=[{' '.join(s.address for s in ss)}]"
                                                  for n, ss in self.shard_members().items()))

    def reload(self, why):
        self.proxy.write_config(self.config_text())
        try:
            reply = self.proxy.reload()
        except Exception as e:  # noqa: BLE001 - a reload that does not answer is a finding
            reply = f"<no reply: {e!r}>"
        self.event(f"PROXY RELOAD ({why}): {reply}")
        return reply

    def stop(self):
        try:
            self.proxy.terminate()
        finally:
            for s in self.all_servers():
                s.terminate()
            try:
                self.firewall.teardown()
            except Exception:  # noqa: BLE001
                pass


class Injector:
    """Runs the plan's faults in wall-clock time, then heals."""

    def __init__(self, cluster, result):
        self.c = cluster
        self.result = result
        self.partitioned = set()

    def victim(self, index):
        return self.c.spare if index == 3 else self.c.r1[index]

    def actions(self):
        """[(time, order, description, callable)] for every component of every fault."""
        out = []
        n = 0
        for fault in self.c.plan.faults:
            for comp in fault.components:
                v = self.victim(comp.victim)
                k = comp.kind
                begin, end = self._actions(k, v, comp.victim)
                out.append((comp.start, n, f"{k} {v.name} ({v.address}) begins, lasts {comp.duration:.2f}s", begin,
                            fault, comp))
                n += 1
                if end is not None:
                    out.append((comp.start + comp.duration, n, f"{k} {v.name} ({v.address}) ends", end, None, None))
                    n += 1
        out.sort(key=lambda a: (a[0], a[1]))
        return out

    def _actions(self, kind, v, index):
        c = self.c
        if kind == "kill9_restart_empty":
            return v.kill9, (lambda: None if v.alive() else v.start())
        if kind.startswith("stop_"):
            return v.sigstop, v.sigcont
        if kind == "partition":
            def cut():
                self.partitioned.add(v.host)
                c.firewall.apply(self.partitioned)

            def heal():
                self.partitioned.discard(v.host)
                c.firewall.apply(self.partitioned)
            return cut, heal
        if kind == "reload_remove_replica":
            def remove():
                c.removed.add(index)
                self.check_reload(c.reload(f"without {v.name}"))

            def restore():
                c.removed.discard(index)
                self.check_reload(c.reload(f"with {v.name} back"))
            return remove, restore
        if kind == "reload_add_replica":
            def add():
                if not v.alive():
                    v.start()
                c.added = True
                self.check_reload(c.reload(f"with a 4th fresh server {v.name}"))
            return add, None
        raise ValueError(kind)

    def check_reload(self, reply):
        if not reply.startswith("reloaded"):
            self.result.violations.append(checks.Violation("reload", "PROXY RELOAD", "reloaded (...)",
                                                           {"proxy": reply}))

    def run(self, start_time):
        for at, _, desc, fn, fault, comp in self.actions():
            if at >= self.c.plan.duration:
                break  # the heal ends it
            delay = start_time + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if comp is not None:
                self.result.fault_counts[comp.kind] += 1
                self.result.faults_injected += 1
                if fault.kind == "overlap" and comp is fault.components[0]:
                    self.result.fault_counts["overlap"] += 1
            self.c.event(desc)
            fn()
        remaining = start_time + self.c.plan.duration - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)

    def heal(self):
        c = self.c
        c.event("heal: SIGCONT all, partitions removed, killed servers restarted, full config")
        for s in c.all_servers():
            if s.stopped:
                s.sigcont()
        self.partitioned.clear()
        c.firewall.apply(set())
        for s in c.r1 + c.second + ([c.spare] if c.added else []):
            if not s.alive():
                s.start()
                c.event(f"heal: restarted {s.name} ({s.address}) empty")
        if c.removed:
            c.removed.clear()
            self.check_reload(c.reload("heal: the full config"))


LOG_PATHS = [
    ("lag", r"\) lags \("),
    ("caught_up", r"caught up: it is live again"),
    ("down", r"\) is down: "),
    ("stale", r"\) is stale: "),
    ("resync", r"resync of .* starting"),
    ("resynced", r"resynced"),
    ("resync_failed", r"resync of .* failed"),
    ("missed_write", r"missed a write; replaying it"),
    ("killed_conn", r"killed the abandoned connection"),
    ("led_by", r"writes are now led by"),
    ("reloads", r"reloaded \("),
]


def recovery_paths(cluster, info):
    """Which recovery paths the proxy took, from its own counters (INFO proxy) and its log."""
    log = cluster.proxy.log()
    n = {name: len(re.findall(rx, log)) for name, rx in LOG_PATHS}
    servers = [v for k, v in info.items() if k.startswith("server") and k[6:].isdigit() and isinstance(v, dict)]
    shards = [v for k, v in info.items() if k.startswith("shard") and k[5:].isdigit() and isinstance(v, dict)]

    def total(rows, field):
        values = [int(v[field]) for v in rows if field in v]
        return str(sum(values)) if values else "n/a"
    return (f"lag={n['lag']} replays={total(servers, 'replays')} caught_up={n['caught_up']} down={n['down']} "
            f"stale={n['stale']} resyncs={total(servers, 'resyncs')} (started {n['resync']}, failed "
            f"{n['resync_failed']}) replay_dropped={total(servers, 'replay_dropped')} "
            f"fences={total(servers, 'fences')} killed_conns={n['killed_conn']} "
            f"leader_changes={total(shards, 'leader_changes')} (log: {n['led_by']}) "
            f"missed_write={n['missed_write']} failures={total(servers, 'failures')} reloads={n['reloads']}")


TIMELINE = [
    (r"lags \(", "lags"), (r"is stale: ([^;]*)", "stale({})"), (r"is down", "down"),
    (r"resync of \S+ \(shard \S+\) from (\S+) starting", "resync-from {}"), (r"resync of .* failed", "resync-failed"),
    (r"resynced", "resynced"), (r"answers again; replaying (\d+)", "replay {}"),
    (r"is back; replaying (\d+)", "back, replay {}"), (r"caught up", "caught-up"),
    (r"answers again but is stale", "back-stale"), (r"removed by the reload", "removed"),
    (r"missed a write", "missed-write"), (r"killed the abandoned", "killed-abandoned-conn"),
    (r"abandoned", "abandoned-conn"), (r"writes are now led by", "leads"),
]


def timeline(cluster, server, limit=18):
    """What happened to one server, from the proxy log and the chaos events, in time order:
    'mm:ss.mmm lags; mm:ss.mmm stale(overflow…); …' (wall clock, as in the proxy log)."""
    items = []
    marks = (f"server {server.address} ", f"of {server.address} ", f"led by {server.address}")
    for line in cluster.proxy.log().splitlines():
        if not any(m in line for m in marks):
            continue
        for rx, tag in TIMELINE:
            m = re.search(rx, line)
            if m:
                items.append((line[1:24], tag.format(*[g[:40] for g in m.groups()])))
                break
    for line in cluster.events:
        if f"{server.name} " in line or f"with {server.name}" in line or f"without {server.name}" in line:
            what = re.sub(r"\(\d+\.\d+\.\d+\.\d+:\d+\) ", "", line[26:])
            items.append((line[1:24], "chaos: " + what[:60]))
    items.sort()
    text = "; ".join(f"{t[14:]} {w}" for t, w in items[:limit])
    return text + (f" … (+{len(items) - limit})" if len(items) > limit else "") if items else "nothing logged"


def proxy_info(proxy):
    try:
        return proxy.info()
    except Exception:  # noqa: BLE001
        return {}


def tamper_with(cluster, load):
    """--self-test: corrupt one replica behind the proxy's back, one way per check, so that the
    checks can be seen to fire (an acknowledged element lost, one pushed twice, a counter
    incremented by nobody, a value nobody wrote, a popped element queued again)."""
    ops = load.ops()
    acked_set = next(op for op in ops if op.kind == "sadd" and op.outcome == "ok")
    acked_push = next(op for op in ops if op.kind == "rpush" and op.outcome == "ok")
    victim = cluster.r1[1].client()
    key_owner = cluster.proxy.admin()
    for op in (acked_set, acked_push):
        reply = key_owner.execute_command("PROXY", "ROUTE", op.keys[0])
        if dict(zip(reply[0::2], reply[1::2]))[b"shard"] != b"r1":
            raise RuntimeError(f"self-test: {op.keys[0]} is not on r1")
    victim.srem(acked_set.keys[0], acked_set.args[0])
    victim.rpush(acked_push.keys[0], acked_push.args[0])
    # A popped element back in its queue (as a pop applied on one server only would leave it).
    acked_pop = next((op for op in ops if op.kind == "qpop" and op.outcome == "ok" and op.result), None)
    if acked_pop is not None:
        victim.rpush(acked_pop.keys[0], acked_pop.result)
    for k in checks.key_space(cluster.plan.clients):
        reply = key_owner.execute_command("PROXY", "ROUTE", k)
        if dict(zip(reply[0::2], reply[1::2]))[b"shard"] == b"r1":
            if k.startswith("c:"):
                victim.incrby(k, 1000)
            elif k.startswith("k:"):
                victim.set(k, "never-written")
    cluster.event("self-test: r1-1 tampered with")


def run_schedule(plan, binary, netns, keep=False, tamper=False):
    result = Result(plan)
    workdir = tempfile.mkdtemp(prefix=f"ringproxy-chaos-{plan.seed}-")
    result.workdir = workdir
    cluster = Cluster(plan, workdir, binary, netns)
    load = None
    V = checks.Violation
    try:
        cluster.start()
        with open(os.path.join(workdir, "plan.txt"), "w") as f:
            f.write(f"seed {plan.seed}: {plan.label} ack={plan.ack} second={plan.second or 'none'} "
                    f"clients={plan.clients} pool={plan.pool} replication={plan.replication}\n")
            for fault in plan.faults:
                f.write(f"{fault.kind}: " + " + ".join(c.describe() for c in fault.components) + "\n")
        load = Workload(cluster.proxy, plan.clients, plan.seed)
        load.start()
        time.sleep(WARMUP)
        if tamper:  # --self-test: changes nobody sent, for the reads made during the run to see
            counters = [k for k in checks.key_space(plan.clients) if k.startswith("c:")][:2]
            for k, delta in zip(counters, (1_000_000, -1_000_000)):
                for s in cluster.r1:
                    s.client().incrby(k, delta)
                cluster.event(f"self-test: {k} incremented by {delta} on every r1 server")
        injector = Injector(cluster, result)
        injector.run(time.monotonic())
        injector.heal()
        time.sleep(AFTER_HEAL_LOAD)
        cluster.event("load stopping")
        stuck = load.stop(60)
        if stuck:
            result.violations.append(V("client-stuck", "load", "every client's last pipeline answered within 60 s",
                                       {n: "still waiting" for n in stuck}))
        crashed = {c.name: c.crash for c in load.clients if c.crash}
        if crashed:
            result.notes.append(f"client threads crashed: {crashed}")
        cluster.event("load stopped")
        if not cluster.proxy.alive():
            result.violations.append(V("proxy-exited", "ringproxy", "running",
                                       {"proxy": f"exit status {cluster.proxy.proc.returncode}; log tail: "
                                                 f"{cluster.proxy.log()[-800:]!r}"}))
            return result

        # Heal: every server up, as the proxy sees it.
        addresses = [s.address for ss in cluster.shard_members().values() for s in ss]
        states = {}

        def all_up():
            nonlocal states
            states = cluster.proxy.server_states()
            return all(states.get(a, ("missing", ""))[0] == "up" for a in addresses)
        healed = wait_for(all_up, HEAL_DEADLINE)
        cluster.event(f"healed={healed} states={ {a: states.get(a, ('missing', ''))[0] for a in addresses} }")
        if not healed:
            result.violations.append(V("never-healed", "proxy", f"every server up within {HEAL_DEADLINE:.0f} s",
                                       {a: f"{st} (last_error: {le})" for a, (st, le) in
                                        ((a, states.get(a, ("missing", ""))) for a in addresses)}))
        if tamper:
            tamper_with(cluster, load)
        run_checks(cluster, load, result, states, healed)
    except KeyboardInterrupt:
        raise
    except Exception:  # noqa: BLE001 - the schedule could not run: reported, never silent
        result.violations.append(V("schedule-aborted", "checker", "the schedule runs to its checks",
                                   {"traceback": traceback.format_exc()[-1500:]}))
    finally:
        if load is not None:
            load.stop(5)
            result.ops, result.outcomes = load.counts()
            multi = [op for op in load.ops() if op.kind == "multi"]
            result.transactions = (len(multi), sum(op.outcome == "ok" for op in multi))
            pops = [op for op in load.ops() if op.kind == "qpop"]
            result.pops = (len(pops), sum(op.outcome == "ok" and op.result is not None for op in pops))
        result.paths = recovery_paths(cluster, proxy_info(cluster.proxy) if cluster.proxy.alive() else {})
        cluster.stop()
        with open(os.path.join(workdir, "events.log"), "w") as f:
            f.write("\n".join(cluster.events) + "\n")
        if result.violations or keep:
            result.kept = True
            with open(os.path.join(workdir, "violations.txt"), "w") as f:
                f.write("\n\n".join(v.render("") for v in result.violations) + "\n")
            if load is not None:
                with gzip.open(os.path.join(workdir, "history.jsonl.gz"), "wt") as f:
                    for op in load.ops():
                        f.write(json.dumps(op.to_json()) + "\n")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


def run_checks(cluster, load, result, states, healed):
    history = checks.History(load.ops())
    keys = checks.key_space(cluster.plan.clients)
    admin = cluster.proxy.admin()
    route = {}
    for k in keys:
        reply = admin.execute_command("PROXY", "ROUTE", k)
        fields = dict(zip(reply[0::2], reply[1::2]))
        route[k] = fields[b"shard"].decode()
    members = cluster.shard_members()

    def label(shard, i, s):
        role = ""
        if len(members[shard]) > 1 and cluster.plan.strategy == "primary-replica":
            role = " primary" if i == 0 else " replica"
        return f"{shard}[{i}]{role} {s.address} ({states.get(s.address, ('?', ''))[0]})"

    # Checks 1 and 5: every server of a replicated shard holds the same data, and in particular
    # the servers the proxy says are up do.
    per_server = {}
    for shard, servers in members.items():
        shard_keys = [k for k in keys if route[k] == shard]
        if len(servers) > 1:
            digests = {}

            def equal():
                digests.clear()
                for s in servers:
                    digests[s] = s.client().execute_command("DEBUG", "DIGEST")
                return len(set(digests.values())) == 1
            if not wait_for(equal, CONVERGE, 0.5):
                values = {label(shard, i, s): checks.read_values(s.client(), shard_keys) for i, s in enumerate(servers)}
                diffs = checks.diff_keys(history, shard_keys, values)
                up = [s for s in servers if states.get(s.address, ("?",))[0] == "up"]
                up_differ = len({digests.get(s) for s in up}) > 1
                seen = {label(shard, i, s): f"digest {checks.decode(digests.get(s))}" for i, s in enumerate(servers)}
                for s in servers:
                    seen[f"timeline of {s.address}"] = timeline(cluster, s)
                for k, desc in diffs[:3]:
                    for who, what in desc.items():
                        seen[f"{k} on {who.split(' (')[0]}"] = what
                note = f"{len(diffs)} keys differ: {checks.short([k for k, _ in diffs], 12)}"
                if up_differ:
                    note += "; the proxy reports these differing servers as up (check 5: its view is not true)"
                result.violations.append(checks.Violation(
                    "servers-differ" + ("+proxy-says-up" if up_differ else ""), f"shard {shard}",
                    "equal DEBUG DIGEST on every server of the shard", seen, note))
        for i, s in enumerate(servers):
            per_server[label(shard, i, s)] = (shard, checks.read_values(s.client(), shard_keys))

    # Checks 2-4 on every server directly, and through the proxy.
    via_proxy = checks.read_values(admin, keys)
    for k in keys:
        views = {who: vals[k] for who, (shard, vals) in per_server.items() if shard == route[k]}
        views["proxy"] = via_proxy[k]
        result.violations.extend(checks.check_key(history, k, views))
    # Transactions: all or nothing, on every server and through the proxy.
    views = {who: vals for who, (_, vals) in per_server.items()}
    views["proxy"] = via_proxy
    result.violations.extend(checks.check_transactions(history, views))
    # Reads made during the run, through the proxy.
    result.violations.extend(checks.check_reads(load.ops(), cluster.plan.strong_reads))
