"""The checks run after healing, on every server directly (unix socket) and through the proxy.

Sound by construction: an operation whose outcome is unknown ("info") may have been applied at
any moment after it was sent, or never; one refused with an error that says nothing was
written ("fail") must never show; an acknowledged one ("ok") must show.
"""
import time
from collections import Counter, defaultdict

from workload import COUNTERS, LISTS, QUEUES, SETS, STRINGS_PER_CLIENT, TRANSACTION_PAIRS


class Violation:
    def __init__(self, check, key, expected, seen, note=""):
        self.check, self.key, self.expected, self.seen, self.note = check, key, expected, seen, note

    def render(self, indent="    "):
        lines = [f"{indent}check={self.check} key={self.key}", f"{indent}  expected: {self.expected}"]
        for who, what in self.seen.items():
            lines.append(f"{indent}  {'' if who.startswith('timeline') else 'seen '}{who}: {what}")
        if self.note:
            lines.append(f"{indent}  note: {self.note}")
        return "\n".join(lines)


def key_space(clients):
    keys = [f"c:{i}" for i in range(COUNTERS)] + [f"s:{i}" for i in range(SETS)] + [f"l:{i}" for i in range(LISTS)]
    keys += [f"{kind}:{{t{i}}}" for i in range(TRANSACTION_PAIRS) for kind in ("c", "l")]
    keys += [f"q:{i}" for i in range(QUEUES)]
    keys += [f"k:{c}:{j}" for c in range(clients) for j in range(STRINGS_PER_CLIENT)]
    return keys


class History:
    """What the clients did, folded per key."""

    def __init__(self, ops):
        self.counter = defaultdict(lambda: [0, 0, 0])     # key -> [acked_sum, attempted_sum, unknown ops]
        self.elements = defaultdict(dict)                   # key -> {element: outcome}
        self.element_time = {}                              # element -> wall-clock time it was sent
        self.strings = defaultdict(list)                    # key -> [(seq, value|None, outcome, error, sent)]
        self.transactions = defaultdict(dict)               # list key -> {element: its transaction's increment}
        self.queue_pushes = defaultdict(dict)               # queue key -> {element: outcome}
        self.queue_pops = defaultdict(list)                 # queue key -> [(outcome, element popped or None)]
        for op in ops:
            outcome = op.outcome or "info"
            if op.kind in ("incrby", "multi"):
                entry = self.counter[op.keys[0]]
                if outcome == "ok":
                    entry[0] += op.args[0]
                if outcome != "fail":
                    entry[1] += op.args[0]
                if outcome == "info":
                    entry[2] += 1
            if op.kind == "multi":  # and its element, which comes with its increment or not at all
                self.elements[op.keys[1]][op.args[1]] = outcome
                self.element_time[op.args[1]] = op.t0
                self.transactions[op.keys[1]][op.args[1]] = op.args[0]
            elif op.kind in ("sadd", "rpush"):
                self.elements[op.keys[0]][op.args[0]] = outcome
                self.element_time[op.args[0]] = op.t0
            elif op.kind == "qpush":
                self.queue_pushes[op.keys[0]][op.args[0]] = outcome
                self.element_time[op.args[0]] = op.t0
            elif op.kind == "qpop":
                self.queue_pops[op.keys[0]].append((outcome, op.result))
            elif op.kind == "set":
                self.strings[op.keys[0]].append((op.seq, op.args[0], outcome, op.error, op.t0))
            elif op.kind == "mset":
                for k, v in zip(op.keys, op.args):
                    self.strings[k].append((op.seq, v, outcome, op.error, op.t0))
            elif op.kind == "del":
                for k in op.keys:
                    self.strings[k].append((op.seq, None, outcome, op.error, op.t0))
        for k in self.strings:
            self.strings[k].sort(key=lambda e: e[0])

    def string_rules(self, key):
        """(legal values, the one value a correct system must show or None if several are legal,
        the last acknowledged write)."""
        writes = self.strings.get(key, [])
        last_ok = None
        for i, (_, _, outcome, _, _) in enumerate(writes):
            if outcome == "ok":
                last_ok = i
        legal = set()
        legal.add(writes[last_ok][1] if last_ok is not None else None)
        for _, value, outcome, _, _ in writes:
            if outcome == "info":
                legal.add(value)
        later_unknown = any(o == "info" for _, _, o, _, _ in writes[(last_ok + 1 if last_ok is not None else 0):])
        exact = writes[last_ok][1] if last_ok is not None and not later_unknown else None
        return legal, exact, (writes[last_ok] if last_ok is not None else None)

    def element_outcome(self, key, element):
        return self.elements.get(key, {}).get(element, "never sent")

    def window(self, elements):
        """When these elements were sent (wall clock, as in the proxy log): 'hh:mm:ss.mmm–hh:mm:ss.mmm'."""
        times = [self.element_time[e] for e in elements if self.element_time.get(e)]
        if not times:
            return "?"
        return f"{clock(min(times))}–{clock(max(times))}"

    def origin(self, key, value):
        """Which write produced a value of a string key: 'seq N (outcome)'."""
        for seq, v, outcome, error, t0 in self.strings.get(key, []):
            if v == value and value is not None:
                return f"seq {seq} sent {clock(t0) if t0 else '?'} ({outcome}{': ' + error[:90] if error else ''})"
        return "never written" if value is not None else "absent"


def clock(t):
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"


def decode(v):
    return v.decode() if isinstance(v, bytes) else v


def read_values(client, keys):
    """Each key's value: int for counters, a sorted list for sets, a list for lists, str/None."""
    pipe = client.pipeline(transaction=False)
    for k in keys:
        if k.startswith("s:"):
            pipe.smembers(k)
        elif k.startswith(("l:", "q:")):
            pipe.lrange(k, 0, -1)
        else:
            pipe.get(k)
    out = {}
    for k, v in zip(keys, pipe.execute(raise_on_error=False)):
        if isinstance(v, Exception):
            out[k] = f"<error {v}>"
        elif k.startswith("s:"):
            out[k] = sorted(decode(x) for x in v)
        elif k.startswith(("l:", "q:")):
            out[k] = [decode(x) for x in v]
        elif k.startswith("c:"):
            out[k] = int(v) if v is not None else 0
        else:
            out[k] = decode(v)
    return out


def short(items, n=6):
    items = list(items)
    return ", ".join(map(str, items[:n])) + (f" … (+{len(items) - n})" if len(items) > n else "")


def check_queue(history, key, views):
    """A work queue (q:<i>): pushes of unique elements and pops. No element is popped twice, or
    both popped and still queued; none is there that was never pushed or whose push was refused;
    and the acknowledged pushes neither popped nor queued are no more than the pops whose outcome
    is unknown (each may have taken one)."""
    out = []
    pushes = history.queue_pushes.get(key, {})
    pops = history.queue_pops.get(key, [])
    popped = Counter(e for outcome, e in pops if outcome == "ok" and e is not None)
    unknown_pops = sum(1 for outcome, _ in pops if outcome == "info")
    twice = [e for e, n in popped.items() if n > 1]
    if twice:
        out.append(Violation("queue-popped-twice", key, "each element popped at most once",
                             {"pops": f"{len(twice)} popped twice: {short(twice, 4)}"}))
    problems = {}
    for who, v in views.items():
        if not isinstance(v, list):
            problems[who] = f"unreadable: {v}"
            continue
        queued = Counter(v)
        msgs = []
        again = [e for e in queued if e in popped]
        if again:
            msgs.append(f"{len(again)} popped and still queued: {short(again, 4)}")
        doubled = [e for e, n in queued.items() if n > 1]
        if doubled:
            msgs.append(f"{len(doubled)} queued twice: {short(doubled, 4)}")
        foreign = [e for e in list(queued) + list(popped) if pushes.get(e) in (None, "fail")]
        if foreign:
            msgs.append(f"{len(foreign)} never pushed or refused: {short(foreign, 4)}")
        lost = [e for e, o in pushes.items() if o == "ok" and e not in queued and e not in popped]
        if len(lost) > unknown_pops:
            msgs.append(f"{len(lost)} acknowledged pushes neither popped nor queued, more than the {unknown_pops} "
                        f"pops of unknown outcome: {short(sorted(lost, key=elem_order), 4)}")
        if msgs:
            problems[who] = "; ".join(msgs)
    if problems:
        out.append(Violation("queue-exactly-once", key, "every acknowledged push popped once or still queued",
                             problems, f"{len(pushes)} pushes, {len(pops)} pops ({sum(popped.values())} took one, "
                                       f"{unknown_pops} unknown)"))
    return out


def check_key(history, key, views):
    """views: {who: value}. Returns the violations for this key."""
    out = []
    if key.startswith("q:"):
        return check_queue(history, key, views)
    if key.startswith("c:"):
        acked, attempted, unknown = history.counter.get(key, [0, 0, 0])
        bad = {w: v for w, v in views.items() if not (isinstance(v, int) and acked <= v <= attempted)}
        if bad:
            out.append(Violation("counter-bounds", key, f"acked_sum {acked} <= value <= attempted_sum {attempted} "
                                 f"({unknown} INCRBYs of unknown outcome)",
                                 {w: f"{v}" + (f" (exceeds attempted by {v - attempted})" if isinstance(v, int) and v > attempted
                                               else f" (short of acked by {acked - v})" if isinstance(v, int) and v < acked
                                               else "")
                                  for w, v in views.items()}))
        return out
    if key.startswith(("s:", "l:")):
        sent = history.elements.get(key, {})
        acked = {e for e, o in sent.items() if o == "ok"}
        problems = {}
        for who, v in views.items():
            if not isinstance(v, list):
                problems[who] = f"unreadable: {v}"
                continue
            present = set(v)
            missing = acked - present
            never = [e for e in present if e not in sent]
            refused = [e for e in present if sent.get(e) == "fail"]
            msgs = []
            if missing:
                msgs.append(f"{len(missing)} acknowledged elements missing: {short(sorted(missing, key=elem_order), 4)}"
                            f" — sent {history.window(missing)}")
            if never:
                msgs.append(f"{len(never)} elements never sent: {short(never)}")
            if refused:
                msgs.append(f"{len(refused)} elements whose write was refused (nothing written): {short(refused)}")
            if key.startswith("l:"):
                dups = [e for e, n in Counter(v).items() if n > 1]
                if dups:
                    dups.sort(key=elem_order)
                    msgs.append(f"{len(dups)} elements twice (len {len(v)}, {len(present)} distinct): {short(dups, 4)}"
                                f" — seqs {seq_ranges(dups)}; sent {history.window(dups)}")
                inversions = acked_order_inversions(v, acked)
                if inversions:
                    msgs.append(f"{len(inversions)} acknowledged pushes of one client out of order: {short(inversions, 3)}")
            if msgs:
                problems[who] = "; ".join(msgs)
        if problems:
            check = "list" if key.startswith("l:") else "set"
            out.append(Violation(f"{check}-contents", key,
                                 f"all {len(acked)} acknowledged elements, only sent ones"
                                 + (", each once, one client's acknowledged pushes in order" if check == "list" else ""),
                                 problems))
        return out
    legal, exact, last_ok = history.string_rules(key)
    never = {w: v for w, v in views.items() if v not in legal}
    order = {w: v for w, v in views.items() if v in legal and exact is not None and v != exact}
    seen = {w: f"{v!r} <- {history.origin(key, v)}" for w, v in views.items()}
    if never:
        if len(legal) == 1:
            only = next(iter(legal))
            expected = (f"{only!r} (the last acknowledged write, seq {last_ok[0]})" if last_ok is not None
                        else "absent (no write to it was acknowledged or of unknown outcome)")
        else:
            expected = (f"one of {short(sorted(map(repr, legal)), 8)} (the last acknowledged write, or one of "
                        f"unknown outcome)")
        out.append(Violation("string-value", key, expected, seen))
    elif order:
        out.append(Violation("string-order", key,
                             f"{exact!r}: the last acknowledged write (seq {last_ok[0]}), nothing of unknown outcome "
                             f"after it", seen,
                             "an earlier write of unknown outcome landed after a later acknowledged one "
                             "(the client's writes are applied out of order)"))
    return out


def elem_order(e):
    c, _, s = e.partition(":")
    try:
        return int(c), int(s)
    except ValueError:
        return (1 << 30, 0)


def seq_ranges(elems):
    """'3:1200-1390, 5:77-80': runs of consecutive sequence numbers per client."""
    by = defaultdict(list)
    for e in elems:
        c, s = elem_order(e)
        by[c].append(s)
    parts = []
    for c in sorted(by):
        seqs = sorted(by[c])
        start = prev = seqs[0]
        for s in seqs[1:] + [None]:
            if s is not None and s - prev < 40:
                prev = s
                continue
            parts.append(f"c{c}:{start}..{prev}")
            if s is not None:
                start = prev = s
    return short(parts, 6)


def acked_order_inversions(values, acked):
    last = {}
    out = []
    seen = set()
    for e in values:
        if e not in acked or e in seen:
            continue
        seen.add(e)
        c, s = elem_order(e)
        if c in last and s < last[c]:
            out.append(f"c{c}: seq {s} after seq {last[c]}")
        last[c] = max(s, last.get(c, -1))
    return out


def summarize(v):
    if isinstance(v, list):
        return f"len {len(v)} ({len(set(v))} distinct)"
    return repr(v)


def diff_keys(history, keys, per_server):
    """The keys whose copies differ between servers, with what each server holds."""
    out = []
    names = list(per_server)
    for k in keys:
        vals = [per_server[n].get(k) for n in names]
        if all(v == vals[0] for v in vals[1:]):
            continue
        desc = {}
        for n, v in zip(names, vals):
            if k.startswith("k:"):
                desc[n] = f"{v!r} <- {history.origin(k, v)}"
            elif isinstance(v, list) and k.startswith("l:"):
                dups = [e for e, c in Counter(v).items() if c > 1]
                desc[n] = f"len {len(v)}, {len(dups)} duplicated" + (f" ({seq_ranges(dups)})" if dups else "")
                ref = vals[0]
                if isinstance(ref, list) and v is not ref and v != ref:
                    i = next((i for i, (a, b) in enumerate(zip(v, ref)) if a != b), min(len(v), len(ref)))
                    same = sorted(v) == sorted(ref)
                    desc[n] += (f"; {'same elements, other order' if same else 'other elements'}: first difference "
                                f"with {names[0].split(' (')[0]} at index {i}: {v[i:i + 3]} vs {ref[i:i + 3]} "
                                f"(sent {history.window([e for e in v[i:i + 3] + ref[i:i + 3]])})")
            else:
                desc[n] = summarize(v)
            if isinstance(v, list) and k.startswith(("s:", "l:")) and isinstance(vals[0], list) and v is not vals[0]:
                mine, ref = set(v), set(vals[0])
                extra, lacking = sorted(mine - ref, key=elem_order), sorted(ref - mine, key=elem_order)
                for what, elems in (("not on", extra), ("missing, on", lacking)):
                    if elems:
                        desc[n] += (f"; {len(elems)} {what} {names[0].split(' (')[0]}: "
                                    + ", ".join(f"{e} ({history.element_outcome(k, e)}, sent "
                                                f"{clock(history.element_time[e]) if history.element_time.get(e) else '?'})"
                                                for e in elems[:3]) + (" …" if len(elems) > 3 else ""))
        out.append((k, desc))
    return out


def check_transactions(history, views):
    """views: {who: {key: value}}. A transaction's INCRBY and RPUSH are applied together or not at
    all: each pair's counter is the sum of the increments of the transactions whose element is in
    its list."""
    out = []
    for i in range(TRANSACTION_PAIRS):
        counter, items = f"c:{{t{i}}}", f"l:{{t{i}}}"
        increments = history.transactions.get(items, {})
        bad = {}
        for who, values in views.items():
            c, lst = values.get(counter), values.get(items)
            if not isinstance(c, int) or not isinstance(lst, list):
                continue
            expected = sum(increments.get(e, 0) for e in lst)
            if c != expected:
                bad[who] = f"counter {c}, the increments of the {len(lst)} transactions in the list sum to {expected}"
        if bad:
            out.append(Violation("transaction-atomic", f"{counter} + {items}",
                                 "each transaction's INCRBY and RPUSH both applied or neither", bad))
    return out


def check_reads(ops, strong):
    """GETs of counters made through the proxy during the run. A read can never show more than
    the INCRBYs sent before it was answered; with `strong` (see Plan.strong_reads) it must show
    at least every INCRBY acknowledged before it was sent."""
    import bisect
    acked, attempted, reads = defaultdict(list), defaultdict(list), defaultdict(list)
    for op in ops:
        if op.kind == "incrby":
            if op.outcome == "ok":
                acked[op.keys[0]].append((op.t1, op.args[0]))
            if op.outcome != "fail":
                attempted[op.keys[0]].append((op.t0, op.args[0]))
        elif op.kind == "get" and op.outcome == "ok":
            reads[op.keys[0]].append(op)

    def prefix(entries):
        entries.sort()
        times, sums, total = [], [], 0
        for t, d in entries:
            total += d
            times.append(t)
            sums.append(total)
        return times, sums

    def upto(index, t, strict=True):
        times, sums = index
        i = bisect.bisect_left(times, t) if strict else bisect.bisect_right(times, t)
        return sums[i - 1] if i else 0

    out = []
    for key in sorted(reads):
        a, b = prefix(acked[key]), prefix(attempted[key])
        bad = []
        for op in reads[key]:
            lo, hi = upto(a, op.t0), upto(b, op.t1, strict=False)
            if op.result > hi or (strong and op.result < lo):
                bad.append((op, lo, hi))
        if bad:
            seen = {}
            for op, lo, hi in bad[:4]:
                what = "more than was ever sent" if op.result > hi else "misses acknowledged increments"
                seen[f"GET by client {op.client} sent {clock(op.t0)}, answered {clock(op.t1)}"] = \
                    f"{op.result} ({what}: acknowledged before it {lo}, sent before its answer {hi})"
            out.append(Violation("counter-read", key,
                                 "acknowledged-before-the-read <= value <= sent-before-its-answer" if strong else
                                 "value <= the INCRBYs sent before its answer", seen,
                                 f"{len(bad)} of {len(reads[key])} reads of {key} out of bounds"))
    return out
