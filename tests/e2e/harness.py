"""End-to-end harness: real redis-servers and ringproxy on free loopback ports.

Everything started here is stopped by PID in stop()/cleanup(); nothing is left behind.
Run with /usr/bin/python3 (it has redis-py); ctest sets RINGPROXY_BIN.
"""
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import re
import time
import urllib.request

import redis

RINGPROXY_BIN = os.environ.get("RINGPROXY_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "proxy", "ringproxy")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"

_used_ports = set()


def _sanitized(binary):
    try:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "libasan" in out


# Memory measurements (RSS) mean nothing under AddressSanitizer: it quarantines freed memory.
SANITIZED = _sanitized(RINGPROXY_BIN)


def free_port():
    """A port free now, never handed out twice by this process. Drawn at random below the
    kernel's ephemeral range (32768-60999), which outgoing connections and bind(0) use: suites
    running side by side (ctest -j2) got the same port from bind(0), and one server's bind failed."""
    rng = random.SystemRandom()
    while True:
        port = rng.randrange(20000, 32768)
        if port in _used_ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _used_ports.add(port)
        return port


def started(proc, log_path, ping):
    """A wait_until predicate: `ping()` answers, and `proc` (not some other process that took
    the port) is alive; gives up at once if it exited (a port taken, a bad option)."""
    def predicate():
        if proc.poll() is not None:
            with open(log_path, errors="replace") as f:
                raise GaveUp(f"exited with status {proc.returncode}: {f.read()[-2000:]}")
        return ping()
    return predicate


def rss_kb(pid):
    """Resident memory of a process, in kB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class GaveUp(Exception):
    """Raised by a wait_until predicate that knows waiting longer is pointless."""


def wait_until(predicate, timeout=30.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except GaveUp:
            raise
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last_error = e
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}: {last_error}")


class RedisServer:
    def __init__(self, workdir, port=None, host="127.0.0.1"):
        self.host = host
        self.port = port or free_port()
        self._fixed_port = port is not None
        self.workdir = workdir
        self.proc = None
        self._started = False    # it ran once: its address is fixed
        self.client_kwargs = {}  # e.g. password= for a server started with --requirepass
        self.default_args = ()   # options of every start (and restart), e.g. ("--requirepass", pw)

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    def start(self, *extra_args):
        """extra_args: more redis-server options, e.g. ("--dbfilename", "x.rdb") to start with data."""
        for attempt in range(3):
            try:
                return self._start(extra_args)
            except GaveUp as e:
                # A first start whose port another process took between free_port's probe and
                # redis's bind: another port. A restart keeps its address (tests expect it).
                if self._started or self._fixed_port or "Address already in use" not in str(e) or attempt == 2:
                    raise
                self.port = free_port()

    def _start(self, extra_args):
        # The child keeps its own copy of the log descriptor; ours closes at once.
        with open(os.path.join(self.workdir, f"redis-{self.port}.log"), "ab") as log:
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", self.host, "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--dir", self.workdir,
                 "--protected-mode", "no", "--enable-debug-command", "local",
                 # A resync starts at once, and its copy is not left behind for a restart to load.
                 "--repl-diskless-sync-delay", "0", "--rdb-del-sync-files", "yes", *self.default_args, *extra_args],
                stdout=log, stderr=log)
        wait_until(started(self.proc, log.name, lambda: self.client().ping()), what=f"redis-server on {self.port}")
        self._started = True
        return self

    def client(self, **kw):
        kw.setdefault("socket_timeout", 5)
        for k, v in self.client_kwargs.items():
            kw.setdefault(k, v)
        return redis.Redis(host=self.host, port=self.port, **kw)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def toml_config(port, shards, metrics_port=None, pool=None, proxy=None, replication=None, users=()):
    """shards: list of (name, [addresses]), (name, [addresses], weight) or (name, [addresses], weight, {more
    keys of the shard}); users: [[proxy.users]] (users_toml)."""
    lines = ["[proxy]", f'listen = "127.0.0.1:{port}"']
    for k, v in (proxy or {}).items():
        lines.append(f"{k} = {toml_value(v)}")
    lines += ["", "[metrics]", f'listen = "{"127.0.0.1:%d" % metrics_port if metrics_port else ""}"', "", "[pool]"]
    for k, v in (pool or {}).items():
        lines.append(f"{k} = {toml_value(v)}")
    if replication:
        lines += ["", "[pool.replication]"] + [f"{k} = {toml_value(v)}" for k, v in replication.items()]
    for shard in shards:
        name, servers = shard[0], shard[1]
        weight = shard[2] if len(shard) > 2 else 1
        lines += ["", "[[pool.shards]]", f'name = "{name}"', f"weight = {weight}",
                  "servers = [" + ", ".join(f'"{s}"' for s in servers) + "]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in (shard[3] if len(shard) > 3 else {}).items()]
    return "\n".join(lines) + "\n" + (users_toml(users) if users else "")


def users_toml(users):
    """[[proxy.users]] tables (valid anywhere after [proxy]): a list of dicts of their keys."""
    lines = []
    for user in users:
        lines += ["", "[[proxy.users]]"]
        for k, v in user.items():
            lines.append(f"{k} = " + ("[" + ", ".join(toml_value(p) for p in v) + "]" if isinstance(v, list)
                                      else toml_value(v)))
    return "\n".join(lines) + "\n"


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):  # an inline table, e.g. [proxy] tls = { listen = "…", … }
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, str):
        return '"' + v + '"'
    return str(v)


class Proxy:
    def __init__(self, workdir, config_text, port):
        self.workdir = workdir
        self.port = port
        self.config_path = os.path.join(workdir, f"ringproxy-{port}.toml")
        with open(self.config_path, "w") as f:
            f.write(config_text)
        self.log_path = os.path.join(workdir, f"ringproxy-{port}.log")
        self.proc = None
        self.client_kwargs = {}  # e.g. username/password when the proxy has users

    def start(self, extra_args=(), env=None):
        """env: more environment variables (NOTIFY_SOCKET ...)."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([RINGPROXY_BIN, "--config", self.config_path, *extra_args],
                                         stdout=log, stderr=log, env={**os.environ, **(env or {})})
        wait_until(started(self.proc, self.log_path, lambda: self.client().ping()), what=f"ringproxy on {self.port}")
        return self

    def client(self, **kw):
        kw.setdefault("socket_timeout", 10)
        for k, v in self.client_kwargs.items():
            kw.setdefault(k, v)
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        """SIGTERM; returns the exit status (a clean shutdown is 0)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.terminate()
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("ringproxy did not exit on SIGTERM")


class Cluster:
    """N shards ("shard1".."shardN") of `servers` redis-servers each, behind one ringproxy.

    `replication`: the [pool.replication] table (needed when servers > 1).
    `users`: [[proxy.users]] (see users_toml); `credentials`: the client_kwargs of the proxy's own
    clients (e.g. {"password": ...} with a [proxy] password), used from the start-up ping on.
    """

    def __init__(self, shards=3, pool=None, proxy=None, metrics=False, weights=None, servers=1, replication=None,
                 proxy_args=(), users=(), credentials=None, server_args=(), server_credentials=None,
                 shard_keys=None):
        """server_args: more redis-server options for every server (e.g. --requirepass), and
        server_credentials the client_kwargs our own clients of those servers then need;
        shard_keys: {shard index: {more keys of that [[pool.shards]]}}."""
        self.workdir = tempfile.mkdtemp(prefix="ringproxy-e2e-")
        self.server_args = tuple(server_args)
        self.sets = [[self._server(server_credentials) for _ in range(servers)] for _ in range(shards)]
        self.redis = [s[0] for s in self.sets]
        self.names = [f"shard{i + 1}" for i in range(shards)]
        weights = weights or [1] * shards
        self.metrics_port = free_port() if metrics else None
        port = free_port()
        config = toml_config(port, [(n, [r.address for r in rs], w, (shard_keys or {}).get(i, {}))
                                    for i, (n, rs, w) in enumerate(zip(self.names, self.sets, weights))],
                             metrics_port=self.metrics_port, pool=pool, proxy=proxy, replication=replication,
                             users=users)
        self.proxy = Proxy(self.workdir, config, port)
        self.proxy.client_kwargs = dict(credentials or {})
        self.proxy.start(proxy_args)

    def _server(self, credentials):
        server = RedisServer(self.workdir)
        server.client_kwargs = dict(credentials or {})
        server.default_args = self.server_args
        return server.start()

    def client(self, **kw):
        return self.proxy.client(**kw)

    def server_of(self, name):
        return self.redis[self.names.index(name)]

    def route(self, key):
        reply = self.client().execute_command("PROXY", "ROUTE", key)
        fields = dict(zip(reply[0::2], reply[1::2]))
        return fields[b"shard"].decode()

    def cleanup(self):
        return stop_everything(self.proxy, self.sets, self.workdir)


def cluster_with_app_user(test, shards=1, access="readwrite"):
    """A cluster whose proxy has the admin password "root-pass" (its own clients use it) and a
    user "app" / "app-pass" with `access`; stopped when `test` ends. Returns it and app's client."""
    cluster = Cluster(shards=shards, proxy={"password": "root-pass"}, credentials={"password": "root-pass"},
                      users=[{"name": "app", "password": "app-pass", "access": access}])
    test.addCleanup(cluster.cleanup)
    return cluster, cluster.client(username="app", password="app-pass")


def stop_everything(proxy, sets, workdir):
    """Stops the proxy (its exit status is returned) and every server, then removes the workdir."""
    status = None
    try:
        # A server a test left stopped (SIGSTOP) would hold the proxy's drain until its timeout.
        for rs in sets:
            for r in rs:
                if r.proc and r.proc.poll() is None:
                    r.proc.send_signal(signal.SIGCONT)
        status = proxy.stop()
    finally:
        for rs in sets:
            for r in rs:
                r.stop()
        # RINGPROXY_E2E_KEEP=1 keeps the logs and configs for a post-mortem.
        if not os.environ.get("RINGPROXY_E2E_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)
    return status


def fill(client, n, prefix="k"):
    """SETs prefix0 .. prefix<n-1> (to their index) in one pipeline; their names, as bytes."""
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"{prefix}{i}", i)
    pipe.execute()
    return {f"{prefix}{i}".encode() for i in range(n)}


def keys_by_shard(cluster, count, prefix="k"):
    """{shard name: [keys]}: `count` keys (prefix0, prefix1, ...) that map to each shard."""
    found = {n: [] for n in cluster.names}
    i = 0
    while any(len(v) < count for v in found.values()):
        key = f"{prefix}{i}"
        shard = cluster.route(key)
        if len(found[shard]) < count:
            found[shard].append(key)
        i += 1
    return found


def count_incrs(client, stop, errors, acked, key="counter", incr=None):
    """INCRs `key` (or calls `incr`, an increment of its own: a script) until `stop` is set: one
    entry in `acked` per acknowledged INCR, the others' errors in `errors` (a history: every
    acknowledged INCR must be counted exactly once)."""
    while not stop.is_set():
        try:
            incr() if incr is not None else client.incr(key)
            acked.append(1)
        except redis.RedisError as e:
            errors.append(repr(e))


def digests(servers):
    """DEBUG DIGEST of each server: equal digests mean equal datasets."""
    return [s.client().execute_command("DEBUG", "DIGEST") for s in servers]


def config_digest(cluster):
    """INFO proxy's config_digest as the text it is (redis-py's INFO parser makes a digest of
    decimal digits an int, and drops its leading zeros)."""
    client = cluster.client()
    client.set_response_callback("INFO", lambda response, **_: response)
    for line in client.execute_command("INFO", "proxy").decode().splitlines():
        if line.startswith("config_digest:"):
            return line.split(":", 1)[1]
    return None


def server_states(cluster):
    """The proxy's view of each server's state (up, down, recovering, stale), in order."""
    info = cluster.client().info("proxy")
    servers = [(int(k[6:]), v) for k, v in info.items() if k.startswith("server") and k[6:].isdigit()]
    return [v["state"] for _, v in sorted(servers)]


def server_infos(cluster):
    """Each server's line of INFO proxy (state, requests, resyncs, replays, fences...), in order."""
    info = cluster.client().info("proxy")
    servers = [(int(k[6:]), v) for k, v in info.items() if k.startswith("server") and k[6:].isdigit()]
    return [v for _, v in sorted(servers)]


def shard_infos(cluster):
    """Each shard's line of INFO proxy (repairs, leader_changes...), in order."""
    info = cluster.client().info("proxy")
    shards = [(int(k[5:]), v) for k, v in info.items() if k.startswith("shard") and k[5:].isdigit()]
    return [v for _, v in sorted(shards)]


def pending_on_servers(cluster):
    """Requests in flight to the servers, as INFO proxy tells (each server's `pending`)."""
    info = cluster.client().info("proxy")
    return sum(int(v["pending"]) for k, v in info.items() if k.startswith("server") and isinstance(v, dict))


def placement_after_writing(port, servers, keys):
    """Flushes `servers`, SETs every key through the proxy on `port` (ringproxy or nutcracker),
    and returns which keys each server then holds, as sets."""
    for s in servers:
        s.client().flushall()
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
    pipe = client.pipeline(transaction=False)
    for k in keys:
        pipe.set(k, 1)
    pipe.execute()
    return [set(s.client().keys("*")) for s in servers]


def resp(*args):
    """One command in RESP's request form, for tests that write the wire themselves."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def raw_exchange(port, payload, expect_bytes=None, timeout=5.0, read_until_close=False):
    """Sends raw bytes, returns what came back (until expect_bytes arrived, or close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if expect_bytes is not None and len(data) >= expect_bytes and not read_until_close:
                break
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
        return data


def scrape(port):
    """The /metrics text of a metrics endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def value(text, name, labels=""):
    """One sample of a /metrics text (labels exactly as printed), or None."""
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$", text, re.M)
    return float(match.group(1)) if match else None
