"""ketama/modula mapping checked against a real twemproxy (nutcracker).

The same keys are written through nutcracker, then through ringproxy, with the same
shard names, weights, hash and distribution; each redis-server must end up holding
exactly the same keys both times. This is what lets a twemproxy user switch with no data
movement.
"""
import os
import shutil
import subprocess
import tempfile
import unittest

import redis

from harness import Proxy, RedisServer, free_port, toml_config, wait_until

NUTCRACKER = shutil.which("nutcracker") or "/usr/sbin/nutcracker"

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
        for s in self.servers:
            s.client().flushall()
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
        pipe = client.pipeline(transaction=False)
        for k in KEYS:
            pipe.set(k, 1)
        pipe.execute()
        return [set(s.client().keys("*")) for s in self.servers]

    def via_nutcracker(self, hash_name, distribution, weights, names):
        port, stats = free_port(), free_port()
        conf = os.path.join(self.dir, f"nc-{port}.yml")
        with open(conf, "w") as f:
            f.write(f"pool:\n  listen: 127.0.0.1:{port}\n  hash: {hash_name}\n  distribution: {distribution}\n"
                    f"  hash_tag: \"{{}}\"\n  redis: true\n  auto_eject_hosts: false\n  timeout: 5000\n"
                    f"  servers:\n")
            for s, w, n in zip(self.servers, weights, names):
                f.write(f"   - {s.address}:{w} {n}\n")
        with open(os.path.join(self.dir, f"nc-{port}.log"), "ab") as log:
            proc = subprocess.Popen([NUTCRACKER, "-c", conf, "-s", str(stats), "-a", "127.0.0.1",
                                     "-o", os.path.join(self.dir, f"nc-{port}.out")], stdout=log, stderr=log)
        try:
            wait_until(lambda: redis.Redis(port=port, socket_timeout=2).set("probe", 1), what="nutcracker")
            return self.placement_after_writing(port)
        finally:
            proc.terminate()
            proc.wait(10)

    def via_ringproxy(self, hash_name, distribution, weights, names):
        port = free_port()
        shards = [(n, [s.address], w) for s, w, n in zip(self.servers, weights, names)]
        config = toml_config(port, shards, pool={"hash": hash_name, "distribution": distribution, "hash_tag": "{}"})
        proxy = Proxy(self.dir, config, port).start()
        try:
            return self.placement_after_writing(port)
        finally:
            self.assertEqual(proxy.stop(), 0)

    def check(self, hash_name, distribution, weights=(1, 1, 1, 1), names=("alpha", "beta", "gamma", "delta")):
        expected = self.via_nutcracker(hash_name, distribution, weights, names)
        actual = self.via_ringproxy(hash_name, distribution, weights, names)
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

    def test_modula(self):
        self.check("fnv1a_64", "modula", weights=(1, 1, 2, 1))
        self.check("crc32", "modula")


if __name__ == "__main__":
    unittest.main()
