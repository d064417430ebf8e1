"""ketama/modula mapping checked against a real twemproxy (nutcracker).

The same keys are written through nutcracker with a nutcracker.yml, then through ringproxy
with what `ringproxy import-twemproxy` made of that file; each redis-server must end up
holding exactly the same keys both times. This is what lets a twemproxy user switch with no
data movement, in one command.
"""
import os
import shutil
import subprocess
import tempfile
import unittest

import redis

from harness import RINGPROXY_BIN, Proxy, RedisServer, free_port, placement_after_writing, wait_until

NUTCRACKER = shutil.which("nutcracker") or "/usr/sbin/nutcracker"
EXAMPLE = "/usr/share/doc/nutcracker/examples/nutcracker.yml"  # (Debian's nutcracker package)

# Plain keys, binary keys (bytes >= 0x80 are sign-extended by twemproxy's FNV), hash tags.
KEYS = ([""] + [f"user:{i}" for i in range(1500)] + [b"\xff\xfe" + str(i).encode() + b"\x80\xc3\xa9" for i in range(300)]
        + [f"{{tag{i % 40}}}:item:{i}" for i in range(300)])


class TwemproxyCompatTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ringproxy-twem-")
        cls.servers = [RedisServer(cls.dir).start() for _ in range(4)]

    @classmethod
    def tearDownClass(cls):
        for s in cls.servers:
            s.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def placement_after_writing(self, port):
        return placement_after_writing(port, self.servers, KEYS)

    def nutcracker_yml(self, hash_name, distribution, weights, names):
        port = free_port()
        conf = os.path.join(self.dir, f"nc-{port}.yml")
        with open(conf, "w") as f:
            f.write(f"pool:\n  listen: 127.0.0.1:{port}\n  hash: {hash_name}\n  distribution: {distribution}\n"
                    f"  hash_tag: \"{{}}\"\n  redis: true\n  auto_eject_hosts: false\n  timeout: 5000\n"
                    f"  servers:\n")
            for s, w, n in zip(self.servers, weights, names or [None] * len(self.servers)):
                f.write(f"   - {s.address}:{w}{' ' + n if n else ''}\n")
        return conf, port

    def via_nutcracker(self, conf, port):
        stats = free_port()
        with open(os.path.join(self.dir, f"nc-{port}.log"), "ab") as log:
            proc = subprocess.Popen([NUTCRACKER, "-c", conf, "-s", str(stats), "-a", "127.0.0.1",
                                     "-o", os.path.join(self.dir, f"nc-{port}.out")], stdout=log, stderr=log)
        try:
            wait_until(lambda: redis.Redis(port=port, socket_timeout=2).set("probe", 1), what="nutcracker")
            return self.placement_after_writing(port)
        finally:
            proc.terminate()
            proc.wait(10)

    def via_ringproxy(self, conf, port, pool=None):
        """With the TOML `ringproxy import-twemproxy` makes of nutcracker's file (same listen)."""
        imported = subprocess.run([RINGPROXY_BIN, "import-twemproxy", conf, *(["--pool", pool] if pool else [])],
                                  capture_output=True, text=True, timeout=30)
        self.assertEqual(imported.returncode, 0, imported.stderr)
        # (its metrics endpoint off: the default port would collide with suites running beside)
        proxy = Proxy(self.dir, imported.stdout + '\n[metrics]\nlisten = ""\n', port).start()
        try:
            return self.placement_after_writing(port)
        finally:
            self.assertEqual(proxy.stop(), 0)

    def check(self, hash_name, distribution, weights=(1, 1, 1, 1), names=("alpha", "beta", "gamma", "delta")):
        conf, port = self.nutcracker_yml(hash_name, distribution, weights, names)
        self.same_placement(conf, port)

    def same_placement(self, conf, port, pool=None):
        expected = self.via_nutcracker(conf, port)
        actual = self.via_ringproxy(conf, port, pool)
        self.assertEqual(sum(len(s) for s in expected), len(set(KEYS)))
        for i, (e, a) in enumerate(zip(expected, actual)):
            self.assertEqual(len(e), len(a), f"server {i}: twemproxy {len(e)} keys, ringproxy {len(a)}")
            self.assertEqual(e, a, f"server {i} holds different keys")
        self.assertTrue(all(len(s) > 0 for s in expected))

    def test_ketama_fnv1a_64_default(self):
        self.check("fnv1a_64", "ketama")

    def test_ketama_with_weights_and_md5(self):
        self.check("md5", "ketama", weights=(1, 2, 3, 1), names=("s1", "s2", "s3", "s4"))

    def test_ketama_other_hashes(self):
        for hash_name in ("fnv1_64", "fnv1a_32", "fnv1_32", "crc32a"):
            with self.subTest(hash=hash_name):
                self.check(hash_name, "ketama")

    def test_servers_without_names_are_hashed_by_address(self):
        self.check("fnv1a_64", "ketama", names=None)

    def test_nutcrackers_own_example_file(self):
        """Debian's nutcracker example (its pool 'beta': named servers, hash tag, timeout), with
        our servers' ports in place of 6380-6383 and a free listen port; --pool picks it."""
        with open(EXAMPLE) as f:
            text = f.read()
        # (nutcracker starts every pool of the file: each gets a free port, omega's socket a path of ours)
        ports = {listen: free_port() for listen in range(22121, 22125)}
        for listen, free in ports.items():
            text = text.replace(f"listen: 127.0.0.1:{listen}", f"listen: 127.0.0.1:{free}")
        text = text.replace("listen: /tmp/gamma", f"listen: {os.path.join(self.dir, 'omega.sock')}")
        port = ports[22122]
        for example_port, server in zip(range(6380, 6384), self.servers):
            text = text.replace(f"127.0.0.1:{example_port}:", f"{server.address}:")
        conf = os.path.join(self.dir, "example.yml")
        with open(conf, "w") as f:
            f.write(text)
        self.same_placement(conf, port, pool="beta")

    def test_modula(self):
        self.check("fnv1a_64", "modula", weights=(1, 1, 2, 1))
        self.check("crc32", "modula")


if __name__ == "__main__":
    unittest.main()
