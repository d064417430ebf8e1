// What a ring change means for one key, as pure functions of the rings (no sockets).
//
// After a reload that changed the ring, a key may still sit on a shard that owned it under
// an earlier ring. A shard is the same shard across rings when it has the same name (its
// servers may change address without any key moving, as in twemproxy).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "routing/routing_table.h"

namespace ringproxy::routing {

struct PreviousOwner {
  const RoutingTable* table = nullptr;  // the earlier ring
  uint32_t shard = 0;                   // index into table->shards()
};

// The shards that owned `key` under the earlier rings (newest first) and do not own it under
// `current`: where the key may still be. Each shard name appears once (the newest ring's
// entry). Empty when the key never changed shard. Cleared and filled into `out`.
void previous_owners(std::string_view key, const RoutingTable& current,
                     std::span<const std::shared_ptr<const RoutingTable>> earlier, std::vector<PreviousOwner>& out);

// True when both tables send every key to the same shard name: same hash, hash tag,
// distribution, and the same shard names with the same weights in the same order.
bool same_ring(const RoutingTable& a, const RoutingTable& b);

// Fraction of `keys` whose shard (by name) differs between the two rings.
double moved_fraction(const RoutingTable& from, const RoutingTable& to, std::span<const std::string> keys);

}  // namespace ringproxy::routing
