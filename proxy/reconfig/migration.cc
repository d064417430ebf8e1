#include "proxy/reconfig/migration.h"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <optional>

#include "proxy/backend/backend_server.h"
#include "proxy/net/address.h"
#include "proxy/clients/client_session.h"
#include "proxy/datapath/data_path.h"
#include "proxy/requests/request.h"
#include "routing/resp/writer.h"
#include "routing/keys.h"

namespace ringproxy::proxy {
namespace {

constexpr size_t kMovedMemory = 1u << 20;    // keys remembered as moved (then looked up again)
constexpr uint32_t kScanMovesInFlight = 64;  // background moves at once
constexpr size_t kScanQueueLow = 1000;       // SCAN again below this many keys waiting

uint64_t wall_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

std::string reply_text(const redisReply* reply) {
  return reply == nullptr ? "connection lost" : std::string(reply->str, reply->len);
}

// A null reply: the connection ended; a refused AUTH says so.
const redisReply* with_reason(const SideLink* link, const redisReply* reply, redisReply& stand_in,
                              std::string& text) {
  if (reply != nullptr) return reply;
  text = link->error_or("connection lost");
  stand_in = redisReply{};
  stand_in.type = REDIS_REPLY_ERROR;
  stand_in.str = text.data();
  stand_in.len = text.size();
  return &stand_in;
}

}  // namespace

struct Migration::Op {
  enum Kind : uint8_t { dump, ttl, restore, del, scan };
  Migration* self;
  Kind kind;
  uint64_t id;      // the KeyMove's id, or the pass's for a SCAN
  size_t index;     // dump/ttl: which source; scan: which target
  std::string key;  // moves only
};

struct Migration::Link {
  SideLink* link = nullptr;
  uint64_t created_ms = 0;
  bool connected = false;
};

struct Migration::KeyMove {
  enum class Step : uint8_t { waiting, reading, restoring, deleting };
  uint64_t id = 0;
  uint64_t generation = 0;  // the ring it was planned against
  std::string key;
  bool from_scan = false;
  Step step = Step::waiting;
  uint64_t started_ms = 0;
  std::vector<Source> sources;                     // newest ring first
  std::vector<std::optional<std::string>> dumps;   // per source
  std::vector<int64_t> ttls;                       // per source: PTTL (-2: absent)
  uint32_t outstanding = 0;
  bool restored = false;
  std::string error;                               // the first failure
  std::vector<Request*> waiters;
  std::vector<std::string> links;                  // the servers it talks to
};

Migration::Migration(Servers& servers, DataPath& data_path) : servers_(servers), data_path_(data_path) {}

Migration::~Migration() { stop(); }

void Migration::stop() {
  if (closing_) return;
  closing_ = true;
  earlier_.clear();
  // Requests still parked: their clients are gone (the Proxy closes them first).
  for (auto& [request, parked] : parked_) data_path_.resume_parked(*request, "ERR ringproxy is shutting down");
  parked_.clear();
  client_order_.clear();
  moving_.clear();
  auto links = std::move(links_);
  links_.clear();
  for (auto& [name, link] : links) {
    if (link->link != nullptr) link->link->close();  // pending callbacks see closing_
  }
}

void Migration::on_reload(std::shared_ptr<const routing::RoutingTable> previous,
                          std::weak_ptr<const Topology> previous_topology,
                          std::shared_ptr<const routing::RoutingTable> current, const conf::PoolConfig& pool) {
  const uint64_t now = servers_.worker().now_ms();
  // A reload that changes neither the ring nor how keys move (a rotated password, a timeout)
  // only hands over the new table: the window and the pass go on as they were.
  const bool anew = previous != nullptr || mode_ != pool.migration || !current_ ||
                    (mode_ == conf::Migration::warm && warm_window_ms_ != pool.warm_window_ms);
  warm_window_ms_ = pool.warm_window_ms;
  mode_ = pool.migration;
  keys_per_second_ = pool.migration_keys_per_second;
  retry_interval_ms_ = pool.retry_interval_ms;
  move_deadline_ms_ = static_cast<uint64_t>(pool.connect_timeout_ms) + pool.request_timeout_ms;
  connect_timeout_ms_ = pool.connect_timeout_ms;
  current_ = std::move(current);
  if (!anew) return;
  if (previous) {
    ++generation_;  // moves and parked requests of earlier rings are looked at again
    earlier_.insert(earlier_.begin(), std::move(previous));
    moved_.clear();  // a key moved under the last ring may have to move again
    barrier_ = std::move(previous_topology);
    barrier_deadline_ms_ = now + 2ull * pool.request_timeout_ms + 1000;
  }
  if (mode_ == conf::Migration::warm) warm_until_ms_ = now + pool.warm_window_ms;
  // A new pass over every previous ring (the old pass's replies are ignored by its id).
  pass_running_ = false;
  scan_queue_.clear();
  next_pass_ms_ = 0;
  spdlog::info("migration ({}): {} previous ring(s) to move keys from", conf::migration_name(mode_), earlier_.size());
  progress_.mode = mode_;
  progress_.previous_rings = earlier_.size();
}

void Migration::abandon() {
  if (!earlier_.empty()) {
    spdlog::warn("migration abandoned (migration = \"none\"): keys not moved yet stay on their previous shard");
  }
  earlier_.clear();
  pass_running_ = false;
  scan_queue_.clear();
  progress_.mode = conf::Migration::none;
  progress_.previous_rings = 0;
  progress_.scanning = false;
}

bool Migration::finished() const {
  return earlier_.empty() && moving_.empty() && parked_.empty() && client_order_.empty();
}

bool Migration::ready() const { return barrier_.expired() || servers_.worker().now_ms() >= barrier_deadline_ms_; }

Migration::Source Migration::source_of(const routing::RoutingTable& table, uint32_t shard) const {
  Source source{table.shards()[shard].name, {}};
  for (uint32_t s : table.shards()[shard].servers) source.servers.push_back(table.servers()[s].address);
  return source;
}

// ------------------------------------------------------------------ the data path --

bool Migration::park_if_moving(Request& request) {
  if (closing_ || request.client == nullptr) return false;
  const uint64_t client = request.client->id();
  auto queue = client_order_.find(client);
  const bool behind = queue != client_order_.end() && !queue->second.empty();
  if (earlier_.empty() && !behind) return false;
  positions_.clear();
  if (!earlier_.empty() && !routing::find_key_positions(*request.cmd, request.args, positions_).empty()) {
    positions_.clear();  // malformed: the planner rejects it; it only keeps its place in line
  }
  std::vector<KeyMove*> started;
  const uint32_t waits = wait_for_keys(request, started);
  if (waits == 0 && !behind) return false;
  request.fragments_pending = 1;  // a token: keeps it alive if its client leaves meanwhile
  Parked& parked = parked_[&request];
  parked.waiting += waits;
  parked.client = client;
  parked.generation = generation_;
  client_order_[client].push_back(&request);
  // Not sent anywhere: it does not hold back the moves that wait for the previous ring's
  // requests to finish (it takes the snapshot of its turn when it resumes).
  request.topology.reset();
  if (waits == 0) {
    release_ready(client);  // (it cannot be released before the ones ahead of it)
    return true;
  }
  if (ready()) {
    for (KeyMove* move : started) begin(*move);  // (may finish, and resume the request, at once)
  }
  return true;
}

// For each key of `request` (positions_) that may still be on a previous owner: its move,
// started if none is running; the request becomes one of its waiters.
uint32_t Migration::wait_for_keys(Request& request, std::vector<KeyMove*>& started) {
  uint32_t waits = 0;
  for (uint32_t position : positions_) {
    std::string key(request.args[position]);
    if (moved_.count(key) != 0) continue;
    KeyMove* move;
    if (auto it = moving_.find(key); it != moving_.end()) {
      move = it->second.get();
    } else {
      routing::previous_owners(key, *current_, earlier_, owners_);
      if (owners_.empty()) continue;  // its shard did not change
      move = &start_move(key, false);
      started.push_back(move);
    }
    move->waiters.push_back(&request);
    ++waits;
  }
  return waits;
}

Migration::KeyMove& Migration::start_move(const std::string& key, bool from_scan) {
  auto move = std::make_unique<KeyMove>();
  move->id = next_move_id_++;
  move->generation = generation_;
  move->key = key;
  move->from_scan = from_scan;
  move->started_ms = servers_.worker().now_ms();
  routing::previous_owners(key, *current_, earlier_, owners_);
  for (const routing::PreviousOwner& owner : owners_) move->sources.push_back(source_of(*owner.table, owner.shard));
  KeyMove& ref = *move;
  moving_[key] = std::move(move);
  return ref;
}

// 1. read the key on each previous owner (its first server: the primary).
void Migration::begin(KeyMove& move) {
  if (move.step != KeyMove::Step::waiting) return;
  move.step = KeyMove::Step::reading;
  move.started_ms = servers_.worker().now_ms();
  move.dumps.assign(move.sources.size(), std::nullopt);
  move.ttls.assign(move.sources.size(), -2);
  const uint64_t id = move.id;
  const std::string key = move.key;
  for (size_t i = 0; i < move.sources.size(); ++i) {
    const conf::Address& server = readable_server(move.sources[i]);
    if (auto down = unreachable_until_.find(server.to_string());
        down != unreachable_until_.end() && servers_.worker().now_ms() < down->second) {
      if (move.error.empty()) move.error = "shard '" + move.sources[i].shard + "' (" + server.to_string() + ") does not answer";
      continue;
    }
    if (!command(server, Op{this, Op::dump, id, i, key}, "DUMP %b", key.data(), key.size()) ||
        !command(server, Op{this, Op::ttl, id, i, key}, "PTTL %b", key.data(), key.size())) {
      if (move.error.empty()) move.error = "cannot reach " + server.to_string();
    }
  }
  if (move.outstanding == 0) finish(move, false, move.error);
}

void Migration::on_reply(SideLink* link, redisReply* reply, void* privdata) {
  std::unique_ptr<Op> op(static_cast<Op*>(privdata));
  Migration* self = op->self;
  if (self->closing_) return;
  if (op->kind == Op::scan) {
    if (op->id == self->pass_id_) self->on_scan_reply(op->index, reply, link->error_or("connection lost"));
    return;
  }
  auto it = self->moving_.find(op->key);
  if (it == self->moving_.end() || it->second->id != op->id) return;  // it timed out meanwhile
  redisReply stand_in;
  std::string text;
  self->handle(*it->second, *op,
               const_cast<redisReply*>(with_reason(link, reply, stand_in, text)));
}

void Migration::handle(KeyMove& move, const Op& op, void* raw) {
  auto* reply = static_cast<redisReply*>(raw);
  --move.outstanding;
  const std::string& shard = op.kind == Op::dump || op.kind == Op::ttl ? move.sources[op.index].shard : "";
  switch (op.kind) {
    case Op::dump:
      if (reply != nullptr && reply->type == REDIS_REPLY_STRING) {
        move.dumps[op.index].emplace(reply->str, reply->len);
      } else if (reply == nullptr || reply->type == REDIS_REPLY_ERROR) {
        if (move.error.empty()) move.error = "reading it on shard '" + shard + "' failed: " + reply_text(reply);
      }
      break;
    case Op::ttl:
      if (reply != nullptr && reply->type == REDIS_REPLY_INTEGER) {
        move.ttls[op.index] = reply->integer;
      } else if (move.error.empty()) {
        move.error = "reading its TTL on shard '" + shard + "' failed: " + reply_text(reply);
      }
      break;
    case Op::restore:
      // BUSYKEY: the new shard has a value written through the proxy since the reload; it wins.
      if (reply == nullptr || (reply->type == REDIS_REPLY_ERROR && std::string_view(reply->str).rfind("BUSYKEY", 0) != 0)) {
        if (move.error.empty()) move.error = "writing it on its new shard failed: " + reply_text(reply);
      }
      break;
    case Op::del:
      if (reply == nullptr || reply->type == REDIS_REPLY_ERROR) {
        spdlog::warn("migration: key moved, but deleting its old copy failed: {}", reply_text(reply));
      }
      break;
    case Op::scan: break;
  }
  if (move.outstanding > 0) return;
  if (!move.error.empty()) return finish(move, false, move.error);
  switch (move.step) {
    case KeyMove::Step::reading: return restore(move);
    case KeyMove::Step::restoring: return delete_sources(move);
    default: return finish(move, true, "");
  }
}

// 2. the newest copy found goes to every server of the key's shard, as the shard's
// replication says (a server that is down gets it through its replay queue).
void Migration::restore(KeyMove& move) {
  const routing::RoutingTable& table = *servers_.table();
  const uint32_t shard = table.shard_of(move.key);
  const routing::ShardEntry& target = table.shards()[shard];
  size_t found = move.sources.size();
  for (size_t i = 0; i < move.sources.size() && found == move.sources.size(); ++i) {
    if (move.dumps[i] && move.ttls[i] != -2) found = i;
  }
  const bool at_home = std::any_of(move.sources.begin(), move.sources.end(),
                                   [&](const Source& s) { return s.shard == target.name; });
  if (found == move.sources.size() || at_home) {  // nothing to move (or a later reload sent it back)
    if (!at_home) ++progress_.keys_absent;
    return finish(move, true, "");
  }
  const int64_t pttl = move.ttls[found];
  const long long expires_at = pttl > 0 ? static_cast<long long>(wall_ms() + static_cast<uint64_t>(pttl)) : 0;
  const std::string& payload = *move.dumps[found];
  std::string bytes;  // the same command, for replay queues
  const std::string at = std::to_string(expires_at);
  resp::append_command(bytes, std::vector<std::string_view>{"RESTORE", move.key, at, payload, "ABSTTL"});
  move.step = KeyMove::Step::restoring;
  move.restored = true;
  const uint64_t id = move.id;
  const std::string key = move.key;
  bool sent_any = false, queued_any = false;
  for (uint32_t s : target.servers) {
    switch (servers_.server_mode(s)) {
      case routing::kServerLive:
        sent_any |= command(table.servers()[s].address, Op{this, Op::restore, id, 0, key},
                            "RESTORE %b %lld %b ABSTTL", key.data(), key.size(), expires_at, payload.data(),
                            payload.size());
        break;
      case routing::kServerQueue:
        if (servers_.servers()[s]->replicated()) {
          servers_.servers()[s]->queue_for_replay(bytes);
          queued_any = true;
        }
        break;
      default: break;  // stale: its resync brings it
    }
  }
  if (!sent_any && !queued_any) return finish(move, false, "no server of shard '" + target.name + "' is up");
  if (!sent_any) return delete_sources(move);  // it is in a replay queue: applied before anything newer
}

// 3. the old copies go (on every server of each previous owner that had one).
void Migration::delete_sources(KeyMove& move) {
  move.step = KeyMove::Step::deleting;
  const routing::RoutingTable& table = *servers_.table();
  std::string bytes;
  resp::append_command(bytes, std::vector<std::string_view>{"DEL", move.key});
  const std::string key = move.key;
  for (size_t i = 0; i < move.sources.size(); ++i) {
    if (!move.dumps[i]) continue;
    for (const conf::Address& address : move.sources[i].servers) {
      // A server of the current ring that is down gets the DEL through its replay queue.
      routing::ServerMode mode = routing::kServerLive;
      for (uint32_t s = 0; s < table.servers().size(); ++s) {
        if (table.servers()[s].address == address) mode = servers_.server_mode(s);
        if (table.servers()[s].address == address && mode == routing::kServerQueue &&
            servers_.servers()[s]->replicated()) {
          servers_.servers()[s]->queue_for_replay(bytes);
        } else if (table.servers()[s].address == address && mode == routing::kServerQueue) {
          mode = routing::kServerLive;  // not replicated: no queue; try it (a failure is logged)
        }
      }
      if (mode == routing::kServerLive) {
        command(address, Op{this, Op::del, move.id, i, key}, "DEL %b", key.data(), key.size());
      }
    }
  }
  if (move.outstanding == 0) finish(move, true, "");
}

void Migration::finish(KeyMove& move, bool ok, const std::string& why) {
  std::unique_ptr<KeyMove> owned = std::move(moving_[move.key]);
  moving_.erase(move.key);
  if (ok && owned->restored) {
    ++progress_.keys_moved;
    servers_.worker().metrics()->migration_keys_moved->Increment();
    if (!owned->from_scan) ++progress_.keys_to_move;  // found by a request, not by the pass
  }
  std::string error;
  if (!ok) {
    ++progress_.keys_failed;
    servers_.worker().metrics()->migration_keys_failed->Increment();
    if (pass_running_) ++pass_failures_;  // (a request's move may be one the pass skipped)
    spdlog::warn("migration: moving key '{}' failed: {}", owned->key.substr(0, 128), why);
    error = "TRYAGAIN ringproxy is moving this key to its new shard after a reload and the move failed (" + why +
            "); retry";
  } else if (moved_.size() < kMovedMemory && owned->generation == generation_) {
    moved_.insert(owned->key);  // (a move planned on an earlier ring proves nothing now)
  }
  // Planned on an earlier ring, it put the key where that ring said (or found it there). A
  // move planned on this ring follows at once, and its waiters (requests, the pass) wait for
  // that one: released now, they would look for the key on its new shard too early.
  if (ok && owned->generation != generation_ && !closing_) {
    routing::previous_owners(owned->key, *current_, earlier_, owners_);
    if (!owners_.empty()) {
      KeyMove& again = start_move(owned->key, owned->from_scan);
      again.waiters = std::move(owned->waiters);
      if (ready()) begin(again);
      return;
    }
  }
  if (owned->from_scan) --scan_moves_in_flight_;
  std::vector<uint64_t> clients;
  for (Request* request : owned->waiters) {
    auto it = parked_.find(request);
    if (it == parked_.end()) continue;
    if (!ok && it->second.error.empty()) it->second.error = error;
    if (--it->second.waiting == 0) clients.push_back(it->second.client);
  }
  for (uint64_t client : clients) release_ready(client);
  if (owned->from_scan) scan_more();  // the next key of the pass, without waiting for the sweep
}

// Resumes the client's parked requests from the front of its line while they are ready.
void Migration::release_ready(uint64_t client) {
  while (true) {
    auto line = client_order_.find(client);
    if (line == client_order_.end()) return;
    if (line->second.empty()) {
      client_order_.erase(line);
      return;
    }
    Request* request = line->second.front();
    auto it = parked_.find(request);
    if (it != parked_.end() && it->second.waiting > 0) return;
    if (it != parked_.end() && it->second.generation != generation_ && request->client != nullptr &&
        it->second.error.empty()) {
      // The ring changed while it waited: its keys are looked at again, in its place in line.
      it->second.generation = generation_;
      positions_.clear();
      std::vector<KeyMove*> started;
      if (!earlier_.empty() && routing::find_key_positions(*request->cmd, request->args, positions_).empty()) {
        it->second.waiting = wait_for_keys(*request, started);
      }
      if (it->second.waiting > 0) {
        if (ready()) {
          for (KeyMove* move : started) begin(*move);
        }
        return;
      }
    }
    line->second.pop_front();
    if (it == parked_.end()) continue;
    std::string result = std::move(it->second.error);
    parked_.erase(it);
    data_path_.resume_parked(*request, result);  // may park more of this client's requests
  }
}

// ---------------------------------------------------------- connections (SideLink) --

// The credentials of the shard that has (or had) `server`, and where it is now.
ServerLogin Migration::login(const conf::Address& server) {
  conf::BackendAuth auth;
  std::string shard;
  bool found = false;
  auto look_in = [&](const routing::RoutingTable& table) {
    for (const routing::ServerEntry& entry : table.servers()) {
      if (!found && entry.address == server) {
        auth = table.shards()[entry.shard].auth;
        shard = table.shards()[entry.shard].name;
        found = true;
      }
    }
  };
  look_in(*servers_.table());
  for (const auto& table : earlier_) look_in(*table);
  return servers_.login_of(server, auth, shard);
}

Migration::Link* Migration::link(const conf::Address& server) {
  const std::string name = server.to_string();
  if (auto it = links_.find(name); it != links_.end()) return it->second.get();
  SideLink* side = SideLink::open(login(server), servers_.worker(), this, on_connect, on_disconnect);
  if (side == nullptr) return nullptr;
  auto& slot = links_[name];
  slot = std::make_unique<Link>();
  slot->link = side;
  slot->created_ms = servers_.worker().now_ms();
  return slot.get();
}

void Migration::drop_link(const std::string& name) {
  unreachable_until_[name] = servers_.worker().now_ms() + retry_interval_ms_;
  auto it = links_.find(name);
  if (it == links_.end()) return;
  std::unique_ptr<Link> link = std::move(it->second);
  links_.erase(it);
  // A RESTORE or DEL it sent may still run on a stopped server, after newer writes.
  if (link->connected) servers_.fence(name, link->link->local_address());
  link->link->close();  // its pending commands get a null reply: their moves fail now
}

// The first server of the shard that the proxy knows to be live (the primary when it is),
// else the first one (a removed shard: the proxy does not watch it any more).
const conf::Address& Migration::readable_server(const Source& source) const {
  const routing::RoutingTable& table = *servers_.table();
  for (const conf::Address& address : source.servers) {
    for (uint32_t s = 0; s < table.servers().size(); ++s) {
      if (table.servers()[s].address == address && servers_.server_mode(s) == routing::kServerLive) return address;
    }
  }
  return source.servers.front();
}

bool Migration::command(const conf::Address& server, Op op, const char* format, ...) {
  Link* l = link(server);
  if (l == nullptr) return false;
  auto* pending = new Op(std::move(op));
  va_list ap;
  va_start(ap, format);
  const bool sent = l->link->vcommand(on_reply, pending, format, ap);
  va_end(ap);
  if (!sent) {
    delete pending;
    return false;
  }
  if (pending->kind != Op::scan) {
    auto it = moving_.find(pending->key);
    if (it != moving_.end()) {
      ++it->second->outstanding;
      it->second->links.push_back(server.to_string());
    }
  }
  return true;
}

// A link is gone after these callbacks; its pending commands get a null reply.
void Migration::forget(const SideLink* side, bool refused) {
  for (auto it = links_.begin(); it != links_.end(); ++it) {
    if (it->second->link == side) {
      if (refused) unreachable_until_[it->first] = servers_.worker().now_ms() + retry_interval_ms_;
      links_.erase(it);
      return;
    }
  }
}

void Migration::on_connect(SideLink* side, bool ok) {
  auto* self = static_cast<Migration*>(side->data());
  if (!ok) return self->forget(side, true);
  for (auto& [name, link] : self->links_) {
    if (link->link == side) link->connected = true;
  }
}

void Migration::on_disconnect(SideLink* side) {
  auto* self = static_cast<Migration*>(side->data());
  if (!self->closing_) self->forget(side, side->failed());  // (a refused AUTH: not again at once)
}

// ------------------------------------------------------------ the background pass --

void Migration::sweep(uint64_t now) {
  if (closing_) return;
  if (mode_ == conf::Migration::warm && !earlier_.empty() && now >= warm_until_ms_) {
    spdlog::info("migration (warm): the window is over; keys not touched stay on their previous shard");
    earlier_.clear();
    progress_.previous_rings = 0;
  }
  if (ready()) {
    std::vector<KeyMove*> waiting;
    for (auto& [key, move] : moving_) {
      if (move->step == KeyMove::Step::waiting) waiting.push_back(move.get());
    }
    for (KeyMove* move : waiting) {
      if (moving_.count(move->key) != 0 && moving_[move->key].get() == move) begin(*move);
    }
  }
  // Links have no timeouts: a connection that does not come up is dropped (its commands
  // fail), a SCAN or a move whose server stopped answering fails here.
  std::vector<std::string> unconnected;
  for (auto& [name, link] : links_) {
    if (!link->connected && now - link->created_ms > connect_timeout_ms_) unconnected.push_back(name);
  }
  for (const std::string& name : unconnected) drop_link(name);
  for (ScanTarget& target : scan_targets_) {
    if (target.in_flight && now - target.sent_ms > move_deadline_ms_) {
      target.in_flight = false;
      target.done = true;
      ++pass_failures_;
      spdlog::warn("migration: scanning shard '{}' on {} timed out", target.source.shard,
                   target.source.servers.front().to_string());
      drop_link(target.source.servers.front().to_string());
    }
  }
  std::vector<std::pair<std::string, uint64_t>> late;
  for (auto& [key, move] : moving_) {
    if (move->step != KeyMove::Step::waiting && now - move->started_ms > move_deadline_ms_) late.emplace_back(key, move->id);
  }
  for (auto& [key, id] : late) {
    auto it = moving_.find(key);
    if (it == moving_.end() || it->second->id != id) continue;
    // Its servers may be hung: they are not asked again for a while (first, so that the
    // requests this failure releases do not try them again at once).
    std::vector<std::string> links = it->second->links;
    it->second->error = "a server did not answer in time";
    for (const std::string& name : links) drop_link(name);  // (fails the move, via its null replies)
    it = moving_.find(key);
    if (it != moving_.end() && it->second->id == id) finish(*it->second, false, "a server did not answer in time");
  }
  if (mode_ == conf::Migration::move && !earlier_.empty() && !pass_running_ && ready() && now >= next_pass_ms_) {
    start_pass();
  }
  scan_more();
}

void Migration::start_pass() {
  ++pass_id_;
  pass_running_ = true;
  pass_failures_ = 0;
  progress_.scanning = true;
  scan_targets_.clear();
  for (const auto& table : earlier_) {
    for (uint32_t shard = 0; shard < table->shards().size(); ++shard) {
      Source source = source_of(*table, shard);
      const bool seen = std::any_of(scan_targets_.begin(), scan_targets_.end(), [&](const ScanTarget& t) {
        return t.source.shard == source.shard && t.source.servers == source.servers;
      });
      if (!seen) scan_targets_.push_back(ScanTarget{std::move(source)});
    }
  }
  last_refill_ms_ = servers_.worker().now_ms();
  tokens_ = 0;
  spdlog::info("migration (move): pass {} over {} shard(s) of {} previous ring(s)", pass_id_, scan_targets_.size(),
               earlier_.size());
}

void Migration::scan_more() {
  if (!pass_running_ || closing_ || in_scan_more_) return;
  in_scan_more_ = true;
  scan_step();
  in_scan_more_ = false;
}

void Migration::scan_step() {
  const uint64_t now = servers_.worker().now_ms();
  tokens_ = std::min<double>(std::max(1.0, keys_per_second_ * 0.2),
                             tokens_ + static_cast<double>(now - last_refill_ms_) * keys_per_second_ / 1000.0);
  last_refill_ms_ = now;
  while (scan_moves_in_flight_ < kScanMovesInFlight && !scan_queue_.empty() && tokens_ >= 1) {
    std::string key = std::move(scan_queue_.front());
    scan_queue_.pop_front();
    if (moving_.count(key) != 0 || moved_.count(key) != 0) continue;
    routing::previous_owners(key, *current_, earlier_, owners_);
    if (owners_.empty()) continue;
    tokens_ -= 1;
    ++scan_moves_in_flight_;
    KeyMove& move = start_move(key, true);
    begin(move);
  }
  if (scan_queue_.size() < kScanQueueLow) {
    for (size_t i = 0; i < scan_targets_.size(); ++i) {
      ScanTarget& target = scan_targets_[i];
      if (target.done || target.in_flight) continue;
      if (auto down = unreachable_until_.find(target.source.servers.front().to_string());
          down != unreachable_until_.end() && now < down->second) {
        target.done = true;  // this pass fails; the next one (after retry_interval) tries again
        ++pass_failures_;
        continue;
      }
      target.in_flight = true;
      target.sent_ms = now;
      if (!command(target.source.servers.front(), Op{this, Op::scan, pass_id_, i, {}}, "SCAN %s COUNT 200",
                   target.cursor.c_str())) {
        target.in_flight = false;
        target.done = true;
        ++pass_failures_;
        spdlog::warn("migration: cannot reach {} to scan shard '{}'", target.source.servers.front().to_string(),
                     target.source.shard);
        continue;
      }
      break;  // one SCAN at a time
    }
  }
  const bool scanned = std::all_of(scan_targets_.begin(), scan_targets_.end(), [](const ScanTarget& t) { return t.done; });
  // Nor while any move is in flight: the pass skipped its key, and a move planned on an earlier
  // ring may still put it where that ring said (a move on this ring then follows).
  if (!scanned || !scan_queue_.empty() || scan_moves_in_flight_ > 0 || !moving_.empty()) return;
  pass_running_ = false;
  progress_.scanning = false;
  ++progress_.passes;
  if (pass_failures_ > 0) {
    next_pass_ms_ = now + retry_interval_ms_;
    spdlog::warn("migration (move): pass {} done with {} failure(s); another pass in {} ms", pass_id_, pass_failures_,
                 retry_interval_ms_);
    return;
  }
  spdlog::info("migration (move) finished: {} keys moved, {} failed along the way", progress_.keys_moved,
               progress_.keys_failed);
  earlier_.clear();
  progress_.previous_rings = 0;
}

void Migration::on_scan_reply(size_t index, void* raw, const std::string& lost) {
  if (index >= scan_targets_.size()) return;
  ScanTarget& target = scan_targets_[index];
  target.in_flight = false;
  auto* reply = static_cast<redisReply*>(raw);
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
    target.done = true;
    ++pass_failures_;
    spdlog::warn("migration: scanning shard '{}' on {} failed: {}", target.source.shard,
                 target.source.servers.front().to_string(),
                 reply == nullptr ? lost : reply->type == REDIS_REPLY_ERROR ? reply_text(reply) : "unexpected reply to SCAN");
    return scan_more();
  }
  target.cursor.assign(reply->element[0]->str, reply->element[0]->len);
  const redisReply* keys = reply->element[1];
  for (size_t i = 0; i < keys->elements; ++i) {
    std::string key(keys->element[i]->str, keys->element[i]->len);
    routing::previous_owners(key, *current_, earlier_, owners_);
    // Only keys this shard owned under a previous ring (others are not the proxy's to move).
    const bool ours = std::any_of(owners_.begin(), owners_.end(), [&](const routing::PreviousOwner& o) {
      return o.table->shards()[o.shard].name == target.source.shard;
    });
    if (!ours) continue;
    ++progress_.keys_to_move;
    scan_queue_.push_back(std::move(key));
  }
  if (target.cursor == "0") target.done = true;
  scan_more();
}

}  // namespace ringproxy::proxy
