#include "proxy/transactions/transactions.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "proxy/backend/backend_server.h"
#include "routing/replication.h"
#include "routing/resharding.h"
#include "routing/resp/writer.h"
#include "routing/planner.h"
#include "routing/transaction.h"

namespace ringproxy::proxy {
namespace {

constexpr std::string_view kMulti = "*1\r\n$5\r\nMULTI\r\n";
constexpr std::string_view kExec = "*1\r\n$4\r\nEXEC\r\n";
constexpr std::string_view kUnwatch = "*1\r\n$7\r\nUNWATCH\r\n";
constexpr std::string_view kOk = "+OK\r\n";
enum Outcome : size_t { kExecuted = 0, kExecAbort = 1, kDiscarded = 2, kWatchLost = 3 };

uint64_t wall_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// The request's bytes become `bytes` (what goes to the server instead of what the client sent).
void replace_bytes(Request& request, std::string_view bytes) {
  Block* block = Block::create(bytes.size());
  std::memcpy(block->data(), bytes.data(), bytes.size());
  request.raw = std::string_view(block->data(), bytes.size());
  request.request_block = BlockRef::adopt(block);
}

}  // namespace

void Transactions::answer(Request& request, std::string_view reply) {
  request.owned_reply.assign(reply);
  data_path_.complete_local(request);
}

void Transactions::start(ClientSession& client, Request& request) {
  const std::string_view name = request.cmd->name;
  if (name == "multi" || name == "watch") {
    State& state = states_[&client];
    state = State{};
    state.topology = servers_.topology();
    state.previous = &client.handler();
    client.set_handler(this);
    if (name == "watch") {
      watch(client, state, request);
      if (state.server == nullptr) end(client, true);  // refused: nothing watched
      return;
    }
    state.queuing = true;
    return answer(request, kOk);
  }
  if (name == "unwatch") return answer(request, kOk);  // nothing is watched
  data_path_.reply_error(request, name == "exec" ? "ERR EXEC without MULTI" : "ERR DISCARD without MULTI");
}

void Transactions::dispatch(ClientSession& client, Request& request) {
  auto it = states_.find(&client);
  if (it == states_.end()) {  // (not ours any more)
    client.set_handler(&data_path_.handler_for(client));
    return client.handler().dispatch(client, request);
  }
  State& state = it->second;
  if (client.protocol() == 3) DataPath::take_resp3_bytes(request);  // as the data path's RESP3 entry does
  // Redis's queuing errors: an unknown command, a wrong arity or a refused one aborts the
  // transaction as well.
  if (!data_path_.classify_request(client, request)) {
    if (state.queuing) state.aborted = true;
    return;
  }
  const routing::CommandInfo& cmd = *request.cmd;
  if (state.queuing) {
    const std::optional<uint32_t> tx_shard = state.shard ? state.shard : state.watched_shard;
    routing::QueueDecision decision =
        routing::decide_queued(cmd, request.args, *state.topology->table, tx_shard, positions_);
    switch (decision.what) {
      case routing::InTransaction::exec: return exec(client, state, request);
      case routing::InTransaction::discard: return discard(client, state, request);
      case routing::InTransaction::run_now:  // QUIT, RESET (nothing is in flight on the connection)
        end(client, false);
        return data_path_.carry_out_request(client, request);
      case routing::InTransaction::error_only: return data_path_.reply_error(request, decision.error);
      case routing::InTransaction::refuse:
        state.aborted = true;
        return data_path_.reply_error(request, decision.error);
      case routing::InTransaction::queue:
        if (decision.shard) state.shard = decision.shard;
        return queue(state, request);
    }
    return;
  }
  // Watching, before MULTI.
  const std::string_view name = cmd.name;
  if (name == "multi") {
    state.queuing = true;
    return answer(request, kOk);
  }
  if (name == "watch") return watch(client, state, request);
  if (name == "unwatch") {
    replace_bytes(request, kUnwatch);
    return on_connection(client, state, request, 1, true);
  }
  if (name == "exec") return data_path_.reply_error(request, "ERR EXEC without MULTI");
  if (name == "discard") return data_path_.reply_error(request, "ERR DISCARD without MULTI");
  if (name == "quit" || name == "reset") {  // (RESET unwatches, as redis does)
    end(client, false);
    return data_path_.carry_out_request(client, request);
  }
  // On a replicated shard another server than the watched one may lag behind it: the client's
  // reads of the watched shard go to the watched server (between its other requests).
  if (replicated_shard(*state.watched_shard) && reads_watched_shard(state, request)) {
    return on_connection(client, state, request, 1, false);
  }
  data_path_.carry_out_request(client, request);  // the usual way (the watch sees its writes)
}

bool Transactions::replicated_shard(uint32_t shard) const {
  const routing::RoutingTable& table = *servers_.topology()->table;
  return shard < table.shards().size() &&
         table.shards()[shard].replication.strategy != conf::ReplicationStrategy::none;
}

// A plain read whose keys are all on the watched shard.
bool Transactions::reads_watched_shard(const State& state, Request& request) {
  const routing::CommandInfo& cmd = *request.cmd;
  if (cmd.cls != routing::CommandClass::read || cmd.proxy_flags != 0 || data_path_.keys_moving()) return false;
  const routing::QueueDecision decision =
      routing::decide_queued(cmd, request.args, *servers_.topology()->table, state.watched_shard, positions_);
  return decision.what == routing::InTransaction::queue && decision.shard == state.watched_shard;
}

void Transactions::queue(State& state, Request& request) {
  if (request.cmd->proxy_flags != 0) data_path_.prepare_scripts(request);  // EVALSHA -> EVAL
  std::string command;
  if (request.raw.empty()) {  // inline, or a RESP3 client's (its bytes: resp3_raw)
    resp::append_command(command, request.args);
  } else {
    command.assign(request.raw);
  }
  const uint64_t limit = std::max<uint64_t>(64ull << 20, worker_.config().proxy.max_request_bytes);
  if (state.queued_bytes + command.size() > limit) {
    state.aborted = true;
    return data_path_.reply_error(request, "ERR transaction too large: its queued commands exceed " +
                                               std::to_string(limit >> 20) + " MiB");
  }
  state.queued_bytes += command.size();
  State::Queued& queued = state.commands.emplace_back();
  queued.bytes = std::move(command);
  if (routing::rewrite_relative_expiry(request.args, 0, rewritten_)) {  // (its arguments, for EXEC)
    queued.args.assign(request.args.begin(), request.args.end());
  }
  state.leads = state.leads || routing::xadd_auto_id(request.args).has_value();
  for (uint32_t position : positions_) {  // (decide_queued's: this command's keys)
    if (state.keys.size() < 100000 && std::find(state.keys.end() - std::min<size_t>(state.keys.size(), 64),
                                                state.keys.end(), request.args[position]) == state.keys.end()) {
      state.keys.emplace_back(request.args[position]);
    }
  }
  state.writes = state.writes || request.cmd->cls == routing::CommandClass::write ||
                 request.cmd->cls == routing::CommandClass::admin || request.cmd->has_flag(routing::kFlagWrite);
  answer(request, "+QUEUED\r\n");
}

// On a replicated shard every server runs the transaction: relative expiry is made absolute
// as EXEC is sent (as for any replicated write), so a replay later expires the key at the same
// moment, and a TTL counts from EXEC, as on one server.
std::string Transactions::transaction_bytes(const State& state) {
  const routing::RoutingTable& table = *servers_.topology()->table;
  const bool replicated = state.shard && *state.shard < table.shards().size() &&
                          table.shards()[*state.shard].replication.strategy != conf::ReplicationStrategy::none;
  std::string block;
  block.reserve(kMulti.size() + state.queued_bytes + kExec.size());
  block.append(kMulti);
  const uint64_t now = wall_ms();
  for (const State::Queued& command : state.commands) {
    if (replicated && !command.args.empty()) {
      const std::vector<std::string_view> args(command.args.begin(), command.args.end());
      if (routing::rewrite_relative_expiry(args, now, rewritten_)) {
        const std::vector<std::string_view> views(rewritten_.begin(), rewritten_.end());
        resp::append_command(block, views);
        continue;
      }
    }
    block.append(command.bytes);
  }
  block.append(kExec);
  return block;
}

void Transactions::exec(ClientSession& client, State& state, Request& request) {
  if (state.aborted) {
    ++stats_.transactions[kExecAbort];
    answer(request, "-EXECABORT Transaction discarded because of previous errors.\r\n");
    return end(client, false);
  }
  if (state.server != nullptr && watch_lost(state)) {
    ++stats_.transactions[kWatchLost];
    answer(request, client.protocol() == 3 ? "_\r\n" : "*-1\r\n");  // as if a watched key had changed: retried
    return end(client, false);
  }
  // Checked against other shards than the ones keys now map to (a reload changed the ring).
  if (!routing::same_ring(*state.topology->table, *servers_.topology()->table)) {
    ++stats_.transactions[kExecAbort];
    answer(request, "-EXECABORT Transaction discarded: the shards changed (a reload) while it was queued; run it "
                    "again\r\n");
    return end(client, false);
  }
  ++stats_.transactions[kExecuted];
  const uint32_t replies = static_cast<uint32_t>(state.commands.size()) + 2;
  if (state.server != nullptr && !replicated_shard(*state.watched_shard)) {
    replace_bytes(request, transaction_bytes(state));
    return on_connection(client, state, request, replies, true);
  }
  if (state.server != nullptr) {
    // A replicated shard: planned like any transaction, led by the WATCH's server on its
    // connection, alone on the shard (which orders it after the client's earlier writes); the
    // client's next requests wait for it, then the connection goes back.
    const std::string block = transaction_bytes(state);
    const std::vector<std::string> keys = std::move(state.keys);
    state.giving_back = true;
    data_path_.run_transaction(request, *state.watched_shard, true, block, replies, keys,
                               DataPath::Watch{state.connection, state.connection_failures});
    client.wait_for_replies(nullptr);
    return;
  }
  if (state.commands.empty()) {
    answer(request, "*0\r\n");
    return end(client, true);
  }
  const std::string block = transaction_bytes(state);
  const uint32_t shard = state.shard.value_or(0);
  const bool writes = state.writes;
  const bool leads = state.leads && replicated_shard(shard);
  const std::vector<std::string> keys = std::move(state.keys);
  end(client, true);  // (the client's next requests go to the data path, behind this one)
  data_path_.run_transaction(request, shard, writes, block, replies, keys, std::nullopt, leads);
}

void Transactions::discard(ClientSession& client, State& state, Request& request) {
  ++stats_.transactions[kDiscarded];
  if (state.server != nullptr) {  // UNWATCH's +OK is DISCARD's
    replace_bytes(request, kUnwatch);
    return on_connection(client, state, request, 1, true);
  }
  answer(request, kOk);
  end(client, true);
}

void Transactions::watch(ClientSession& client, State& state, Request& request) {
  routing::WatchDecision decision = routing::decide_watch(request.args, *state.topology->table, state.watched_shard);
  if (!decision.error.empty()) return data_path_.reply_error(request, decision.error);
  if (state.server == nullptr) {
    // A replicated shard's WATCH goes to the server that leads its writes (a watched EXEC runs
    // there first).
    const routing::ShardEntry& shard = state.topology->table->shards()[*decision.shard];
    const std::optional<uint32_t> leader = routing::write_leader(shard, servers_.health_for_request());
    if (!leader) {
      return data_path_.reply_error(request, "ERR shard '" + shard.name + "' has no server that takes writes now: "
                                             "nothing to WATCH on");
    }
    BackendServer* server = servers_.servers()[*leader].get();
    std::string error;
    BackendConnection* connection = server->take_dedicated(error, client.protocol() == 3);
    if (connection == nullptr) return data_path_.reply_error(request, error);
    state.server = server;
    state.connection = connection;
    state.connection_failures = connection->failures();
    state.watched_shard = decision.shard;
  }
  on_connection(client, state, request, 1, false);
}

void Transactions::on_connection(ClientSession& client, State& state, Request& request, uint32_t replies,
                                 bool give_back) {
  state.lease_replies = replies;
  state.giving_back = give_back;
  if (client.wait_for_replies(&request)) return;  // on_replies_written() sends it
  send_on_connection(client, state, request);
}

void Transactions::send_on_connection(ClientSession& client, State& state, Request& request) {
  data_path_.send_dedicated(request, *state.connection, state.lease_replies);
  client.wait_for_replies(nullptr);  // (it is in the queue: this waits)
}

void Transactions::on_replies_written(ClientSession& client, Request* waited) {
  auto it = states_.find(&client);
  if (it == states_.end()) return;
  State& state = it->second;
  if (waited != nullptr) return send_on_connection(client, state, *waited);
  if (state.giving_back) end(client, true);
}

void Transactions::on_client_closed(ClientSession& client) {
  if (states_.contains(&client)) end(client, false);
}

bool Transactions::watch_lost(const State& state) const {
  return state.connection->failures() != state.connection_failures || state.server->detached();
}

void Transactions::end(ClientSession& client, bool clean) {
  auto it = states_.find(&client);
  if (it == states_.end()) return;
  State& state = it->second;
  if (state.server != nullptr) state.server->give_back_dedicated(state.connection, clean && !watch_lost(state));
  RequestHandler* previous = state.previous;
  states_.erase(it);
  if (&client.handler() != this) return;
  // Back where it was: the data path, or a RESP3 subscriber's pub/sub (which passes a client
  // it no longer knows on to the data path).
  client.set_handler(previous != nullptr && !data_path_.is_entry(*previous) ? previous : &data_path_.handler_for(client));
}

}  // namespace ringproxy::proxy
