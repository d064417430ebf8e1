#include "routing/planner.h"

#include <algorithm>
#include <cctype>

#include "routing/keys.h"

namespace ringproxy::routing {
namespace {

std::string upper(std::string_view name) {
  std::string out(name);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::replace(out.begin(), out.end(), '|', ' ');
  return out;
}

void reject(Plan& out, std::string error) {
  out.kind = PlanKind::reject;
  out.error = std::move(error);
}

void reject_unavailable(Plan& out, const RoutingTable& table, uint32_t shard) {
  const ShardEntry& entry = table.shards()[shard];
  std::string servers;
  for (uint32_t s : entry.servers) {
    if (!servers.empty()) servers += ", ";
    servers += table.servers()[s].name;
  }
  reject(out, "ERR shard '" + entry.name + "' is unavailable: no usable server (" + servers +
                  "); its keys are not moved to other shards");
}

// The server of `shard` that takes requests, or nullopt when it cannot.
std::optional<uint32_t> serving_server(const RoutingTable& table, Health health, uint32_t shard) {
  uint32_t server = table.shards()[shard].servers.front();
  if (!health.is_usable(server)) return std::nullopt;
  return server;
}

bool add_fragment(const RoutingTable& table, Health health, uint32_t shard, Plan& out) {
  std::optional<uint32_t> server = serving_server(table, health, shard);
  if (!server) {
    reject_unavailable(out, table, shard);
    return false;
  }
  out.fragments.push_back({shard, *server, 0, 0});
  return true;
}

void plan_broadcast(const CommandInfo& cmd, const RoutingTable& table, Health health, Plan& out) {
  out.kind = PlanKind::broadcast;
  out.merge = cmd.merge;
  for (uint32_t shard = 0; shard < table.shards().size(); ++shard) {
    if (!add_fragment(table, health, shard, out)) return;
  }
}

// MGET/DEL/MSET...: keys grouped by shard, in the order their shard first appears; each
// group keeps the client's key order.
void plan_split(const CommandInfo& cmd, const RoutingTable& table, Health health,
                PlanScratch& scratch, Plan& out) {
  const std::vector<uint32_t>& positions = scratch.key_positions;
  const std::vector<uint32_t>& shards = scratch.key_shards;
  scratch.shard_fragment.assign(table.shards().size(), 0);
  for (uint32_t shard : shards) {
    if (scratch.shard_fragment[shard] != 0) continue;
    if (!add_fragment(table, health, shard, out)) return;
    scratch.shard_fragment[shard] = static_cast<uint32_t>(out.fragments.size());
  }
  if (out.fragments.size() == 1) {  // every key on one shard: the bytes go unchanged
    out.kind = PlanKind::forward;
    out.merge = Merge::forward;
    return;
  }
  out.kind = PlanKind::split;
  out.merge = cmd.merge;
  for (PlannedFragment& fragment : out.fragments) {
    fragment.keys_begin = static_cast<uint32_t>(out.key_args.size());
    for (size_t i = 0; i < positions.size(); ++i) {
      if (shards[i] != fragment.shard) continue;
      out.key_args.push_back(positions[i]);
      out.key_slots.push_back(static_cast<uint32_t>(i));
    }
    fragment.keys_end = static_cast<uint32_t>(out.key_args.size());
  }
}

}  // namespace

void Plan::clear() {
  kind = PlanKind::reject;
  merge = Merge::forward;
  error.clear();
  fragments.clear();
  key_args.clear();
  key_slots.clear();
}

void plan(const CommandInfo& cmd, std::span<const std::string_view> args, const RoutingTable& table,
          Health health, PlanSettings settings, PlanScratch& scratch, Plan& out) {
  out.clear();
  switch (cmd.cls) {
    case CommandClass::unsupported:
      return reject(out, "ERR " + upper(cmd.name) + ": " + std::string(cmd.reason));
    case CommandClass::local:
      return reject(out, "ERR " + upper(cmd.name) + " is answered by the proxy, not routed");
    case CommandClass::admin:
      if (!settings.allow_admin_commands) {
        return reject(out, "ERR " + upper(cmd.name) +
                               " is disabled; set [proxy] allow_admin_commands = true to allow it");
      }
      break;
    case CommandClass::read:
    case CommandClass::write:
      break;
  }
  if (cmd.fanout == Fanout::all_shards) return plan_broadcast(cmd, table, health, out);

  std::vector<uint32_t>& positions = scratch.key_positions;
  positions.clear();
  std::string_view key_error = find_key_positions(cmd, args, positions);
  if (!key_error.empty()) return reject(out, "ERR " + std::string(key_error));
  if (positions.empty()) {
    return reject(out, "ERR " + upper(cmd.name) +
                           " without a key cannot be routed by ringproxy: name at least one key");
  }

  // Fast path: one key.
  if (positions.size() == 1) {
    uint32_t shard = table.shard_of(args[positions[0]]);
    out.kind = PlanKind::forward;
    add_fragment(table, health, shard, out);
    return;
  }

  std::vector<uint32_t>& shards = scratch.key_shards;
  shards.clear();
  bool one_shard = true;
  for (uint32_t position : positions) {
    shards.push_back(table.shard_of(args[position]));
    one_shard = one_shard && shards.back() == shards.front();
  }
  if (one_shard) {
    out.kind = PlanKind::forward;
    add_fragment(table, health, shards.front(), out);
    return;
  }
  if (cmd.fanout == Fanout::single_shard) {
    auto other = std::find_if(shards.begin(), shards.end(), [&](uint32_t s) { return s != shards.front(); });
    std::string hint = table.hash_tag().empty()
                           ? "set [pool] hash_tag = \"{}\" and use keys like {user1}:a, {user1}:b"
                           : "keep them together with a hash tag, e.g. {user1}:a and {user1}:b";
    return reject(out, "ERR " + upper(cmd.name) + " keys map to different shards ('" +
                           table.shards()[shards.front()].name + "', '" + table.shards()[*other].name +
                           "'); " + hint);
  }
  plan_split(cmd, table, health, scratch, out);
}

}  // namespace ringproxy::routing
