#include "routing/routing_table.h"

namespace ringproxy::routing {

std::shared_ptr<const RoutingTable> RoutingTable::build(const conf::PoolConfig& pool) {
  auto table = std::make_shared<RoutingTable>();
  table->hash_ = pool.hash;
  table->hash_tag_ = pool.hash_tag;
  std::vector<RingMember> members;
  members.reserve(pool.shards.size());
  for (const conf::ShardConfig& shard : pool.shards) {
    ShardEntry entry{shard.name, shard.weight, {}, shard.replication, shard.auth};
    for (const conf::Address& address : shard.servers) {
      entry.servers.push_back(static_cast<uint32_t>(table->servers_.size()));
      table->servers_.push_back({address, address.to_string(),
                                 static_cast<uint32_t>(table->shards_.size())});
    }
    table->shards_.push_back(std::move(entry));
    members.push_back({shard.name, shard.weight});
  }
  table->ring_ = Ring::build(pool.distribution, members);
  return table;
}

[[gnu::cold, gnu::noinline]] uint32_t RoutingTable::shard_of_cold(std::string_view key) const {
  return ring_.locate(shard_hash(hash_, hash_tag_, key));
}

}  // namespace ringproxy::routing
