#!/usr/bin/python3
"""Network fuzzer: a real ringproxy over TCP, in front of real redis-servers.

    /usr/bin/python3 tests/fuzz/network_fuzz.py --proxy build-fuzz/proxy/ringproxy --seconds 60 [--seed N]

Starts 3 redis-servers on free loopback ports and ringproxy with two shards, the second a
primary-replica pair. Then, round after round until the time is up, it sends a pipeline on
a fresh or a reused connection:

  valid     commands of the command table with random arguments, as multibulk or inline,
            each followed by ECHO <marker>: replies must come back in order;
  mutated   a valid prefix, then a request garbled: bytes flipped, truncated, a count or a
            length changed, a huge bulk length, random bytes;
  abandoned a pipeline whose connection closes (or resets) before the replies come back.

Every 50 rounds the config file is rewritten (server connections per server, write_ack,
read_from; the same ring), so the proxy reloads under the traffic (PROXY RELOAD is among the
commands too). After every round: the proxy is alive; a PING on a separate connection answers within 5 s;
everything the proxy sent is well-formed RESP; every 10 rounds its RSS is under the limit.
At the end the proxy must exit 0 on SIGTERM (under ASan that includes the leak check).
Each failure is written to <artifacts>/ with the rounds that led to it, the proxy is
restarted and the run goes on. The last line is `target=network execs=<rounds> crashes=<n>`;
the exit status is 1 when there was a crash.
"""
import argparse
import os
import random
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import harness  # noqa: E402

PING_TIMEOUT = 5.0
REPLY_TIMEOUT = 15.0  # the proxy's request timeout is 2 s: every request settles well before

# Commands the fuzzer never sends: MIGRATE would connect to random addresses (it is a
# supported write, so the proxy forwards it); MULTI would make the ECHO markers behind it answer
# +QUEUED instead of themselves (transactions have their e2e suites and reviews); a blocking
# command with a timeout of 0 would hold the markers behind it for ever, SUBSCRIBE would make
# them refused, and an UNSUBSCRIBE answers once per name (blocking commands and pub/sub have
# their suites; XREAD's BLOCK is left out of WORDS).
NEVER = {b"migrate", b"multi", b"blpop", b"brpop", b"brpoplpush", b"blmove", b"blmpop", b"bzpopmin", b"bzpopmax",
         b"bzmpop", b"subscribe", b"psubscribe", b"ssubscribe", b"unsubscribe", b"punsubscribe", b"sunsubscribe"}
KEYS = [b"k1", b"k2", b"k3", b"{a}1", b"{a}2", b"{b}1", b"{b}2", b"s", b"l", b"h", b"z", b"x:1", b""]
WORDS = [b"EX", b"PX", b"EXAT", b"PXAT", b"KEEPTTL", b"NX", b"XX", b"GT", b"LT", b"CH", b"INCR", b"GET",
         b"WITHSCORES", b"LIMIT", b"COUNT", b"MATCH", b"TYPE", b"STREAMS", b"GROUP", b"NOACK",
         b"STORE", b"BY", b"ASC", b"DESC", b"ALPHA", b"LEFT", b"RIGHT", b"BEFORE", b"AFTER", b"MAXLEN",
         b"MINID", b"REPLACE", b"ABSTTL", b"FIELDS", b"$", b"*", b">", b"-", b"+", b"~", b"=", b"0-0",
         b"(1", b"[a", b"-inf", b"+inf", b"1.5", b"nosort", b"SETNAME", b"ENCODING", b"FREQ", b"USAGE"]
# Small numbers, and the extremes (never in between: SETBIT k 4000000000 1 makes redis
# allocate 512 MB, which tests redis, not the proxy).
NUMBERS = [b"0", b"1", b"2", b"3", b"-1", b"-2", b"5", b"10", b"100", b"1000", b"01", b"+1", b" 1",
           b"9223372036854775807", b"-9223372036854775808", b"9223372036854775808",
           b"99999999999999999999", b"0x10", b"1e3", b"nan"]


class Failure(Exception):
    def __init__(self, kind, detail):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


# --- RESP -------------------------------------------------------------------------------

def bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)


def multibulk(words):
    return b"*%d\r\n" % len(words) + b"".join(bulk(w) for w in words)


def inline(words):
    """An inline command; arguments with special bytes are double-quoted with escapes."""
    parts = []
    for w in words:
        if w and all(33 <= c < 127 and c not in b"\"'\\" for c in w):
            parts.append(w)
        else:
            parts.append(b'"' + b"".join(b"\\x%02x" % c for c in w) + b'"')
    return b" ".join(parts) + b"\r\n"


class Reader:
    """Reads RESP replies (RESP2, and RESP3 types in case the proxy ever sends them)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.closed = False

    def _fill(self, deadline):
        if self.closed:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 16)
        except socket.timeout:
            return False
        except ConnectionError:
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        return True

    def reply(self, deadline):
        """The next complete reply's bytes; None at EOF or at the deadline."""
        while True:
            end = self._scan(0)
            if end is not None:
                raw, self.buf = self.buf[:end], self.buf[end:]
                return raw
            if not self._fill(deadline):
                return None

    def _line(self, pos):
        cr = self.buf.find(b"\r\n", pos)
        return None if cr < 0 else cr

    def _scan(self, pos):
        """End of the value at pos, None if incomplete; raises Failure if malformed."""
        if pos >= len(self.buf):
            return None
        cr = self._line(pos + 1)
        if cr is None:
            if len(self.buf) - pos > 1 << 20 and self.buf[pos:pos + 1] not in b"$":
                raise Failure("bad-reply", f"header line longer than 1 MB: {self.buf[pos:pos + 80]!r}")
            return None
        t, line, nxt = self.buf[pos:pos + 1], self.buf[pos + 1:cr], cr + 2
        if t in (b"+", b"-"):
            return nxt
        if t in (b":", b"(", b",", b"#", b"_"):
            if t == b":" and not _is_int(line):
                raise Failure("bad-reply", f"integer reply {line[:80]!r}")
            return nxt
        if t in (b"$", b"!", b"="):
            n = _length(line)
            if n < 0:
                return nxt
            if len(self.buf) < nxt + n + 2:
                return None
            if self.buf[nxt + n:nxt + n + 2] != b"\r\n":
                raise Failure("bad-reply", f"bulk not terminated by CRLF: {self.buf[pos:pos + 80]!r}")
            return nxt + n + 2
        if t in (b"*", b"~", b">", b"%", b"|"):
            n = _length(line)
            if t in (b"%", b"|"):
                n *= 2
            at = nxt
            for _ in range(max(n, 0)):
                at = self._scan(at)
                if at is None:
                    return None
            return at
        raise Failure("bad-reply", f"unknown type byte in {self.buf[pos:pos + 80]!r}")


def _is_int(b):
    try:
        int(b)
        return b.strip() == b and not b.startswith(b"+")
    except ValueError:
        return False


def _length(line):
    if line == b"-1":
        return -1
    if not line.isdigit():
        raise Failure("bad-reply", f"length {line[:80]!r}")
    return int(line)


def decode(raw, pos=0):
    """(value, end) of a complete RESP2 reply (for the COMMAND table)."""
    cr = raw.index(b"\r\n", pos)
    t, line, nxt = raw[pos:pos + 1], raw[pos + 1:cr], cr + 2
    if t in (b"+", b"-"):
        return line, nxt
    if t == b":":
        return int(line), nxt
    if t == b"$":
        n = int(line)
        return (None, nxt) if n < 0 else (raw[nxt:nxt + n], nxt + n + 2)
    items = []
    for _ in range(max(int(line), 0)):
        value, nxt = decode(raw, nxt)
        items.append(value)
    return items, nxt


# --- Generation -------------------------------------------------------------------------

class Commands:
    """The command table, as redis-server reports it (the proxy's table is generated from it)."""

    def __init__(self, server):
        self.entries = []  # (words of the name, arity of the whole command, (first, last, step) key)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(multibulk([b"COMMAND"]))
            table = decode(Reader(sock).reply(time.monotonic() + 10))[0]
        for entry in table:
            name, arity = entry[0].lower(), int(entry[1])
            if name in NEVER:
                continue
            subs = entry[9] if len(entry) > 9 else []
            if subs:
                for sub in subs:
                    container, _, subname = sub[0].lower().partition(b"|")
                    self.entries.append(([container.upper(), subname.upper()], int(sub[1]), tuple(sub[3:6])))
            else:
                self.entries.append(([name.upper()], arity, tuple(entry[3:6])))
        # The proxy's own commands.
        self.entries += [([b"PROXY", b"ROUTE"], 3, (2, 2, 1)), ([b"PROXY", b"HELP"], 2, (0, 0, 0)),
                         ([b"PROXY", b"REPAIR"], 3, (0, 0, 0)), ([b"INFO"], -1, (0, 0, 0)),
                         ([b"HELLO"], -1, (0, 0, 0)), ([b"PING"], -1, (0, 0, 0)),
                         ([b"PROXY", b"RELOAD"], 2, (0, 0, 0))]  # the same file: new server connections


def arg(rng):
    r = rng.random()
    if r < 0.35:
        return rng.choice(KEYS)
    if r < 0.55:
        return rng.choice(NUMBERS)
    if r < 0.75:
        return rng.choice(WORDS)
    if r < 0.97:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12)))
    return os.urandom(rng.choice([100, 4096, 70000, 1 << 20]))  # large values


def random_case(rng, word):
    return bytes(c ^ 0x20 if 97 <= (c | 0x20) <= 122 and rng.random() < 0.3 else c for c in word)


def command(rng, commands):
    words, arity, (first, last, step) = rng.choice(commands.entries)
    words = [random_case(rng, w) for w in words]
    need = abs(arity) - len(words)
    extra = 0 if arity > 0 else rng.choice([0, 0, 1, 2, 3, 6])
    if rng.random() < 0.05:  # the wrong number of arguments
        need = max(0, need + rng.choice([-1, 1]))
    argc = len(words) + max(need, 0) + extra
    last = last if last >= 0 else argc + last
    for i in range(len(words), argc):  # keys where COMMAND says keys are, mostly
        is_key = first > 0 and first <= i <= last and (i - first) % max(step, 1) == 0
        words.append(rng.choice(KEYS) if is_key and rng.random() < 0.9 else arg(rng))
    return words


def encode(rng, words):
    if rng.random() < 0.15 and sum(len(w) for w in words) < 16000:  # escaped, at most 64 KB
        return inline(words)
    return multibulk(words)


def mutate(rng, data):
    """A garbled request: the proxy may answer anything, or close, but must stay well."""
    choice = rng.randrange(9)
    if choice == 0 and len(data) > 1:  # truncated
        return data[:rng.randrange(1, len(data))]
    if choice == 1:  # bytes flipped
        b = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    if choice == 2:  # the argument count changed
        return b"*%d\r\n" % rng.choice([0, -1, -2, 1, 3, 1000, 1 << 20, (1 << 20) + 1, 1 << 31, 1 << 63]) + data.split(b"\r\n", 1)[-1]
    if choice == 3:  # a huge or bad bulk length
        n = rng.choice([b"999999999999", b"67108864", b"67108860", b"4294967296", b"-5", b"", b"1x",
                        b"99999999999999999999", b"%d" % rng.randrange(1 << 26)])
        return b"*2\r\n$3\r\nSET\r\n$" + n + b"\r\n" + data[:rng.randrange(0, 100)]
    if choice == 4:  # random bytes
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    if choice == 5:  # an inline line without its end, or far too long
        return b"SET k " + b"a" * rng.choice([10, 70000])
    if choice == 6:  # CRLF in odd places
        b = bytearray(data)
        b[rng.randrange(len(b) + 1):0] = rng.choice([b"\r\n", b"\r", b"\n", b"\r\n\r\n"])
        return bytes(b)
    if choice == 7:  # unbalanced quotes, bad escapes
        return rng.choice([b'SET k "abc\r\n', b"SET k 'a\r\n", b'SET k "a"b\r\n', b'SET "\\x4\r\n', b'"\r\n'])
    return b"*1\r\n$4\r\nPING\r\n" * rng.randrange(1, 3) + b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$" + b"9" * rng.randrange(1, 25)


def pipeline(rng, commands, marker):
    """[(bytes, expectation)]: ("any",) a reply, ("echo", m) a bulk m, ("ok-close",) +OK then
    EOF, or None: garbage, nothing after it is checked."""
    items = []
    for i in range(rng.choice([1, 2, 5, 10, 30])):
        words = command(rng, commands)
        if words[0].upper() == b"QUIT":
            items.append((encode(rng, words), ("ok-close",)))
            return items
        items.append((encode(rng, words), ("any",)))
        m = b"%s.%d" % (marker, i)
        items.append((encode(rng, [b"ECHO", m]), ("echo", m)))
    return items


# --- The run ----------------------------------------------------------------------------

class Run:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.workdir = None
        self.servers = []
        self.proxy = None
        self.conns = []  # reusable connections (their readers)
        self.rounds = 0
        self.requests = 0
        self.crashes = 0
        self.replies = {"ok": 0, "error": 0, "protocol error": 0}
        self.errors = {}  # --verbose: error replies by their start
        self.history = []  # the last rounds, for the artifacts
        os.makedirs(args.artifacts, exist_ok=True)

    def start(self):
        import tempfile
        self.workdir = tempfile.mkdtemp(prefix="ringproxy-netfuzz-")
        self.servers = [harness.RedisServer(self.workdir).start() for _ in range(3)]
        self.commands = Commands(self.servers[0])
        self.port = harness.free_port()
        self.proxy = harness.Proxy(self.workdir, self.config(), self.port)
        self.start_proxy()

    def config(self, connections=1, write_ack="quorum", read_from=None):
        s1, s2, s3 = (s.address for s in self.servers)
        return (f'[proxy]\nlisten = "127.0.0.1:{self.port}"\n\n[metrics]\nlisten = ""\n\n'
                f'[pool]\nhash_tag = "{{}}"\nrequest_timeout_ms = 2000\nbackend_connections = {connections}\n\n'
                f'[[pool.shards]]\nname = "shard1"\nservers = ["{s1}"]\n\n'
                f'[[pool.shards]]\nname = "shard2"\nservers = ["{s2}", "{s3}"]\n'
                f'replication = {{ strategy = "primary-replica", write_ack = "{write_ack}", '
                f'read_from = "{read_from or self.args.read_from}" }}\n')

    def reconfigure(self):
        """A new config file (same ring): the proxy reloads it under the fuzzing traffic,
        replacing server connections when their number changes."""
        text = self.config(self.rng.choice([1, 2, 3]), self.rng.choice(["primary", "one", "quorum", "all"]),
                           self.rng.choice([None, "primary", "prefer-replica", "replica", "any"]))
        with open(self.proxy.config_path, "w") as f:  # in place, as an operator's editor may
            f.write(text)

    def start_proxy(self):
        self.proxy.start(["--log-level", "warn"])

    def stop(self):
        status = None
        try:
            for r in self.conns:
                r.sock.close()
            self.conns = []
            if self.proxy and self.proxy.proc and self.proxy.proc.poll() is None:
                status = self.proxy.stop()
        finally:
            for s in self.servers:
                s.stop()
        return status

    # A connection: reused (valid rounds only) or fresh.
    def connection(self, reuse):
        if reuse and self.conns:
            return self.conns.pop(self.rng.randrange(len(self.conns)))
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return Reader(sock)

    def send(self, sock, data, errors):
        """Sends in random pieces from a thread, so that replies are read meanwhile."""
        rng = random.Random(self.rng.random())
        try:
            at = 0
            while at < len(data):
                n = rng.choice([1, 7, 100, 4096, 1 << 16, len(data)])
                sock.sendall(data[at:at + n])
                at += n
                if rng.random() < 0.02:
                    time.sleep(0.01)
        except OSError as e:  # the proxy closed (after a protocol error): fine
            errors.append(e)

    def round(self):
        rng = self.rng
        kind = rng.choices(["valid", "mutated", "abandoned"], [6, 3, 1])[0]
        marker = b"m%d" % self.rounds
        items = pipeline(rng, self.commands, marker)
        if kind == "mutated":
            cut = rng.randrange(len(items) + 1)
            bad = mutate(rng, items[min(cut, len(items) - 1)][0])
            items = items[:cut] + [(bad, None)]
        reader = self.connection(reuse=kind == "valid" and rng.random() < 0.7)
        data = b"".join(b for b, _ in items)
        self.history = (self.history + [(kind, data)])[-5:]
        self.requests += len(items)

        errors = []
        sender = threading.Thread(target=self.send, args=(reader.sock, data, errors), daemon=True)
        sender.start()
        if kind == "abandoned":
            time.sleep(rng.choice([0, 0.001, 0.01]))
            if rng.random() < 0.5:  # a reset rather than a close
                reader.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            reader.sock.close()
            sender.join(5)
            return
        deadline = time.monotonic() + REPLY_TIMEOUT
        keep = True
        for i, (_, expect) in enumerate(items):
            if expect is None:
                break
            raw = reader.reply(deadline)
            self.count(raw)
            if raw is None:
                state = "closed the connection" if reader.closed else "sent nothing for %d s" % REPLY_TIMEOUT
                raise Failure("stalled", f"reply {i} of {len(items)} ({expect}): the proxy {state}")
            if expect[0] == "echo" and raw != bulk(expect[1]):
                raise Failure("order", f"reply {i}: expected ECHO {expect[1]!r}, got {raw[:200]!r}")
            if expect[0] == "ok-close":
                if raw != b"+OK\r\n" or reader.reply(time.monotonic() + 5) is not None or not reader.closed:
                    raise Failure("order", f"QUIT: got {raw[:200]!r}, then the connection stayed open")
                keep = False
        if items and items[-1][1] is None:
            # After garbage: whatever comes must still be RESP; then the connection goes.
            quiet = time.monotonic() + 0.2
            while (raw := reader.reply(quiet)) is not None:
                self.count(raw)
                quiet = time.monotonic() + 0.2
            keep = False
        sender.join(REPLY_TIMEOUT)
        if keep and not errors and len(self.conns) < 4:
            self.conns.append(reader)
        else:
            reader.sock.close()

    def count(self, raw):
        if raw is not None:
            kind = "ok" if not raw.startswith(b"-") else "protocol error" if b"Protocol error" in raw[:40] else "error"
            self.replies[kind] += 1
            if self.args.verbose and kind != "ok":
                text = raw[:50].split(b"'")[0]
                self.errors[text] = self.errors.get(text, 0) + 1

    def check(self):
        if self.proxy.proc.poll() is not None:
            raise Failure("crash", f"ringproxy exited with status {self.proxy.proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=PING_TIMEOUT) as s:
                s.settimeout(PING_TIMEOUT)
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                r = Reader(s).reply(time.monotonic() + PING_TIMEOUT)
        except OSError as e:
            r = None
            if self.proxy.proc.poll() is not None:
                raise Failure("crash", f"ringproxy exited with status {self.proxy.proc.returncode}")
            raise Failure("hang", f"PING on a new connection: {e}")
        if r != b"+PONG\r\n":
            raise Failure("hang", f"PING on a new connection got {r!r} within {PING_TIMEOUT} s")
        if self.rounds % 10 == 0:
            rss_mb = harness.rss_kb(self.proxy.proc.pid) / 1024
            if rss_mb > self.args.rss_limit_mb:
                raise Failure("rss", f"ringproxy RSS {rss_mb:.0f} MB > {self.args.rss_limit_mb} MB")
        if self.rounds % 50 == 0:
            self.reconfigure()
        if self.rounds % 200 == 0:  # keep the servers' datasets small
            for s in self.servers:
                s.client().flushall()

    def record(self, failure):
        self.crashes += 1
        path = os.path.join(self.args.artifacts, f"{failure.kind}-{self.args.seed}-{self.rounds}.txt")
        with open(path, "w") as f:
            f.write(f"{failure}\nseed {self.args.seed}, round {self.rounds}\n\nlast rounds (oldest first):\n")
            for kind, data in self.history:
                f.write(f"--- {kind}\n{data[:20000]!r}\n")
            f.write("\n--- ringproxy log (tail)\n" + self.proxy.log()[-20000:])
        print(f"network_fuzz: {failure} (round {self.rounds}); details in {path}", flush=True)
        print(self.proxy.log()[-3000:], flush=True)

    def restart_proxy(self):
        for r in self.conns:
            r.sock.close()
        self.conns = []
        if self.proxy.proc.poll() is None:
            self.proxy.proc.kill()
            self.proxy.proc.wait()
        self.start_proxy()

    def run(self):
        end = time.monotonic() + self.args.seconds
        while time.monotonic() < end:
            self.rounds += 1
            try:
                try:
                    self.round()
                except (ConnectionError, socket.timeout) as e:
                    # Refused or reset while connecting: only a failure if the proxy is gone.
                    if self.proxy.proc.poll() is not None:
                        raise Failure("crash", f"ringproxy exited with status {self.proxy.proc.returncode}")
                    raise Failure("connect", f"{type(e).__name__}: {e}")
                self.check()
            except Failure as failure:
                self.record(failure)
                self.restart_proxy()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--proxy", default=os.path.join(here, "..", "..", "build-fuzz", "proxy", "ringproxy"))
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--rss-limit-mb", type=int, default=512)
    p.add_argument("--read-from", default="primary",
                   help="read_from of the replicated shard (quorum reaches a known bug: tests/e2e/test_fuzz_findings.py)")
    p.add_argument("--verbose", action="store_true", help="print the most frequent error replies")
    p.add_argument("--artifacts", default=os.path.join(here, "..", "..", "build-fuzz", "fuzz-artifacts", "network"))
    args = p.parse_args()
    if args.seed is None:
        args.seed = random.randrange(1 << 31)
    harness.RINGPROXY_BIN = os.path.abspath(args.proxy)
    # Under ASan a small quarantine keeps the RSS meaningful; a leak fails the run at exit.
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1:quarantine_size_mb=32")
    os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    print(f"network_fuzz: proxy {harness.RINGPROXY_BIN}, seed {args.seed}, {args.seconds:.0f} s", flush=True)

    run = Run(args)
    status = None
    try:
        run.start()
        run.run()
    finally:
        try:
            status = run.stop()
        except AssertionError as e:  # did not exit on SIGTERM
            status = str(e)
        if status not in (0, None):
            run.record(Failure("shutdown", f"ringproxy exited with status {status} on SIGTERM (a leak?)"))
        if run.workdir:
            harness.shutil.rmtree(run.workdir, ignore_errors=True)
    print(f"network_fuzz: {run.requests} requests in {run.rounds} rounds; replies: " +
          ", ".join(f"{n} {kind}" for kind, n in run.replies.items()))
    for text, n in sorted(run.errors.items(), key=lambda e: -e[1])[:25]:
        print(f"{n:8d}  {text!r}")
    print(f"target=network execs={run.rounds} crashes={run.crashes}", flush=True)
    return 1 if run.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
