"""The ringproxy command line: flags, config checking, start-up failures."""
import os
import re
import socket
import subprocess
import tempfile
import unittest

from harness import RINGPROXY_BIN, free_port

SOURCE = os.path.join(os.path.dirname(__file__), "..", "..")


def run(*args, timeout=20):
    return subprocess.run([RINGPROXY_BIN, *args], capture_output=True, text=True, timeout=timeout)


class CliTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ringproxy-cli-")

    def write(self, text):
        path = os.path.join(self.dir, "c.toml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_version_and_help(self):
        out = run("--version")
        self.assertEqual(out.returncode, 0)
        self.assertRegex(out.stdout, r"ringproxy \d+\.\d+\.\d+")
        out = run("--help")
        self.assertEqual(out.returncode, 0)
        self.assertIn("--config", out.stdout)
        self.assertIn("--check-config", out.stdout)

    def test_bad_flags_and_missing_config(self):
        self.assertNotEqual(run("--no-such-flag").returncode, 0)
        out = run()
        self.assertEqual(out.returncode, 2)
        self.assertIn("--config", out.stderr)
        self.assertNotEqual(run("--config", "/nonexistent.toml").returncode, 0)
        self.assertNotEqual(run("--config", self.write("[pool]\n"), "--log-level", "loud").returncode, 0)

    def test_check_config_on_every_example(self):
        examples = os.path.join(SOURCE, "conf", "examples")
        for name in sorted(os.listdir(examples)):
            out = run("--check-config", "--config", os.path.join(examples, name))
            self.assertEqual(out.returncode, 0, (name, out.stderr))
            self.assertIn("OK", out.stdout)

    def test_check_config_reports_file_line_column(self):
        path = self.write('[pool]\nhash = "fnv1a_64"\n\n[[pool.shards]]\nname = "a"\nservers = ["127.0.0.1:7001"]\n'
                          'wieght = 2\n')
        out = run("--check-config", "--config", path)
        self.assertEqual(out.returncode, 1)
        self.assertIn(f"{path}:7:1:", out.stderr)
        self.assertIn("wieght", out.stderr)

    def test_ring_analysis_against_another_config(self):
        def config(n):
            shards = "".join(f'[[pool.shards]]\nname = "s{i}"\nservers = ["127.0.0.1:{7100 + i}"]\n' for i in range(n))
            path = os.path.join(self.dir, f"ring{n}.toml")
            with open(path, "w") as f:
                f.write('[pool]\nhash = "murmur3"\n' + shards)
            return path
        out = run("ring", "--config", config(3), "--against", config(4), "--sample", "40000")
        self.assertEqual(out.returncode, 0, out.stderr)
        moved = {d: float(v) for d, v in re.findall(r"^(\w+): max deviation .*keys that change shard ([\d.]+)%", out.stdout, re.M)}
        self.assertEqual(set(moved), {"ketama", "modula", "jump"})
        self.assertAlmostEqual(moved["ketama"], 25, delta=6)
        self.assertAlmostEqual(moved["jump"], 25, delta=2)
        self.assertGreater(moved["modula"], 50)
        keys = os.path.join(self.dir, "keys.txt")
        with open(keys, "w") as f:
            f.write("a\nb\nc\n")
        out = run("ring", "--config", config(3), "--keys", keys)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("3 keys", out.stdout)
        self.assertNotEqual(run("ring").returncode, 0)  # --config is required

    def test_listen_address_in_use_is_a_clear_failure(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            path = self.write(f'[proxy]\nlisten = "127.0.0.1:{port}"\n[metrics]\nlisten = ""\n[pool]\n'
                              f'[[pool.shards]]\nname = "a"\nservers = ["127.0.0.1:{free_port()}"]\n')
            out = run("--config", path)
            self.assertEqual(out.returncode, 1)
            self.assertIn("cannot listen on", out.stdout + out.stderr)


if __name__ == "__main__":
    unittest.main()
