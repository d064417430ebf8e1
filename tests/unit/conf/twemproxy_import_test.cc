#include "conf/twemproxy_import.h"

#include <gtest/gtest.h>

#include "conf/loader.h"

namespace ringproxy::conf {
namespace {

// nutcracker's own example (Debian: /usr/share/doc/nutcracker/examples/nutcracker.yml), in part.
constexpr std::string_view kExample = R"(alpha:
  listen: 127.0.0.1:22121
  hash: fnv1a_64
  distribution: ketama
  auto_eject_hosts: true
  redis: true
  server_retry_timeout: 2000
  server_failure_limit: 1
  servers:
   - 127.0.0.1:6379:1

beta:
  listen: 127.0.0.1:22122
  hash: fnv1a_64
  hash_tag: "{}"
  distribution: ketama
  auto_eject_hosts: false
  timeout: 400
  redis: true
  servers:
   - 127.0.0.1:6380:1 server1
   - 127.0.0.1:6381:2 server2

gamma:
  listen: 127.0.0.1:22123
  hash: fnv1a_64
  distribution: ketama
  servers:
   - 127.0.0.1:11212:1

omega:
  listen: /tmp/gamma
  hash: hsieh
  distribution: ketama
  redis: true
  servers:
   - 127.0.0.1:11214:100000
)";

Config loaded(const TwemproxyImport& result) {
  EXPECT_EQ(result.error, "");
  LoadResult config = parse_config(result.toml, "imported.toml");
  EXPECT_EQ(config.error, "") << result.toml;
  return config.config.value_or(Config{});
}

// The import of `yaml` (its only pool) is refused, and says `why`.
void expect_refused(const std::string& yaml, std::string_view why) {
  const TwemproxyImport result = import_twemproxy(yaml, std::nullopt);
  EXPECT_NE(result.error.find(why), std::string::npos) << "expected \"" << why << "\", got: " << result.error;
  EXPECT_EQ(result.toml, "");
}

TEST(TwemproxyImport, APoolBecomesAConfigThatKeepsEveryKeyInPlace) {
  TwemproxyImport result = import_twemproxy(kExample, "beta");
  const Config c = loaded(result);
  EXPECT_EQ(c.proxy.listen, (Address{"127.0.0.1", 22122}));
  EXPECT_EQ(routing::hash_function_name(c.pool.hash), "fnv1a_64");
  EXPECT_EQ(c.pool.distribution, routing::Distribution::ketama);
  EXPECT_EQ(c.pool.hash_tag, "{}");
  EXPECT_EQ(c.pool.request_timeout_ms, 400u);
  EXPECT_EQ(c.pool.connect_timeout_ms, 400u);
  EXPECT_EQ(c.pool.failure_limit, 2u);          // twemproxy's defaults
  EXPECT_EQ(c.pool.retry_interval_ms, 30000u);
  ASSERT_EQ(c.pool.shards.size(), 2u);
  EXPECT_EQ(c.pool.shards[1].name, "server2");  // ketama hashes the name
  EXPECT_EQ(c.pool.shards[1].weight, 2u);
  EXPECT_EQ(c.pool.shards[1].servers[0], (Address{"127.0.0.1", 6381}));
  ASSERT_EQ(result.notes.size(), 1u);  // (only the stats port's, which every pool gets)
  EXPECT_NE(result.notes[0].find("stats port"), std::string::npos);
}

TEST(TwemproxyImport, AServerWithoutANameIsHashedAsTwemproxyDoesAndAutoEjectIsExplained) {
  TwemproxyImport result = import_twemproxy(kExample, "alpha");
  const Config c = loaded(result);
  ASSERT_EQ(c.pool.shards.size(), 1u);
  EXPECT_EQ(c.pool.shards[0].name, "127.0.0.1:6379");
  EXPECT_EQ(c.pool.failure_limit, 1u);
  EXPECT_EQ(c.pool.retry_interval_ms, 2000u);
  ASSERT_EQ(result.notes.size(), 3u);
  EXPECT_NE(result.notes[0].find("no timeout"), std::string::npos);
  EXPECT_NE(result.notes[1].find("auto_eject_hosts: true has no equivalent"), std::string::npos);
  const TwemproxyImport memcached_port = import_twemproxy(
      "p:\n  listen: 127.0.0.1:1\n  redis: true\n  servers:\n   - 10.0.0.1:11211:1\n", std::nullopt);
  EXPECT_EQ(loaded(memcached_port).pool.shards[0].name, "10.0.0.1");  // (twemproxy: the host alone on 11211)
}

TEST(TwemproxyImport, WhatCannotBeKeptIsAnErrorThatSaysWhy) {
  expect_refused(std::string(kExample), "has 4 pools (alpha, beta, gamma, omega)");
  EXPECT_NE(import_twemproxy(kExample, "nope").error.find("no pool 'nope'"), std::string::npos);
  EXPECT_NE(import_twemproxy(kExample, "gamma").error.find("memcached pool"), std::string::npos);
  EXPECT_NE(import_twemproxy(kExample, "omega").error.find("Unix socket"), std::string::npos);
  const std::string base = "p:\n  listen: 127.0.0.1:1\n  redis: true\n";
  expect_refused(base + "  hash: hsieh\n  servers:\n   - 10.0.0.1:6379:1\n", "hash 'hsieh' has no equivalent");
  expect_refused(base + "  distribution: random\n  servers:\n   - 10.0.0.1:6379:1\n", "'random' has no equivalent");
  expect_refused(base + "  redis_db: 3\n  servers:\n   - 10.0.0.1:6379:1\n", "database 0 only");
  expect_refused(base + "  servers:\n   - 10.0.0.1:6379:100000\n", "65535");
  expect_refused(base + "  servers:\n   - 10.0.0.1:6379\n", "host:port:weight");
  expect_refused("p: [1, 2\n", "not valid YAML");
}

TEST(TwemproxyImport, ANewlineInAValueCannotAddAKey) {
  expect_refused("p:\n  listen: 127.0.0.1:1\n  redis: true\n  timeout: 10\n  servers:\n"
                 "   - \"10.0.0.1:6379:1 a\\nallow_admin_commands = true\"\n",
                 "is not host:port:weight [name] (one name, after one space)");
  TwemproxyImport pool_name = import_twemproxy(
      "\"p\\nmax_clients = 1\":\n  listen: 127.0.0.1:1\n  redis: true\n  timeout: 10\n  servers:\n"
      "   - 10.0.0.1:6379:1 a\n",
      std::nullopt);
  EXPECT_EQ(loaded(pool_name).proxy.max_clients, 10000u);  // the pool's name is only in a comment, on one line
  expect_refused("p:\n  listen: 127.0.0.1:1\n  redis: true\n  timeout: 10\n  servers:\n   - \"10.0.0.1:6379:1 a\\rb\"\n",
                 "its name has whitespace or control characters");
}

TEST(TwemproxyImport, AnUnnamedServerIsHashedByItsTextAsWritten) {
  TwemproxyImport padded = import_twemproxy(
      "p:\n  listen: 127.0.0.1:1\n  redis: true\n  timeout: 10\n  servers:\n   - 10.0.0.1:06379:1\n   - "
      "10.0.0.2:011211:1\n",
      std::nullopt);
  const Config c = loaded(padded);
  EXPECT_EQ(c.pool.shards[0].name, "10.0.0.1:06379");  // (what nutcracker's ketama hashes)
  EXPECT_EQ(c.pool.shards[0].servers[0].port, 6379);
  EXPECT_EQ(c.pool.shards[1].name, "10.0.0.2");  // port 11211: the host alone
  const std::string base = "p:\n  listen: 127.0.0.1:1\n  redis: true\n  servers:\n";
  expect_refused(base + "   - 10.0.0.1:6379:1 a\n   - 10.0.0.1:6379:1 b\n", "two servers are at 10.0.0.1:6379");
  expect_refused(base + "   - \"10.0.0.1:6379:1 \"\n", "one name, after one space");
}

TEST(TwemproxyImport, PasswordsPortsAndLimits) {
  TwemproxyImport result = import_twemproxy(
      "p:\n  listen: 0.0.0.0:22121\n  redis: true\n  redis_auth: \"s3\\\"cret\"\n  server_connections: 4\n"
      "  client_connections: 500\n  preconnect: true\n  servers:\n   - cache-1.internal:6379:1 a\n",
      std::nullopt);
  const Config c = loaded(result);
  EXPECT_EQ(c.pool.auth.password, "s3\"cret");  // what it sends the servers
  ASSERT_EQ(c.proxy.users.size(), 1u);         // and what clients AUTH with
  EXPECT_EQ(c.pool.backend_connections, 4u);
  EXPECT_EQ(c.proxy.max_clients, 500u);
  EXPECT_EQ(c.pool.shards[0].servers[0].host, "cache-1.internal");
  const TwemproxyImport open = import_twemproxy(
      "p:\n  listen: 0.0.0.0:22121\n  redis: true\n  timeout: 100\n  servers:\n   - 10.0.0.1:6379:1\n", std::nullopt);
  EXPECT_FALSE(loaded(open).proxy.protected_mode);  // open, as twemproxy was; and said so
  ASSERT_EQ(open.notes.size(), 2u);
  EXPECT_NE(open.notes[0].find("protected_mode = false"), std::string::npos);
}

}  // namespace
}  // namespace ringproxy::conf
