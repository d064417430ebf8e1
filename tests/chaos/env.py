"""The processes and the network of one chaos schedule: redis-servers on their own 127.0.0.N
addresses, ringproxy, the config file, and nftables partitions.

Everything runs inside the network namespace chaos.py created (or, without namespaces, in the
root namespace on free ports, and then without partitions). The checker talks to each
redis-server over its unix socket, so a partition (which is between the proxy's 127.0.0.1 and a
server's 127.0.0.N) never blocks the checker, and a server's replication connection (sourced
from its own address with --bind-source-addr) is never cut by it either.
"""
import datetime
import glob
import os
import signal
import socket
import subprocess
import sys
import time

import redis

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from harness import REDIS_SERVER, GaveUp, toml_value, wait_until  # noqa: E402

NFT_TABLE = "rpchaos"
PROXY_HOST = "127.0.0.1"


def stamp():
    """The same wall-clock format as spdlog's default pattern, so events line up with the proxy log."""
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def free_port(host):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Server:
    """One redis-server on host:port, with a unix socket for the checker."""

    def __init__(self, name, host, port, workdir, password="", certs=None):
        self.name = name
        self.password = password
        self.certs = certs  # --tls: the directory with ca.crt, server.crt, server.key
        self.host = host
        self.port = port
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.sock = os.path.join(self.dir, "s.sock")
        self.log_path = os.path.join(workdir, f"redis-{name}.log")
        self.proc = None
        self.stopped = False  # SIGSTOPped by us
        self.starts = 0

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        """Starts empty: no persistence, and any file a resync left is removed first."""
        for f in glob.glob(os.path.join(self.dir, "*.rdb")):
            os.unlink(f)
        self.starts += 1
        with open(self.log_path, "ab") as log:
            if self.certs:  # TLS only: every connection the proxy (and a replica) makes is TLS
                listen = ["--port", "0", "--tls-port", str(self.port),
                          "--tls-cert-file", os.path.join(self.certs, "server.crt"),
                          "--tls-key-file", os.path.join(self.certs, "server.key"),
                          "--tls-ca-cert-file", os.path.join(self.certs, "ca.crt"), "--tls-auth-clients", "optional"]
            else:
                listen = ["--port", str(self.port)]
            self.proc = subprocess.Popen(
                [REDIS_SERVER, *listen, "--bind", self.host, "--bind-source-addr", self.host,
                 "--unixsocket", self.sock, "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                 "--daemonize", "no", "--dir", self.dir, "--protected-mode", "no",
                 "--enable-debug-command", "local", "--repl-diskless-sync-delay", "0",
                 "--rdb-del-sync-files", "yes", *(("--requirepass", self.password) if self.password else ())],
                stdout=log, stderr=log, start_new_session=True)
        self.stopped = False

        def up():
            if self.proc.poll() is not None:
                with open(self.log_path, errors="replace") as f:
                    raise GaveUp(f"redis-server {self.name} exited with {self.proc.returncode}: {f.read()[-1500:]}")
            return self.client().ping()
        wait_until(up, timeout=20, what=f"redis-server {self.name} ({self.address})")
        return self

    def client(self, timeout=5):
        return redis.Redis(unix_socket_path=self.sock, socket_timeout=timeout, socket_connect_timeout=timeout,
                           password=self.password or None)

    def kill9(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()
        self.stopped = False

    def sigstop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGSTOP)
            self.stopped = True

    def sigcont(self):
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)
        self.stopped = False

    def terminate(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            pass


class Proxy:
    def __init__(self, binary, workdir, port):
        self.binary = binary
        self.port = port
        self.config_path = os.path.join(workdir, "ringproxy.toml")
        self.log_path = os.path.join(workdir, "ringproxy.log")
        self.proc = None
        self._admin = None

    def write_config(self, text):
        """Atomically: a temporary file renamed over the config (what config managers do)."""
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self.config_path)

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([self.binary, "--config", self.config_path, "--log-level", "info"],
                                         stdout=log, stderr=log, start_new_session=True)

        def up():
            if self.proc.poll() is not None:
                raise GaveUp(f"ringproxy exited with {self.proc.returncode}: {self.log()[-1500:]}")
            return self.client(timeout=2).ping()
        wait_until(up, timeout=20, what="ringproxy")
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def client(self, timeout=15):
        return redis.Redis(host=PROXY_HOST, port=self.port, socket_timeout=timeout, socket_connect_timeout=5)

    def admin(self):
        if self._admin is None:
            self._admin = self.client(timeout=15)
        return self._admin

    def reload(self):
        reply = self.admin().execute_command("PROXY", "RELOAD")
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    def info(self):
        return self.admin().info("proxy")

    def server_states(self):
        """{address: (state, last_error)} of every server the proxy routes to (not the draining ones)."""
        info = self.info()
        out = {}
        for k, v in info.items():
            if k.startswith("server") and k[6:].isdigit() and isinstance(v, dict):
                out[str(v.get("addr"))] = (str(v.get("state")), str(v.get("last_error")))
        return out

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def terminate(self):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.terminate()
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


class Firewall:
    """nftables partitions between the proxy (127.0.0.1) and servers, inside our namespace only."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.cut = set()

    def _nft(self, script):
        subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True, capture_output=True, timeout=10)

    def setup(self):
        if not self.enabled:
            return
        self.teardown()
        self._nft(f"add table inet {NFT_TABLE}\n"
                  f"add chain inet {NFT_TABLE} out {{ type filter hook output priority 0; policy accept; }}\n")

    def apply(self, hosts):
        """Partitions the proxy from exactly `hosts` (both directions); an empty set heals."""
        if not self.enabled:
            return
        hosts = set(hosts)
        lines = [f"flush chain inet {NFT_TABLE} out"]
        for h in sorted(hosts):
            lines.append(f"add rule inet {NFT_TABLE} out ip saddr {PROXY_HOST} ip daddr {h} drop")
            lines.append(f"add rule inet {NFT_TABLE} out ip saddr {h} ip daddr {PROXY_HOST} drop")
        self._nft("\n".join(lines) + "\n")
        self.cut = hosts

    def teardown(self):
        if not self.enabled:
            return
        subprocess.run(["nft", "delete", "table", "inet", NFT_TABLE], capture_output=True, timeout=10)
        self.cut = set()


def make_certs(directory):
    """A CA, and a server certificate it signs for every loopback address a schedule uses."""
    os.makedirs(directory, exist_ok=True)
    sans = ",".join(f"IP:127.0.0.{i}" for i in range(1, 33))

    def run(*argv):
        subprocess.run(["openssl", *argv], cwd=directory, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=chaos-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=chaos")
    with open(os.path.join(directory, "ext"), "w") as f:
        f.write(f"subjectAltName={sans}\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "server.crt", "-days", "2", "-extfile", "ext")
    return directory


def render_config(port, shards, pool, replication, certs=None):
    """shards: list of (name, [addresses], per-shard replication override or None)."""
    lines = ["[proxy]", f'listen = "{PROXY_HOST}:{port}"', "", "[metrics]", 'listen = ""', "", "[pool]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in pool.items()]
    if certs:
        lines += ["", "[pool.tls]", f'ca_file = "{os.path.join(certs, "ca.crt")}"']
    lines += ["", "[pool.replication]"] + [f"{k} = {toml_value(v)}" for k, v in replication.items()]
    for name, servers, override in shards:
        lines += ["", "[[pool.shards]]", f'name = "{name}"', "weight = 1",
                  "servers = [" + ", ".join(f'"{s}"' for s in servers) + "]"]
        if override:
            lines.append("replication = { " + ", ".join(f"{k} = {toml_value(v)}" for k, v in override.items()) + " }")
    return "\n".join(lines) + "\n"


def wait_for(predicate, timeout, interval=0.2):
    """Polls; True once predicate() is true, False at the deadline (exceptions count as false)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return True
        except Exception:  # noqa: BLE001 - polled until the deadline
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
