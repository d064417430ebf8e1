#include "routing/planner.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <initializer_list>

#include "routing/keys.h"

namespace ringproxy::routing {
namespace {

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

bool runs_code(const CommandInfo& cmd) {
  return cmd.name == "eval" || cmd.name == "evalsha" || cmd.name == "eval_ro" || cmd.name == "evalsha_ro" ||
         cmd.name == "fcall" || cmd.name == "fcall_ro";
}

// A script or function without keys: the shard a hash of its body, SHA or name picks.
[[gnu::cold, gnu::noinline]] void plan_keyless_code(const CommandInfo& cmd, std::span<const std::string_view> args,
                                                    const RoutingTable& table, Health health, Plan& out);

// SPOP picks at random: one server executes it, the others get its effect (SREM). XADD's '*'
// and a transaction with one, or with a WATCH (transaction.h): one server first, the others get
// what it chose, or nothing if its watch fired.
bool picks_at_random(const CommandInfo& cmd) { return cmd.name == "spop" || cmd.has_proxy_flag(kProxyLeads); }

void push_group(Plan& out, uint32_t shard, uint32_t keys_begin, uint32_t keys_end, AckRule rule) {
  const uint32_t first = static_cast<uint32_t>(out.fragments.size());
  out.groups.push_back({shard, first, 0, rule});
  (void)keys_begin;
  (void)keys_end;
}

void push_fragment(Plan& out, uint32_t shard, uint32_t server, uint32_t keys_begin, uint32_t keys_end,
                   uint8_t slot, uint8_t stage, Delivery delivery) {
  PlannedFragment f;
  f.shard = shard;
  f.server = server;
  f.keys_begin = keys_begin;
  f.keys_end = keys_end;
  f.group = static_cast<uint32_t>(out.groups.size() - 1);
  f.slot = slot;
  f.stage = stage;
  f.delivery = delivery;
  out.fragments.push_back(f);
  ++out.groups.back().count;
}

// One shard's part of the request: the server(s) it goes to, by the shard's replication.
bool add_group(const CommandInfo& cmd, const RoutingTable& table, Health health, uint32_t shard,
               uint32_t keys_begin, uint32_t keys_end, Plan& out) {
  const ShardEntry& entry = table.shards()[shard];
  const conf::ReplicationConfig& replication = entry.replication;
  const bool write = cmd.cls == CommandClass::write || cmd.cls == CommandClass::admin;

  if (replication.strategy == conf::ReplicationStrategy::none) {
    uint32_t server = entry.servers.front();
    if (!health.is_usable(server)) {
      reject_unavailable(out, table, shard);
      return false;
    }
    push_group(out, shard, keys_begin, keys_end, AckRule{});
    push_fragment(out, shard, server, keys_begin, keys_end, 0, 0, Delivery::send);
    return true;
  }

  const size_t n = entry.servers.size();
  // (A read without keys, KEYS or DBSIZE, has nothing to compare or repair: one server answers.)
  const bool keyed = cmd.fanout != Fanout::all_shards && cmd.fanout != Fanout::random_shard;
  if (!write && replication.read_from == conf::ReadFrom::quorum && keyed) {
    // A majority of in-sync servers, the primary first when it is one of them (its copy is
    // the authority for primary-replica).
    const uint32_t majority = static_cast<uint32_t>(n / 2 + 1);
    uint32_t live = 0;
    for (uint32_t s : entry.servers) live += health.is_usable(s);
    if (live < majority) {
      reject(out, "ERR shard '" + entry.name + "' has no read quorum: " + std::to_string(live) + " of " +
                      std::to_string(n) + " servers in sync, " + std::to_string(majority) + " needed");
      return false;
    }
    push_group(out, shard, keys_begin, keys_end, AckRule{majority, false});
    out.groups.back().read_quorum = true;
    uint8_t slot = 0;
    for (size_t i = 0; i < n && slot < majority; ++i) {
      if (!health.is_usable(entry.servers[i])) continue;
      push_fragment(out, shard, entry.servers[i], keys_begin, keys_end, slot++, 0, Delivery::send);
    }
    out.replicated = true;  // grouped (but not a write)
    return true;
  }
  if (!write) {
    uint8_t readable[64];
    uint32_t pending[64];
    for (size_t i = 0; i < n && i < 64; ++i) {
      uint32_t s = entry.servers[i];
      readable[i] = health.is_usable(s) ? 1 : 0;
      pending[i] = s < health.pending.size() ? health.pending[s] : 0;
    }
    std::optional<uint32_t> pick = pick_read_server(replication.read_from, std::span(readable, n),
                                                    std::span(pending, n), health.rotation);
    // promote: the first in-sync replica stands in for a primary that is not live.
    if (!pick && replication.read_from == conf::ReadFrom::primary &&
        replication.on_primary_down == conf::PrimaryDown::promote) {
      for (uint32_t i = 1; i < n && !pick; ++i) {
        if (readable[i]) pick = i;
      }
    }
    if (!pick) {
      reject(out, "ERR shard '" + entry.name + "' has no server to read from (read_from = " +
                      std::string(conf::read_from_name(replication.read_from)) +
                      "); servers that are down, catching up or stale do not serve reads");
      return false;
    }
    push_group(out, shard, keys_begin, keys_end, AckRule{});
    push_fragment(out, shard, entry.servers[*pick], keys_begin, keys_end, 0, 0, Delivery::send);
    return true;
  }

  AckRule rule = ack_rule(replication, n);
  uint32_t live = 0;
  for (uint32_t s : entry.servers) live += health.is_usable(s);
  const bool primary_down = replication.strategy == conf::ReplicationStrategy::primary_replica &&
                            !health.is_usable(entry.servers[0]);
  if (primary_down && replication.on_primary_down == conf::PrimaryDown::fail) {
    reject(out, "ERR shard '" + entry.name + "': primary " + table.servers()[entry.servers[0]].name +
                    " is not available; writes fail until it is back and in sync");
    return false;
  }
  if (live < rule.needed) {
    reject(out, "ERR shard '" + entry.name + "': only " + std::to_string(live) + " of " + std::to_string(n) +
                    " servers can take writes, " + std::to_string(rule.needed) + " needed (write_ack = " +
                    std::string(conf::write_ack_name(replication.write_ack)) + "); nothing was written");
    return false;
  }
  // The server that goes first: the primary, or for a command that picks at random on
  // multi-primary, the first live server (its result is what the others apply).
  // (promote: the first in-sync replica leads while the primary is not live; the primary
  // gets what it missed by replay or resync, and leads again once live.)
  size_t leader = 0;
  if (picks_at_random(cmd) || primary_down) {
    rule.primary_first = true;
    while (!health.is_usable(entry.servers[leader])) ++leader;
  }
  push_group(out, shard, keys_begin, keys_end, rule);
  uint8_t slot = 0;
  for (size_t k = 0; k < n; ++k) {
    size_t i = (leader + k) % n;
    uint32_t s = entry.servers[i];
    uint8_t mode = s < health.mode.size() ? health.mode[s] : static_cast<uint8_t>(kServerSkip);
    Delivery delivery = mode == kServerLive ? Delivery::send : mode == kServerQueue ? Delivery::replay : Delivery::skip;
    uint8_t stage = rule.primary_first && slot > 0 ? 1 : 0;
    push_fragment(out, shard, s, keys_begin, keys_end, slot++, stage, delivery);
  }
  out.replicated = true;
  return true;
}

void plan_broadcast(const CommandInfo& cmd, const RoutingTable& table, Health health, Plan& out) {
  out.kind = PlanKind::broadcast;
  out.merge = cmd.merge;
  out.first_choice = static_cast<uint32_t>((health.rotation * 2654435761u) % table.shards().size());
  for (uint32_t shard = 0; shard < table.shards().size(); ++shard) {
    if (!add_group(cmd, table, health, shard, 0, 0, out)) return;
  }
}

// MGET/DEL/MSET...: keys grouped by shard, in the order their shard first appears; each
// group keeps the client's key order.
void plan_split(const CommandInfo& cmd, const RoutingTable& table, Health health,
                PlanScratch& scratch, Plan& out) {
  const std::vector<uint32_t>& positions = scratch.key_positions;
  const std::vector<uint32_t>& shards = scratch.key_shards;
  scratch.shard_fragment.assign(table.shards().size(), 0);
  std::vector<uint32_t> order;  // shards in order of first appearance
  for (uint32_t shard : shards) {
    if (scratch.shard_fragment[shard] != 0) continue;
    scratch.shard_fragment[shard] = 1;
    order.push_back(shard);
  }
  out.kind = PlanKind::split;
  out.merge = cmd.merge;
  for (uint32_t shard : order) {
    const uint32_t begin = static_cast<uint32_t>(out.key_args.size());
    for (size_t i = 0; i < positions.size(); ++i) {
      if (shards[i] != shard) continue;
      out.key_args.push_back(positions[i]);
      out.key_slots.push_back(static_cast<uint32_t>(i));
    }
    if (!add_group(cmd, table, health, shard, begin, static_cast<uint32_t>(out.key_args.size()), out)) return;
  }
}

// SCRIPT LOAD, FUNCTION LOAD ...: every server holds its own scripts and functions, so every
// live one is asked, replicas too (one group each: not a replicated write). SCRIPT LOAD goes
// on without servers that are not live (the proxy sends EVALSHA of a script it has as EVAL).
// Functions and flushes change what a server runs: a server that is down or catching up (it
// would come back running the old code) makes them refused; a stale one is resynced from a
// peer, functions included (redis replicates them with the data).
[[gnu::cold, gnu::noinline]] void plan_all_servers(const CommandInfo& cmd, const RoutingTable& table, Health health,
                                                   Plan& out) {
  out.kind = PlanKind::broadcast;
  out.merge = cmd.merge;
  const bool remembered = cmd.has_proxy_flag(kProxyScriptBody);
  const bool changes_servers =
      (cmd.cls == CommandClass::write || cmd.cls == CommandClass::admin) && !remembered && cmd.merge != Merge::config_get;
  for (uint32_t shard = 0; shard < table.shards().size(); ++shard) {
    const ShardEntry& entry = table.shards()[shard];
    bool any = false;
    for (uint32_t server : entry.servers) {
      if (changes_servers && server < health.mode.size() && health.mode[server] == kServerQueue) {
        return reject(out, "ERR " + display_name(cmd.name) + " is refused while server " + table.servers()[server].name +
                               " (shard '" + entry.name + "') is down or catching up: it would come back without "
                               "it; retry once every server is in sync");
      }
      if (!health.is_usable(server)) continue;
      push_group(out, shard, 0, 0, AckRule{});
      push_fragment(out, shard, server, 0, 0, 0, 0, Delivery::send);
      any = true;
    }
    if (!any && !remembered) return reject_unavailable(out, table, shard);
  }
  if (out.fragments.empty()) return reject_unavailable(out, table, 0);
}

// Redis's wording: an unbalanced key/value list is a wrong number of arguments for the command.
[[gnu::cold, gnu::noinline]] void reject_key_error(const CommandInfo& cmd, std::string_view error,
                                                    const RoutingTable& table, Health health, Plan& out) {
  if (error == "wrong number of arguments") {
    return reject(out, "ERR wrong number of arguments for '" + std::string(cmd.name) + "' command");
  }
  // A key count redis refuses too (0, negative, not a number, more than the arguments): the
  // command goes to one live server, which refuses it in its own words (each command has its
  // own: "numkeys should be greater than 0", "at least 1 input key is needed for 'zunion'
  // command", "Bad number of keys provided"). It runs nowhere.
  if (is_key_count_error(error)) {
    for (uint32_t shard = 0; shard < table.shards().size(); ++shard) {
      for (uint32_t server : table.shards()[shard].servers) {
        if (!health.is_usable(server)) continue;
        out.kind = PlanKind::forward;
        out.groups.push_back({shard, 0, 1, AckRule{}});
        PlannedFragment f;
        f.shard = shard;
        f.server = server;
        out.fragments.push_back(f);  // (not emplace_back: one more caller and plan() stops inlining it)
        return;
      }
    }
  }
  reject(out, "ERR " + std::string(error));
}

// CONFIG SET of what the proxy relies on to reach and trust its servers: their address, their
// passwords, their replication (resync and fences set it), where they keep their data.
std::string config_set_refusal(std::span<const std::string_view> args) {
  static constexpr std::string_view kProxysOwn[] = {
      "requirepass", "masterauth", "masteruser", "port", "tls-port", "bind", "unixsocket", "replicaof", "slaveof",
      "tls-replication", "dir", "dbfilename", "appenddirname", "aclfile", "rename-command", "protected-mode"};
  for (size_t i = 2; i < args.size(); i += 2) {
    std::string name(args[i]);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (std::find(std::begin(kProxysOwn), std::end(kProxysOwn), name) != std::end(kProxysOwn)) {
      return "ERR CONFIG SET " + name + " is refused through ringproxy: the proxy relies on it to reach its servers; "
             "set it on the servers and in ringproxy's config";
    }
  }
  return {};
}

// (Not through the ring: one more caller of shard_of made the compiler stop inlining it into
// plan(), +31 instructions per GET. A hash of its own places it as well: every proxy alike.)
void plan_keyless_code(const CommandInfo& cmd, std::span<const std::string_view> args, const RoutingTable& table,
                       Health health, Plan& out) {
  uint64_t h = 14695981039346656037ull;
  for (char c : args[1]) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  out.kind = PlanKind::forward;
  add_group(cmd, table, health, static_cast<uint32_t>(h % table.shards().size()), 0, 0, out);
}

// SCAN's checks (scan_cursor.h): FNV-1a over what identifies the shard list and the server.
uint32_t check_of(std::initializer_list<std::string_view> parts, uint64_t number = 0) {
  uint64_t h = 14695981039346656037ull;
  auto mix = [&](unsigned char c) { h = (h ^ c) * 1099511628211ull; };
  for (std::string_view part : parts) {
    for (char c : part) mix(static_cast<unsigned char>(c));
    mix(0);
  }
  for (int i = 0; i < 8; ++i) mix(static_cast<unsigned char>(number >> (8 * i)));
  return static_cast<uint32_t>((h ^ (h >> 32)) & ((1u << ScanCursor::kCheckBits) - 1));
}

uint32_t table_check(const RoutingTable& table) {
  uint64_t h = 0;
  for (const ShardEntry& shard : table.shards()) h = h * 31 + check_of({shard.name});
  return check_of({}, h);
}

uint32_t server_check(const RoutingTable& table, const PlanScratch& scratch, uint32_t server) {
  const std::vector<uint32_t>* epochs = scratch.server_epochs;
  return check_of({table.servers()[server].name}, epochs != nullptr && server < epochs->size() ? (*epochs)[server] : 0);
}

// SCAN: the shard and server the cursor names, asked with that server's own cursor.
// (Cold and out of line, as the other plans that are not a GET's: inlined into plan(), they
// made the compiler call shard_of on every GET, +31.)
[[gnu::cold, gnu::noinline]] void plan_scan(std::span<const std::string_view> args, const RoutingTable& table,
                                            Health health, const PlanScratch& scratch, Plan& out) {
  uint64_t cursor = 0;
  const std::string_view text = args[1];
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), cursor);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) return reject(out, "ERR invalid cursor");
  ScanCursor at = ScanCursor::decode(cursor);
  const uint32_t shards = static_cast<uint32_t>(table.shards().size());
  const uint32_t tables = table_check(table);
  if (cursor != 0 && (at.shard >= shards || at.table_check != tables)) {
    return reject(out, "ERR invalid cursor: the shards changed since this scan began (a reload added, removed or "
                       "reordered them); start again from 0");
  }
  const ShardEntry& entry = table.shards()[at.shard];
  const bool same_server = at.server_cursor != 0 && at.slot < entry.servers.size() &&
                           health.is_usable(entry.servers[at.slot]) &&
                           at.server_check == server_check(table, scratch, entry.servers[at.slot]);
  if (!same_server) {  // a new shard, or its server is gone or not the same process: from 0
    at.server_cursor = 0;
    at.slot = 0;
    while (at.slot < entry.servers.size() && !health.is_usable(entry.servers[at.slot])) ++at.slot;
    if (at.slot == entry.servers.size() || at.slot >= (1u << ScanCursor::kSlotBits) ||
        (entry.replication.strategy == conf::ReplicationStrategy::none && at.slot != 0)) {
      return reject_unavailable(out, table, at.shard);
    }
  }
  out.kind = PlanKind::rewrite;
  out.merge = Merge::scan_cursor;
  out.groups.push_back({at.shard, 0, 1, AckRule{}});
  PlannedFragment& f = out.fragments.emplace_back();
  f.shard = at.shard;
  f.server = entry.servers[at.slot];
  out.rewritten_position = 1;
  out.rewritten_arg = std::to_string(at.server_cursor);
  out.scan = {at.shard, at.slot, shards, tables, server_check(table, scratch, f.server)};
}

// The proxy's EXEC (transaction.h): ["EXEC", shard index, shard name, replies, keys...], one group there. The
// name guards a held EXEC re-planned after a reload that renumbered the shards.
[[gnu::cold, gnu::noinline]] void plan_transaction(const CommandInfo& cmd, std::span<const std::string_view> args,
                                                   const RoutingTable& table, Health health, Plan& out) {
  uint32_t shard = 0;
  const bool named = args.size() >= 4 &&
                     std::from_chars(args[1].data(), args[1].data() + args[1].size(), shard).ec == std::errc() &&
                     shard < table.shards().size() && table.shards()[shard].name == args[2];
  if (!named) {
    return reject(out, "ERR the shards changed (a reload) while this transaction waited; nothing was run: run it "
                       "again");
  }
  if (!add_group(cmd, table, health, shard, 0, 0, out)) return;
  out.kind = PlanKind::transaction;
  out.merge = Merge::transaction;
}

}  // namespace

std::optional<uint32_t> write_leader(const ShardEntry& shard, Health health) {
  const bool primary_replica = shard.replication.strategy == conf::ReplicationStrategy::primary_replica;
  if (primary_replica && health.is_usable(shard.servers.front())) return shard.servers.front();
  if (primary_replica && shard.replication.on_primary_down == conf::PrimaryDown::fail) return std::nullopt;
  for (uint32_t server : shard.servers) {
    if (health.is_usable(server)) return server;
  }
  return std::nullopt;
}

void Plan::clear() {
  kind = PlanKind::reject;
  merge = Merge::forward;
  error.clear();
  fragments.clear();
  groups.clear();
  replicated = false;
  key_args.clear();
  key_slots.clear();
  rewritten_position = 0;
}

void plan(const CommandInfo& cmd, std::span<const std::string_view> args, const RoutingTable& table,
          Health health, PlanSettings settings, PlanScratch& scratch, Plan& out) {
  out.clear();
  switch (cmd.cls) {
    case CommandClass::unsupported:
      return reject(out, "ERR " + display_name(cmd.name) + ": " + std::string(cmd.reason));
    case CommandClass::local:
      return reject(out, "ERR " + display_name(cmd.name) + " is answered by the proxy, not routed");
    case CommandClass::admin:
      if (!settings.allow_admin_commands) {
        return reject(out, "ERR " + display_name(cmd.name) +
                               " is disabled; set [proxy] allow_admin_commands = true to allow it");
      }
      break;
    case CommandClass::read:
    case CommandClass::write:
      break;
  }
  // Fan-outs without keys (one test: they come last in the enum).
  if (cmd.fanout >= Fanout::all_shards) [[unlikely]] {
    switch (cmd.fanout) {
      case Fanout::all_servers:
        if (cmd.name == "config|set") {
          if (std::string refused = config_set_refusal(args); !refused.empty()) return reject(out, std::move(refused));
        }
        return plan_all_servers(cmd, table, health, out);
      case Fanout::scan: return plan_scan(args, table, health, scratch, out);
      case Fanout::transaction: return plan_transaction(cmd, args, table, health, out);
      case Fanout::random_shard:  // any shard will do: a different one each time
        out.kind = PlanKind::forward;
        add_group(cmd, table, health, static_cast<uint32_t>((health.rotation * 2654435761u) % table.shards().size()),
                  0, 0, out);
        return;
      default: return plan_broadcast(cmd, table, health, out);
    }
  }

  std::vector<uint32_t>& positions = scratch.key_positions;
  positions.clear();
  std::string_view key_error = find_key_positions(cmd, args, positions);
  if (!key_error.empty()) [[unlikely]] return reject_key_error(cmd, key_error, table, health, out);
  if (positions.empty()) {
    // A script or function without keys runs on one shard, as on a Redis Cluster node: the
    // one a hash of its body, SHA or function name picks (the same call, the same shard).
    if (runs_code(cmd)) return plan_keyless_code(cmd, args, table, health, out);
    return reject(out, "ERR " + display_name(cmd.name) +
                           " without a key cannot be routed by ringproxy: name at least one key");
  }

  // Fast path: one key, on a shard without replication (most requests).
  if (positions.size() == 1) {
    uint32_t shard = table.shard_of(args[positions[0]]);
    out.kind = PlanKind::forward;
    const ShardEntry& entry = table.shards()[shard];
    if (entry.replication.strategy == conf::ReplicationStrategy::none && health.is_usable(entry.servers.front())) {
      out.groups.push_back({shard, 0, 1, AckRule{}});
      PlannedFragment& f = out.fragments.emplace_back();
      f.shard = shard;
      f.server = entry.servers.front();
      return;
    }
    add_group(cmd, table, health, shard, 0, 0, out);
    return;
  }

  std::vector<uint32_t>& shards = scratch.key_shards;
  shards.clear();
  bool one_shard = true;
  for (uint32_t position : positions) {
    shards.push_back(table.shard_of(args[position]));
    one_shard = one_shard && shards.back() == shards.front();
  }
  if (one_shard) {  // every key on one shard: the bytes go unchanged
    out.kind = PlanKind::forward;
    add_group(cmd, table, health, shards.front(), 0, 0, out);
    return;
  }
  if (cmd.fanout == Fanout::single_shard) {
    auto other = std::find_if(shards.begin(), shards.end(), [&](uint32_t s) { return s != shards.front(); });
    std::string hint = table.hash_tag().empty()
                           ? "set [pool] hash_tag = \"{}\" and use keys like {user1}:a, {user1}:b"
                           : "keep them together with a hash tag, e.g. {user1}:a and {user1}:b";
    return reject(out, "ERR " + display_name(cmd.name) + " keys map to different shards ('" +
                           table.shards()[shards.front()].name + "', '" + table.shards()[*other].name +
                           "'); " + hint);
  }
  plan_split(cmd, table, health, scratch, out);
}

}  // namespace ringproxy::routing
