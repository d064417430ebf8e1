// Every file in conf/examples/ must load: the examples are documentation that cannot rot.
#include <gtest/gtest.h>

#include <filesystem>

#include "conf/loader.h"

namespace ringproxy::conf {
namespace {

const std::filesystem::path kExamples =
    std::filesystem::path(RINGPROXY_SOURCE_DIR) / "conf" / "examples";

Config load(const char* name) {
  const LoadResult result = load_config_file((kExamples / name).string());
  EXPECT_TRUE(result.config.has_value()) << result.error;
  return result.config.value_or(Config{});
}

TEST(Examples, EveryExampleIsValid) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kExamples)) {
    if (entry.path().extension() != ".toml") continue;
    SCOPED_TRACE(entry.path().string());
    const LoadResult result = load_config_file(entry.path().string());
    EXPECT_TRUE(result.config.has_value()) << result.error;
    ++count;
  }
  EXPECT_GE(count, 3);
}

TEST(Examples, LocalIsTheQuickstart) {
  const Config c = load("local.toml");
  EXPECT_EQ(c.proxy.listen, (Address{"127.0.0.1", 7000}));
  EXPECT_EQ(c.metrics.listen, (Address{"127.0.0.1", 9121}));
  EXPECT_EQ(c.pool.hash, routing::HashFunction::fnv1a_64);
  EXPECT_EQ(c.pool.distribution, routing::Distribution::ketama);
  EXPECT_EQ(c.pool.hash_tag, "{}");
  ASSERT_EQ(c.pool.shards.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(c.pool.shards[i].name, "shard" + std::to_string(i + 1));
    EXPECT_EQ(c.pool.shards[i].weight, 1u);
    EXPECT_EQ(c.pool.shards[i].servers,
              (std::vector<Address>{{"127.0.0.1", static_cast<uint16_t>(7001 + i)}}));
  }
}

// full.toml documents the defaults: it must say what the structs say.
TEST(Examples, FullShowsTheDefaults) {
  const Config c = load("full.toml");
  const Config d;
  EXPECT_EQ(c.proxy.listen, d.proxy.listen);
  EXPECT_EQ(c.proxy.max_clients, d.proxy.max_clients);
  EXPECT_EQ(c.proxy.max_request_bytes, d.proxy.max_request_bytes);
  EXPECT_EQ(c.proxy.max_arguments, d.proxy.max_arguments);
  EXPECT_EQ(c.proxy.max_pending_per_client, d.proxy.max_pending_per_client);
  EXPECT_EQ(c.proxy.client_idle_timeout_ms, d.proxy.client_idle_timeout_ms);
  EXPECT_EQ(c.proxy.allow_admin_commands, d.proxy.allow_admin_commands);
  EXPECT_EQ(c.proxy.ping, d.proxy.ping);
  EXPECT_EQ(c.proxy.shutdown_timeout_ms, d.proxy.shutdown_timeout_ms);
  EXPECT_EQ(c.proxy.reuse_port, d.proxy.reuse_port);
  EXPECT_EQ(c.metrics.listen, d.metrics.listen);
  EXPECT_EQ(c.pool.hash, d.pool.hash);
  EXPECT_EQ(c.pool.distribution, d.pool.distribution);
  EXPECT_EQ(c.pool.hash_tag, d.pool.hash_tag);
  EXPECT_EQ(c.pool.connect_timeout_ms, d.pool.connect_timeout_ms);
  EXPECT_EQ(c.pool.request_timeout_ms, d.pool.request_timeout_ms);
  EXPECT_EQ(c.pool.failure_limit, d.pool.failure_limit);
  EXPECT_EQ(c.pool.retry_interval_ms, d.pool.retry_interval_ms);
  EXPECT_EQ(c.pool.backend_connections, d.pool.backend_connections);
  EXPECT_EQ(c.pool.migration, d.pool.migration);
  EXPECT_EQ(c.pool.migration_keys_per_second, d.pool.migration_keys_per_second);
  EXPECT_EQ(c.pool.warm_window_ms, d.pool.warm_window_ms);
  ASSERT_EQ(c.pool.shards.size(), 1u);
  EXPECT_EQ(c.pool.shards[0].weight, 1u);
}

TEST(Examples, TwemproxyCompatibleKeepsNamesAndWeights) {
  const Config c = load("twemproxy-compatible.toml");
  EXPECT_EQ(c.pool.hash, routing::HashFunction::fnv1a_64);
  EXPECT_EQ(c.pool.distribution, routing::Distribution::ketama);
  ASSERT_EQ(c.pool.shards.size(), 3u);
  EXPECT_EQ(c.pool.shards[0].name, "server1");
  EXPECT_EQ(c.pool.shards[2].name, "server3");
  EXPECT_EQ(c.pool.shards[2].weight, 2u);
  EXPECT_EQ(c.pool.shards[2].servers, (std::vector<Address>{{"10.0.0.3", 6379}}));
}

}  // namespace
}  // namespace ringproxy::conf
