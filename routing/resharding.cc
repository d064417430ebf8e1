#include "routing/resharding.h"

#include <algorithm>
#include <string>

namespace ringproxy::routing {

void previous_owners(std::string_view key, const RoutingTable& current,
                     std::span<const std::shared_ptr<const RoutingTable>> earlier, std::vector<PreviousOwner>& out) {
  out.clear();
  const std::string& owner = current.shards()[current.shard_of(key)].name;
  for (const auto& table : earlier) {
    const uint32_t shard = table->shard_of(key);
    const std::string& name = table->shards()[shard].name;
    if (name == owner) continue;
    const bool seen = std::any_of(out.begin(), out.end(), [&](const PreviousOwner& o) {
      return o.table->shards()[o.shard].name == name;
    });
    if (!seen) out.push_back({table.get(), shard});
  }
}

bool same_ring(const RoutingTable& a, const RoutingTable& b) {
  if (a.hash() != b.hash() || a.hash_tag() != b.hash_tag() ||
      a.ring().distribution() != b.ring().distribution() || a.shards().size() != b.shards().size()) {
    return false;
  }
  for (size_t i = 0; i < a.shards().size(); ++i) {
    if (a.shards()[i].name != b.shards()[i].name || a.shards()[i].weight != b.shards()[i].weight) return false;
  }
  return true;
}

double moved_fraction(const RoutingTable& from, const RoutingTable& to, std::span<const std::string> keys) {
  if (keys.empty()) return 0;
  size_t moved = 0;
  for (const std::string& key : keys) {
    moved += from.shards()[from.shard_of(key)].name != to.shards()[to.shard_of(key)].name;
  }
  return static_cast<double>(moved) / static_cast<double>(keys.size());
}

}  // namespace ringproxy::routing
