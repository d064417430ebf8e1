"""A real ioredis (Node.js) client through ringproxy with client authentication: [proxy] password
and [[proxy.users]], SET / GET / MGET across shards, a pipeline, and the NOAUTH / WRONGPASS /
NOPERM errors as ioredis surfaces them. tests/e2e/node/ioredis_check.js runs the client and prints
JSON that the tests assert on; Node.js and ioredis (tests/e2e/node/node_modules, pinned by its
package-lock.json) are installed by scripts/bootstrap."""
import json
import os
import shutil
import subprocess
import unittest

from harness import Cluster, free_port
from test_tls import Certs, tls_table

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")
SCRIPT = os.path.join(NODE_DIR, "ioredis_check.js")

PASSWORD = "io-s3cret-Passw0rd"
APP_PASSWORD = "io-app-Passw0rd"
READER_PASSWORD = "io-reader-Passw0rd"
OPS_PASSWORD = "io-ops-Passw0rd"
USERS = [
    {"name": "app", "password": APP_PASSWORD, "keys": ["app:*"]},
    {"name": "reader", "password": READER_PASSWORD, "access": "read"},
    {"name": "ops", "password": OPS_PASSWORD, "access": "admin"},
]

NOAUTH = "NOAUTH Authentication required."
WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."
NOPERM_SET = "NOPERM this user has no permissions to run the 'set' command"
NOPERM_KEY = "NOPERM this user has no permissions to access one of the keys used as arguments"


def node_problem():
    """Why the ioredis client cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    with open(os.path.join(NODE_DIR, "package.json")) as f:
        pinned = json.load(f)["dependencies"]["ioredis"]
    installed = os.path.join(NODE_DIR, "node_modules", "ioredis", "package.json")
    if not os.path.exists(installed):
        return f"ioredis is not installed in {NODE_DIR}/node_modules"
    with open(installed) as f:
        version = json.load(f)["version"]
    if version != pinned:
        return f"{NODE_DIR}/node_modules has ioredis {version}, package.json pins {pinned}"
    return None


class IoredisCluster(unittest.TestCase):
    """Three shards behind one ringproxy; ioredis clients run by ioredis_check.js."""
    proxy_keys = {}
    users = []
    credentials = {}  # redis-py's, for the harness and the checks behind ioredis's back

    def setUp(self):
        problem = node_problem()
        if problem:
            self.fail(f"{problem}: run scripts/bootstrap (it installs Node.js, npm and tests/e2e/node's modules)")
        self.cluster = Cluster(shards=3, proxy=self.proxy_keys, users=self.users, credentials=self.credentials)

    def tearDown(self):
        status = self.cluster.proxy.stop()
        log = self.cluster.proxy.log()
        self.cluster.cleanup()
        for user in [{"password": PASSWORD}] + USERS:
            self.assertNotIn(user["password"], log, "a password reached the log")
        self.assertEqual(status, 0)

    def ioredis(self, *clients):
        """Runs each client ({"options": ..., "steps": [...]}) in turn; their results, in order."""
        spec = json.dumps({"port": getattr(self, "ioredis_port", None) or self.cluster.proxy.port,
                           "clients": list(clients)})
        result = subprocess.run(["node", SCRIPT], input=spec, capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, f"ioredis_check.js failed: {result.stdout}{result.stderr}")
        output = json.loads(result.stdout)
        self.assertTrue(output["ioredis"].startswith("5."), output)
        return output["clients"]

    def keys_one_per_shard(self, prefix):
        """One key routed to each shard, in shard order."""
        keys = {}
        for i in range(1000):
            key = f"{prefix}{i}"
            keys.setdefault(self.cluster.route(key), key)
            if len(keys) == len(self.cluster.names):
                return [keys[name] for name in self.cluster.names]
        self.fail(f"no key of {prefix}N on every shard")

    def assert_ok(self, steps, expected):
        self.assertEqual(steps, [{"ok": value} for value in expected])

    def assert_error(self, outcome, prefix):
        self.assertIn("error", outcome, outcome)
        self.assertTrue(outcome["error"].startswith(prefix), f"{outcome['error']!r} does not start with {prefix!r}")

    def check_data_path(self, options, prefix, whoami):
        """SET / GET / MGET with a key on each shard, then a pipeline, as the user `options` logs in as."""
        keys = self.keys_one_per_shard(prefix)
        p = [f"{prefix}p{i}" for i in range(6)]
        [client] = self.ioredis({"options": options, "steps": [
            *[["set", k, f"v{i}"] for i, k in enumerate(keys)],
            *[["get", k] for k in keys],
            ["mget", *keys, f"{prefix}missing"],
            {"pipeline": [*[["set", k, k.upper()] for k in p], ["mget", *p], ["incr", f"{prefix}n"],
                          ["get", f"{prefix}n"], ["del", *p]]},
            ["acl", "whoami"],
        ]})
        self.assertEqual(client["errors"], [])
        n = len(keys)
        self.assert_ok(client["steps"][:n], ["OK"] * n)
        self.assert_ok(client["steps"][n:2 * n], [f"v{i}" for i in range(n)])
        self.assert_ok(client["steps"][2 * n:2 * n + 1], [[f"v{i}" for i in range(n)] + [None]])
        self.assertEqual(client["steps"][2 * n + 1],
                         {"ok": [{"ok": v} for v in ["OK"] * len(p) + [[k.upper() for k in p], 1, "1", len(p)]]})
        self.assert_ok(client["steps"][2 * n + 2:], [whoami])
        # Each key is on the server of the shard PROXY ROUTE names: the commands crossed shards.
        for i, (name, key) in enumerate(zip(self.cluster.names, keys)):
            self.assertEqual(self.cluster.server_of(name).client().get(key), f"v{i}".encode())


class PasswordTest(IoredisCluster):
    proxy_keys = {"password": PASSWORD}
    credentials = {"password": PASSWORD}

    def test_password_set_get_mget_and_a_pipeline_across_shards(self):
        self.check_data_path({"password": PASSWORD}, "io:", "default")

    def test_the_default_user_by_name(self):
        [client] = self.ioredis({"options": {"username": "default", "password": PASSWORD},
                                 "steps": [["set", "k", "v"], ["get", "k"]]})
        self.assert_ok(client["steps"], ["OK", "v"])

    def test_without_a_password_noauth(self):
        [client] = self.ioredis({"steps": [["get", "k"]]})
        self.assert_error(client["steps"][0], NOAUTH)
        self.assertTrue(client["errors"], client)
        for error in client["errors"]:  # ioredis's ready check (INFO) is refused alike
            self.assertIn(NOAUTH, error)

    def test_a_wrong_password_is_wrongpass(self):
        [client] = self.ioredis({"options": {"password": "nope"}, "steps": [["get", "k"]]})
        self.assert_error(client["steps"][0], WRONGPASS)
        self.assertEqual(client["errors"][:1], [WRONGPASS], client)


class UsersTest(IoredisCluster):
    users = USERS
    credentials = {"username": "ops", "password": OPS_PASSWORD}

    def test_a_user_with_username_and_password(self):
        self.check_data_path({"username": "ops", "password": OPS_PASSWORD}, "ops:", "ops")

    def test_a_read_only_user_gets_noperm_on_set(self):
        reader = {"username": "reader", "password": READER_PASSWORD}
        writer, client = self.ioredis(
            {"options": {"username": "ops", "password": OPS_PASSWORD}, "steps": [["set", "shared", "v"]]},
            {"options": reader, "steps": [["get", "shared"], ["set", "shared", "w"],
                                          {"pipeline": [["get", "shared"], ["set", "shared", "w"]]},
                                          ["get", "shared"]]})
        self.assert_ok(writer["steps"], ["OK"])
        self.assertEqual(client["errors"], [])
        self.assertEqual(client["steps"][0], {"ok": "v"})
        self.assert_error(client["steps"][1], NOPERM_SET)
        pipeline = client["steps"][2]["ok"]
        self.assertEqual(pipeline[0], {"ok": "v"})
        self.assert_error(pipeline[1], NOPERM_SET)
        self.assertEqual(client["steps"][3], {"ok": "v"})  # nothing written, still connected

    def test_a_key_pattern_user_gets_noperm_outside_its_pattern(self):
        [client] = self.ioredis({"options": {"username": "app", "password": APP_PASSWORD}, "steps": [
            ["set", "app:1", "v"], ["set", "other", "v"], ["mget", "app:1", "other"], ["get", "app:1"]]})
        self.assertEqual(client["errors"], [])
        self.assertEqual(client["steps"][0], {"ok": "OK"})
        self.assert_error(client["steps"][1], NOPERM_KEY)
        self.assert_error(client["steps"][2], NOPERM_KEY)
        self.assertEqual(client["steps"][3], {"ok": "v"})
        self.assertFalse(any(self.cluster.server_of(n).client().exists("other") for n in self.cluster.names))

    def test_a_wrong_password_or_an_unknown_user_is_wrongpass(self):
        for options in ({"username": "app", "password": READER_PASSWORD}, {"username": "nobody", "password": "x"}):
            [client] = self.ioredis({"options": options, "steps": [["get", "app:1"]]})
            self.assert_error(client["steps"][0], WRONGPASS)
            self.assertEqual(client["errors"][:1], [WRONGPASS], client)


class TlsTest(IoredisCluster):
    """ioredis with `tls:` through the proxy's TLS listener (issue 12), the CA's certificate
    given as ioredis takes it (PEM text)."""

    def setUp(self):
        self.certs = Certs()
        self.ioredis_port = free_port()
        self.proxy_keys = {"tls": tls_table(self.ioredis_port, self.certs)}
        super().setUp()

    def tearDown(self):
        super().tearDown()
        self.certs.cleanup()

    def test_ioredis_over_tls(self):
        with open(self.certs.path("ca.crt")) as f:
            ca = f.read()
        self.check_data_path({"tls": {"ca": ca, "servername": "localhost"}}, "tls:", "default")
        # Without the CA, ioredis refuses the proxy's certificate.
        [client] = self.ioredis({"options": {"tls": {"servername": "localhost"}}, "steps": [["ping"]]})
        self.assertIn("error", client["steps"][0])


if __name__ == "__main__":
    unittest.main()
