// plan(): the routing decision for one request, as a pure function of
// (command, arguments, routing snapshot, server health, settings).
// The proxy only carries out the plan it returns.
//
//   forward    one fragment: the client's bytes go unchanged to one server
//   split      one fragment per shard with that shard's keys (MGET, MSET, DEL...)
//   broadcast  the client's bytes go unchanged to every shard (DBSIZE, FLUSHALL...)
//   rewrite    one fragment: the client's command with one argument replaced (SCAN's cursor)
//   transaction  one shard: MULTI, the queued commands and EXEC, several replies (transaction.h)
//   reject     nothing is sent; the client gets Plan::error
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "routing/command_table.h"
#include "routing/replication.h"
#include "routing/routing_table.h"
#include "routing/scan_cursor.h"

namespace ringproxy::routing {

enum class PlanKind : uint8_t { forward, split, broadcast, rewrite, reject, transaction };



// What happens to a replicated write's copy for one server.
enum class Delivery : uint8_t {
  send,    // the server is live: send it (stage 0 now, stage 1 after the primary acknowledged)
  replay,  // the server is down or catching up: append it to the server's replay queue
  skip,    // the server is stale: a resync will bring it the data
};

struct PlannedFragment {
  uint32_t shard = 0;
  uint32_t server = 0;      // index into RoutingTable::servers()
  uint32_t keys_begin = 0;  // split: this fragment's keys are Plan::key_args[keys_begin, keys_end)
  uint32_t keys_end = 0;
  uint32_t group = 0;       // index into Plan::groups
  uint8_t slot = 0;         // position in its group (0: the primary / the leader)
  uint8_t stage = 0;        // 0: sent at once; 1: after slot 0 acknowledged (primary-replica)
  Delivery delivery = Delivery::send;
};

// A shard's part of the request: one fragment per server of a replicated write, else one
// fragment. Its reply is decided by a WriteTracker over `rule`; groups are what the
// Reducer merges (one group per shard of a split command).
struct PlannedGroup {
  uint32_t shard = 0;
  uint32_t first = 0;  // fragments [first, first + count)
  uint32_t count = 1;
  AckRule rule;
  bool read_quorum = false;  // a read asked of a majority: replies compared, read repair
};

// Reused across requests by its owner: plan() clears it but keeps its capacity, so the
// hot path does not allocate.
struct Plan {
  PlanKind kind = PlanKind::reject;
  Merge merge = Merge::forward;
  std::string error;                       // reject: the error line without "-" and CRLF
  std::vector<PlannedFragment> fragments;
  std::vector<PlannedGroup> groups;
  bool replicated = false;                 // some group has more than one server
  std::vector<uint32_t> key_args;          // split: argv positions of keys, grouped by group
  std::vector<uint32_t> key_slots;         // split: parallel to key_args, the key's index among all keys
  uint32_t rewritten_position = 0;         // rewrite: the argument replaced ...
  std::string rewritten_arg;               // ... and its new value
  ScanPosition scan;                       // SCAN: where its one fragment reads
  uint32_t first_choice = 0;               // any_key: the group whose key is preferred

  void clear();
};

// Each server's mode (indexed like RoutingTable::servers()).
enum ServerMode : uint8_t {
  kServerLive = 0,   // up and in sync: takes reads and writes
  kServerQueue = 1,  // down, or replaying what it missed: writes go to its replay queue
  kServerSkip = 2,   // stale (lost writes, or restarted empty): only a resync brings it back
};

struct Health {
  std::span<const uint8_t> mode;
  std::span<const uint32_t> pending;  // requests in flight per server (read_from = any)
  uint64_t rotation = 0;              // bumped per request: round-robin over replicas
  bool is_usable(uint32_t server) const { return server < mode.size() && mode[server] == kServerLive; }
};

struct PlanSettings {
  bool allow_admin_commands = false;
};

// Scratch buffers owned by the caller, reused across calls.
struct PlanScratch {
  // Per server: how many times it restarted or was resynced (SCAN's server check). Set once by
  // the owner (not in Health: a larger Health costs every request its copy).
  const std::vector<uint32_t>* server_epochs = nullptr;
  std::vector<uint32_t> key_positions;
  std::vector<uint32_t> key_shards;
  std::vector<uint32_t> shard_fragment;  // shard -> fragment index + 1 (0: none yet)
};

// `args[0]` is the command name; `cmd` its table entry (a subcommand's entry for
// containers); the caller has checked arity and handled local commands.
void plan(const CommandInfo& cmd, std::span<const std::string_view> args, const RoutingTable& table,
          Health health, PlanSettings settings, PlanScratch& scratch, Plan& out);

// (A transaction's EXEC, transaction.h, is planned by plan() as well: its arguments name the
// shard, and it is one group there, by the shard's replication, of kind transaction.)

// The server of a replicated shard that applies a write first when one must lead (SPOP, a
// watched transaction): the primary (primary-replica), the first live server otherwise or
// when the primary is not live and on_primary_down = promote; none when writes would fail.
std::optional<uint32_t> write_leader(const ShardEntry& shard, Health health);

}  // namespace ringproxy::routing
