#include "proxy/backend/backend_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "proxy/backend/backend_connection.h"
#include "proxy/backend/probe.h"
#include "proxy/backend/resync.h"
#include "proxy/backend/servers.h"

namespace ringproxy::proxy {

std::string_view server_state_name(ServerState state) {
  switch (state) {
    case ServerState::up: return "up";
    case ServerState::down: return "down";
    case ServerState::recovering: return "recovering";
    case ServerState::stale: return "stale";
  }
  return "unknown";
}

BackendServer::BackendServer(Servers& servers, uint32_t index, const routing::ServerEntry& entry, std::string shard_name,
                             const conf::ReplicationConfig& replication, conf::BackendAuth auth,
                             std::shared_ptr<const TlsContext> tls)
    : servers_(servers),
      worker_(servers.worker()),
      index_(index),
      name_(entry.name),
      shard_name_(std::move(shard_name)),
      address_(entry.address),
      endpoint_(entry.address.is_name() ? conf::Address{"", entry.address.port} : entry.address),
      auth_(std::move(auth)),
      tls_(std::move(tls)),
      address_key_(entry.address.to_string()),
      metrics_(servers.worker().metrics()->server(entry.name, shard_name_)),
      replicated_(replication.strategy != conf::ReplicationStrategy::none),
      replication_(replication),
      shard_index_(entry.shard) {
  // backend_connections RESP2 connections, then as many RESP3 ones (ClientSession::backend_slot).
  const uint32_t count = servers.worker().config().pool.backend_connections;
  for (uint32_t i = 0; i < 2 * count; ++i) {
    connections_.push_back(std::make_unique<BackendConnection>(*this, i, i >= count));
  }
  metrics_.up->Set(1);
  set_state(ServerState::up);
}

BackendServer::~BackendServer() { stop(); }

void BackendServer::start() {
  for (auto& connection : connections_) {
    if (connection->keep_warm()) connection->connect();
  }
  if (replicated_ && run_id_.empty()) start_probe();  // learn its run_id, to notice restarts
}

void BackendServer::start_probe() {
  if (probe_ != nullptr || probe_waits_for_name_) return;
  if (address_.is_name()) {  // a probe is a reconnect: the name is looked up again
    resolve_name();
    if (endpoint_.host.empty()) {  // nowhere to ask yet
      probe_waits_for_name_ = true;
      return;
    }
  }
  launch_probe();
}

void BackendServer::launch_probe() {
  if (probe_ != nullptr || stopped_) return;
  const conf::PoolConfig& pool = worker_.config().pool;
  probe_ = new ServerProbe(*this, pool.connect_timeout_ms + pool.request_timeout_ms);
  probe_->start();
}

void BackendServer::stop() {
  stopped_ = true;  // (a lookup answered later starts nothing)
  probe_waits_for_name_ = false;
  checking_address_ = false;
  address_checked_ = false;
  if (probe_ != nullptr) std::exchange(probe_, nullptr)->cancel();
  if (resync_ != nullptr) std::exchange(resync_, nullptr)->cancel();
  for (auto& connection : connections_) connection->fail("proxy is shutting down", BackendConnection::Failure::not_counted);
  for (Dedicated& slot : dedicated_) slot.connection->fail("proxy is shutting down", BackendConnection::Failure::not_counted);
}

bool BackendServer::settled_in_flight() const {
  return std::any_of(connections_.begin(), connections_.end(),
                     [](const auto& connection) { return connection->settled_in_flight(); });
}

bool BackendServer::late_copies_pending() const {
  if (detached()) return false;  // a removed leader's late replies send nothing (DataPath::on_fragment_done)
  return std::any_of(connections_.begin(), connections_.end(),
                     [](const auto& connection) { return connection->late_copies_pending(); });
}

size_t BackendServer::pending() const {
  size_t total = 0;
  for (const auto& connection : connections_) total += connection->pending();
  for (const Dedicated& slot : dedicated_) total += slot.connection->pending();
  return total;
}

void BackendServer::send(Fragment& fragment, uint64_t client_id) {
  fragment.server = this;
  ++requests_;
  servers_.count_pending(index_, 1);
  connections_[client_id % connections_.size()]->enqueue(&fragment);
}

// A RESP3 client's command for a replicated server goes on the RESP2 connection every write to
// the server shares (their order is the servers' order), between HELLO 3 and HELLO 2: it gets
// its reply in RESP3, and the connection is RESP2 again for what follows.
void BackendServer::send_in_resp3(Fragment& fragment, uint32_t slot) {
  const uint32_t resp2_slot = slot % static_cast<uint32_t>(connections_.size() / 2);
  static constexpr std::string_view kHello3 = "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n";
  static constexpr std::string_view kHello2 = "*2\r\n$5\r\nHELLO\r\n$1\r\n2\r\n";
  auto switch_to = [&](std::string_view hello) {
    Fragment& f = switching_.emplace_back();
    f.bytes = hello;
    f.state = Fragment::State::sent;
    send(f, resp2_slot);
  };
  switch_to(kHello3);
  send(fragment, resp2_slot);
  switch_to(kHello2);
}

// A HELLO of send_in_resp3 is answered (or failed with its connection): forgotten. A server
// that cannot switch (older than redis 6) gave the command's RESP2 reply: said once.
bool BackendServer::on_switch_done(Fragment& fragment) {
  auto it = std::find_if(switching_.begin(), switching_.end(), [&](const Fragment& f) { return &f == &fragment; });
  if (it == switching_.end()) return false;
  if (!fragment.failed && resp::is_error_reply(fragment.reply) && !switch_refusal_logged_) {
    switch_refusal_logged_ = true;
    spdlog::warn("server {} (shard {}) refuses HELLO 3 ({}): RESP3 clients get its RESP2 replies", name_, shard_name_,
                 fragment.reply.substr(0, fragment.reply.find('\r')));
  }
  switching_.erase(it);
  return true;
}

BackendConnection* BackendServer::take_dedicated(std::string& error, bool resp3) {
  if (detached() || stopped_ || state_ != ServerState::up) {
    error = "ERR server " + name_ + " (shard '" + shard_name_ + "') takes no requests now (" +
            std::string(server_state_name(state_)) + ")";
    return nullptr;
  }
  for (Dedicated& slot : dedicated_) {
    if (slot.in_use || slot.connection->resp3() != resp3) continue;
    slot.in_use = true;
    ++dedicated_in_use_;
    metrics_.dedicated->Set(static_cast<double>(dedicated_in_use_));
    return slot.connection.get();
  }
  const uint32_t limit = worker_.config().pool.dedicated_connections;
  if (dedicated_.size() + subscriber_slots_ >= limit) {  // an idle one of the other protocol makes room
    for (Dedicated& slot : dedicated_) {
      if (slot.in_use || slot.connection->pending() > 0) continue;
      slot.connection = std::make_unique<BackendConnection>(*this, slot.connection->index(), resp3);
      slot.in_use = true;
      ++dedicated_in_use_;
      metrics_.dedicated->Set(static_cast<double>(dedicated_in_use_));
      return slot.connection.get();
    }
  }
  if (dedicated_.size() + subscriber_slots_ >= limit) {
    ++dedicated_exhausted_;
    metrics_.dedicated_exhausted->Increment();
    error = "ERR no dedicated connection free to server " + name_ + " (shard '" + shard_name_ + "'): all " +
            std::to_string(limit) + " are held by clients (WATCH, blocking commands, subscriptions; [pool] dedicated_connections); retry later";
    return nullptr;
  }
  const auto index = static_cast<uint32_t>(connections_.size() + dedicated_.size());
  dedicated_.push_back({std::make_unique<BackendConnection>(*this, index, resp3), true});
  ++dedicated_in_use_;
  metrics_.dedicated->Set(static_cast<double>(dedicated_in_use_));
  return dedicated_.back().connection.get();
}

bool BackendServer::take_subscriber_slot(std::string& error) {
  if (detached() || stopped_ || state_ != ServerState::up) {
    error = "ERR server " + name_ + " (shard '" + shard_name_ + "') takes no subscribers now (" +
            std::string(server_state_name(state_)) + ")";
    return false;
  }
  const uint32_t limit = worker_.config().pool.dedicated_connections;
  size_t idle = 0;  // idle dedicated data connections make room
  for (const Dedicated& slot : dedicated_) idle += !slot.in_use && slot.connection->pending() == 0;
  if (dedicated_.size() - idle + subscriber_slots_ >= limit) {
    ++dedicated_exhausted_;
    metrics_.dedicated_exhausted->Increment();
    error = "ERR no dedicated connection free to server " + name_ + " (shard '" + shard_name_ + "'): all " +
            std::to_string(limit) + " are held by clients (WATCH, blocking commands, subscriptions; [pool] "
            "dedicated_connections); retry later";
    return false;
  }
  if (dedicated_.size() + subscriber_slots_ >= limit) {  // an idle data connection gives its place
    for (auto it = dedicated_.begin(); it != dedicated_.end(); ++it) {
      if (it->in_use || it->connection->pending() > 0) continue;
      dedicated_.erase(it);  // (as the sweep trims idle ones: not inside one of its callbacks)
      break;
    }
  }
  ++subscriber_slots_;
  ++dedicated_in_use_;
  metrics_.dedicated->Set(static_cast<double>(dedicated_in_use_));
  return true;
}

void BackendServer::give_back_subscriber_slot() {
  if (subscriber_slots_ == 0) return;
  --subscriber_slots_;
  --dedicated_in_use_;
  metrics_.dedicated->Set(static_cast<double>(dedicated_in_use_));
}

void BackendServer::give_back_dedicated(BackendConnection* connection, bool clean) {
  auto it = std::find_if(dedicated_.begin(), dedicated_.end(),
                         [&](const Dedicated& slot) { return slot.connection.get() == connection; });
  if (it == dedicated_.end() || !it->in_use) return;
  it->in_use = false;
  connection->allow_blocking(0);
  --dedicated_in_use_;
  metrics_.dedicated->Set(static_cast<double>(dedicated_in_use_));
  // Closed, the server forgets what it held; the slot reconnects for its next client. (Not
  // destroyed here: this may run inside one of its own callbacks. sweep() trims idle slots.)
  if (!clean) connection->fail("given back holding server state", BackendConnection::Failure::not_counted);
}

void BackendServer::send_dedicated(Fragment& fragment, BackendConnection& connection) {
  fragment.server = this;
  ++requests_;
  servers_.count_pending(index_, 1);
  connection.enqueue_dedicated(&fragment);
}

void BackendServer::on_success() { consecutive_failures_ = 0; }

void BackendServer::set_mode(routing::ServerMode mode) {
  mode_ = mode;
  servers_.set_server_mode(index_, mode);
}

void BackendServer::rebind(uint32_t index, uint32_t shard_index, const conf::ReplicationConfig& replication,
                           conf::BackendAuth auth, std::shared_ptr<const TlsContext> tls) {
  auth_ = std::move(auth);  // for the connections it opens from now on
  tls_ = std::move(tls);
  index_ = index;
  shard_index_ = shard_index;
  const bool was_replicated = replicated_;
  replication_ = replication;
  replicated_ = replication.strategy != conf::ReplicationStrategy::none;
  if (was_replicated && !replicated_) {  // nothing to catch up with any more
    replay_.clear();
    replay_bytes_ = 0;
    metrics_.replay_queue->Set(0);
    if (state_ == ServerState::recovering || state_ == ServerState::stale) {
      lagging_ = false;
      set_state(ServerState::up);
      set_mode(routing::kServerLive);
    }
  }
  if (replicated_ && run_id_.empty()) start_probe();
}

void BackendServer::forget_metrics() { worker_.metrics()->forget_server(metrics_); }

void BackendServer::detach() {
  // Watching clients lose their WATCH (their EXEC answers nil); their connections are given
  // back at their next command.
  for (Dedicated& slot : dedicated_) {
    if (slot.in_use) slot.connection->fail("the server was removed by a reload", BackendConnection::Failure::not_counted);
  }
  index_ = kDetached;
  probe_waits_for_name_ = false;
  checking_address_ = false;
  address_checked_ = false;
  if (probe_ != nullptr) std::exchange(probe_, nullptr)->cancel();
  if (resync_ != nullptr) std::exchange(resync_, nullptr)->cancel();
  if (!replay_.empty()) {
    spdlog::warn("server {} (shard {}) was removed with {} writes in its replay queue: they are dropped", name_,
                 shard_name_, replay_.size());
  }
  replay_.clear();
  replay_bytes_ = 0;
  metrics_.replay_queue->Set(0);
}

void BackendServer::abandon() {
  for (auto& connection : connections_) {
    connection->fail("replaced by a server at the same address", BackendConnection::Failure::not_counted);
  }
}

void BackendServer::publish_metrics() {
  latency_.publish(*metrics_.latency);
  if (!detached()) {  // a drained server's gauges may be shared with its successor's
    metrics_.connections->Set(static_cast<double>(connected_count()));
    metrics_.pending->Set(static_cast<double>(pending()));
  }
  if (requests_ == published_requests_) return;
  metrics_.requests->Increment(static_cast<double>(requests_ - published_requests_));
  published_requests_ = requests_;
}

size_t BackendServer::connected_count() const {
  size_t n = 0;
  for (const auto& connection : connections_) n += connection->connected();
  return n;
}

void BackendServer::set_state(ServerState state) {
  state_ = state;
  for (size_t i = 0; i < 4; ++i) metrics_.state[i]->Set(static_cast<size_t>(state) == i ? 1 : 0);
}

void BackendServer::on_failure(std::string_view why, bool timeout) {
  ++failures_;
  metrics_.errors->Increment();
  if (timeout) metrics_.timeouts->Increment();
  last_error_ = std::string(why);
  ++consecutive_failures_;
  const conf::PoolConfig& pool = worker_.config().pool;
  uint64_t backoff = std::min<uint64_t>(pool.retry_interval_ms, 50ull << std::min(consecutive_failures_, 10u));
  reconnect_after_ms_ = worker_.now_ms() + backoff;
  spdlog::warn("server {} (shard {}): {} (failure {} of {})", name_, shard_name_, why, consecutive_failures_,
               pool.failure_limit);
  // A replicated server that lost a connection is not trusted again until a probe has seen
  // the same run_id (a restart without persistence lost its data): it is down at once.
  // (recovering included: it might come back empty, and must not be replayed onto.)
  const bool trusted = state_ == ServerState::up || (replicated_ && state_ == ServerState::recovering);
  if (trusted && (consecutive_failures_ >= pool.failure_limit || replicated_)) mark_down(why);
}

void BackendServer::on_login_refused(std::string_view why) {
  ++failures_;
  metrics_.errors->Increment();
  metrics_.login_failures->Increment();
  last_error_ = std::string(why);
  if (state_ == ServerState::up || state_ == ServerState::recovering) return mark_down(why);
  down_until_ms_ = worker_.now_ms() + worker_.config().pool.retry_interval_ms;
}

void BackendServer::resolve_name() {
  if (address_.is_name() && !detached()) servers_.resolver().resolve(address_.host);
}

void BackendServer::on_resolved(const Resolver::Answer& answer) {
  if (detached() || stopped_) return;  // draining or shutting down: it opens nothing new
  if (!answer.error.empty()) metrics_.resolve_failures->Increment();
  if (answer.ips.empty()) {  // the name has no address: nowhere to connect
    endpoint_.host.clear();
    addresses_.clear();
    ++failures_;
    metrics_.errors->Increment();
    last_error_ = answer.error;
    for (auto& connection : connections_) connection->on_name_resolved();  // those waiting fail
    if (state_ == ServerState::up || state_ == ServerState::recovering) mark_down(answer.error);
    if (std::exchange(probe_waits_for_name_, false)) on_probe_result(false, answer.error, "", "");
    return;
  }
  if (!answer.error.empty() && answer.error != last_error_) {
    spdlog::warn("server {} (shard {}): {}; still using its last address {}", name_, shard_name_, answer.error,
                 endpoint_.host.empty() ? answer.ips.front() : endpoint_.host);
    last_error_ = answer.error;
  }
  addresses_ = answer.ips;
  // The address in use stays while the name still has it (DNS servers rotate their answers).
  const std::string previous = endpoint_.host;
  if (std::find(addresses_.begin(), addresses_.end(), previous) == addresses_.end()) {
    endpoint_.host = addresses_.front();
    if (!previous.empty()) check_new_address(previous);
  }
  for (auto& connection : connections_) connection->on_name_resolved();
  if (std::exchange(probe_waits_for_name_, false)) launch_probe();
}

// The name now points elsewhere. Connections there open from now on; those to the old address
// move once idle (sweep). A replicated server may be a new, empty process there: it takes
// no reads and its writes queue (as when it lags) until a probe of the new address has seen
// the run_id it had, then catches up by replay (or, a new run_id, is resynced).
void BackendServer::check_new_address(const std::string& previous) {
  spdlog::warn("server {} (shard {}): {} now resolves to {} (was {}); connections move there", name_, shard_name_,
               address_.host, endpoint_.host, previous);
  if (!replicated_ || (state_ != ServerState::up && state_ != ServerState::recovering)) return;
  checking_address_ = true;
  address_checked_ = false;  // (a move during a check: asked again)
  if (state_ == ServerState::up) {
    set_state(ServerState::recovering);
    set_mode(routing::kServerQueue);
  }
  if (probe_ == nullptr) launch_probe();  // (one in flight asked the old address: it is asked again)
}

// The same process at its new address: it catches up by replay once nothing is in flight on
// any connection (a replay on connection 0 must not overtake a write another still holds).
void BackendServer::finish_address_check() {
  for (const auto& connection : connections_) {
    if (connection->busy()) return;  // the sweep asks again
  }
  checking_address_ = false;
  address_checked_ = false;
  replay_more();
}

void BackendServer::try_next_address() {
  if (addresses_.size() < 2) return;
  auto it = std::find(addresses_.begin(), addresses_.end(), endpoint_.host);
  endpoint_.host = (it == addresses_.end() || it + 1 == addresses_.end()) ? addresses_.front() : *(it + 1);
}

void BackendServer::mark_down(std::string_view why) {
  checking_address_ = false;  // the probe of a down server decides
  address_checked_ = false;
  const bool stale = state_ == ServerState::stale;
  set_state(stale ? ServerState::stale : ServerState::down);
  down_until_ms_ = worker_.now_ms() + worker_.config().pool.retry_interval_ms;
  if (!stale) set_mode(routing::kServerQueue);
  metrics_.up->Set(0);
  spdlog::error("server {} (shard {}) is down: {}; requests for its keys fail until it answers again", name_,
                shard_name_, why);
  for (auto& connection : connections_) connection->fail("server is down", BackendConnection::Failure::not_counted);
  for (Dedicated& slot : dedicated_) slot.connection->fail("server is down", BackendConnection::Failure::not_counted);
}

void BackendServer::mark_up() {
  consecutive_failures_ = 0;
  metrics_.up->Set(1);
  for (auto& connection : connections_) {
    if (connection->keep_warm()) connection->connect();
  }
  if (state_ == ServerState::stale) {
    spdlog::warn("server {} (shard {}) answers again but is stale: {}", name_, shard_name_, last_error_);
    return;
  }
  if (replicated_ && (!replay_.empty() || fenced() || awaiting_copies_ > 0)) {
    set_state(ServerState::recovering);
    spdlog::info("server {} (shard {}) is back; replaying {} missed writes", name_, shard_name_, replay_.size());
    return replay_more();
  }
  set_state(ServerState::up);
  set_mode(routing::kServerLive);
  spdlog::info("server {} (shard {}) is up again", name_, shard_name_);
}

void BackendServer::on_probe_result(bool ok, std::string_view why, std::string_view run_id, std::string_view probed) {
  probe_ = nullptr;
  std::string why_text;
  if (address_.is_name() && !probed.empty() && probed != endpoint_.host) {  // it moved meanwhile
    if (checking_address_ || state_ == ServerState::down || state_ == ServerState::stale ||
        (replicated_ && run_id_.empty())) {
      launch_probe();
    }
    return;
  }
  // Answered, but no run_id (its user may not run INFO): a replicated server's restart, and
  // with it lost data, could not be told, so it is not trusted; a plain cache is.
  if (ok && run_id.empty() && replicated_) {
    ok = false;
    why_text = "its restarts cannot be told without INFO (" + std::string(why) +
               "): give the proxy's user INFO on a replicated shard";
    why = why_text;
  }
  if (!ok && state_ == ServerState::up && replicated_ && run_id_.empty() && !startup_probe_failed_) {
    startup_probe_failed_ = true;  // (once: it serves, but a restart will keep it down)
    spdlog::error("server {} (shard {}): cannot learn its run_id: {}", name_, shard_name_, why);
  }
  if (!ok && why.rfind(kLoginRefused, 0) == 0) metrics_.login_failures->Increment();
  if (!ok && address_.is_name() && !probed.empty()) try_next_address();
  if (ok && !run_id.empty()) {
    if (run_id_.empty()) {
      // It served before its run_id was known (its start-up probe failed) and went away
      // since: whether it restarted cannot be told, so it is resynced.
      if (replicated_ && startup_probe_failed_ && state_ != ServerState::up) {
        mark_stale("it went away before its run_id was known: it may have restarted");
      }
      run_id_ = std::string(run_id);
    } else if (run_id != run_id_) {
      run_id_ = std::string(run_id);
      servers_.set_server_epoch(index_, ++incarnation_);
      if (replicated_) mark_stale("it restarted (new run_id): the data it had is gone");
    }
  }
  if (checking_address_) {  // it moved: is it the same process?
    if (!ok) return mark_down(why);  // (clears the check)
    if (state_ != ServerState::recovering) {  // no: stale now, and resynced
      checking_address_ = false;
      return;
    }
    address_checked_ = true;
    return finish_address_check();
  }
  if (state_ != ServerState::down && state_ != ServerState::stale) return;  // the start-up probe
  if (ok) return mark_up();
  last_error_ = std::string(why);
  down_until_ms_ = worker_.now_ms() + worker_.config().pool.retry_interval_ms;
}

// Replay queue: bounded in writes and bytes. A write that does not fit makes the server
// stale (a resync replaces the replay); nothing is dropped silently.
void BackendServer::queue_for_replay(std::string_view bytes, uint32_t replies) {
  if (state_ == ServerState::stale || !replicated_ || detached()) return;
  if (replay_.size() >= replication_.replay_queue_max_writes ||
      replay_bytes_ + bytes.size() > replication_.replay_queue_max_bytes) {
    replay_dropped_ += replay_.size() + 1;
    metrics_.replay_dropped->Increment(static_cast<double>(replay_.size() + 1));
    return mark_stale("its replay queue overflowed (" + std::to_string(replay_.size()) + " writes, " +
                      std::to_string(replay_bytes_) + " bytes)");
  }
  Block* block = Block::create(bytes.size());
  std::memcpy(block->data(), bytes.data(), bytes.size());
  replay_.push_back({BlockRef::adopt(block), std::string_view(block->data(), bytes.size()), replies});
  replay_bytes_ += bytes.size();
  metrics_.replay_queue->Set(static_cast<double>(replay_.size()));
  if (state_ == ServerState::up) {
    // A live server missed this write (its connection failed before sending it): it is
    // behind until the write is replayed, so it serves nothing meanwhile.
    set_state(ServerState::recovering);
    set_mode(routing::kServerQueue);
    spdlog::warn("server {} (shard {}) missed a write; replaying it", name_, shard_name_);
  }
  if (state_ == ServerState::recovering && !lagging_ && replaying_.empty()) replay_more();
}

void BackendServer::copy_resolved() {
  if (awaiting_copies_ > 0 && --awaiting_copies_ == 0 && state_ == ServerState::recovering) replay_more();
}

bool BackendServer::fenced() const { return servers_.fences().any(address_key_); }

void BackendServer::fence(std::string local) {
  if (local.empty()) return;
  const std::string target = local;
  servers_.fences().add(address_key_, std::move(local));
  if (!replicated_ || detached()) return;  // the next connection kills it before it sends
  if (state_ == ServerState::up) {
    set_state(ServerState::recovering);
    set_mode(routing::kServerQueue);
    spdlog::warn("server {} (shard {}): a connection was abandoned with commands outstanding; it serves nothing "
                 "until that connection is killed",
                 name_, shard_name_);
  }
  // A stale server is fenced by its resync; a down one by its next connection.
  if (state_ == ServerState::recovering) connections_.front()->send_fence(target);
}

Fragment* BackendServer::fence_fragment(const std::string& target) {
  Fence& fence = fencing_.emplace_back();
  fence.target = target;
  const std::string command = FenceBook::kill_command(target);
  Block* block = Block::create(command.size());
  std::memcpy(block->data(), command.data(), command.size());
  fence.fragment.server = this;
  fence.fragment.bytes = std::string_view(block->data(), command.size());
  fence.fragment.bytes_block = BlockRef::adopt(block);
  return &fence.fragment;
}

// A fence's reply, or its failure (then a later connection sends it again).
bool BackendServer::on_fence_done(Fragment& fragment) {
  auto it = std::find_if(fencing_.begin(), fencing_.end(), [&](const Fence& f) { return &f.fragment == &fragment; });
  if (it == fencing_.end()) return false;  // not a fence: a replayed write
  const std::string target = std::move(it->target);
  const bool failed = fragment.failed;
  const std::string reply(fragment.reply.substr(0, 256));
  fencing_.erase(it);
  if (!failed) on_fence_reply(target, reply);
  return true;
}

void BackendServer::on_fence_reply(std::string_view target, std::string_view reply) {
  if (!servers_.fences().done(address_key_, target)) return;  // another connection's kill ran first
  ++fences_run_;
  metrics_.fences->Increment();
  if (resp::is_error_reply(reply)) {
    spdlog::warn("server {} (shard {}): cannot kill the abandoned connection {} ({}): commands it still holds may "
                 "run late",
                 name_, shard_name_, target, reply.substr(0, reply.find('\r')));
  } else {
    spdlog::info("server {} (shard {}): killed the abandoned connection {} (nothing it held will run)", name_,
                 shard_name_, target);
  }
  if (!fenced() && state_ == ServerState::recovering) replay_more();
}

void BackendServer::on_lagging(std::string_view why) {
  metrics_.timeouts->Increment();
  ++failures_;
  last_error_ = std::string(why);
  if (state_ != ServerState::up && state_ != ServerState::recovering) return;
  lagging_ = true;  // (recovering too: its replay must not overtake what this connection holds)
  if (state_ == ServerState::recovering) return;
  set_state(ServerState::recovering);
  set_mode(routing::kServerQueue);
  spdlog::warn("server {} (shard {}) lags ({}); writes queue for it until its late replies are in", name_,
               shard_name_, why);
}

void BackendServer::on_lag_over() {
  // Every connection's late replies must be in: a replay on connection 0 must not overtake
  // writes another connection still holds.
  for (const auto& connection : connections_) {
    if (connection->lagging()) return;
  }
  lagging_ = false;
  if (state_ != ServerState::recovering) return;
  spdlog::info("server {} (shard {}) answers again; replaying {} queued writes", name_, shard_name_, replay_.size());
  replay_more();
}

void BackendServer::mark_stale(std::string_view why) {
  if (state_ == ServerState::stale || !replicated_) return;
  set_state(ServerState::stale);
  lagging_ = false;
  last_error_ = std::string(why);
  replay_.clear();
  replay_bytes_ = 0;
  metrics_.replay_queue->Set(0);
  set_mode(routing::kServerSkip);
  spdlog::error("server {} (shard {}) is stale: {}; it serves nothing until resynced", name_, shard_name_, why);
}

// Sends what is queued, in order, on connection 0 (one FIFO: the replay keeps its order).
// New writes keep queueing behind while it drains; when nothing is left the server is live.
void BackendServer::replay_more() {
  if (state_ != ServerState::recovering || lagging_ || fenced() || checking_address_) return;
  if (replay_.empty()) {
    if (!replaying_.empty() || awaiting_copies_ > 0) return;
    set_state(ServerState::up);
    set_mode(routing::kServerLive);
    if (replayed_) {
      ++replays_;
      metrics_.replays->Increment();
    }
    replayed_ = false;
    spdlog::info("server {} (shard {}) caught up: it is live again", name_, shard_name_);
    return;
  }
  replayed_ = true;
  while (!replay_.empty()) {
    ReplayEntry entry = std::move(replay_.front());
    replay_.pop_front();
    replay_bytes_ -= entry.bytes.size();
    Fragment& fragment = replaying_.emplace_back();
    fragment.bytes = entry.bytes;
    fragment.bytes_block = std::move(entry.block);
    fragment.expect_replies(entry.replies);
    fragment.state = Fragment::State::sent;
    send(fragment, 0);
  }
  metrics_.replay_queue->Set(0);
}

void BackendServer::on_replay_done(Fragment& fragment) {
  if (!switching_.empty() && on_switch_done(fragment)) return;
  if (!fencing_.empty() && on_fence_done(fragment)) return;
  if (fragment.failed) {
    mark_stale(fragment.maybe_sent ? "a replayed write was lost in flight" : "its replay was interrupted");
  } else if (std::string_view reply = fragment.more_replies > 0 ? resp::last_reply(fragment.reply) : fragment.reply;
             resp::is_error_reply(reply)) {
    mark_stale("a replayed write was refused: " + std::string(reply.substr(0, reply.find('\r'))));
  }
  // Replies come back in order on connection 0, and a failure fails them all in order: each
  // pops its own entry (the others may still be queued on the connection: never clear them).
  if (!replaying_.empty() && &replaying_.front() == &fragment) replaying_.pop_front();
  if (state_ == ServerState::stale) return;
  replay_more();
}

// A stale server that answers is resynced from a live peer of its shard (the primary
// when it is live), one attempt at a time, retried every retry_interval.
void BackendServer::maybe_resync(uint64_t now_ms) {
  if (resync_ != nullptr || now_ms < next_resync_ms_ || detached()) return;
  // Only once nothing is outstanding on its connections: what they hold either runs before
  // the resync or, abandoned, is killed by it (fence.h).
  if (pending() > 0) return;
  const routing::ShardEntry& shard = servers_.table()->shards()[shard_index_];
  BackendServer* peer = nullptr;
  for (uint32_t s : shard.servers) {
    if (s != index_ && servers_.server_mode(s) == routing::kServerLive) {
      peer = servers_.servers()[s].get();
      break;
    }
  }
  next_resync_ms_ = now_ms + worker_.config().pool.retry_interval_ms;
  if (peer == nullptr) return;  // nobody in sync to copy from (yet)
  resync_ = new ResyncJob(*this, *peer);
  resync_->start();
}

void BackendServer::cancel_resync_from(const BackendServer& peer) {
  if (resync_ != nullptr && resync_->peer() == &peer) std::exchange(resync_, nullptr)->cancel();
}

void BackendServer::on_resync_result(bool ok, std::string_view why) {
  resync_ = nullptr;
  if (!ok) {
    spdlog::warn("resync of {} (shard {}) failed: {}; retrying in {} ms", name_, shard_name_, why,
                 worker_.config().pool.retry_interval_ms);
    return;
  }
  ++resyncs_;
  servers_.set_server_epoch(index_, ++incarnation_);
  metrics_.resyncs->Increment();
  set_state(ServerState::up);
  consecutive_failures_ = 0;
  lagging_ = false;
  replay_.clear();
  replay_bytes_ = 0;
  metrics_.up->Set(1);
  for (auto& connection : connections_) {
    if (connection->keep_warm()) connection->connect();
  }
  if (fenced() || awaiting_copies_ > 0) {  // a connection abandoned meanwhile is killed first
    set_state(ServerState::recovering);
    set_mode(routing::kServerQueue);  // its copy is complete: from now on writes queue for it
    spdlog::info("server {} (shard {}) resynced; live once its abandoned connections are killed", name_, shard_name_);
    return;
  }
  set_mode(routing::kServerLive);
  spdlog::info("server {} (shard {}) resynced: it is live again", name_, shard_name_);
}

void BackendServer::sweep(uint64_t now_ms) {
  for (Dedicated& slot : dedicated_) slot.connection->check_timeouts(now_ms);
  // One idle dedicated connection is kept for the next watcher; the others close.
  bool kept = false;
  std::erase_if(dedicated_, [&](const Dedicated& slot) {
    if (slot.in_use || slot.connection->pending() > 0) return false;
    return std::exchange(kept, true);
  });
  if (detached()) {  // draining: only its requests in flight matter
    for (auto& connection : connections_) connection->check_timeouts(now_ms);
    return;
  }
  if (state_ == ServerState::stale) {
    // A lagging connection of a stale server is given up (and fenced): the resync replaces
    // whatever its late writes would have done.
    for (auto& connection : connections_) {
      if (connection->lagging()) {
        connection->fail("given up: the server is stale and will be resynced", BackendConnection::Failure::not_counted);
      }
    }
  }
  if (state_ == ServerState::stale && consecutive_failures_ < worker_.config().pool.failure_limit) {
    maybe_resync(now_ms);
  }
  if (state_ == ServerState::down || (state_ == ServerState::stale && consecutive_failures_ >= worker_.config().pool.failure_limit)) {
    if (probe_ == nullptr && now_ms >= down_until_ms_) start_probe();
    return;
  }
  // A replicated server whose start-up probe failed is asked again: without its run_id a
  // restart could not be told.
  if (replicated_ && run_id_.empty() && startup_probe_failed_ && probe_ == nullptr && now_ms >= down_until_ms_) {
    down_until_ms_ = now_ms + worker_.config().pool.retry_interval_ms;
    start_probe();
  }
  if (checking_address_ && address_checked_) finish_address_check();
  for (auto& connection : connections_) {
    connection->check_timeouts(now_ms);
    // Its name resolves elsewhere now: an idle connection to the old address moves.
    if (address_.is_name() && connection->idle_at_other_address(endpoint_.host)) {
      connection->fail("its name now resolves to " + endpoint_.host, BackendConnection::Failure::not_counted);
    }
    // Keep idle connections warm after a failure, with backoff.
    // A recovering server with a fence pending needs a connection to run the kill on.
    if ((state_ == ServerState::up || (state_ == ServerState::recovering && fenced())) &&
        connection->disconnected() && connection->keep_warm() && now_ms >= reconnect_after_ms_) {
      connection->connect();
    }
  }
}

}  // namespace ringproxy::proxy
