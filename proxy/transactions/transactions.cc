#include "proxy/transactions/transactions.h"

#include <chrono>
#include <cstring>

#include "proxy/backend/backend_server.h"
#include "routing/replication.h"
#include "routing/resp/writer.h"
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
    client.set_handler(&data_path_);
    return data_path_.dispatch(client, request);
  }
  State& state = it->second;
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
      case routing::InTransaction::run_now:
        end(client, false);
        return data_path_.carry_out_request(client, request);
      case routing::InTransaction::error_only: return data_path_.reply_error(request, decision.error);
      case routing::InTransaction::refuse:
        state.aborted = true;
        return data_path_.reply_error(request, decision.error);
      case routing::InTransaction::queue:
        if (decision.shard) state.shard = decision.shard;
        return queue(client, state, request);
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
  if (name == "unwatch") return send_then_give_back(client, state, request, kUnwatch, 1);
  if (name == "exec") return data_path_.reply_error(request, "ERR EXEC without MULTI");
  if (name == "discard") return data_path_.reply_error(request, "ERR DISCARD without MULTI");
  if (name == "quit" || name == "reset") {
    end(client, false);
    return data_path_.carry_out_request(client, request);
  }
  // Its commands for the watched server go behind the WATCH; the others as usual.
  if (!watch_lost(state) && data_path_.send_dedicated(request, *state.connection, 1, true)) return;
  data_path_.carry_out_request(client, request);
}

void Transactions::queue(ClientSession&, State& state, Request& request) {
  if (request.cmd->proxy_flags != 0) data_path_.prepare_scripts(request);  // EVALSHA -> EVAL
  const routing::RoutingTable& table = *state.topology->table;
  const bool replicated =
      state.shard && table.shards()[*state.shard].replication.strategy != conf::ReplicationStrategy::none;
  const size_t before = state.queued.size();
  // On a replicated shard every server runs the transaction: relative expiry made absolute,
  // as for any replicated write (and a replay later expires the key at the same moment).
  if (replicated && routing::rewrite_relative_expiry(request.args, wall_ms(), rewritten_)) {
    std::vector<std::string_view> views(rewritten_.begin(), rewritten_.end());
    resp::append_command(state.queued, views);
  } else if (request.raw.empty()) {  // inline request
    resp::append_command(state.queued, request.args);
  } else {
    state.queued.append(request.raw);
  }
  const uint64_t limit = std::max<uint64_t>(64ull << 20, worker_.config().proxy.max_request_bytes);
  if (state.queued.size() > limit) {
    state.queued.resize(before);
    state.aborted = true;
    return data_path_.reply_error(request, "ERR transaction too large: its queued commands exceed " +
                                               std::to_string(limit >> 20) + " MiB");
  }
  ++state.queued_count;
  state.writes = state.writes || request.cmd->cls == routing::CommandClass::write ||
                 request.cmd->cls == routing::CommandClass::admin;
  answer(request, "+QUEUED\r\n");
}

void Transactions::exec(ClientSession& client, State& state, Request& request) {
  if (state.aborted) {
    ++stats_.transactions[kExecAbort];
    answer(request, "-EXECABORT Transaction discarded because of previous errors.\r\n");
    return end(client, false);
  }
  if (state.server != nullptr && watch_lost(state)) {
    ++stats_.transactions[kWatchLost];
    answer(request, "*-1\r\n");  // as if a watched key had changed: the client runs it again
    return end(client, false);
  }
  if (servers_.topology() != state.topology || data_path_.keys_moving()) {
    ++stats_.transactions[kExecAbort];
    answer(request, "-EXECABORT Transaction discarded: the shards changed (a reload) while it was queued; run it "
                    "again\r\n");
    return end(client, false);
  }
  ++stats_.transactions[kExecuted];
  std::string block;
  block.reserve(kMulti.size() + state.queued.size() + kExec.size());
  block.append(kMulti).append(state.queued).append(kExec);
  const uint32_t replies = state.queued_count + 2;
  if (state.server != nullptr) return send_then_give_back(client, state, request, block, replies);
  if (state.queued_count == 0) {
    answer(request, "*0\r\n");
    return end(client, true);
  }
  const uint32_t shard = state.shard.value_or(0);
  const bool writes = state.writes;
  end(client, true);  // (the client's next requests go to the data path, behind this one)
  data_path_.run_transaction(request, shard, writes, block, replies);
}

void Transactions::discard(ClientSession& client, State& state, Request& request) {
  ++stats_.transactions[kDiscarded];
  if (state.server != nullptr) return send_then_give_back(client, state, request, kUnwatch, 1);  // +OK
  answer(request, kOk);
  end(client, true);
}

void Transactions::watch(ClientSession& client, State& state, Request& request) {
  routing::WatchDecision decision = routing::decide_watch(request.args, *state.topology->table, state.watched_shard);
  if (!decision.error.empty()) return data_path_.reply_error(request, decision.error);
  if (state.server == nullptr) {
    const routing::ShardEntry& shard = state.topology->table->shards()[*decision.shard];
    BackendServer* server = servers_.servers()[shard.servers.front()].get();
    std::string error;
    BackendConnection* connection = server->take_dedicated(error);
    if (connection == nullptr) return data_path_.reply_error(request, error);
    state.server = server;
    state.connection = connection;
    state.connection_failures = connection->failures();
    state.watched_shard = decision.shard;
    // The first WATCH waits for the client's earlier requests (on the shared connection) to
    // be answered: the watch then sees their effects, and nothing of the client overtakes.
    if (client.wait_for_replies(&request)) return;  // on_replies_written() sends it
  }
  data_path_.send_dedicated(request, *state.connection, 1, false);
}

void Transactions::send_then_give_back(ClientSession& client, State& state, Request& request, std::string_view bytes,
                                       uint32_t replies) {
  replace_bytes(request, bytes);
  state.giving_back = true;
  data_path_.send_dedicated(request, *state.connection, replies, false);
  // Given back once everything sent on it is answered: what the client sends next goes to
  // the shared connections again, after it.
  if (!client.wait_for_replies(nullptr)) end(client, true);
}

void Transactions::on_replies_written(ClientSession& client, Request* waited) {
  auto it = states_.find(&client);
  if (it == states_.end()) return;
  State& state = it->second;
  if (waited != nullptr) {  // the first WATCH's turn
    data_path_.send_dedicated(*waited, *state.connection, 1, false);
    return;
  }
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
  states_.erase(it);
  client.set_handler(&data_path_);
}

}  // namespace ringproxy::proxy
