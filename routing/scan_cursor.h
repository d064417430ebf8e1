// SCAN's cursor through the proxy (planner.cc plan_scan, reducer.cc Merge::scan_cursor).
#pragma once

#include <cstdint>

namespace ringproxy::routing {

// SCAN across shards: the cursor a client sees packs which shard is being scanned, which of
// its servers (a replica's cursor means nothing to another server), and that server's own
// cursor. Shards are scanned in order, each from cursor 0 to 0; the client's cursor is 0 only
// at the start and at the end. A server that is no longer usable has its shard scanned again
// from 0 on another (SCAN's guarantee holds: every key present throughout is returned, some
// maybe twice).
struct ScanCursor {
  static constexpr unsigned kShardBits = 12;  // up to 4096 shards
  static constexpr unsigned kSlotBits = 6;    // up to 64 servers in a shard
  static constexpr uint64_t kMaxServerCursor = (uint64_t{1} << (64 - kShardBits - kSlotBits)) - 1;
  uint32_t shard = 0;
  uint32_t slot = 0;             // the server's position in its shard
  uint64_t server_cursor = 0;

  uint64_t encode() const {
    return server_cursor << (kShardBits + kSlotBits) | uint64_t{slot} << kShardBits | shard;
  }
  static ScanCursor decode(uint64_t cursor) {
    return {static_cast<uint32_t>(cursor & ((1u << kShardBits) - 1)),
            static_cast<uint32_t>(cursor >> kShardBits & ((1u << kSlotBits) - 1)), cursor >> (kShardBits + kSlotBits)};
  }
};

// Where a SCAN fragment reads (for its reply's cursor).
struct ScanPosition {
  uint32_t shard = 0;
  uint32_t slot = 0;
  uint32_t shards = 0;  // in the table it was planned on
};

}  // namespace ringproxy::routing
