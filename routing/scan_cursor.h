// SCAN's cursor through the proxy (planner.cc plan_scan, reducer.cc Merge::scan_cursor).
#pragma once

#include <cstdint>

namespace ringproxy::routing {

// SCAN across shards: the cursor a client sees packs which shard is being scanned, which of
// its servers (a replica's cursor means nothing to another server), that server's own cursor,
// and two checks. Shards are scanned in order, each from cursor 0 to 0; the client's cursor is
// 0 only at the start and at the end.
// - The table check (a hash of the shard names, in order) changes when a reload adds, removes
//   or reorders shards: the shards already scanned may not be the ones the cursor says, so
//   such a cursor is refused (start again from 0).
// - The server check (a hash of the server and how many times it restarted or was resynced)
//   changes when the server is not the process that gave the cursor: its shard is scanned
//   again from 0, as when the server is no longer usable (SCAN's guarantee holds: every key
//   present throughout is returned, some maybe twice).
struct ScanCursor {
  static constexpr unsigned kShardBits = 10;  // up to 1024 shards
  static constexpr unsigned kSlotBits = 4;    // up to 16 servers in a shard
  static constexpr unsigned kCheckBits = 8;   // each check
  static constexpr unsigned kHeaderBits = kShardBits + kSlotBits + 2 * kCheckBits;
  static constexpr uint64_t kMaxServerCursor = (uint64_t{1} << (64 - kHeaderBits)) - 1;  // 2^34: ample
  uint32_t shard = 0;
  uint32_t slot = 0;            // the server's position in its shard
  uint32_t table_check = 0;
  uint32_t server_check = 0;
  uint64_t server_cursor = 0;

  uint64_t encode() const {
    return server_cursor << kHeaderBits | uint64_t{server_check} << (kShardBits + kSlotBits + kCheckBits) |
           uint64_t{table_check} << (kShardBits + kSlotBits) | uint64_t{slot} << kShardBits | shard;
  }
  static ScanCursor decode(uint64_t cursor) {
    constexpr uint64_t check_mask = (1u << kCheckBits) - 1;
    return {static_cast<uint32_t>(cursor & ((1u << kShardBits) - 1)),
            static_cast<uint32_t>(cursor >> kShardBits & ((1u << kSlotBits) - 1)),
            static_cast<uint32_t>(cursor >> (kShardBits + kSlotBits) & check_mask),
            static_cast<uint32_t>(cursor >> (kShardBits + kSlotBits + kCheckBits) & check_mask),
            cursor >> kHeaderBits};
  }
};

// Where a SCAN fragment reads, for its reply's cursor.
struct ScanPosition {
  uint32_t shard = 0;
  uint32_t slot = 0;
  uint32_t shards = 0;         // in the table it was planned on
  uint32_t table_check = 0;
  uint32_t server_check = 0;   // of the server it reads from
};

}  // namespace ringproxy::routing
