"""The .deb, installed for real (issue 15): `apt install ./ringproxy_*.deb` on this machine, then
what a fresh Debian 12 gets. Needs root (or sudo without a password): scripts/test runs it after
the optimised build's tests; it removes the package (purge) when it ends.

  python3 tests/package/test_package.py /path/to/ringproxy_<version>_<arch>.deb
"""
import grp
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

DEB = None
SUDO = [] if os.geteuid() == 0 else ["sudo", "-n"]
UNITS = ["/usr/lib/systemd/system/ringproxy.service", "/usr/lib/systemd/system/ringproxy@.service"]


def run(*args, **kw):
    return subprocess.run([*SUDO, *args], capture_output=True, text=True, timeout=300, **kw)


class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        installed = run("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq",
                        "--reinstall", DEB)
        if installed.returncode != 0:
            raise AssertionError(f"apt-get install {DEB} failed:\n{installed.stdout}\n{installed.stderr}")

    @classmethod
    def tearDownClass(cls):
        purged = run("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "purge", "-y", "-qq", "ringproxy")
        assert purged.returncode == 0, purged.stderr
        assert not os.path.exists("/usr/bin/ringproxy"), "purge left /usr/bin/ringproxy"

    def test_files_user_and_the_configs_permissions(self):
        for path in ["/usr/bin/ringproxy", "/etc/ringproxy/ringproxy.toml", *UNITS,
                     "/usr/share/doc/ringproxy/examples/full.toml", "/usr/share/ringproxy/grafana-dashboard.json",
                     "/usr/share/ringproxy/alerts.yml"]:
            self.assertTrue(os.path.exists(path), path)
        user = pwd.getpwnam("ringproxy")
        self.assertEqual(user.pw_shell, "/usr/sbin/nologin")
        self.assertLess(user.pw_uid, 1000)  # a system user
        config = os.stat("/etc/ringproxy/ringproxy.toml")
        self.assertEqual(stat.S_IMODE(config.st_mode), 0o640)  # (it may hold passwords)
        self.assertEqual(grp.getgrgid(config.st_gid).gr_name, "ringproxy")
        checked = run("/usr/bin/ringproxy", "--check-config", "--config", "/etc/ringproxy/ringproxy.toml")
        self.assertEqual(checked.returncode, 0, checked.stderr)
        self.assertIn("/etc/ringproxy/ringproxy.toml: OK (1 shards, 1 servers)", checked.stdout)

    def test_the_units_verify_and_are_hardened(self):
        analyze = shutil.which("systemd-analyze")
        self.assertIsNotNone(analyze, "systemd-analyze is missing: scripts/bootstrap installs systemd")
        for unit in UNITS:
            verified = run(analyze, "verify", "--man=no", unit)
            self.assertEqual(verified.returncode, 0, verified.stdout + verified.stderr)
            self.assertEqual(verified.stderr.strip(), "", unit)
        security = run(analyze, "security", "--offline=true", UNITS[0])
        exposure = [line for line in security.stdout.splitlines() if "Overall exposure level" in line]
        self.assertTrue(exposure and float(exposure[0].split("level for ringproxy.service:")[1].split()[0]) < 2.0,
                        security.stdout[-500:])

    def test_it_runs_as_its_user_and_tells_readiness_then_drains_on_sigterm(self):
        """As the unit runs it (user ringproxy, Type=notify), without a systemd: the notify socket
        is ours."""
        workdir = tempfile.mkdtemp(prefix="ringproxy-package-")
        os.chmod(workdir, 0o755)
        path = os.path.join(workdir, "notify.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener.bind(path)
        os.chmod(path, 0o777)
        listener.settimeout(20)
        proc = subprocess.Popen([*SUDO, "env", f"NOTIFY_SOCKET={path}", "setpriv", "--reuid=ringproxy",
                                 "--regid=ringproxy", "--init-groups", "--no-new-privs", "/usr/bin/ringproxy",
                                 "--config", "/etc/ringproxy/ringproxy.toml"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            ready = listener.recv(4096).decode()
            self.assertTrue(ready.startswith("READY=1\nSTATUS=serving on 127.0.0.1:7000"), ready)
            pid = int(subprocess.run(["pgrep", "-f", "-n", "^/usr/bin/ringproxy --config /etc/ringproxy"],
                                     capture_output=True, text=True).stdout.split()[0])
            with open(f"/proc/{pid}/status") as f:
                uid = [line for line in f if line.startswith("Uid:")][0].split()[1]
            self.assertEqual(int(uid), pwd.getpwnam("ringproxy").pw_uid)
            run("kill", "-TERM", str(pid))
            self.assertTrue(listener.recv(4096).decode().startswith("STOPPING=1"))
            self.assertEqual(proc.wait(20), 0, proc.stdout.read())
        finally:
            if proc.poll() is None:
                run("pkill", "-KILL", "-f", "^/usr/bin/ringproxy --config /etc/ringproxy")
                proc.wait(10)
            listener.close()
            proc.stdout.close()
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    DEB = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
