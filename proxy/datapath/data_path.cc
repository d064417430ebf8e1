// The data path: classify -> plan -> send -> reduce -> reply. See the diagram in data_path.h.
#include "proxy/datapath/data_path.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "proxy/backend/backend_server.h"
#include "routing/access.h"
#include "routing/keys.h"
#include "routing/resp/reply_scanner.h"
#include "routing/resp/writer.h"
#include "routing/blocking.h"
#include "routing/planner.h"
#include "routing/transaction.h"

namespace ringproxy::proxy {
namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Redis's wording, so clients and their users see familiar errors.
std::string unknown_command_error(std::span<const std::string_view> args) {
  std::string error = "ERR unknown command '";
  error.append(args[0].substr(0, 128)).append("', with args beginning with: ");
  for (size_t i = 1; i < args.size() && error.size() < 256; ++i) {
    error.append("'").append(args[i].substr(0, 64)).append("' ");
  }
  return error;
}

}  // namespace

DataPath::DataPath(Worker& worker, Servers& servers, RequestPool& requests, ProxyStats& stats)
    : worker_(worker), servers_(servers), requests_(requests), stats_(stats) {}

DataPath::~DataPath() {
  for (Request* request : held_requests_) {
    if (request->client == nullptr) requests_.give_back(request);
  }
}

void DataPath::start() {
  plan_scratch_.server_epochs = &servers_.epochs();  // (not in the constructor: the Servers is built after us)
  uv_timer_init(worker_.loop(), &releaser_);
  releaser_.data = this;
}

void DataPath::stop() { uv_close(reinterpret_cast<uv_handle_t*>(&releaser_), nullptr); }

// classify -> local answer, or plan -> send.
void DataPath::dispatch(ClientSession& client, Request& request) {
  if (!classify(client, request)) return;
  carry_out(client, request);
}

// classify: the command's table entry (a container's subcommand), its arity, the client's
// permissions. False: refused (answered).
[[gnu::always_inline]] inline bool DataPath::classify(ClientSession& client, Request& request) {
  ++stats_.requests;
  std::span<const std::string_view> args = request.args;

  const routing::CommandInfo* cmd = routing::find_command(args[0]);
  request.top_cmd = cmd;  // its metrics label
  if (cmd == nullptr) return reply_error(request, unknown_command_error(args)), false;
  if (cmd->is_container() && args.size() >= 2) {
    const routing::CommandInfo* sub = routing::find_subcommand(*cmd, args[1]);
    if (sub == nullptr) {
      reply_error(request, "ERR unknown subcommand '" + std::string(args[1].substr(0, 128)) + "'. Try " +
                               lower(cmd->name) + " HELP.");
      return false;
    }
    cmd = sub;
  }
  request.cmd = cmd;
  if (!routing::arity_ok(*cmd, args.size())) {  // (redis 7.0 names a subcommand 'container|sub')
    reply_error(request, "ERR wrong number of arguments for '" + std::string(cmd->name) + "' command");
    return false;
  }

  if (client.checked()) {  // users are configured and this client is not an unrestricted admin
    if (client.user() == nullptr) {
      if (!routing::runs_unauthenticated(*cmd)) return reply_error(request, "NOAUTH Authentication required."), false;
    } else if (std::string refused = routing::refusal(*client.user(), *cmd, args, key_positions_);
               !refused.empty()) {
      reply_error(request, refused);
      return false;
    }
  }
  return true;
}

// A classified request: answered here, or planned and sent.
[[gnu::always_inline]] inline void DataPath::carry_out(ClientSession& client, Request& request) {
  const routing::CommandInfo* cmd = request.cmd;
  if (cmd->cls == routing::CommandClass::local) return local_->answer(client, request);
  if (cmd->proxy_flags != 0) [[unlikely]] {  // blocking commands; scripts the proxy remembers
    if (!carry_out_noted(client, request)) return;
  }
  route(request);
}

// A command with a proxy note (routing::ProxyFlag): false when it was taken care of here.
// (Cold and out of line: inlined into carry_out, it cost every GET 15 instructions.)
[[gnu::cold, gnu::noinline]] bool DataPath::carry_out_noted(ClientSession& client, Request& request) {
  const routing::CommandInfo* cmd = request.cmd;
  std::span<const std::string_view> args = request.args;
  if (routing::blocks(*cmd, args)) return blocking_->start(client, request), false;
  // A key moving from a shard not scanned yet to one scanned already would be missed.
  if (cmd->has_proxy_flag(routing::kProxyWholeKeyspace) && key_moves_ != nullptr && key_moves_->keys_moving()) {
    reply_error(request, "ERR " + std::string(args[0].substr(0, 16)) +
                             " is refused while keys move between shards after a reload (a key that moves "
                             "during it could be missed); retry once the migration is over (INFO proxy: "
                             "migration_state)");
    return false;
  }
  note_scripts(request);
  return true;
}

[[gnu::cold, gnu::noinline]] Request* DataPath::internal_request(std::span<const std::string> args, const routing::CommandInfo* marker) {
  const routing::CommandInfo* cmd = args.empty() ? nullptr : routing::find_command(args[0]);
  if (cmd == nullptr) return nullptr;
  rewritten_views_.assign(args.begin(), args.end());
  scratch_.clear();
  resp::append_command(scratch_, rewritten_views_);
  const size_t command_size = scratch_.size();
  for (const std::string& arg : args) scratch_.append(arg);
  Request* request = requests_.take();
  request->client = nullptr;
  std::string_view all;
  request->request_block = bytes_block(scratch_, &all);
  request->raw = all.substr(0, command_size);
  request->resp3_raw = {};
  request->args.clear();
  size_t at = command_size;
  for (const std::string& arg : args) {
    request->args.push_back(all.substr(at, arg.size()));
    at += arg.size();
  }
  request->cmd = cmd;
  request->top_cmd = marker;
  return request;
}

void DataPath::on_replies_written(ClientSession& client, Request* waited) {
  if (waited != nullptr) carry_out(client, *waited);
}

// (For the transactions: the same steps, out of the data path's own line.)
bool DataPath::classify_request(ClientSession& client, Request& request) { return classify(client, request); }
void DataPath::carry_out_request(ClientSession& client, Request& request) { carry_out(client, request); }

// EXEC of a queued transaction: `request` becomes MULTI ... EXEC (`block`, `replies` replies)
// for `shard`, routed like any request (a write is replicated, held, replayed as one).
void DataPath::run_transaction(Request& request, uint32_t shard, bool writes, std::string_view block,
                               uint32_t replies, std::span<const std::string> keys, std::optional<Watch> watch,
                               bool leads) {
  // Its arguments, ["EXEC", shard, shard name, replies, keys...], live in its block, after its bytes.
  const routing::RoutingTable& table = *servers_.topology()->table;
  const std::string head[] = {"EXEC", std::to_string(shard), table.shards()[shard].name, std::to_string(replies)};
  scratch_.assign(block);
  for (const std::string& word : head) scratch_.append(word);
  for (const std::string& key : keys) scratch_.append(key);
  std::string_view all;
  request.request_block = bytes_block(scratch_, &all);
  request.raw = all.substr(0, block.size());
  request.resp3_raw = {};
  request.args.clear();
  size_t at = block.size();
  auto add = [&](const std::string& word) {
    request.args.push_back(all.substr(at, word.size()));
    at += word.size();
  };
  for (const std::string& word : head) add(word);
  for (const std::string& key : keys) add(key);
  request.cmd = leads ? &routing::led_transaction_command() : &routing::transaction_command(writes);
  if (watch) {
    request.cmd = &routing::watched_transaction_command();
    request.watch_connection = watch->connection;
    request.watch_failures = watch->failures;
  }
  route(request);
}

// A watching client's WATCH, and its EXEC, DISCARD or UNWATCH, on its dedicated connection
// (`replies`: several for EXEC's MULTI ... EXEC; its reply is EXEC's).
void DataPath::send_dedicated(Request& request, BackendConnection& connection, uint32_t replies) {
  Fragment& fragment = single_fragment(request, true);
  if (replies > 1) {
    fragment.expect_replies(replies);
    request.groups.emplace_back(routing::AckRule{}, 0, 1, 0);
    request.reducer = std::make_unique<routing::Reducer>(routing::Merge::transaction,
                                                         std::vector<std::vector<uint32_t>>(1), 0);
  }
  connection.server().send_dedicated(fragment, connection);
}

void DataPath::send_to_server(Request& request, uint32_t server) {
  Fragment& fragment = single_fragment(request, false);
  fragment.server = servers_.servers()[server].get();
  send_fragment(request, fragment);  // (a RESP3 client's bytes: on its RESP3 way)
}

// The request as one fragment of its own bytes (`rebuild_resp3`: a RESP3 client's too, as a
// RESP2 multibulk, for a connection that is not switched for it).
Fragment& DataPath::single_fragment(Request& request, bool rebuild_resp3) {
  request.topology = servers_.topology();
  if (request.raw.empty() && (rebuild_resp3 || request.resp3_raw.empty())) {  // inline, or a RESP3 client's
    scratch_.clear();
    resp::append_command(scratch_, request.args);
    request.request_block = bytes_block(scratch_, &request.raw);
  }
  request.fragments.clear();
  request.fragments.emplace_back();
  request.fragments_pending = 1;
  Fragment& fragment = request.fragments.front();
  fragment.request = &request;
  fragment.bytes = request.raw.empty() ? request.resp3_raw : request.raw;
  fragment.bytes_block = request.request_block;
  fragment.state = Fragment::State::sent;
  return fragment;
}

// plan -> send, or hold the request while a shard it writes to is being cut over.
void DataPath::route(Request& request, bool keys_moved) {
  request.topology = servers_.topology();  // a held or parked request takes the snapshot of its turn
  // After a reload that changed the ring: a request for a key whose shard changed waits
  // here until that key has been moved (routing::previous_owners; see migration.h).
  if (key_moves_ != nullptr && !keys_moved && key_moves_->park_if_moving(request)) return;
  routing::plan(*request.cmd, request.args, *request.topology->table, servers_.health_for_request(),
                {worker_.config().proxy.allow_admin_commands},
                plan_scratch_, plan_);
  if (plan_.kind == routing::PlanKind::reject) return reply_error(request, plan_.error);
  if (plan_.replicated || !held_requests_.empty()) {
    bool held = !held_requests_.empty() && (request.cmd->cls == routing::CommandClass::write ||
                                            request.cmd->cls == routing::CommandClass::admin);
    for (const routing::PlannedGroup& g : plan_.groups) held = held || (plan_.replicated && servers_.shard_state(g.shard).held);
    if (!held && plan_.replicated && request.cmd->cls == routing::CommandClass::write) held = leader_change_waits(plan_);
    if (!held && request.cmd == &routing::watched_transaction_command()) held = waits_for_writes_in_flight(plan_);
    if (held) {
      // Writes stay in arrival order behind the held ones. A token in fragments_pending
      // keeps the request alive if its client leaves meanwhile.
      request.fragments_pending = 1;
      held_requests_.push_back(&request);
      return;
    }
  }
  send_plan(request, plan_);
}

// A write whose leader (the server that applies it first: the primary, the replica standing
// in for it, an SPOP's first live server; or none, for a write sent to every server at once)
// is not the shard's last leader waits until the writes the last one led are done: their
// copies go to the others only once it has answered, and must not land after the new
// leader's writes. An old leader that lags with writes in flight would answer late and send
// copies after the new leader's writes: it is made stale (resynced) instead.
bool DataPath::leader_change_waits(const routing::Plan& plan) {
  for (const routing::PlannedGroup& g : plan.groups) {
    if (g.count < 2) continue;
    BackendServer* leader = g.rule.primary_first ? servers_.servers()[plan.fragments[g.first].server].get() : nullptr;
    ShardRuntime& shard = servers_.shard_state(g.shard);
    if (shard.leader_known && shard.leader == leader) continue;
    if (shard.leader_known && shard.inflight_writes > 0) {
      shard.leader_change_pending = true;
      return true;
    }
    const bool known = std::exchange(shard.leader_known, true);
    BackendServer* previous = std::exchange(shard.leader, leader);
    if (!known || previous == nullptr || leader == nullptr) continue;  // not a change of server
    ++shard.leader_changes;
    shard.metrics.leader_changes->Increment();
    spdlog::info("shard {}: writes are now led by {}", shard.name, leader->name());
    for (auto& server : servers_.servers()) {  // `previous` may have been removed by a reload
      if (server.get() == previous && previous->mode() != routing::kServerLive && previous->settled_in_flight()) {
        previous->mark_stale("it lost the lead with writes in flight");
      }
    }
  }
  return false;
}

// A watched transaction runs alone on its shard: after every write in flight is done (their
// copies too), and the shard's other writes wait for it (send_plan holds them; leave_flight
// lets them go). On its leader it runs on the WATCH's own connection: a write on another
// connection of that server could run before or after it there, and its copies reach the
// other servers in another order.
bool DataPath::waits_for_writes_in_flight(const routing::Plan& plan) {
  for (const routing::PlannedGroup& g : plan.groups) {
    ShardRuntime& shard = servers_.shard_state(g.shard);
    if (shard.inflight_writes > 0) {
      shard.leader_change_pending = true;  // (released once they are done: leave_flight)
      return true;
    }
  }
  return false;
}

// Counted: a resync and a repair may hold the same shard at once.
void DataPath::hold_writes(ShardRuntime& shard, bool hold) {
  if (hold) {
    ++shard.held;
    return;
  }
  if (shard.held > 0 && --shard.held > 0) return;
  release_held_requests();
}

// A leader change may go ahead (leave_flight): the held writes are released on the next loop
// turn, outside the reply handling that noticed it.
void DataPath::release_held_soon() {
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&releaser_))) uv_timer_start(&releaser_, on_release, 0, 0);
}

void DataPath::on_release(uv_timer_t* handle) { static_cast<DataPath*>(handle->data)->release_held_requests(); }

void DataPath::resume_parked(Request& request, std::string_view error) {
  request.fragments_pending = 0;
  if (request.client == nullptr && request.top_cmd != &routing::proxy_pop_marker()) return requests_.give_back(&request);
  if (!error.empty()) return reply_error(request, error);
  route(request, true);
}

void DataPath::release_held_requests() {
  std::vector<Request*> held;
  held.swap(held_requests_);
  for (size_t i = 0; i < held.size(); ++i) {
    Request* request = held[i];
    request->fragments_pending = 0;
    if (request->client == nullptr && request->top_cmd != &routing::proxy_pop_marker()) {
      requests_.give_back(request);  // its client left while it waited
      continue;
    }
    if (!held_requests_.empty()) {  // held again (another shard): keep the order
      request->fragments_pending = 1;
      held_requests_.push_back(request);
      continue;
    }
    route(*request);
  }
}

void DataPath::fragment_finished(Request& request, bool leaves_flight) {
  --request.fragments_pending;
  if (leaves_flight) leave_flight(request);
}

// A replicated write stops counting as in flight for its shards once each copy is done or
// settled: a settled copy belongs to a lagging server, which neither a repair (live servers
// only) nor a resync cutover (a live peer) has to wait for.
void DataPath::leave_flight(Request& request) {
  if (request.fragments_in_flight == 0 || --request.fragments_in_flight > 0) return;
  const bool alone = request.cmd == &routing::watched_transaction_command();
  for (const GroupState& group : request.groups) {
    ShardRuntime& shard = *request.topology->shards[group.shard];
    if (--shard.inflight_writes == 0 && shard.leader_change_pending) {
      shard.leader_change_pending = false;
      release_held_soon();  // not inside this reply's handling
    }
    if (alone && shard.held > 0 && --shard.held == 0) release_held_soon();  // (see waits_for_writes_in_flight)
  }
}

BlockRef DataPath::bytes_block(std::string_view bytes, std::string_view* view) {
  Block* block = Block::create(bytes.size());
  std::memcpy(block->data(), bytes.data(), bytes.size());
  *view = std::string_view(block->data(), bytes.size());
  return BlockRef::adopt(block);
}

namespace {

// Wall-clock milliseconds: absolute expiry times are Unix times.
uint64_t wall_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

// (A transaction's is EXEC's reply: an -EXECABORT is a refusal, whatever MULTI answered.)
routing::WriteTracker::Outcome outcome_of(const Fragment& f) {
  if (f.failed) return routing::WriteTracker::Outcome::missed;
  const std::string_view reply = f.more_replies == 0 ? f.reply : resp::last_reply(f.reply);
  return resp::is_error_reply(reply) ? routing::WriteTracker::Outcome::error_reply
                                     : routing::WriteTracker::Outcome::ack;
}

}  // namespace

// send: forward and broadcast carry the client's own bytes (rebuilt only for inline
// requests, and for replicated writes with a relative expiry, made absolute); split builds
// one sub-command per shard. A replicated write goes to every server of the shard: now,
// after the primary acknowledged (stage 1), or into the replay queue of a server that is
// down.
bool DataPath::send_plan(Request& request, const routing::Plan& plan) {
  const size_t n = plan.fragments.size();
  if (n == 1 && plan.kind == routing::PlanKind::forward && !plan.replicated && !request.raw.empty()) {
    // Most requests: the client's bytes, unchanged, to one server.
    // (emplace_back, not resize(1): the request's fragments are empty here, and GCC inlines
    // this but not resize's default-append, ~70 instructions per request.)
    request.fragments.clear();
    request.fragments.emplace_back();
    request.fragments_pending = 1;
    Fragment& fragment = request.fragments.front();
    fragment.request = &request;
    fragment.server = servers_.servers()[plan.fragments.front().server].get();
    fragment.bytes = request.raw;
    fragment.bytes_block = request.request_block;
    fragment.state = Fragment::State::sent;
    fragment.server->send(fragment, request.client != nullptr ? request.client->backend_slot() : 0);
    return true;
  }
  request.fragments.resize(n);
  request.fragments_pending = static_cast<uint32_t>(n);
  const bool write = request.cmd->cls == routing::CommandClass::write || request.cmd->cls == routing::CommandClass::admin;
  request.replicated_write = plan.replicated && write;
  if (request.replicated_write) {
    request.fragments_in_flight = static_cast<uint32_t>(n);
    for (const routing::PlannedGroup& g : plan.groups) ++servers_.shard_state(g.shard).inflight_writes;
    if (request.cmd == &routing::watched_transaction_command()) {  // alone on its shard
      for (const routing::PlannedGroup& g : plan.groups) ++servers_.shard_state(g.shard).held;
    }
  }

  std::string_view whole = request.raw;
  BlockRef whole_block = request.request_block;
  if (request.replicated_write && routing::rewrite_relative_expiry(request.args, wall_ms(), rewritten_)) {
    rewritten_views_.assign(rewritten_.begin(), rewritten_.end());
    scratch_.clear();
    resp::append_command(scratch_, rewritten_views_);
    whole_block = bytes_block(scratch_, &whole);
  } else if (plan.kind == routing::PlanKind::rewrite) {  // one argument replaced (SCAN's cursor)
    rewritten_views_.assign(request.args.begin(), request.args.end());
    rewritten_views_[plan.rewritten_position] = plan.rewritten_arg;
    scratch_.clear();
    resp::append_command(scratch_, rewritten_views_);
    whole_block = bytes_block(scratch_, &whole);
  } else if (whole.empty() && !request.resp3_raw.empty()) {  // a RESP3 client's bytes
    whole = request.resp3_raw;
  } else if (whole.empty()) {  // inline request: servers get the same command as multibulk
    scratch_.clear();
    resp::append_command(scratch_, request.args);
    whole_block = bytes_block(scratch_, &whole);
  }

  // Groups: a fast path without them for one plain fragment.
  const bool grouped = plan.kind != routing::PlanKind::forward || plan.replicated;
  if (grouped) {
    request.groups.reserve(plan.groups.size());
    for (const routing::PlannedGroup& g : plan.groups) {
      GroupState& group = request.groups.emplace_back(g.rule, g.first, g.count, g.shard);
      group.read_quorum = g.read_quorum;
      if (g.read_quorum) {
        const routing::ShardEntry& shard = request.topology->table->shards()[g.shard];
        group.primary_asked = plan.fragments[g.first].server == shard.servers.front();
      }
      group.cutovers = servers_.shard_state(g.shard).cutovers;
    }
  }
  if (plan.kind != routing::PlanKind::forward) {
    std::vector<std::vector<uint32_t>> slots(plan.groups.size());
    if (plan.kind == routing::PlanKind::split) {
      for (size_t g = 0; g < plan.groups.size(); ++g) {
        const routing::PlannedFragment& f = plan.fragments[plan.groups[g].first];
        slots[g].assign(plan.key_slots.begin() + f.keys_begin, plan.key_slots.begin() + f.keys_end);
      }
    }
    request.reducer = std::make_unique<routing::Reducer>(plan.merge, std::move(slots), plan.key_args.size());
    if (plan.merge == routing::Merge::scan_cursor) request.reducer->set_scan(plan.scan);
    if (plan.merge == routing::Merge::any_key) request.reducer->set_first_choice(plan.first_choice);
  }

  if (plan.kind == routing::PlanKind::transaction) {  // (its replies: an argument, run_transaction)
    const uint32_t replies = static_cast<uint32_t>(std::stoul(std::string(request.args[3])));
    for (Fragment& fragment : request.fragments) fragment.expect_replies(replies);
  }
  const bool pairs = request.cmd->fanout == routing::Fanout::split_pairs;
  for (size_t g = 0; g < plan.groups.size(); ++g) {
    const routing::PlannedGroup& group = plan.groups[g];
    std::string_view bytes = whole;
    BlockRef block = whole_block;
    if (plan.kind == routing::PlanKind::split) {  // one sub-command, shared by the group's servers
      const routing::PlannedFragment& f = plan.fragments[group.first];
      size_t per_key = pairs ? 2 : 1;
      scratch_.clear();
      resp::append_array_header(scratch_, 1 + (f.keys_end - f.keys_begin) * per_key);
      resp::append_bulk(scratch_, request.args[0]);
      for (uint32_t k = f.keys_begin; k < f.keys_end; ++k) {
        uint32_t position = plan.key_args[k];
        resp::append_bulk(scratch_, request.args[position]);
        if (pairs) resp::append_bulk(scratch_, request.args[position + 1]);
      }
      block = bytes_block(scratch_, &bytes);
    }
    for (uint32_t i = group.first; i < group.first + group.count; ++i) {
      Fragment& fragment = request.fragments[i];
      const routing::PlannedFragment& planned = plan.fragments[i];
      fragment.request = &request;
      fragment.index = i;
      fragment.group = static_cast<uint32_t>(g);
      fragment.slot = planned.slot;
      fragment.stage = planned.stage;
      fragment.server = servers_.servers()[planned.server].get();
      fragment.bytes = bytes;
      fragment.bytes_block = block;
      // A copy that waits for its leader is sent (or cancelled) later: its server must last.
      if (planned.stage != 0 && planned.delivery == routing::Delivery::send) fragment.server->plan_copy();
    }
  }

  // Copies for servers that are down or stale are settled first (queued for replay, or
  // left to the resync); then the rest is sent. A fragment may complete, and the request
  // be answered, while this runs: nothing below depends on it staying unanswered.
  for (size_t i = 0; i < n; ++i) {
    Fragment& fragment = request.fragments[i];
    routing::Delivery delivery = plan.fragments[i].delivery;
    if (delivery == routing::Delivery::send) continue;
    if (delivery == routing::Delivery::replay) {
      // A copy that follows the leader (primary-replica, SPOP) is queued only once the
      // leader has applied it, as what it applied; a copy of a refused write never is.
      if (fragment.stage == 1) {
        fragment.replay_after_leader = true;
        fragment.server->expect_copy();
      } else {
        fragment.server->queue_for_replay(fragment.bytes, fragment.more_replies + 1);
      }
    }
    fragment.queued_for_replay = true;  // (a stale server gets nothing: the resync brings it)
    fragment.failed = true;
    fragment.state = Fragment::State::done;
    fragment_finished(request);
    on_group_outcome(request, fragment);
  }
  for (size_t i = 0; i < n; ++i) {
    Fragment& fragment = request.fragments[i];
    if (fragment.state != Fragment::State::planned || fragment.stage != 0) continue;
    fragment.state = Fragment::State::sent;
    send_fragment(request, fragment);
  }
  return true;
}

// A watched transaction's leader: the connection holding its WATCH. If that connection failed
// since (the server forgot the WATCH), or the shard's leader is now another server, EXEC
// answers as a fired watch does (nil): nothing runs anywhere, and the client runs it again.
void DataPath::send_watched_exec(Request& request, Fragment& leader) {
  BackendConnection* connection = request.watch_connection;
  if (&connection->server() == leader.server && connection->failures() == request.watch_failures) {
    return leader.server->send_dedicated(leader, *connection);
  }
  leader.owned_reply = "+OK\r\n";
  for (uint32_t i = 1; i < leader.more_replies; ++i) leader.owned_reply += "+QUEUED\r\n";
  leader.owned_reply += request.client != nullptr && request.client->protocol() == 3 ? "_\r\n" : "*-1\r\n";
  leader.reply = leader.owned_reply;
  leader.state = Fragment::State::done;
  fragment_finished(request);
  on_group_outcome(request, leader);
  if (request.replicated_write) drop_waiting_copies(request, leader);
  release_if_finished(request);
}

// On the client's connection of the server (backend_slot: RESP2 or RESP3). A RESP3 client's
// fragment for a replicated server goes on the RESP2 connection all its writes share, in
// RESP3 for its time (BackendServer::send_in_resp3). (A request whose client left: RESP2.)
void DataPath::send_fragment(Request& request, Fragment& fragment) {
  if (request.cmd == &routing::watched_transaction_command() && fragment.slot == 0) [[unlikely]] {
    return send_watched_exec(request, fragment);
  }
  const ClientSession* client = request.client;
  if (client == nullptr) return fragment.server->send(fragment, 0);
  if (client->protocol() == 3 && fragment.server->replicated()) {
    return fragment.server->send_in_resp3(fragment, client->backend_slot());
  }
  fragment.server->send(fragment, client->backend_slot());
}

// reduce: a fragment's reply (or failure) settles its group; the groups settle the request.
void DataPath::on_fragment_done(Fragment& fragment) {
  if (fragment.request == nullptr) return fragment.server->on_replay_done(fragment);
  Request& request = *fragment.request;
  fragment.state = Fragment::State::done;
  // A stale leader's late reply sends nothing: its resync makes it equal to the others. Nor
  // does a leader a reload removed: a new leader may have written since, and the copies would
  // land after its writes (the write was answered as failed, so applied nowhere is right).
  if (fragment.settled() && !fragment.late_reply.empty() && fragment.server->state() != ServerState::stale &&
      !fragment.server->detached()) {
    send_late_second_stage(request, fragment);
  }
  fragment_finished(request, !fragment.settled());  // a settled copy left the flight already
  if (fragment.settled()) {  // its outcome was given already
    if (request.replicated_write && fragment.slot == 0) drop_waiting_copies(request, fragment);
    return release_if_finished(request);
  }
  if (request.groups.empty()) {
    finish_request(request, fragment.reply);
  } else {
    on_group_outcome(request, fragment);
    if (request.replicated_write && fragment.slot == 0) drop_waiting_copies(request, fragment);
  }
  release_if_finished(request);
}

// EVAL and EVAL_RO: the body is remembered. EVALSHA and EVALSHA_RO of a script the proxy has
// become EVAL / EVAL_RO with the body: a server that lacks the script (restarted, resynced:
// the script cache is not replicated, or down during SCRIPT LOAD) runs it all the same, in its
// place among the client's commands, and every server of a replicated shard runs the same
// thing, replays too. (Answering a NOSCRIPT by sending the script afterwards would run it after
// the commands pipelined behind it.) SCRIPT LOAD and FLUSH are noted once merged (note_merged).
void DataPath::note_scripts(Request& request) {
  const routing::CommandInfo& cmd = *request.cmd;
  std::span<const std::string_view> args = request.args;
  if (cmd.has_proxy_flag(routing::kProxyScriptBody) && cmd.name.find('|') == std::string_view::npos) {
    scripts_.remember(args[1]);
    return;
  }
  if (!cmd.has_proxy_flag(routing::kProxyScriptCall)) return;
  const std::string* body = scripts_.body(args[1]);
  if (body == nullptr) return;  // the servers' NOSCRIPT, if they lack it too
  const bool read_only = cmd.name == "evalsha_ro";
  rewritten_views_.assign(args.begin(), args.end());
  rewritten_views_[0] = read_only ? "EVAL_RO" : "EVAL";
  rewritten_views_[1] = *body;
  scratch_.clear();
  resp::append_command(scratch_, rewritten_views_);
  std::string_view whole;
  BlockRef block = bytes_block(scratch_, &whole);
  // The request is EVAL's now: its bytes, its arguments (views into them), its table entry.
  size_t at = whole.find("\r\n") + 2;
  for (std::string_view& arg : request.args) {
    const size_t end_of_length = whole.find("\r\n", at);
    const size_t length = std::stoull(std::string(whole.substr(at + 1, end_of_length - at - 1)));
    arg = whole.substr(end_of_length + 2, length);
    at = end_of_length + 2 + length + 2;
  }
  request.raw = whole;
  request.request_block = std::move(block);
  request.cmd = routing::find_command(read_only ? "eval_ro" : "eval");
  ++stats_.evalsha_as_eval;
}

// SCRIPT LOAD's body is remembered once every server took it (a body they refused is not);
// SCRIPT FLUSH's forgetting waits for the servers' +OK (a refused flush changes nothing).
void DataPath::note_merged(Request& request) {
  const routing::CommandInfo& cmd = *request.cmd;
  if (cmd.name == "script|exists" && !resp::is_error_reply(request.owned_reply)) return scripts_exist(request);
  if (cmd.proxy_flags == 0 || resp::is_error_reply(request.owned_reply)) return;
  if (cmd.has_proxy_flag(routing::kProxyFlushesScripts)) scripts_.forget_all();
  if (cmd.has_proxy_flag(routing::kProxyScriptBody) && request.args.size() > 2) scripts_.remember(request.args[2]);
}

// SCRIPT EXISTS: 1 for a script the proxy has too (sent with EVAL on one shard, say): EVALSHA
// runs it anywhere (note_scripts).
void DataPath::scripts_exist(Request& request) {
  std::vector<std::string_view> elements;
  if (!resp::split_array_reply(request.owned_reply, elements) || elements.size() + 2 != request.args.size()) return;
  std::string merged;
  resp::append_array_header(merged, elements.size());
  for (size_t i = 0; i < elements.size(); ++i) {
    const bool known = scripts_.body(request.args[i + 2]) != nullptr;
    merged.append(known ? std::string_view(":1\r\n") : elements[i]);
  }
  request.owned_reply = std::move(merged);
}

// The group's reply is the request's, or one part of a merged one.
void DataPath::merge(Request& request, uint32_t group_index, std::string_view reply) {
  if (!request.reducer) return finish_request(request, reply);
  if (request.reducer->add(group_index, reply)) {
    request.reducer->finish(request.owned_reply);
    note_merged(request);
    finish_request(request, request.owned_reply);
  }
}

// The leader is done for good: copies still waiting for it (refused, missed, or lost) will
// never be queued, and their servers stop waiting for them.
void DataPath::drop_waiting_copies(Request& request, const Fragment& leader) {
  if (request.groups.empty()) return;
  const GroupState& group = request.groups[leader.group];
  for (uint32_t i = group.first; i < group.first + group.count; ++i) {
    Fragment& f = request.fragments[i];
    if (!f.replay_after_leader) continue;
    f.replay_after_leader = false;
    f.server->copy_resolved();
  }
}

// The server lags: the fragment's outcome is given now, its late reply only releases it.
void DataPath::on_fragment_settled(Fragment& fragment) {
  Request& request = *fragment.request;
  leave_flight(request);
  if (request.groups.empty()) {
    finish_request(request, fragment.reply);
  } else {
    on_group_outcome(request, fragment);
  }
}

void DataPath::on_group_outcome(Request& request, Fragment& fragment) {
  GroupState& group = request.groups[fragment.group];
  routing::WriteTracker::Outcome outcome = outcome_of(fragment);
  if (request.replicated_write && group.count > 1) {
    // A copy that may have reached the server but was not acknowledged leaves the server
    // in an unknown state: it must be resynced. A refused copy (an error only this server
    // gives) means it has diverged.
    if (fragment.failed && fragment.maybe_sent) fragment.server->mark_stale("a write in flight was lost");
    if (fragment.failed && !fragment.maybe_sent && !fragment.settled() && !fragment.queued_for_replay) {
      fragment.server->queue_for_replay(fragment.bytes, fragment.more_replies + 1);  // it never reached the server: replay it
      fragment.queued_for_replay = true;
    }
  }
  routing::WriteTracker::Decision decision = group.tracker.on_outcome(fragment.slot, outcome);
  if (group.read_quorum) {
    if (decision.answer) answer_quorum_read(request, fragment.group, decision.reply_from);
    return;
  }
  if (decision.send_to_replicas) send_second_stage(request, group, fragment);
  if (decision.cancel_replicas) {
    for (uint32_t i = group.first; i < group.first + group.count; ++i) {
      Fragment& f = request.fragments[i];
      if (f.state != Fragment::State::planned) continue;
      f.state = Fragment::State::cancelled;
      f.server->unplan_copy();
      fragment_finished(request);
    }
  }
  if (decision.answer) answer_group(request, fragment.group, decision.reply_from, fragment);
}

// The leader (the primary) timed out, so its copies for the others were cancelled; it has
// now applied the write after all: the others get it too, or they would silently differ.
void DataPath::send_late_second_stage(Request& request, Fragment& leader) {
  // (A transaction's refusal is its EXEC's -EXECABORT, after MULTI's +OK.)
  const std::string_view late = leader.more_replies > 0 ? resp::last_reply(leader.late_reply) : leader.late_reply;
  if (!request.replicated_write || leader.slot != 0 || resp::is_error_reply(late)) return;
  GroupState& group = request.groups[leader.group];
  // A server that was stale when the write was planned got no copy: its resync was to bring
  // the write. If that resync cut over since, its peer did not have the write yet (its copy
  // was cancelled until now): it gets the copy too, through its replay queue.
  if (request.topology->shards[group.shard]->cutovers != group.cutovers) {
    for (uint32_t i = group.first; i < group.first + group.count; ++i) {
      Fragment& f = request.fragments[i];
      if (f.stage != 1 || f.state != Fragment::State::done || !f.failed || !f.queued_for_replay ||
          f.replay_after_leader) {
        continue;
      }
      // (the server may have been removed and destroyed since: only a current one counts)
      const bool current = servers_.current(f.server);
      if (!current || f.server->state() == ServerState::stale) continue;
      f.replay_after_leader = true;
      f.server->expect_copy();
    }
  }
  uint32_t revived = 0;
  for (uint32_t i = group.first; i < group.first + group.count; ++i) {
    Fragment& f = request.fragments[i];
    if (f.stage != 1 || (f.state != Fragment::State::cancelled && !f.replay_after_leader)) continue;
    if (f.state == Fragment::State::cancelled) {
      f.state = Fragment::State::planned;
      f.server->plan_copy();
      ++request.fragments_pending;
      ++revived;
    }
  }
  if (revived == 0 && std::none_of(request.fragments.begin() + group.first,
                                   request.fragments.begin() + group.first + group.count,
                                   [](const Fragment& f) { return f.replay_after_leader; })) {
    return;
  }
  if (request.fragments_in_flight == 0 && revived > 0) {
    for (const GroupState& g : request.groups) ++request.topology->shards[g.shard]->inflight_writes;
  }
  request.fragments_in_flight += revived;
  std::string_view settled_reply = leader.reply;
  leader.reply = leader.late_reply;  // what it applied (SPOP's effect is built from it)
  send_second_stage(request, group, leader);
  leader.reply = settled_reply;
}

// primary-replica (and SPOP anywhere): the copies that wait for the first server.
void DataPath::send_second_stage(Request& request, GroupState& group, const Fragment& leader) {
  std::string_view bytes = leader.bytes;
  BlockRef block = leader.bytes_block;
  bool nothing_to_apply = false;
  if (request.cmd->fanout == routing::Fanout::transaction) {  // a led transaction
    // Its watch fired: it ran nowhere. Else its XADD '*' get the IDs the leader chose.
    nothing_to_apply = resp::is_null_reply(resp::last_reply(leader.reply));
    if (!nothing_to_apply && routing::copy_with_leader_ids(leader.bytes, leader.reply, scratch_)) {
      block = bytes_block(scratch_, &bytes);
    }
  } else if (request.cmd->name == "xadd") {  // the ID the leader chose for '*'
    nothing_to_apply = resp::is_null_reply(leader.reply);  // (NOMKSTREAM, no stream)
    const std::optional<size_t> id = routing::xadd_auto_id(request.args);
    const std::optional<std::string_view> chosen = resp::bulk_string_reply(leader.reply);
    if (!nothing_to_apply && id && chosen) {
      rewritten_views_.assign(request.args.begin(), request.args.end());
      rewritten_views_[*id] = *chosen;
      scratch_.clear();
      resp::append_command(scratch_, rewritten_views_);
      block = bytes_block(scratch_, &bytes);
    }
  } else if (request.cmd->name == "spop") {  // replicated by effect: what the leader popped
    std::vector<std::string_view> members;
    // (in either protocol: a RESP3 client's SPOP is answered in RESP3, a count's with a set)
    if (resp::is_null_reply(leader.reply) || leader.reply.starts_with("*0") || leader.reply.starts_with("~0")) {
      nothing_to_apply = true;
    } else if (leader.reply.starts_with("$")) {
      members.push_back(leader.reply);
    } else {
      resp::split_array_reply(leader.reply, members);
    }
    if (!nothing_to_apply) {
      std::vector<std::string> words = {"SREM", std::string(request.args[1])};
      for (std::string_view element : members) {
        size_t header = element.find("\r\n");
        words.emplace_back(element.substr(header + 2, element.size() - header - 4));
      }
      rewritten_views_.assign(words.begin(), words.end());
      scratch_.clear();
      resp::append_command(scratch_, rewritten_views_);
      block = bytes_block(scratch_, &bytes);
    }
  }
  for (uint32_t i = group.first; i < group.first + group.count; ++i) {
    Fragment& f = request.fragments[i];
    if (f.replay_after_leader) {
      f.replay_after_leader = false;
      if (!nothing_to_apply) f.server->queue_for_replay(bytes, f.more_replies + 1);
      f.server->copy_resolved();
      continue;
    }
    if (f.state != Fragment::State::planned) continue;
    f.server->unplan_copy();
    f.bytes = bytes;
    f.bytes_block = block;
    if (nothing_to_apply) {  // nothing was popped: every copy is trivially applied
      f.state = Fragment::State::done;
      f.reply = leader.reply;
      fragment_finished(request);
      on_group_outcome(request, f);
      continue;
    }
    f.state = Fragment::State::sent;
    send_fragment(request, f);
  }
}

void DataPath::answer_group(Request& request, uint32_t group_index, int reply_from, const Fragment& last) {
  GroupState& group = request.groups[group_index];
  if (reply_from >= 0) {
    group.reply = request.fragments[group.first + reply_from].reply;
  } else if (group.count == 1) {
    group.reply = last.reply;  // the proxy's own error for its one server
  } else {
    group.owned_reply = group.tracker.shortfall_error(request.topology->table->shards()[group.shard].name);
    group.reply = group.owned_reply;
  }
  if (request.replicated_write && group.count > 1) {
    const auto level = request.topology->table->shards()[group.shard].replication.write_ack;
    worker_.metrics()->acks(static_cast<size_t>(level), group.tracker.acks() >= group.tracker.needed())->Increment();
  }
  // (Blocking commands: a pop the proxy ran for a waiting client, answered at its ack level; or
  // a write that may feed one.)
  if (request.client == nullptr && request.top_cmd == &routing::proxy_pop_marker()) [[unlikely]] {
    blocking_->on_pop_answered(request, group.reply);
  } else if (blocking_->waiting > 0 && request.replicated_write) [[unlikely]] {
    blocking_->on_write_acknowledged(request, group.shard);
  }
  merge(request, group_index, group.reply);
}

// read_from = quorum: every server asked has answered. Equal replies are the answer;
// otherwise the authoritative copy is (the primary's for primary-replica, else the copy most
// servers gave, ties to the first) and the request's keys are repaired on the shard.
void DataPath::answer_quorum_read(Request& request, uint32_t group_index, int reply_from) {
  GroupState& group = request.groups[group_index];
  const routing::ShardEntry& shard = request.topology->table->shards()[group.shard];
  // Decided before every server replied (an error reply came first): that reply is the
  // answer; the others are still in flight and must not be compared.
  const bool all_in = std::all_of(request.fragments.begin() + group.first,
                                  request.fragments.begin() + group.first + group.count,
                                  [](const Fragment& f) { return f.state == Fragment::State::done && !f.failed; });
  if (reply_from >= 0 && !all_in) {
    group.reply = request.fragments[group.first + reply_from].reply;
  } else if (reply_from < 0) {
    group.owned_reply = "-ERR shard '" + shard.name + "': read quorum not met (" +
                        std::to_string(group.tracker.acks()) + " of " + std::to_string(group.count) +
                        " servers replied)\r\n";
    group.reply = group.owned_reply;
  } else {
    std::vector<std::optional<std::string_view>> replies;
    for (uint32_t i = group.first; i < group.first + group.count; ++i) replies.emplace_back(request.fragments[i].reply);
    bool same = std::all_of(replies.begin(), replies.end(), [&](const auto& r) { return r == replies.front(); });
    size_t winner = 0;
    if (!same) {
      const auto strategy = shard.replication.strategy == conf::ReplicationStrategy::primary_replica && group.primary_asked
                                ? conf::ReplicationStrategy::primary_replica
                                : conf::ReplicationStrategy::multi_primary;
      winner = routing::repair_winner(strategy, replies);
      std::vector<std::string> keys;
      std::vector<uint32_t> positions;
      if (routing::find_key_positions(*request.cmd, request.args, positions).empty()) {
        for (uint32_t p : positions) keys.emplace_back(request.args[p]);
      }
      servers_.start_read_repair(*request.topology->shards[group.shard], group.shard, std::move(keys));
    }
    group.reply = request.fragments[group.first + winner].reply;
  }
  merge(request, group_index, group.reply);
}

void DataPath::finish_request(Request& request, std::string_view reply) {
  if (request.done) return;
  request.reply = reply;
  if (resp::is_error_reply(request.reply)) ++stats_.error_replies;
  request.done = true;
  if (request.client != nullptr) request.client->on_request_done(request);
}

// A request is freed when its client no longer needs it (reply written, or client gone)
// and no server still holds one of its fragments.
void DataPath::release_if_finished(Request& request) {
  if (request.client == nullptr && request.fragments_pending == 0) {
    // A pop the proxy ran, answered without groups (a shard a reload made plain) or refused:
    // its client hears of it now (one answered at its ack level already is not told twice).
    if (request.top_cmd == &routing::proxy_pop_marker()) [[unlikely]] blocking_->on_pop_answered(request, request.reply);
    requests_.give_back(&request);
  }
}

void DataPath::reply_error(Request& request, std::string_view message) {
  request.rejected = true;
  resp::append_error(request.owned_reply, message);
  request.reply = request.owned_reply;
  ++stats_.error_replies;
  request.done = true;
  if (request.client == nullptr) [[unlikely]] return release_if_finished(request);  // a write of the proxy's own
  request.client->on_request_done(request);
}

void DataPath::complete_async_local(Request& request) {
  request.fragments_pending = 0;
  if (request.client == nullptr) return requests_.give_back(&request);
  complete_local(request);
}

void DataPath::complete_local(Request& request) {
  request.reply = request.owned_reply;
  if (resp::is_error_reply(request.reply)) ++stats_.error_replies;
  request.done = true;
  request.client->on_request_done(request);
}

}  // namespace ringproxy::proxy
