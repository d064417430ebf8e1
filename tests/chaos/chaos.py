#!/usr/bin/python3
"""Randomized fault checker for ringproxy's replication (issue 9), in the spirit of Jepsen.

    scripts/chaos [--schedules N] [--seed S] [--bin PATH] [--duration SEC]
                  [--strategy LIST] [--ack LIST] [--faults LIST] [--clients N] [--keep]

Each schedule i (seed S+i) starts redis-servers and ringproxy inside a network namespace of its
own, runs pipelining clients against the proxy, injects seeded faults (kill -9 and restart empty,
SIGSTOP of several lengths, nftables partitions between the proxy and one server, reloads that
remove a replica or add a fresh one, two at once), heals everything, waits for the proxy to say
every server is up, and checks every server and the proxy against the clients' history. A
violation prints its seed, the one command that replays it, and the evidence; the schedule's
workdir (proxy log, events, plan, history) is kept and its path printed. The last line is
`schedules=N faults=F operations=O violations=V`; the exit status is 1 when V > 0.
"""
import argparse
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

import schedule  # noqa: E402

DEFAULT_DURATION = 20.0


def parse_args(argv):
    p = argparse.ArgumentParser(prog="scripts/chaos", description=__doc__.split("\n\n")[0])
    p.add_argument("--schedules", type=int, default=10, help="how many schedules (default 10)")
    p.add_argument("--seed", type=int, default=None, help="seed of the first schedule; schedule i uses S+i "
                                                           "(default: random, printed)")
    p.add_argument("--bin", default=None, help="the ringproxy binary (default $RINGPROXY_BIN, else "
                                               "build/proxy/ringproxy)")
    p.add_argument("--duration", type=float, default=DEFAULT_DURATION,
                   help=f"seconds of faults under load per schedule (default {DEFAULT_DURATION:.0f})")
    p.add_argument("--strategy", default="", help="comma list among primary-replica/fail, primary-replica/promote, "
                                                  "primary-replica (both), multi-primary (default: all)")
    p.add_argument("--ack", default="", help="comma list among primary, one, quorum, all (default: all valid)")
    p.add_argument("--faults", default="", help="comma list of fault kinds to draw from: "
                                                + ", ".join(schedule.FAULT_KINDS) + " (default: all)")
    p.add_argument("--clients", type=int, default=None, help="client threads (default: 4-8, seeded)")
    p.add_argument("--keep", action="store_true", help="keep every schedule's workdir, not only failing ones "
                                                     "(also RINGPROXY_E2E_KEEP=1)")
    p.add_argument("--no-netns", action="store_true", help="do not use a network namespace (no partitions)")
    p.add_argument("--passwords", action="store_true",
                   help="servers require a password (requirepass) and the proxy logs in with [pool] password: every "
                        "connection, probe, resync (masterauth), repair and fence logs in first")
    p.add_argument("--tls", action="store_true",
                   help="servers listen on TLS only and the proxy reaches them with [pool.tls]: every connection, "
                        "probe, resync (tls-replication), repair and fence is TLS")
    p.add_argument("--self-test", action="store_true",
                   help="one short schedule without faults, then one replica is corrupted behind the proxy's back: "
                        "passes (exit 0) when every kind of check catches it")
    p.add_argument("--in-netns", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.schedules < 1:
        p.error("--schedules must be at least 1")
    try:
        args.strategies = schedule.parse_strategies(args.strategy)
        args.acks = schedule.parse_list(args.ack, ["primary", "one", "quorum", "all"], "ack")
        args.kinds = schedule.parse_list(args.faults, schedule.FAULT_KINDS, "fault kind")
    except ValueError as e:
        p.error(str(e))
    return args


def resolve_binary(args):
    path = args.bin or os.environ.get("RINGPROXY_BIN") or os.path.join(ROOT, "build", "proxy", "ringproxy")
    return os.path.abspath(path)


def replay_command(args, seed):
    parts = ["scripts/chaos", "--schedules", "1", "--seed", str(seed), "--bin", args.bin]
    if args.duration != DEFAULT_DURATION:
        parts += ["--duration", f"{args.duration:g}"]
    for flag in ("strategy", "ack", "faults"):
        if getattr(args, flag):
            parts += [f"--{flag}", getattr(args, flag)]
    if args.clients:
        parts += ["--clients", str(args.clients)]
    if args.no_netns:
        parts.append("--no-netns")
    if args.passwords:
        parts.append("--passwords")
    if args.tls:
        parts.append("--tls")
    return " ".join(parts)


def inner_argv(args):
    argv = ["--schedules", str(args.schedules), "--seed", str(args.seed), "--bin", args.bin,
            "--duration", repr(args.duration)]
    for flag in ("strategy", "ack", "faults"):
        if getattr(args, flag):
            argv += [f"--{flag}", getattr(args, flag)]
    if args.clients:
        argv += ["--clients", str(args.clients)]
    if args.passwords:
        argv.append("--passwords")
    if args.tls:
        argv.append("--tls")
    if args.keep:
        argv.append("--keep")
    if args.self_test:
        argv.append("--self-test")
    return argv


# --- the outer process: creates the namespace, runs the checker inside it, always cleans up ---

def netns_run(args):
    ns = f"rpchaos{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", ns], capture_output=True, text=True)
    if made.returncode != 0:
        print(f"chaos: network namespaces unavailable ({made.stderr.strip() or made.returncode}): running without "
              f"them, so without partitions", flush=True)
        return None
    child = None
    interrupted = []

    def forward(signum, _frame):
        interrupted.append(signum)
        if child is not None and child.poll() is None:
            child.send_signal(signum)
    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True, capture_output=True)
        child = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__),
                                  *inner_argv(args), "--in-netns", ns])
        while True:
            try:
                return child.wait()
            except InterruptedError:
                continue
    finally:
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        # Whatever is still in the namespace was started by this run: kill it by PID.
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        if pids:
            time.sleep(0.2)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for s, h in old.items():
            signal.signal(s, h)
        if interrupted:
            print(f"chaos: interrupted (signal {interrupted[0]}); namespace {ns} and its processes removed",
                  file=sys.stderr, flush=True)


# --- the checker itself ---

def binary_mtime(path):
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(path)))
    except OSError:
        return "missing"


def describe_faults(counts):
    return " ".join(f"{k}x{n}" if n > 1 else k for k, n in sorted(counts.items()) if n) or "none"


def self_test(args, netns):
    import runner  # noqa: E402
    plan = schedule.make_plan(args.seed, ["primary-replica/fail"], ["all"], [], 3.0, partitions=netns, clients=4)
    plan.second = ""  # one shard: every key on r1, the shard the self-test corrupts
    result = runner.run_schedule(plan, args.bin, netns, keep=args.keep, tamper=True)
    fired = {v.check.split("+")[0] for v in result.violations}
    wanted = {"servers-differ", "counter-bounds", "set-contents", "list-contents", "string-value", "counter-read",
              "queue-exactly-once"}
    shown = set()
    for v in result.violations:
        if v.check not in shown:
            shown.add(v.check)
            print(v.render("  "))
    print(f"self-test: {result.ops} operations; checks that fired: {', '.join(sorted(fired)) or 'none'}")
    if wanted - fired:
        print(f"self-test FAILED: no violation from {', '.join(sorted(wanted - fired))}; workdir {result.workdir}")
        return 1
    if not args.keep:
        import shutil
        shutil.rmtree(result.workdir, ignore_errors=True)
    print("self-test passed: every check caught the corrupted replica")
    return 0


def run_all(args, netns):
    import runner  # noqa: E402 - needs redis-py, only in the process that runs schedules
    if args.self_test:
        return self_test(args, netns)
    totals = Counter()
    faults = ops = violations = 0
    failing = []
    first_mtime = binary_mtime(args.bin)

    def stop(signum, _frame):
        # Once: the cleanup that follows (kill by PID, nft, workdir) must not be interrupted.
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signum}")
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, stop)

    for i in range(args.schedules):
        seed = args.seed + i
        plan = schedule.make_plan(seed, args.strategies, args.acks, args.kinds, args.duration, partitions=netns,
                                  clients=args.clients)
        if args.passwords:  # (drawn apart from the plan: the same seed, the same schedule)
            plan.password = f"chaos-secret-{seed}"
        plan.tls = args.tls
        started = time.monotonic()
        mtime = binary_mtime(args.bin)
        if mtime != first_mtime:
            print(f"    note: {args.bin} was replaced (now modified {mtime}); this schedule runs the new binary",
                  flush=True)
            first_mtime = mtime
        result = runner.run_schedule(plan, args.bin, netns, keep=args.keep)
        faults += result.faults_injected
        ops += result.ops
        violations += len(result.violations)
        totals.update(result.fault_counts)
        oc = result.outcomes
        print(f"[{i + 1}/{args.schedules}] seed={seed} strategy={plan.label} ack={plan.ack} "
              f"second={plan.second or 'none'} clients={plan.clients} "
              f"timeout={plan.pool['request_timeout_ms']}ms queue={plan.replication['replay_queue_max_writes']} "
              f"faults={result.faults_injected} ({describe_faults(result.fault_counts)}) "
              f"ops={result.ops} (ok {oc.get('ok', 0)}, refused {oc.get('fail', 0)}, unknown "
              f"{oc.get('info', 0) + oc.get(None, 0)}; transactions {result.transactions[0]}, "
              f"{result.transactions[1]} acknowledged; pops {result.pops[0]}, {result.pops[1]} took one) "
              f"violations={len(result.violations)} "
              f"in {time.monotonic() - started:.0f}s (binary of {mtime}) paths: {result.paths}", flush=True)
        for note in result.notes:
            print(f"    note: {note}", flush=True)
        if result.violations:
            failing.append(seed)
            shown = result.violations[:8]
            for v in shown:
                print(f"  VIOLATION seed={seed} check={v.check} key={v.key}   replay: {replay_command(args, seed)}",
                      flush=True)
                print(v.render("    ").split("\n", 1)[1], flush=True)
            if len(result.violations) > len(shown):
                kinds = Counter(v.check for v in result.violations[len(shown):])
                print(f"  … {len(result.violations) - len(shown)} more violations "
                      f"({', '.join(f'{k} x{n}' for k, n in kinds.items())}): see {result.workdir}/violations.txt")
        if result.kept:
            print(f"    workdir kept: {result.workdir} (ringproxy.log, events.log, plan.txt, history.jsonl.gz, "
                  f"violations.txt, redis-*.log)", flush=True)

    print("faults by kind (overlap counts pairs; their two faults are also counted under their own kinds):")
    for kind in schedule.FAULT_KINDS:
        print(f"  {kind:<24} {totals.get(kind, 0)}")
    if failing:
        print("failing seeds: " + " ".join(map(str, failing)) + " (replay one: " +
              replay_command(args, failing[0]) + ")")
    print(f"schedules={args.schedules} faults={faults} operations={ops} violations={violations}", flush=True)
    return 1 if violations else 0


def main(argv):
    args = parse_args(argv)
    if os.environ.get("RINGPROXY_E2E_KEEP"):
        args.keep = True  # as the e2e harness: keep every workdir for a post-mortem
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 1_000_000)
        print(f"chaos: seed {args.seed} (random; pass --seed {args.seed} to run the same schedules again)",
              flush=True)
    args.bin = resolve_binary(args)
    if args.in_netns is None:
        if not (os.path.isfile(args.bin) and os.access(args.bin, os.X_OK)):
            print(f"chaos: no ringproxy binary at {args.bin} (build it, or pass --bin / RINGPROXY_BIN)",
                  file=sys.stderr)
            return 2
        print(f"chaos: binary {args.bin} (modified {binary_mtime(args.bin)}); {args.schedules} schedules from seed {args.seed}, "
              f"{args.duration:g} s of faults each", flush=True)
        if not args.no_netns and os.geteuid() == 0:
            status = netns_run(args)
            if status is not None:
                return status
        elif not args.no_netns:
            print("chaos: not root: no network namespace, so no partitions", flush=True)
        else:
            print("chaos: --no-netns: servers on 127.0.0.N in this namespace, no partitions", flush=True)
        return run_all(args, netns=False)
    print(f"chaos: inside network namespace {args.in_netns} (servers on 127.0.0.2…, partitions with nftables)",
          flush=True)
    return run_all(args, netns=True)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        print("chaos: interrupted", file=sys.stderr)
        sys.exit(130)
