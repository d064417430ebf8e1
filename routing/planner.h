// plan(): the routing decision for one request, as a pure function of
// (command, arguments, routing snapshot, server health, settings).
// The proxy only carries out the plan it returns.
//
//   forward    one fragment: the client's bytes go unchanged to one server
//   split      one fragment per shard with that shard's keys (MGET, MSET, DEL...)
//   broadcast  the client's bytes go unchanged to every shard (DBSIZE, FLUSHALL...)
//   reject     nothing is sent; the client gets Plan::error
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "routing/command_table.h"
#include "routing/routing_table.h"

namespace ringproxy::routing {

enum class PlanKind : uint8_t { forward, split, broadcast, reject };

struct PlannedFragment {
  uint32_t shard = 0;
  uint32_t server = 0;      // index into RoutingTable::servers()
  uint32_t keys_begin = 0;  // split: this fragment's keys are Plan::key_args[keys_begin, keys_end)
  uint32_t keys_end = 0;
};

// Reused across requests by its owner: plan() clears it but keeps its capacity, so the
// hot path does not allocate.
struct Plan {
  PlanKind kind = PlanKind::reject;
  Merge merge = Merge::forward;
  std::string error;                       // reject: the error line without "-" and CRLF
  std::vector<PlannedFragment> fragments;
  std::vector<uint32_t> key_args;          // split: argv positions of keys, grouped by fragment
  std::vector<uint32_t> key_slots;         // split: parallel to key_args, the key's index among all keys

  void clear();
};

// Which servers may take requests now (indexed like RoutingTable::servers()).
struct Health {
  std::span<const uint8_t> usable;
  bool is_usable(uint32_t server) const { return server < usable.size() && usable[server] != 0; }
};

struct PlanSettings {
  bool allow_admin_commands = false;
};

// Scratch buffers owned by the caller, reused across calls.
struct PlanScratch {
  std::vector<uint32_t> key_positions;
  std::vector<uint32_t> key_shards;
  std::vector<uint32_t> shard_fragment;  // shard -> fragment index + 1 (0: none yet)
};

// `args[0]` is the command name; `cmd` its table entry (a subcommand's entry for
// containers); the caller has checked arity and handled local commands.
void plan(const CommandInfo& cmd, std::span<const std::string_view> args, const RoutingTable& table,
          Health health, PlanSettings settings, PlanScratch& scratch, Plan& out);

}  // namespace ringproxy::routing
