#include "routing/transaction.h"

#include <algorithm>
#include <cctype>

#include "routing/keys.h"
#include "routing/replication.h"
#include "routing/resp/reply_scanner.h"
#include "routing/resp/writer.h"

namespace ringproxy::routing {
namespace {

QueueDecision refuse(std::string error) { return {InTransaction::refuse, std::move(error), std::nullopt}; }

std::string other_shard_error(const RoutingTable& table, uint32_t tx_shard, uint32_t shard, std::string_view key) {
  const std::string hint = table.hash_tag().empty() ? "set [pool] hash_tag = \"{}\" and use keys like {user1}:a"
                                                    : "keep them together with a hash tag, e.g. {user1}:a and {user1}:b";
  return "ERR a transaction runs on one shard: '" + std::string(key.substr(0, 128)) + "' is on shard '" +
         table.shards()[shard].name + "', the transaction's keys on '" + table.shards()[tx_shard].name + "'; " + hint;
}

bool replicated(const RoutingTable& table, uint32_t shard) {
  return table.shards()[shard].replication.strategy != conf::ReplicationStrategy::none;
}

// Its keys: the arguments from the fifth on.
constexpr KeySpec kTransactionKeys[] = {
    {.begin = KeySpec::Begin::index, .begin_index = 4, .find = KeySpec::Find::range, .lastkey = -1, .keystep = 1}};
const CommandInfo kTransactionWrite{.name = "exec", .arity = -4, .redis_flags = kFlagNoMandatoryKeys,
                                    .key_specs = kTransactionKeys, .cls = CommandClass::write,
                                    .fanout = Fanout::transaction, .merge = Merge::transaction};
// A transaction with WATCH on a replicated shard: it leads (picks_at_random in planner.cc).
const CommandInfo kTransactionWatched{.name = "exec", .arity = -4, .redis_flags = kFlagNoMandatoryKeys,
                                      .key_specs = kTransactionKeys, .cls = CommandClass::write,
                                      .fanout = Fanout::transaction, .merge = Merge::transaction,
                                      .proxy_flags = kProxyTransaction | kProxyLeads};
const CommandInfo kTransactionLed{.name = "exec", .arity = -4, .redis_flags = kFlagNoMandatoryKeys,
                                  .key_specs = kTransactionKeys, .cls = CommandClass::write,
                                  .fanout = Fanout::transaction, .merge = Merge::transaction,
                                  .proxy_flags = kProxyLeads};
const CommandInfo kTransactionRead{.name = "exec", .arity = -4, .redis_flags = kFlagNoMandatoryKeys,
                                   .key_specs = kTransactionKeys, .cls = CommandClass::read,
                                   .fanout = Fanout::transaction, .merge = Merge::transaction};

}  // namespace

QueueDecision decide_queued(const CommandInfo& cmd, std::span<const std::string_view> args, const RoutingTable& table,
                            std::optional<uint32_t> tx_shard, std::vector<uint32_t>& positions) {
  const std::string_view name = cmd.name;
  if (name == "exec") return {InTransaction::exec, {}, std::nullopt};
  if (name == "discard") return {InTransaction::discard, {}, std::nullopt};
  if (name == "quit" || name == "reset") return {InTransaction::run_now, {}, std::nullopt};
  if (name == "multi") return {InTransaction::error_only, "ERR MULTI calls can not be nested", std::nullopt};
  if (name == "watch") return {InTransaction::error_only, "ERR WATCH inside MULTI is not allowed", std::nullopt};
  if (cmd.has_flag(kFlagNoMulti)) return refuse("ERR Command not allowed inside a transaction");
  // PING and ECHO (answered by the proxy elsewhere) and UNWATCH run on the transaction's server.
  const bool server_runs_it = name == "ping" || name == "echo" || name == "unwatch";
  if (!server_runs_it) {
    switch (cmd.cls) {
      case CommandClass::unsupported:
        // A blocking command does not block inside MULTI (redis runs it at once): queued by its keys.
        if (cmd.has_flag(kFlagBlocking) && !cmd.key_specs.empty()) break;
        return refuse("ERR " + display_name(name) + ": " + std::string(cmd.reason));
      case CommandClass::local:
        return refuse("ERR " + display_name(name) + " cannot be queued in a transaction through ringproxy: the proxy "
                      "answers it itself; send it before MULTI or after EXEC");
      case CommandClass::admin:
      case CommandClass::read:
      case CommandClass::write:
        break;
    }
    if (cmd.fanout >= Fanout::all_shards && cmd.fanout != Fanout::random_shard) {  // (one server's: TIME)
      return refuse("ERR " + display_name(name) + " cannot be queued in a transaction through ringproxy: it runs on every "
                    "shard, a transaction on one");
    }
  }
  positions.clear();
  if (!server_runs_it) {
    std::string_view key_error = find_key_positions(cmd, args, positions);
    if (!key_error.empty()) return refuse("ERR " + std::string(key_error));
  }
  QueueDecision decision;
  for (uint32_t position : positions) {
    const uint32_t shard = table.shard_of(args[position]);
    const uint32_t expected = decision.shard.value_or(tx_shard.value_or(shard));
    if (shard != expected) return refuse(other_shard_error(table, expected, shard, args[position]));
    decision.shard = shard;
  }
  // SPOP picks at random: every server of a replicated shard would pop something else (outside
  // a transaction the proxy sends the others what the first popped; inside one it cannot).
  const std::optional<uint32_t> shard = decision.shard ? decision.shard : tx_shard;
  if (name == "spop" && shard && replicated(table, *shard)) {
    return refuse("ERR SPOP cannot be queued in a transaction on replicated shard '" + table.shards()[*shard].name +
                  "': each server would pop different members; run it outside MULTI");
  }
  return decision;
}

WatchDecision decide_watch(std::span<const std::string_view> args, const RoutingTable& table,
                           std::optional<uint32_t> watched_shard) {
  WatchDecision decision;
  for (size_t i = 1; i < args.size(); ++i) {
    const uint32_t shard = table.shard_of(args[i]);
    const uint32_t expected = decision.shard.value_or(watched_shard.value_or(shard));
    if (shard != expected) {
      decision.error = other_shard_error(table, expected, shard, args[i]);
      decision.shard.reset();
      return decision;
    }
    decision.shard = shard;
  }
  return decision;
}

const CommandInfo& transaction_command(bool writes) { return writes ? kTransactionWrite : kTransactionRead; }
const CommandInfo& watched_transaction_command() { return kTransactionWatched; }
const CommandInfo& led_transaction_command() { return kTransactionLed; }

bool copy_with_leader_ids(std::string_view block, std::string_view leader_replies, std::string& out) {
  // The commands: arrays of bulk strings, framed as replies are.
  std::vector<std::string_view> commands;
  for (size_t at = 0; at < block.size();) {
    resp::ReplyScanner scanner;
    if (scanner.scan(block.data() + at, block.size() - at) != resp::ParseStatus::complete) return false;
    commands.push_back(block.substr(at, scanner.reply_bytes()));
    at += scanner.reply_bytes();
  }
  std::vector<std::string_view> results;
  if (commands.size() < 2 || !resp::split_array_reply(resp::last_reply(leader_replies), results) ||
      results.size() != commands.size() - 2) {
    return false;
  }
  bool changed = false;
  std::string rebuilt;
  std::vector<std::string_view> elements, args;
  for (size_t i = 0; i < commands.size(); ++i) {
    const bool queued = i > 0 && i + 1 < commands.size();
    std::optional<std::string_view> id;
    std::optional<size_t> position;
    if (queued && resp::split_array_reply(commands[i], elements)) {
      args.clear();
      for (std::string_view e : elements) args.push_back(resp::bulk_string_reply(e).value_or(std::string_view()));
      position = xadd_auto_id(args);
      if (position) id = resp::bulk_string_reply(results[i - 1]);
    }
    if (!position || !id) {
      rebuilt.append(commands[i]);
      continue;
    }
    args[*position] = *id;
    resp::append_command(rebuilt, args);
    changed = true;
  }
  if (changed) out = std::move(rebuilt);
  return changed;
}

void exec_reply(std::string_view replies, std::string& out) {
  const std::string_view last = resp::last_reply(replies);
  if (last.empty()) {
    resp::append_error(out, "ERR unexpected reply to a transaction from its server");
    return;
  }
  const std::string_view first_error = resp::first_error_reply(replies);
  if (last.starts_with("-EXECABORT") && !first_error.empty() && first_error != last) {
    std::string_view why = first_error.substr(1, first_error.find('\r') - 1);
    resp::append_error(out, "EXECABORT Transaction discarded because of previous errors: the server refused a "
                            "queued command: " + std::string(why.substr(0, 256)));
    return;
  }
  out.append(last);
}

}  // namespace ringproxy::routing
