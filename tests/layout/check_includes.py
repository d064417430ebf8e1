#!/usr/bin/env python3
"""Includes point one way: down the list of rooms below (issue 10).

A file may include files of its own room and of rooms listed before it, never a later room
nor a room at the same level (clients/ and backend/ do not know each other). Inside a room,
headers must not include each other in a cycle. The upward paths are interfaces, declared
low and implemented high (see proxy/proxy.h). Exits 1 and names every offending include.
"""
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# (level, room): a room is a path prefix; the longest prefix names a file's room.
ROOMS = [
    (0, "routing/resp/"),       # RESP codec
    (0, "routing/hash."),       # hash functions (library ringproxy_hashring, with ring.*)
    (0.5, "routing/ring."),     # consistent-hash rings
    (1, "conf/"),               # config schema and loader
    (1, "metrics/"),
    (2, "routing/"),            # command table, planner, reducers, replication rules
    (3, "proxy/net/"),          # the Worker, buffers, addresses, hiredis adapter
    (4, "proxy/requests/"),     # Request, Fragment, Topology, counters
    (5, "proxy/clients/"),      # listener and client sessions
    (5, "proxy/backend/"),      # servers, connections, health, replay, resync, repair
    (6, "proxy/datapath/"),     # classify -> plan -> send -> reduce -> reply
    (6.5, "proxy/transactions/"),  # MULTI ... EXEC queued by the proxy, WATCH's connections
    (6.5, "proxy/blocking/"),   # blocking commands: dedicated connections, or waiting in the proxy
    (6.5, "proxy/pubsub/"),     # subscribers' connections, channels placed like keys
    (7, "proxy/reconfig/"),     # reload, file watch, migration
    (8, "proxy/admin/"),        # local commands, INFO, metrics endpoint and publisher
    (8.5, "proxy/service/"),    # SIGTERM's drain, systemd's readiness notices
    (9, "proxy/proxy."),        # the process and its wiring
    (10, "proxy/main."),        # the command line
]
SOURCES = ("routing", "conf", "metrics", "proxy")
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)


def room_of(path):
    best = None
    for level, prefix in ROOMS:
        if path.startswith(prefix) and (best is None or len(prefix) > len(best[1])):
            best = (level, prefix)
    return best


def main():
    files = []
    for top in SOURCES:
        for dirpath, _, names in os.walk(os.path.join(ROOT, top)):
            for name in names:
                if name.endswith((".h", ".cc")):
                    files.append(os.path.relpath(os.path.join(dirpath, name), ROOT))
    problems = []
    header_edges = {}
    for path in sorted(files):
        mine = room_of(path)
        if mine is None:
            problems.append(f"{path}: in no room (add its folder to tests/layout/check_includes.py)")
            continue
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            text = f.read()
        for written in INCLUDE.findall(text):
            # As the compiler finds it: next to the including file, else from the source root
            # (-I${CMAKE_SOURCE_DIR}, for "..." and <...> alike).
            beside = os.path.normpath(os.path.join(os.path.dirname(path), written))
            target = beside if os.path.exists(os.path.join(ROOT, beside)) else os.path.normpath(written)
            if not target.startswith(tuple(top + "/" for top in SOURCES)):
                continue  # system and library headers, the generated ringproxy_version.h
            theirs = room_of(target)
            if theirs is None:
                problems.append(f"{path}: includes {target}, which is in no room")
            elif theirs[1] != mine[1] and theirs[0] >= mine[0]:
                problems.append(f"{path} ({mine[1]}) includes {target} ({theirs[1]}): "
                                f"{'a room at the same level' if theirs[0] == mine[0] else 'a room above it'}")
            if path.endswith(".h") and target.endswith(".h") and theirs is not None and theirs[1] == mine[1]:
                header_edges.setdefault(path, []).append(target)
    # Cycles among a room's headers.
    state = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in header_edges.get(node, []):
            if state.get(nxt) == 1:
                problems.append("include cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif state.get(nxt) is None:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(header_edges):
        if node not in state:
            visit(node, [node])
    for p in problems:
        print(p)
    print(f"{len(files)} files, {len(problems)} includes against the layout")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
