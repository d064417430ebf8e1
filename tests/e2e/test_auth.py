"""Client authentication and permissions (issue 11): [proxy] password, [[proxy.users]],
AUTH / HELLO AUTH / ACL WHOAMI, NOAUTH / WRONGPASS / NOPERM, reloads that change users, and
protected mode. Real redis-servers, redis-py and redis-cli."""
import hashlib
import os
import shutil
import subprocess
import tempfile
import unittest

import redis

from harness import (RINGPROXY_BIN, Proxy, RedisServer, free_port, raw_exchange, scrape, toml_config,
                     users_toml, value, wait_until)

PASSWORD = "s3cret-Passw0rd"
APP_PASSWORD = "app-Passw0rd"
READER_PASSWORD = "reader-Passw0rd"
ADMIN_PASSWORD = "admin-Passw0rd"
SECRETS = (PASSWORD, APP_PASSWORD, READER_PASSWORD, ADMIN_PASSWORD)


USERS = [
    {"name": "app", "password": APP_PASSWORD, "keys": ["app:*"]},
    {"name": "reader", "password": READER_PASSWORD, "access": "read"},
    {"name": "ops", "password_sha256": hashlib.sha256(ADMIN_PASSWORD.encode()).hexdigest(), "access": "admin"},
]


class AuthCluster(unittest.TestCase):
    """One redis-server behind one ringproxy whose config the test writes."""
    proxy_keys = {}
    users = []

    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="ringproxy-auth-")
        self.server = RedisServer(self.workdir).start()
        self.port, self.metrics_port = free_port(), free_port()
        self.proxy = Proxy(self.workdir, self.config(self.proxy_keys, self.users), self.port)
        self.proxy.client_kwargs = self.credentials()
        self.proxy.start()

    def tearDown(self):
        status = self.proxy.stop()
        self.server.stop()
        log = self.proxy.log()
        for secret in SECRETS:
            self.assertNotIn(secret, log, "a password reached the log")
        shutil.rmtree(self.workdir, True)
        self.assertEqual(status, 0)

    def config(self, proxy_keys, users):
        return toml_config(self.port, [("shard1", [self.server.address])], metrics_port=self.metrics_port,
                           proxy=proxy_keys) + users_toml(users)

    def credentials(self):
        return {"password": PASSWORD} if "password" in self.proxy_keys else {
            "username": "ops", "password": ADMIN_PASSWORD}

    def anonymous(self):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10)

    def as_user(self, name, password):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10, username=name, password=password)

    def connection(self, **credentials):
        """One connection that never reconnects by itself (a closed one stays closed)."""
        conn = redis.Connection(host="127.0.0.1", port=self.port, socket_timeout=10, **credentials)
        conn.connect()
        return conn

    def assert_closed(self, conn):
        conn.send_command("PING")
        with self.assertRaises(redis.ConnectionError):
            conn.read_response()

    def auth_failures(self):
        return value(scrape(self.metrics_port), "ringproxy_auth_failures_total")

    def redis_cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), "--no-auth-warning", *args],
                              capture_output=True, text=True, timeout=30)


class PasswordTest(AuthCluster):
    proxy_keys = {"password": PASSWORD}

    def test_nothing_but_auth_hello_and_quit_before_authenticating(self):
        c = self.anonymous()
        for command in (("GET", "k"), ("SET", "k", "v"), ("PING",), ("INFO",), ("ACL", "WHOAMI"),
                        ("PROXY", "ROUTE", "k"), ("CLIENT", "SETNAME", "x")):
            with self.assertRaisesRegex(redis.AuthenticationError, r"^Authentication required\.$"):  # NOAUTH
                c.execute_command(*command)
        with self.assertRaisesRegex(redis.AuthenticationError, "^HELLO must be called with the client already authenticated"):
            c.execute_command("HELLO", "2")
        self.assertEqual(self.server.client().dbsize(), 0)  # nothing reached the server
        raw = redis.Connection(host="127.0.0.1", port=self.port)
        raw.send_command("QUIT")
        self.assertEqual(raw.read_response(), b"OK")

    def test_wrong_password_is_wrongpass_and_counted(self):
        c = self.anonymous()
        before = self.auth_failures()
        for attempt in (("AUTH", "nope"), ("AUTH", "default", "nope"), ("AUTH", "someone", PASSWORD),
                        ("HELLO", "2", "AUTH", "default", "nope")):
            with self.assertRaisesRegex(redis.ResponseError,
                                        r"^WRONGPASS invalid username-password pair or user is disabled\.$"):
                c.execute_command(*attempt)
        wait_until(lambda: self.auth_failures() == before + 4, timeout=5, what="4 failures counted")
        with self.assertRaises(redis.AuthenticationError):
            c.get("k")  # still not authenticated
        log = self.proxy.log()
        self.assertIn("authentication failed", log)
        self.assertNotIn("someone", log)  # no user name: swapped arguments would log a password

    def test_auth_then_everything_works(self):
        c = self.anonymous()
        self.assertTrue(c.execute_command("AUTH", PASSWORD))
        self.assertTrue(c.set("k", "v"))
        self.assertEqual(c.get("k"), b"v")
        self.assertEqual(c.execute_command("ACL", "WHOAMI"), b"default")
        self.assertTrue(c.ping())
        # redis-py's own password option, and AUTH default <password>.
        self.assertEqual(redis.Redis(host="127.0.0.1", port=self.port, password=PASSWORD).get("k"), b"v")
        self.assertEqual(self.as_user("default", PASSWORD).get("k"), b"v")

    def test_reset_leaves_the_connection_unauthenticated(self):
        c = redis.Redis(host="127.0.0.1", port=self.port, single_connection_client=True)
        self.assertTrue(c.execute_command("AUTH", PASSWORD))
        self.assertEqual(c.get("k"), None)
        self.assertEqual(c.execute_command("RESET"), "RESET")  # (redis-py decodes its status)
        with self.assertRaisesRegex(redis.AuthenticationError, "Authentication required"):
            c.get("k")

    def test_hello_auth_authenticates_and_selects_resp2(self):
        c = self.anonymous()
        reply = c.execute_command("HELLO", "2", "AUTH", "default", PASSWORD, "SETNAME", "worker-1")
        fields = dict(zip(reply[::2], reply[1::2]))
        self.assertEqual(fields[b"proto"], 2)
        self.assertEqual(c.client_getname(), "worker-1")
        self.assertEqual(c.execute_command("ACL", "WHOAMI"), b"default")

    def test_redis_cli_with_a_password(self):
        self.assertEqual(self.redis_cli("-a", PASSWORD, "SET", "cli", "1").stdout.strip(), "OK")
        self.assertEqual(self.redis_cli("--user", "default", "--pass", PASSWORD, "GET", "cli").stdout.strip(), "1")
        refused = self.redis_cli("GET", "cli")
        self.assertIn("NOAUTH Authentication required.", refused.stdout + refused.stderr)
        wrong = self.redis_cli("-a", "nope", "GET", "cli")
        self.assertIn("WRONGPASS", wrong.stdout + wrong.stderr)

    def test_secrets_stay_out_of_info_and_metrics(self):
        c = self.proxy.client()
        info = c.execute_command("INFO")
        text = info.decode() if isinstance(info, bytes) else str(info)
        metrics = scrape(self.metrics_port)
        for secret in SECRETS + (hashlib.sha256(PASSWORD.encode()).hexdigest(),):
            self.assertNotIn(secret, text)
            self.assertNotIn(secret, metrics)


class UsersTest(AuthCluster):
    users = USERS

    def test_access_levels(self):
        reader = self.as_user("reader", READER_PASSWORD)
        app = self.as_user("app", APP_PASSWORD)
        ops = self.proxy.client()
        self.assertTrue(app.set("app:1", "v"))
        self.assertEqual(reader.get("app:1"), b"v")
        with self.assertRaisesRegex(redis.exceptions.NoPermissionError,
                                    r"^this user has no permissions to run the 'set' command$"):
            reader.set("app:1", "w")
        with self.assertRaisesRegex(redis.ResponseError, "no permissions to run the 'flushall' command"):
            app.execute_command("FLUSHALL")
        with self.assertRaisesRegex(redis.ResponseError, "no permissions to run the 'proxy' command"):
            app.execute_command("PROXY", "RELOAD")
        self.assertIn("reloaded", ops.execute_command("PROXY", "RELOAD").decode())
        self.assertEqual(reader.execute_command("ACL", "WHOAMI"), b"reader")
        self.assertEqual(ops.execute_command("ACL", "WHOAMI"), b"ops")
        self.assertEqual(self.server.client().get("app:1"), b"v")

    def test_key_patterns(self):
        app = self.as_user("app", APP_PASSWORD)
        no_key = r"^this user has no permissions to access one of the keys used as arguments$"
        self.assertTrue(app.mset({"app:a": 1, "app:b": 2}))
        with self.assertRaisesRegex(redis.ResponseError, no_key):
            app.set("other", "v")
        with self.assertRaisesRegex(redis.ResponseError, no_key):
            app.mset({"app:c": 1, "other": 2})  # one key outside: nothing is written
        with self.assertRaisesRegex(redis.ResponseError, no_key):
            app.mget("app:a", "other")
        self.assertEqual(sorted(self.server.client().keys("*")), [b"app:a", b"app:b"])

    def test_the_default_user_needs_a_password_of_its_own(self):
        c = self.anonymous()
        with self.assertRaisesRegex(redis.ResponseError, "called without any password configured for the default user"):
            c.execute_command("AUTH", "anything")
        with self.assertRaisesRegex(redis.AuthenticationError, "^Authentication required"):
            c.get("app:1")

    def test_redis_cli_with_a_user(self):
        self.assertEqual(self.redis_cli("--user", "app", "--pass", APP_PASSWORD, "SET", "app:cli", "1").stdout.strip(), "OK")
        denied = self.redis_cli("--user", "reader", "--pass", READER_PASSWORD, "SET", "app:cli", "2")
        self.assertIn("NOPERM", denied.stdout + denied.stderr)

    def test_a_reload_closes_only_the_clients_whose_user_went_or_changed_password(self):
        app = self.connection(username="app", password=APP_PASSWORD)
        reader = self.connection(username="reader", password=READER_PASSWORD)
        ops = self.proxy.client()
        ops.ping()
        # app's password changes, reader goes, ops keeps its password but loses admin.
        users = [dict(USERS[0], password="app-New-Passw0rd"), dict(USERS[2], access="readwrite")]
        with open(self.proxy.config_path, "w") as f:
            f.write(self.config({}, users))
        self.assertIn("reloaded", ops.execute_command("PROXY", "RELOAD").decode())
        for gone in (app, reader):
            self.assert_closed(gone)
        self.assertTrue(ops.set("still", "here"))  # kept, with its new rights
        with self.assertRaisesRegex(redis.ResponseError, "no permissions to run the 'proxy' command"):
            ops.execute_command("PROXY", "RELOAD")
        self.assertTrue(self.as_user("app", "app-New-Passw0rd").ping())
        with self.assertRaisesRegex(redis.ResponseError, "^WRONGPASS invalid username-password pair"):
            self.as_user("reader", READER_PASSWORD).ping()
        self.assertEqual(value(scrape(self.metrics_port), "ringproxy_auth_reload_disconnects_total"), 2)


class EscapesTest(AuthCluster):
    """What the key patterns cannot see is refused, not let through (from a hostile review)."""
    users = USERS + [{"name": "ro", "password": READER_PASSWORD, "access": "read", "keys": ["app:*"]},
                     {"name": "rw", "password": APP_PASSWORD, "access": "readwrite"}]

    def setUp(self):
        super().setUp()
        self.server.client().set("secret", "topsecret")
        self.server.client().rpush("app:list", 1)

    def test_scripts_are_refused_to_users_with_key_patterns(self):
        for user, command in (("app", "EVAL"), ("ro", "EVAL_RO")):
            c = self.as_user(user, APP_PASSWORD if user == "app" else READER_PASSWORD)
            with self.assertRaisesRegex(redis.exceptions.NoPermissionError, "run scripts|run the 'eval' command"):
                c.execute_command(command, "return redis.call('get','secret')", 1, "app:x")

    def test_writing_scripts_need_admin(self):
        rw = self.as_user("rw", APP_PASSWORD)
        with self.assertRaisesRegex(redis.exceptions.NoPermissionError, "run the 'eval' command"):
            rw.eval("return redis.call('flushall')", 1, "k")
        self.assertEqual(rw.execute_command("EVAL_RO", "return redis.call('get', KEYS[1])", 1, "secret"),
                         b"topsecret")  # read-only scripts: the server refuses their writes
        self.assertEqual(self.proxy.client().eval("return 1", 1, "k"), 1)  # admin
        self.assertEqual(self.server.client().get("secret"), b"topsecret")

    def test_sort_get_and_by_patterns_are_refused_with_key_patterns(self):
        app = self.as_user("app", APP_PASSWORD)
        with self.assertRaisesRegex(redis.exceptions.NoPermissionError, "SORT's GET"):
            app.sort("app:list", by="nosort", get="secret*")
        with self.assertRaisesRegex(redis.exceptions.NoPermissionError, "SORT's BY"):
            app.sort("app:list", by="secret*")
        self.assertEqual(app.sort("app:list", by="nosort", get="#"), [b"1"])

    def test_globs_are_redis_globs(self):
        app = self.as_user("app", APP_PASSWORD)
        self.assertTrue(app.set(b"app:\x00z", "v"))  # binary-safe, as stringmatchlen
        with self.assertRaises(redis.exceptions.NoPermissionError):
            app.set(b"ap\x00p:z", "v")


class PreAuthLimitsTest(AuthCluster):
    proxy_keys = {"password": PASSWORD}

    def test_an_anonymous_client_cannot_send_big_requests(self):
        for payload in (b"*11\r\n",                                      # more than 10 arguments
                        b"*2\r\n$4\r\nAUTH\r\n$62914560\r\n",          # a 60 MiB password
                        b"*1\r\n$200000\r\n"):
            got = raw_exchange(self.port, payload, read_until_close=True)
            self.assertTrue(got.startswith(b"-ERR Protocol error: unauthenticated request too large"), got)
        self.assertTrue(self.proxy.client().set("k", "v" * 300000))  # authenticated: the usual limits


class ProtectedModeReloadTest(AuthCluster):
    proxy_keys = {"password": PASSWORD}

    def config(self, proxy_keys, users):
        return super().config(proxy_keys, users).replace(f'listen = "127.0.0.1:{self.port}"',
                                                         f'listen = "0.0.0.0:{self.port}"')

    def test_a_reload_cannot_take_the_password_off_a_public_listener(self):
        ops = self.proxy.client()
        with open(self.proxy.config_path, "w") as f:  # loopback in the file, no password
            f.write(AuthCluster.config(self, {}, []))
        with self.assertRaisesRegex(redis.ResponseError, "reload rejected.*protected mode"):
            ops.execute_command("PROXY", "RELOAD")
        with self.assertRaises(redis.AuthenticationError):
            self.anonymous().get("k")  # the password stays
        with open(self.proxy.config_path, "w") as f:
            f.write(self.config({"password": PASSWORD}, []))


class NoPasswordTest(AuthCluster):
    def credentials(self):
        return {}

    def test_auth_without_users_is_refused_as_redis_does(self):
        c = self.anonymous()
        with self.assertRaisesRegex(redis.ResponseError, "called without any password configured for the default user"):
            c.execute_command("AUTH", "x")
        with self.assertRaisesRegex(redis.ResponseError, "^WRONGPASS invalid username-password pair"):
            c.execute_command("AUTH", "someone", "x")
        self.assertEqual(c.execute_command("ACL", "WHOAMI"), b"default")
        self.assertTrue(c.set("k", "v"))
        # The default user has no password: redis accepts any (clients configured with a user).
        self.assertTrue(c.execute_command("AUTH", "default", "anything"))
        self.assertTrue(redis.Redis(host="127.0.0.1", port=self.port, username="default", password="x").ping())

    def test_a_reload_that_adds_a_password_closes_the_clients_that_had_none(self):
        c = self.connection()
        idle = self.connection()
        with open(self.proxy.config_path, "w") as f:
            f.write(self.config({"password": PASSWORD}, []))
        c.send_command("PROXY", "RELOAD")
        self.assertIn(b"reloaded", c.read_response())  # answered, then closed: it had no password
        self.assert_closed(c)
        self.assert_closed(idle)
        self.assertTrue(redis.Redis(host="127.0.0.1", port=self.port, password=PASSWORD).ping())


class ProtectedModeTest(unittest.TestCase):
    def run_proxy(self, proxy_keys):
        workdir = tempfile.mkdtemp(prefix="ringproxy-protected-")
        self.addCleanup(shutil.rmtree, workdir, True)
        path = os.path.join(workdir, "ringproxy.toml")
        port = free_port()
        with open(path, "w") as f:
            f.write(toml_config(port, [("shard1", ["127.0.0.1:1"])], proxy=proxy_keys)
                    .replace(f'listen = "127.0.0.1:{port}"', f'listen = "0.0.0.0:{port}"'))
        return subprocess.run([RINGPROXY_BIN, "--config", path, "--check-config"], capture_output=True, text=True,
                              timeout=30)

    def test_refuses_to_listen_beyond_loopback_without_a_password(self):
        result = self.run_proxy({})
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("protected mode", result.stderr)
        self.assertIn("protected_mode = false", result.stderr)

    def test_a_password_or_protected_mode_off_lets_it_start(self):
        for keys in ({"password": PASSWORD}, {"protected_mode": False}):
            result = self.run_proxy(keys)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertNotIn(PASSWORD, result.stdout + result.stderr)


if __name__ == "__main__":
    unittest.main()
