#include "proxy/proxy.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "proxy/backend.h"
#include "proxy/client_session.h"
#include "proxy/repair.h"

namespace ringproxy::proxy {

void Request::recycle() {
  client = nullptr;
  next = nullptr;
  request_block.reset();
  raw = {};
  args.clear();
  cmd = nullptr;
  table.reset();
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

Proxy::Proxy(uv_loop_t* loop, conf::Config config, metrics::Metrics* metrics)
    : loop_(loop), config_(std::move(config)), metrics_(metrics) {}

Proxy::~Proxy() {
  servers_.clear();  // first: closing their connections still updates pending_ and modes_
  for (Request* request : request_pool_) delete request;
}

bool Proxy::start(std::string* error) {
  started_at_ms_ = uv_now(loop_);
  table_ = routing::RoutingTable::build(config_.pool);
  modes_.assign(table_->servers().size(), routing::kServerLive);
  pending_.assign(table_->servers().size(), 0);
  inflight_writes_.assign(table_->shards().size(), 0);
  held_shards_.assign(table_->shards().size(), 0);
  repairs_.assign(table_->shards().size(), nullptr);
  repair_stats_.assign(table_->shards().size(), RepairStats{});
  for (const routing::ShardEntry& shard : table_->shards()) shard_metrics_.push_back(metrics_->shard(shard.name));
  for (uint32_t i = 0; i < table_->servers().size(); ++i) {
    const routing::ServerEntry& entry = table_->servers()[i];
    const routing::ShardEntry& shard = table_->shards()[entry.shard];
    servers_.push_back(std::make_unique<BackendServer>(*this, i, entry, shard.name, shard.replication));
  }

  const conf::Address& listen = config_.proxy.listen;
  sockaddr_storage addr{};
  int rc = listen.host.find(':') == std::string::npos
               ? uv_ip4_addr(listen.host.c_str(), listen.port, reinterpret_cast<sockaddr_in*>(&addr))
               : uv_ip6_addr(listen.host.c_str(), listen.port, reinterpret_cast<sockaddr_in6*>(&addr));
  uv_tcp_init(loop_, &listener_);
  listener_.data = this;
  if (rc == 0) rc = uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 511, on_connection);
  if (rc != 0) {
    *error = "cannot listen on " + listen.to_string() + ": " + uv_strerror(rc);
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
    servers_.clear();
    return false;
  }

  uv_prepare_init(loop_, &flusher_);
  flusher_.data = this;
  uv_prepare_start(&flusher_, on_prepare);

  // Timeouts are checked by a sweep rather than a timer per request: no timer work on
  // the hot path, at the cost of up to one sweep period of extra delay.
  const conf::PoolConfig& pool = config_.pool;
  uint64_t period = std::clamp<uint64_t>(std::min(pool.connect_timeout_ms, pool.request_timeout_ms) / 10, 5, 100);
  uv_timer_init(loop_, &sweeper_);
  sweeper_.data = this;
  uv_timer_start(&sweeper_, on_sweep, period, period);

  uv_signal_init(loop_, &sigint_);
  uv_signal_init(loop_, &sigterm_);
  sigint_.data = sigterm_.data = this;
  uv_signal_start(&sigint_, on_signal, SIGINT);
  uv_signal_start(&sigterm_, on_signal, SIGTERM);

  for (auto& server : servers_) server->start();
  spdlog::info("ringproxy listening on {} with {} shards, {} servers ({} / {})", listen.to_string(),
               table_->shards().size(), table_->servers().size(), routing::hash_function_name(pool.hash),
               routing::distribution_name(pool.distribution));
  return true;
}

void Proxy::stop() {
  if (stopping_) return;
  stopping_ = true;
  spdlog::info("ringproxy stopping");
  uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&flusher_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sweeper_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
  std::vector<ClientSession*> clients = clients_;
  for (ClientSession* client : clients) client->close();
  for (RepairJob*& job : repairs_) {
    if (job != nullptr) std::exchange(job, nullptr)->cancel();
  }
  for (auto& server : servers_) server->stop();
}

std::string Proxy::start_repair(uint32_t shard) {
  const routing::ShardEntry& entry = table_->shards()[shard];
  if (entry.replication.strategy == conf::ReplicationStrategy::none) {
    return "-ERR shard '" + entry.name + "' is not replicated: nothing to repair\r\n";
  }
  if (repairs_[shard] != nullptr) return "+repair of shard '" + entry.name + "' is already running\r\n";
  ++repair_stats_[shard].started;
  shard_metrics_[shard].repairs_started->Increment();
  repairs_[shard] = new RepairJob(*this, shard);
  repairs_[shard]->start();  // may finish at once (fewer than 2 servers in sync)
  return "+repair of shard '" + entry.name + "' started\r\n";
}

// A quorum read found different copies: repair just its keys (unless a full pass runs).
void Proxy::start_read_repair(uint32_t shard, std::vector<std::string> keys) {
  ++repair_stats_[shard].read_repairs;
  shard_metrics_[shard].read_repairs->Increment();
  if (repairs_[shard] != nullptr || keys.empty()) return;
  repairs_[shard] = new RepairJob(*this, shard, std::move(keys));
  repairs_[shard]->start();
}

void Proxy::on_repair_done(uint32_t shard, bool ok, uint64_t keys_scanned, uint64_t keys_fixed, const std::string& why) {
  repairs_[shard] = nullptr;
  RepairStats& stats = repair_stats_[shard];
  stats.keys_scanned += keys_scanned;
  stats.keys_fixed += keys_fixed;
  shard_metrics_[shard].repair_keys_fixed->Increment(static_cast<double>(keys_fixed));
  (ok ? shard_metrics_[shard].repairs_finished : shard_metrics_[shard].repairs_failed)->Increment();
  stats.last_end_ms = now_ms();
  const std::string& name = table_->shards()[shard].name;
  if (ok) {
    ++stats.finished;
    stats.last_error.clear();
    spdlog::info("repair of shard {} finished: {} keys compared, {} fixed", name, keys_scanned, keys_fixed);
  } else {
    ++stats.failed;
    stats.last_error = why;
    spdlog::warn("repair of shard {} failed after {} keys fixed: {}", name, keys_fixed, why);
  }
}

void Proxy::on_signal(uv_signal_t* handle, int) { static_cast<Proxy*>(handle->data)->stop(); }

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
void Proxy::on_prepare(uv_prepare_t* handle) { static_cast<Proxy*>(handle->data)->flush_dirty(); }

void Proxy::flush_dirty() {
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
}

void Proxy::on_sweep(uv_timer_t* handle) { static_cast<Proxy*>(handle->data)->sweep(); }

// Per-request counters are plain integers on the data path; Prometheus gets them here, at
// most one sweep period later (an atomic floating-point add per counter per request cost
// ~2% of the instructions of a pipelined request).
void Proxy::publish_metrics() {
  prometheus::Counter* by_class[4] = {metrics_->requests_read, metrics_->requests_write, metrics_->requests_local,
                                      metrics_->requests_other};
  for (size_t i = 0; i < 4; ++i) {
    uint64_t delta = stats_.requests_by_class[i] - published_.requests_by_class[i];
    if (delta > 0) by_class[i]->Increment(static_cast<double>(delta));
  }
  if (uint64_t delta = stats_.error_replies - published_.error_replies; delta > 0) {
    metrics_->error_replies->Increment(static_cast<double>(delta));
  }
  published_ = stats_;
  for (auto& server : servers_) server->publish_metrics();
}

void Proxy::sweep() {
  uint64_t now = now_ms();
  publish_metrics();
  for (auto& server : servers_) server->sweep(now);
  for (uint32_t shard = 0; shard < repairs_.size(); ++shard) {
    const uint32_t interval = table_->shards()[shard].replication.repair_interval_ms;
    const RepairStats& stats = repair_stats_[shard];
    uint64_t since = stats.last_end_ms != 0 ? stats.last_end_ms : started_at_ms_;
    if (interval > 0 && repairs_[shard] == nullptr && now - since >= interval) start_repair(shard);
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

void Proxy::set_server_mode(uint32_t server, routing::ServerMode mode) {
  if (server < modes_.size()) modes_[server] = mode;
}

}  // namespace ringproxy::proxy
