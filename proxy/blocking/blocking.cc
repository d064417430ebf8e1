#include "proxy/blocking/blocking.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include <hiredis/hiredis.h>

#include "proxy/backend/backend_connection.h"
#include "proxy/backend/backend_server.h"
#include "proxy/net/side_link.h"
#include "routing/planner.h"

namespace ringproxy::proxy {
namespace {

constexpr uint64_t kFirstBackoffMs = 10, kLastBackoffMs = 250;
constexpr uint64_t kTickMs = 5;

}  // namespace

Blocking::Blocking(Worker& worker, Servers& servers, DataPath& data_path, ProxyStats& stats)
    : worker_(worker), servers_(servers), data_path_(data_path), stats_(stats) {}

Blocking::~Blocking() = default;

void Blocking::start_timer() {
  uv_timer_init(worker_.loop(), &timer_);
  timer_.data = this;
}

void Blocking::stop() { uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr); }

void Blocking::start(ClientSession& client, Request& request) {
  if (client.handler().holds_transaction(client)) {
    return data_path_.reply_error(request, "ERR " + routing::display_name(request.cmd->name) +
                                               " cannot block while a WATCH holds the client's connection; UNWATCH "
                                               "first, or call it inside MULTI");
  }
  if (data_path_.keys_moving()) {
    return data_path_.reply_error(request, "ERR blocking commands are refused while keys move between shards after a "
                                           "reload (INFO proxy: migration_state); retry once it is over");
  }
  const routing::RoutingTable& table = *servers_.topology()->table;
  routing::BlockingDecision decision = routing::decide_blocking(*request.cmd, request.args, table, positions_);
  if (decision.key_count_error) return data_path_.run_internal(request);  // refused by a server at once, in its words
  if (!decision.error.empty()) return data_path_.reply_error(request, decision.error);
  const routing::ShardEntry& shard = table.shards()[decision.shard];
  if (decision.pops && shard.replication.strategy != conf::ReplicationStrategy::none) {
    return in_proxy(client, request, std::move(decision));
  }
  on_server(client, request, decision);
}

// The command goes as it is, alone on a dedicated connection, once the client's earlier
// requests are answered (none runs after it on the server, as on redis).
void Blocking::on_server(ClientSession& client, Request& request, const routing::BlockingDecision& decision) {
  if (client.wait_for_replies(&request)) return;  // the data path hands it back then (on_replies_written)
  const routing::ShardEntry& shard = servers_.topology()->table->shards()[decision.shard];
  const std::optional<uint32_t> server_index = shard.replication.strategy == conf::ReplicationStrategy::none
                                                   ? std::optional<uint32_t>(shard.servers.front())
                                                   : routing::write_leader(shard, servers_.health_for_request());
  if (!server_index) {
    return data_path_.reply_error(request, "ERR shard '" + shard.name + "' has no live server to block on now");
  }
  BackendServer* server = servers_.servers()[*server_index].get();
  std::string error;
  BackendConnection* connection = server->take_dedicated(error, client.protocol() == 3);
  if (connection == nullptr) return data_path_.reply_error(request, error);
  connection->allow_blocking(decision.timeout_ms);
  Blocked& blocked = blocked_[&client];
  blocked = Blocked{};
  blocked.request = &request;
  blocked.server = server;
  blocked.connection = connection;
  blocked.connection_failures = connection->failures();
  blocked.previous = &client.handler();
  ++stats_.blocked_on_servers;
  client.set_handler(this);
  data_path_.send_dedicated(request, *connection, 1);
  client.wait_for_replies(nullptr);  // (its reply is not written yet: this waits)
  client.keep_reading_while_waiting();
}

// A pop on a replicated shard: its non-blocking form, as an ordinary replicated write, now and
// whenever something may have come (routing/blocking.h).
void Blocking::in_proxy(ClientSession& client, Request& request, routing::BlockingDecision decision) {
  Blocked& blocked = blocked_[&client];
  blocked = Blocked{};
  blocked.request = &request;
  blocked.in_proxy = true;
  blocked.protocol = client.protocol();
  blocked.shard = decision.shard;
  blocked.keys = std::move(decision.keys);
  blocked.pop = std::move(decision.nonblocking);
  blocked.shape = decision.shape;
  const uint64_t now = worker_.now_ms();
  blocked.deadline_ms = decision.timeout_ms ? now + *decision.timeout_ms : 0;
  blocked.backoff_ms = kFirstBackoffMs;
  request.fragments_pending = 1;  // (a token: the request lives until it is answered, client or not)
  ++waiting;
  ++stats_.blocked_in_proxy;
  blocked.previous = &client.handler();
  client.set_handler(this);
  client.wait_for_replies(nullptr);
  client.keep_reading_while_waiting();
  try_pop(blocked);
}

void Blocking::try_pop(Blocked& blocked) {
  if (blocked.attempt != nullptr) {
    blocked.again = true;
    return;
  }
  Request* pop = data_path_.internal_request(blocked.pop, &routing::proxy_pop_marker());
  blocked.attempt = pop;
  attempts_[pop] = blocked.request->client;
  ++stats_.proxy_pops;
  data_path_.run_internal(*pop);  // (may be answered at once: on_pop_answered)
}

void Blocking::on_pop_answered(Request& pop, std::string_view reply) {
  auto it = attempts_.find(&pop);
  if (it == attempts_.end()) return;  // an undo's answer
  const ClientSession* client = it->second;
  attempts_.erase(it);
  auto found = blocked_.find(client);
  if (found == blocked_.end() || found->second.attempt != &pop) {
    // Its client left while it was in flight: what it took goes back where it was.
    const std::vector<std::string> args(pop.args.begin(), pop.args.end());
    if (std::optional<std::vector<std::string>> undo = routing::undo_pop(args, reply)) {
      spdlog::info("a pop for a client that left meanwhile took an element: {} puts it back", (*undo)[0]);
      ++stats_.proxy_pops_undone;
      if (Request* back = data_path_.internal_request(*undo, &routing::proxy_pop_marker())) {
        data_path_.run_internal(*back);
      }
    }
    return;
  }
  Blocked& blocked = found->second;
  blocked.attempt = nullptr;
  if (std::optional<std::string> answer = routing::blocked_reply(blocked.shape, reply, blocked.protocol)) {
    return this->answer(blocked, *answer);
  }
  if (draining_) return this->answer(blocked, routing::timed_out_reply(blocked.protocol));  // (no waiting now)
  // Nothing yet. Tried again by the timer (not from inside this reply's handling).
  const uint64_t now = worker_.now_ms();
  if (std::exchange(blocked.again, false)) {
    blocked.next_try_ms = now;
  } else {
    blocked.next_try_ms = now + blocked.backoff_ms;
    blocked.backoff_ms = std::min(blocked.backoff_ms * 2, kLastBackoffMs);
  }
  if (!timer_running_) {
    timer_running_ = true;
    uv_timer_start(&timer_, on_tick, kTickMs, kTickMs);
  }
}

// A write to one of a waiting client's keys was acknowledged: its pop runs again at once.
void Blocking::on_write_acknowledged(const Request& write, uint32_t shard) {
  if (attempts_.contains(&write)) return;  // (a pop of ours: it fed nobody)
  for (auto& entry : blocked_) {
    Blocked& blocked = entry.second;  // (not a structured binding: clang 14 cannot capture one)
    if (!blocked.in_proxy || blocked.answered || blocked.shard != shard) continue;
    const bool touches = std::any_of(write.args.begin() + 1, write.args.end(), [&](std::string_view arg) {
      return std::find(blocked.keys.begin(), blocked.keys.end(), arg) != blocked.keys.end();
    });
    if (!touches) continue;
    if (blocked.attempt != nullptr) {
      blocked.again = true;
    } else {
      blocked.next_try_ms = 0;
      blocked.backoff_ms = kFirstBackoffMs;
    }
  }
}

void Blocking::on_tick(uv_timer_t* timer) { static_cast<Blocking*>(timer->data)->tick(); }

void Blocking::tick() {
  const uint64_t now = worker_.now_ms();
  bool anyone = false;
  for (auto& [client, blocked] : blocked_) {
    if (!blocked.in_proxy || blocked.answered) continue;
    anyone = true;
    if (blocked.attempt != nullptr) continue;
    if (blocked.deadline_ms != 0 && now >= blocked.deadline_ms) {
      answer(blocked, routing::timed_out_reply(blocked.protocol));
    } else if (now >= blocked.next_try_ms) {
      try_pop(blocked);
    }
  }
  if (!anyone && timer_running_) {
    timer_running_ = false;
    uv_timer_stop(&timer_);
  }
}

void Blocking::answer(Blocked& blocked, std::string_view reply) {
  blocked.answered = true;
  --waiting;
  --stats_.blocked_in_proxy;
  blocked.request->owned_reply.assign(reply);
  data_path_.complete_async_local(*blocked.request);  // written, then on_replies_written() ends it
}

bool Blocking::unblock(uint64_t id, bool error) {
  for (auto& [client, blocked] : blocked_) {
    if (client->id() != id || blocked.answered || blocked.request->done) continue;
    const std::string_view reply = error ? "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
                                         : routing::timed_out_reply(client->protocol());
    if (blocked.in_proxy) {
      answer(blocked, reply);  // (a pop in flight: undone when it comes back, its client no longer waiting)
      blocked.attempt = nullptr;
      return true;
    }
    // On a server: answered now, and its connection closed (the server cancels the block).
    Request& request = *blocked.request;
    request.owned_reply.assign(reply);
    request.reply = request.owned_reply;
    request.done = true;
    request.client->on_request_done(request);
    blocked.server->give_back_dedicated(std::exchange(blocked.connection, nullptr), false);
    --stats_.blocked_on_servers;
    return true;
  }
  return false;
}

void Blocking::end_waits_in_proxy() {
  draining_ = true;
  std::vector<uint64_t> ids;  // (answering one may end it: blocked_ changes)
  for (const auto& [client, blocked] : blocked_) {
    if (blocked.in_proxy && !blocked.answered) ids.push_back(client->id());
  }
  for (uint64_t id : ids) unblock(id, false);
}

namespace {

// CLIENT LIST, then CLIENT UNBLOCK <id> TIMEOUT for the client at `addr`, on a side link of its
// own; deletes itself when the link ends.
class UnblockOnServer {
 public:
  static void start(BackendServer& server, std::string addr) {
    auto* job = new UnblockOnServer(std::move(addr));
    std::string why;
    job->link_ = SideLink::open(server.login(), server.worker(), job, on_connect, on_disconnect, &why);
    if (job->link_ == nullptr) {
      spdlog::warn("drain: cannot reach {} to unblock a client blocked there: {}", server.address().to_string(), why);
      delete job;
      return;
    }
    const std::vector<std::string> list{"CLIENT", "LIST", "TYPE", "normal"};
    job->link_->command_args(on_list, nullptr, list);
  }

 private:
  explicit UnblockOnServer(std::string addr) : addr_(std::move(addr)) {}
  static void on_connect(SideLink* link, bool ok) {
    if (!ok) delete static_cast<UnblockOnServer*>(link->data());  // (the link is gone)
  }
  static void on_disconnect(SideLink* link) { delete static_cast<UnblockOnServer*>(link->data()); }
  static void on_list(SideLink* link, redisReply* reply, void*) {
    if (reply == nullptr) return;
    auto* self = static_cast<UnblockOnServer*>(link->data());
    std::optional<uint64_t> id;
    if (reply->type == REDIS_REPLY_STRING) id = routing::client_id_at(std::string_view(reply->str, reply->len), self->addr_);
    if (!id) {
      if (reply->type == REDIS_REPLY_ERROR) {
        spdlog::warn("drain: cannot unblock a client blocked on a server (CLIENT LIST: {}); it waits for its timeout",
                     std::string_view(reply->str, reply->len));
      }
      return link->close();
    }
    const std::vector<std::string> unblock{"CLIENT", "UNBLOCK", std::to_string(*id), "TIMEOUT"};
    link->command_args(on_unblocked, nullptr, unblock);
  }
  static void on_unblocked(SideLink* link, redisReply*, void*) { link->close(); }

  std::string addr_;
  SideLink* link_ = nullptr;
};

}  // namespace

void Blocking::end_blocks_on_servers() {
  for (const auto& [client, blocked] : blocked_) {
    if (blocked.in_proxy || blocked.answered || blocked.connection == nullptr) continue;
    if (blocked.connection->local_address().empty()) continue;  // (not connected: nothing blocks there yet)
    UnblockOnServer::start(*blocked.server, blocked.connection->local_address());
  }
}

void Blocking::dispatch(ClientSession& client, Request& request) {  // (its requests wait: not expected)
  client.set_handler(&data_path_.handler_for(client));
  client.handler().dispatch(client, request);
}

void Blocking::on_replies_written(ClientSession& client, Request* waited) {
  end(client, true);
  if (waited != nullptr) client.handler().on_replies_written(client, waited);
}

void Blocking::on_client_closed(ClientSession& client) {
  auto it = blocked_.find(&client);
  if (it == blocked_.end()) return;
  Blocked& blocked = it->second;
  if (blocked.in_proxy && !blocked.answered) {  // (a pop in flight is undone when it comes back)
    blocked.answered = true;
    --waiting;
    --stats_.blocked_in_proxy;
    data_path_.complete_async_local(*blocked.request);
  }
  // Its request is not answered now (no error reply counted for a client that left).
  if (blocked.connection != nullptr) blocked.request->done = true;
  end(client, false);  // closes a dedicated connection: the server cancels the block
}

void Blocking::end(ClientSession& client, bool clean) {
  auto it = blocked_.find(&client);
  if (it == blocked_.end()) return;
  Blocked& blocked = it->second;
  if (blocked.connection != nullptr) {
    const bool intact = blocked.connection->failures() == blocked.connection_failures;
    blocked.server->give_back_dedicated(blocked.connection, clean && intact);
    --stats_.blocked_on_servers;
  }
  if (blocked.in_proxy && !blocked.answered) {
    --waiting;
    --stats_.blocked_in_proxy;
  }
  RequestHandler* previous = blocked.previous;
  blocked_.erase(it);
  if (&client.handler() != this) return;
  client.set_handler(previous != nullptr && !data_path_.is_entry(*previous) ? previous : &data_path_.handler_for(client));
}

}  // namespace ringproxy::proxy
