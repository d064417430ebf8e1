#include "proxy/proxy.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>

#include "proxy/backend.h"
#include "proxy/client_session.h"
#include "proxy/migration.h"
#include "proxy/net.h"
#include "proxy/reload.h"
#include "proxy/repair.h"
#include "proxy/resp/reply_scanner.h"

namespace ringproxy::proxy {

void Request::recycle() {
  client = nullptr;
  next = nullptr;
  request_block.reset();
  raw = {};
  args.clear();
  cmd = nullptr;
  top_cmd = nullptr;
  started_ns = 0;
  rejected = false;
  topology.reset();
  fragments.clear();
  groups.clear();
  fragments_pending = 0;
  fragments_in_flight = 0;
  reducer.reset();
  replicated_write = false;
  reply = {};
  owned_reply.clear();
  done = false;
  close_after_reply = false;
}

Proxy::Proxy(uv_loop_t* loop, conf::Config config, metrics::Metrics* metrics, std::string config_path,
             std::string digest)
    : loop_(loop),
      config_(std::move(config)),
      metrics_(metrics),
      config_path_(std::move(config_path)),
      config_digest_(std::move(digest)),
      timing_(config_.metrics.listen.has_value()) {}

Proxy::~Proxy() {
  migration_.reset();  // first: it may hold parked requests
  draining_.clear();
  servers_.clear();  // before the pool: closing their connections still updates pending_ and modes_
  for (Request* request : request_pool_) delete request;
}

bool Proxy::start(std::string* error) {
  started_at_ms_ = uv_now(loop_);
  bind_topology(routing::RoutingTable::build(config_.pool));
  config_loaded_unix_ = static_cast<uint64_t>(std::time(nullptr));
  metrics_->set_config(config_digest_, static_cast<double>(config_loaded_unix_));

  const conf::Address& listen = config_.proxy.listen;
  listener_.data = this;
  if (int rc = listen_on(loop_, &listener_, listen, 511, on_connection); rc != 0) {
    *error = "cannot listen on " + listen.to_string() + ": " + uv_strerror(rc);
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
    servers_.clear();
    return false;
  }

  if (config_.metrics.listen) {
    metrics_endpoint_ = std::make_unique<MetricsEndpoint>(loop_, *metrics_);
    if (!metrics_endpoint_->listen(*config_.metrics.listen, error)) {
      uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
      servers_.clear();
      return false;
    }
    spdlog::info("metrics on http://{}/metrics", config_.metrics.listen->to_string());
  }

  uv_prepare_init(loop_, &flusher_);
  flusher_.data = this;
  uv_prepare_start(&flusher_, on_prepare);

  // Timeouts are checked by a sweep rather than a timer per request: no timer work on
  // the hot path, at the cost of up to one sweep period of extra delay.
  const conf::PoolConfig& pool = config_.pool;
  sweep_period_ms_ = std::clamp<uint64_t>(std::min(pool.connect_timeout_ms, pool.request_timeout_ms) / 10, 5, 100);
  uv_timer_init(loop_, &sweeper_);
  sweeper_.data = this;
  uv_timer_init(loop_, &releaser_);
  releaser_.data = this;
  uv_timer_start(&sweeper_, on_sweep, sweep_period_ms_, sweep_period_ms_);

  uv_signal_init(loop_, &sigint_);
  uv_signal_init(loop_, &sigterm_);
  sigint_.data = sigterm_.data = this;
  uv_signal_start(&sigint_, on_signal, SIGINT);
  uv_signal_start(&sigterm_, on_signal, SIGTERM);
  if (!config_path_.empty()) {
    uv_signal_init(loop_, &sighup_);
    sighup_.data = this;
    uv_signal_start(&sighup_, on_signal, SIGHUP);
    if (watch_config_) {
      watcher_ = std::make_unique<ConfigWatcher>(*this, config_path_);
      watcher_->start();
    }
  }

  started_listening_ = true;
  for (auto& server : servers_) server->start();
  spdlog::info("ringproxy listening on {} with {} shards, {} servers ({} / {}), config digest {}", listen.to_string(),
               table()->shards().size(), table()->servers().size(), routing::hash_function_name(pool.hash),
               routing::distribution_name(pool.distribution), config_digest_.empty() ? "none" : config_digest_);
  return true;
}

void Proxy::stop() {
  if (stopping_) return;
  stopping_ = true;
  spdlog::info("ringproxy stopping");
  uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&flusher_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sweeper_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&releaser_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
  if (metrics_endpoint_) metrics_endpoint_->close();
  if (!config_path_.empty()) uv_close(reinterpret_cast<uv_handle_t*>(&sighup_), nullptr);
  if (watcher_) watcher_->stop();
  std::vector<ClientSession*> clients = clients_;
  for (ClientSession* client : clients) client->close();
  if (migration_) migration_->stop();  // after the clients: its parked requests are orphans now
  for (const auto& shard : topology_->shards) {
    if (shard->repair != nullptr) std::exchange(shard->repair, nullptr)->cancel();
  }
  for (auto& server : servers_) server->stop();
  for (auto& server : draining_) server->stop();
}

std::string Proxy::start_repair(uint32_t shard) {
  const routing::ShardEntry& entry = table()->shards()[shard];
  ShardRuntime& state = shard_state(shard);
  if (entry.replication.strategy == conf::ReplicationStrategy::none) {
    return "-ERR shard '" + entry.name + "' is not replicated: nothing to repair\r\n";
  }
  if (state.repair != nullptr) return "+repair of shard '" + entry.name + "' is already running\r\n";
  ++state.repair_stats.started;
  state.metrics.repairs_started->Increment();
  state.repair = new RepairJob(*this, shard);
  state.repair->start();  // may finish at once (fewer than 2 servers in sync)
  return "+repair of shard '" + entry.name + "' started\r\n";
}

// A quorum read found different copies: repair just its keys (unless a full pass runs).
void Proxy::start_read_repair(ShardRuntime& shard, uint32_t shard_index, std::vector<std::string> keys) {
  ++shard.repair_stats.read_repairs;
  shard.metrics.read_repairs->Increment();
  // Only on the current snapshot: a read planned before a reload repairs nothing.
  if (shard.repair != nullptr || keys.empty() || shard_index >= topology_->shards.size() ||
      topology_->shards[shard_index].get() != &shard) {
    return;
  }
  shard.repair = new RepairJob(*this, shard_index, std::move(keys));
  shard.repair->start();
}

void Proxy::on_repair_done(ShardRuntime& shard, bool ok, uint64_t keys_scanned, uint64_t keys_fixed,
                           const std::string& why) {
  shard.repair = nullptr;
  RepairStats& stats = shard.repair_stats;
  stats.keys_scanned += keys_scanned;
  stats.keys_fixed += keys_fixed;
  shard.metrics.repair_keys_fixed->Increment(static_cast<double>(keys_fixed));
  (ok ? shard.metrics.repairs_finished : shard.metrics.repairs_failed)->Increment();
  stats.last_end_ms = now_ms();
  if (ok) {
    ++stats.finished;
    stats.last_error.clear();
    spdlog::info("repair of shard {} finished: {} keys compared, {} fixed", shard.name, keys_scanned, keys_fixed);
  } else {
    ++stats.failed;
    stats.last_error = why;
    spdlog::warn("repair of shard {} failed after {} keys fixed: {}", shard.name, keys_fixed, why);
  }
}

void Proxy::on_signal(uv_signal_t* handle, int signum) {
  auto* self = static_cast<Proxy*>(handle->data);
  if (signum == SIGHUP) {
    self->reload("SIGHUP");
  } else {
    self->stop();
  }
}

void Proxy::on_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<Proxy*>(server->data);
  if (status < 0) {
    spdlog::warn("accept: {}", uv_strerror(status));
    return;
  }
  self->accept_client();
}

void Proxy::accept_client() {
  auto* client = new ClientSession(*this, next_client_id_++);
  if (uv_accept(reinterpret_cast<uv_stream_t*>(&listener_), reinterpret_cast<uv_stream_t*>(client->handle())) != 0) {
    client->close();
    return;
  }
  clients_.push_back(client);
  if (clients_.size() > config_.proxy.max_clients) {
    ++stats_.clients_rejected;
    metrics_->client_connections_rejected->Increment();
    static const char kRefused[] = "-ERR max number of clients reached\r\n";
    uv_buf_t buf = uv_buf_init(const_cast<char*>(kRefused), sizeof(kRefused) - 1);
    uv_try_write(reinterpret_cast<uv_stream_t*>(client->handle()), &buf, 1);
    client->close();
    return;
  }
  ++stats_.clients_accepted;
  metrics_->client_connections_accepted->Increment();
  metrics_->client_connections->Set(static_cast<double>(clients_.size()));
  client->start();
}

void Proxy::on_client_closed(ClientSession* client) {
  auto it = std::find(clients_.begin(), clients_.end(), client);
  if (it == clients_.end()) return;
  *it = clients_.back();
  clients_.pop_back();
  metrics_->client_connections->Set(static_cast<double>(clients_.size()));
}

Request* Proxy::new_request() {
  if (request_pool_.empty()) return new Request;
  Request* request = request_pool_.back();
  request_pool_.pop_back();
  return request;
}

void Proxy::free_request(Request* request) {
  request->recycle();
  if (request_pool_.size() < 4096) {
    request_pool_.push_back(request);
  } else {
    delete request;
  }
}

void Proxy::mark_dirty(ClientSession* client) {
  client->dirty = true;
  dirty_clients_.push_back(client);
}

void Proxy::mark_dirty(BackendConnection* connection) {
  connection->dirty = true;
  dirty_connections_.push_back(connection);
}

// Leaves a tombstone: the flush may be iterating over the list right now.
void Proxy::forget_dirty(ClientSession* client) {
  if (!client->dirty) return;
  client->dirty = false;
  std::replace(dirty_clients_.begin(), dirty_clients_.end(), client, static_cast<ClientSession*>(nullptr));
}

void Proxy::forget_dirty(BackendConnection* connection) {
  if (!connection->dirty) return;
  connection->dirty = false;
  std::replace(dirty_connections_.begin(), dirty_connections_.end(), connection,
               static_cast<BackendConnection*>(nullptr));
}

// Once per loop iteration, before polling: requests to servers first (so they are on
// the wire as early as possible), then replies to clients.
void Proxy::fence(const std::string& server, std::string local) {
  if (local.empty()) return;
  fences_.add(server, local);
  for (auto& backend : servers_) {  // it serves nothing until the kill has run
    if (backend->address_key() == server) backend->fence(local);
  }
}

void Proxy::on_prepare(uv_prepare_t* handle) { static_cast<Proxy*>(handle->data)->flush_dirty(); }

// A leader change may go ahead (leave_flight): the held writes are released on the next loop
// turn, outside the reply handling that noticed it.
void Proxy::release_held_soon() {
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&releaser_))) uv_timer_start(&releaser_, on_release, 0, 0);
}

void Proxy::on_release(uv_timer_t* handle) { static_cast<Proxy*>(handle->data)->release_held_requests(); }

void Proxy::flush_dirty() {
  iteration_ns_ = 0;  // the flushes' time; and the reads of the next iteration take a new one
  // By index: a flush may append to a list (a failed write completes requests) or leave a
  // tombstone in it (a client closed).
  while (!dirty_connections_.empty() || !dirty_clients_.empty()) {
    for (size_t i = 0; i < dirty_connections_.size(); ++i) {
      if (BackendConnection* connection = dirty_connections_[i]) connection->flush();
    }
    dirty_connections_.clear();
    for (size_t i = 0; i < dirty_clients_.size(); ++i) {
      if (ClientSession* client = dirty_clients_[i]) client->flush();
    }
    dirty_clients_.clear();
  }
  iteration_ns_ = 0;
}

void Proxy::on_sweep(uv_timer_t* handle) { static_cast<Proxy*>(handle->data)->sweep(); }

// Per-request counters are plain integers on the data path; Prometheus gets them here, at
// most one sweep period later (an atomic floating-point add per counter per request cost
// ~2% of the instructions of a pipelined request).
void Proxy::publish_metrics() {
  if (uint64_t delta = stats_.error_replies - published_.error_replies; delta > 0) {
    metrics_->error_replies->Increment(static_cast<double>(delta));
  }
  if (uint64_t delta = stats_.bytes_received - published_.bytes_received; delta > 0) {
    metrics_->client_bytes_received->Increment(static_cast<double>(delta));
  }
  if (uint64_t delta = stats_.bytes_sent - published_.bytes_sent; delta > 0) {
    metrics_->client_bytes_sent->Increment(static_cast<double>(delta));
  }
  accounting_.publish(*metrics_);
  published_ = stats_;
  const MigrationProgress& migration = migration_progress();
  metrics_->migration_active->Set(migration_ && !migration_->finished() ? 1 : 0);
  metrics_->migration_keys_to_move->Set(static_cast<double>(migration.keys_to_move));
  for (auto& server : servers_) server->publish_metrics();
  for (auto& server : draining_) server->publish_metrics();
  if (now_ms() - process_published_ms_ >= 1000) {  // /proc reads: once a second is plenty
    process_published_ms_ = now_ms();
    metrics_->update_process();
  }
}

// ------------------------------------------------------------------ RequestAccounting --

RequestAccounting::RequestAccounting() {
  const size_t slots = routing::all_commands().size() + 1;  // + "unknown"
  counts.assign(slots, {});
  published.assign(slots, {});
  counters.assign(slots, {});
}

void RequestAccounting::account(const Request& request, uint64_t now_ns) {
  const std::span<const routing::CommandInfo> table = routing::all_commands();
  const size_t slot = request.top_cmd != nullptr ? static_cast<size_t>(request.top_cmd - table.data()) : table.size();
  const metrics::Outcome outcome = request.rejected                      ? metrics::kRejected
                                   : resp::is_error_reply(request.reply) ? metrics::kError
                                                                         : metrics::kOk;
  ++counts[slot][outcome];
  if (request.started_ns == 0 || now_ns < request.started_ns) return;
  size_t cls = 3;
  if (request.cmd != nullptr) {
    switch (request.cmd->cls) {
      case routing::CommandClass::read: cls = 0; break;
      case routing::CommandClass::write: cls = 1; break;
      case routing::CommandClass::local: cls = 2; break;
      default: break;
    }
  }
  latency[cls].observe_ns(now_ns - request.started_ns);
}

void RequestAccounting::publish(metrics::Metrics& metrics) {
  const std::span<const routing::CommandInfo> table = routing::all_commands();
  for (size_t slot = 0; slot < counts.size(); ++slot) {
    for (size_t o = 0; o < 3; ++o) {
      const uint64_t delta = counts[slot][o] - published[slot][o];
      if (delta == 0) continue;
      if (counters[slot][o] == nullptr) {  // first use: the only lookup (and lock) it takes
        counters[slot][o] = metrics.requests(slot < table.size() ? table[slot].name : "unknown",
                                             static_cast<metrics::Outcome>(o));
      }
      counters[slot][o]->Increment(static_cast<double>(delta));
      published[slot][o] = counts[slot][o];
    }
  }
  for (size_t c = 0; c < 4; ++c) latency[c].publish(*metrics.request_latency(c));
}

void Proxy::sweep() {
  uint64_t now = now_ms();
  publish_metrics();
  // A sweep far later than its period means this process was not running (preempted,
  // throttled, stopped): replies may be sitting unread in the sockets, and libuv runs timers
  // before it reads. Servers and clients are not judged on such a sweep (at most one in a
  // row, so an overloaded proxy still times out a hung server); the loop reads first.
  const bool stalled = last_sweep_ms_ != 0 && now - last_sweep_ms_ > 2 * sweep_period_ms_ + 100;
  last_sweep_ms_ = now;
  if (stalled && !skipped_stalled_sweep_) {
    skipped_stalled_sweep_ = true;
    return;
  }
  skipped_stalled_sweep_ = false;
  for (auto& server : servers_) server->sweep(now);
  drain_removed_servers();
  for (uint32_t shard = 0; shard < topology_->shards.size(); ++shard) {
    const uint32_t interval = table()->shards()[shard].replication.repair_interval_ms;
    const ShardRuntime& state = shard_state(shard);
    if (interval > 0 && state.repair == nullptr && now - state.repair_stats.last_end_ms >= interval) {
      start_repair(shard);
    }
  }
  if (migration_) {
    migration_->sweep(now);
    if (migration_->finished()) {
      last_migration_ = migration_->progress();
      migration_.reset();
    }
  }
  uint32_t idle_ms = config_.proxy.client_idle_timeout_ms;
  if (idle_ms > 0) {
    std::vector<ClientSession*> idle;
    for (ClientSession* client : clients_) {
      if (client->pending() == 0 && now - client->last_active_ms() >= idle_ms) idle.push_back(client);
    }
    for (ClientSession* client : idle) client->close();
  }
}

const MigrationProgress& Proxy::migration_progress() const {
  return migration_ ? migration_->progress() : last_migration_;
}

void Proxy::set_server_mode(uint32_t server, routing::ServerMode mode) {
  if (server < modes_.size()) modes_[server] = mode;
}

}  // namespace ringproxy::proxy
