// libFuzzer target: conf::parse_config over arbitrary text (the input is the TOML file).
//
// parse_config promises never to throw: a bad file gives one line of error naming
// "file:line:column", a good one a Config that keeps the loader's promises (each checked
// below), from which the proxy builds its routing table, as it does on load and reload,
// and plans requests over it.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "conf/loader.h"
#include "routing/planner.h"
#include "routing/routing_table.h"

namespace {

using namespace ringproxy;


void check_config(const conf::Config& c) {
  const conf::PoolConfig& pool = c.pool;
  CHECK(!pool.shards.empty());
  CHECK(pool.hash_tag.empty() || pool.hash_tag.size() == 2);
  CHECK(pool.backend_connections >= 1 && pool.backend_connections <= 64);
  CHECK(c.proxy.max_request_bytes >= 1 && c.proxy.max_arguments >= 1 && c.proxy.max_pending_per_client >= 1);
  std::set<std::string> names, servers;
  uint64_t total_weight = 0;
  for (const conf::ShardConfig& shard : pool.shards) {
    CHECK(!shard.name.empty() && shard.name.size() <= 64);
    CHECK(names.insert(shard.name).second);
    CHECK(shard.weight >= 1 && shard.weight <= 65535);
    total_weight += shard.weight;
    CHECK(!shard.servers.empty());
    if (shard.replication.strategy == conf::ReplicationStrategy::none) {
      CHECK(shard.servers.size() == 1);
    } else {
      CHECK(shard.servers.size() >= 2);
    }
    CHECK(!(shard.replication.strategy == conf::ReplicationStrategy::multi_primary &&
            shard.replication.write_ack == conf::WriteAck::primary));
    for (const conf::Address& a : shard.servers) {
      CHECK(a.port != 0 && !a.host.empty());
      CHECK(servers.insert(a.to_string()).second);
      // Canonical: parsing what to_string() prints gives the same address back (a server's
      // host may be a name, kept lowercase).
      std::optional<conf::Address> again = conf::parse_address(a.to_string(), nullptr, /*allow_names=*/true);
      CHECK(again && *again == a);
      CHECK(a.is_name() == (std::any_of(a.host.begin(), a.host.end(), [](unsigned char c) { return std::isalpha(c); }) &&
                            a.host.find(':') == std::string::npos));
      if (a.is_name()) {
        CHECK(std::none_of(a.host.begin(), a.host.end(), [](unsigned char c) { return std::isupper(c); }));
      }
    }
  }
  CHECK(total_weight < (uint64_t{1} << 31));

  // What the proxy does with it next (Ring::build throws if the loader let a bad ring through).
  std::shared_ptr<const routing::RoutingTable> table = routing::RoutingTable::build(pool);
  CHECK(table->shards().size() == pool.shards.size());
  for (std::string_view key : {"", "a", "{user1}:x", "key:12345"}) {
    CHECK(table->shard_of(key) < pool.shards.size());
  }

  // And the planner, over every shard's replication, with every server live.
  const std::vector<uint8_t> mode(table->servers().size(), routing::kServerLive);
  const std::vector<uint32_t> pending(table->servers().size(), 0);
  routing::PlanScratch scratch;
  routing::Plan plan;
  for (uint32_t shard = 0; shard < table->shards().size(); ++shard) {
    std::string key;
    for (int i = 0; i < 1000 && table->shard_of(key) != shard; ++i) key = "k" + std::to_string(i);
    const std::string_view get[] = {"GET", key};
    const std::string_view set[] = {"SET", key, "v"};
    for (std::span<const std::string_view> args : {std::span<const std::string_view>(get), std::span<const std::string_view>(set)}) {
      routing::plan(*routing::find_command(args[0]), args, *table, routing::Health{mode, pending, shard}, {}, scratch,
                    plan);
      for (const routing::PlannedFragment& f : plan.fragments) CHECK(f.server < table->servers().size());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  conf::LoadResult result;
  try {
    result = conf::parse_config(text, "fuzz.toml");
  } catch (...) {
    ::ringproxy::fuzz::invariant_broken(__FILE__, "parse_config threw");
  }
  if (result.config) {
    CHECK(result.error.empty());
    check_config(*result.config);
  } else {
    CHECK(!result.error.empty());
    CHECK(result.error.rfind("fuzz.toml:", 0) == 0);      // names the file (and line:column)
    CHECK(result.error.find('\n') == std::string::npos);  // one line
  }
  return 0;
}
