// Live reconfiguration: Proxy::reload, the snapshot swap (bind_topology), draining removed
// servers, and the file watch.
#include "proxy/reload.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>

#include "conf/loader.h"
#include "proxy/backend.h"
#include "proxy/migration.h"
#include "proxy/proxy.h"
#include "routing/resharding.h"

namespace ringproxy::proxy {
namespace {

constexpr uint64_t kDebounceMs = 200;
constexpr uint64_t kDebounceMaxMs = 1000;

std::string describe(const std::optional<conf::Address>& address) {
  return address ? address->to_string() : std::string("off");
}

}  // namespace

// Binds `table` to the proxy's servers and per-shard state. A server is kept (with its
// connections, its health, its run_id and its replay queue) when the new table has the same
// address in a shard of the same name; shard state is kept by shard name. What the new table
// no longer has is detached and drained.
void Proxy::bind_topology(std::shared_ptr<const routing::RoutingTable> table) {
  std::map<std::string, std::unique_ptr<BackendServer>> previous;
  for (auto& server : servers_) previous[server->shard_name() + '\n' + server->name()] = std::move(server);
  servers_.clear();
  std::vector<BackendServer*> added;
  for (uint32_t i = 0; i < table->servers().size(); ++i) {
    const routing::ServerEntry& entry = table->servers()[i];
    const routing::ShardEntry& shard = table->shards()[entry.shard];
    auto it = previous.find(shard.name + '\n' + entry.name);
    if (it != previous.end()) {
      servers_.push_back(std::move(it->second));
      previous.erase(it);
      servers_.back()->rebind(i, entry.shard, shard.replication);
    } else {
      servers_.push_back(std::make_unique<BackendServer>(*this, i, entry, shard.name, shard.replication));
      added.push_back(servers_.back().get());
    }
  }
  modes_.assign(servers_.size(), routing::kServerLive);
  pending_.assign(servers_.size(), 0);
  for (size_t i = 0; i < servers_.size(); ++i) {
    modes_[i] = servers_[i]->mode();
    pending_[i] = static_cast<uint32_t>(servers_[i]->pending());
  }
  // A server that joins a replicated shard whose other servers were kept holds none of the
  // shard's data (or old data, if it was removed and added back): it is resynced before it
  // serves. A removed server at the same address that is still draining is given up first,
  // so nothing it still holds can run after that resync (fence.h).
  for (BackendServer* server : added) {
    for (auto& draining : draining_) {
      if (draining->address() == server->address()) draining->abandon();
    }
    for (auto& [key, removed] : previous) {
      if (removed->address() != server->address()) continue;
      removed->detach();  // first: its index and mode belong to the new table now
      removed->abandon();
    }
    if (!server->replicated()) continue;
    const routing::ShardEntry& shard = table->shards()[server->shard_index()];
    const bool joins_data = std::any_of(shard.servers.begin(), shard.servers.end(), [&](uint32_t s) {
      return std::find(added.begin(), added.end(), servers_[s].get()) == added.end();
    });
    if (joins_data) server->mark_stale("it joined a shard that holds data: it is resynced before it serves");
  }
  for (auto& [key, server] : previous) {
    spdlog::info("server {} (shard {}) removed by the reload: draining {} requests in flight", server->name(),
                 server->shard_name(), server->pending());
    for (auto& live : servers_) live->cancel_resync_from(*server);
    server->detach();
    draining_.push_back(std::move(server));
  }

  std::map<std::string, std::shared_ptr<ShardRuntime>> runtimes;
  if (topology_) {
    for (const auto& shard : topology_->shards) runtimes[shard->name] = shard;
  }
  auto topology = std::make_shared<Topology>();
  topology->table = std::move(table);
  for (const routing::ShardEntry& shard : topology->table->shards()) {
    auto it = runtimes.find(shard.name);
    topology->shards.push_back(it != runtimes.end()
                                   ? it->second
                                   : std::make_shared<ShardRuntime>(shard.name, metrics_->shard(shard.name), now_ms()));
  }
  topology_ = std::move(topology);
  if (started_listening_) {
    for (BackendServer* server : added) server->start();
  }
  metrics_->set_topology(topology_->table->shards().size(), topology_->table->servers().size(),
                         topology_->table->ring().point_count());
}

// Removed servers: closed once nothing is in flight on them (their requests finish on the
// snapshot they were planned with).
void Proxy::drain_removed_servers() {
  for (auto& server : draining_) server->sweep(now_ms());
  for (size_t i = 0; i < draining_.size();) {
    if (draining_[i]->pending() > 0 || draining_[i]->awaiting_copies() > 0) {
      ++i;
      continue;
    }
    spdlog::info("server {} (shard {}) drained: closing it", draining_[i]->name(), draining_[i]->shard_name());
    for (const auto& shard : topology_->shards) {  // compared by address: forget it before it goes
      if (shard->leader == draining_[i].get()) shard->leader_known = false;
    }
    draining_[i]->stop();
    draining_[i]->publish_metrics();  // its last counts
    // Its series go, unless another server (live, or draining too) has the same labels and so
    // shares them.
    auto same_labels = [&](const auto& s) {
      return s.get() != draining_[i].get() && s->name() == draining_[i]->name() &&
             s->shard_name() == draining_[i]->shard_name();
    };
    const bool shared = std::any_of(servers_.begin(), servers_.end(), same_labels) ||
                        std::any_of(draining_.begin(), draining_.end(), same_labels);
    if (!shared) draining_[i]->forget_metrics();
    draining_.erase(draining_.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

ReloadReport Proxy::reload(std::string_view trigger) {
  ReloadReport report;
  if (stopping_) {
    report.message = "ringproxy is shutting down";
    return report;
  }
  if (config_path_.empty()) {
    report.message = "ringproxy was started without a config file: nothing to reload";
    return report;
  }
  conf::LoadResult loaded = conf::load_config_file(config_path_);
  if (!loaded.config) {
    ++reloads_failed_;
    metrics_->count_reload(false);
    last_reload_error_ = loaded.error;
    spdlog::error("reload ({}) rejected, the running config stays: {}", trigger, loaded.error);
    report.message = "reload rejected, the running config stays: " + loaded.error;
    return report;
  }
  conf::Config next = std::move(*loaded.config);

  // What only a restart applies keeps its running value, and is reported.
  std::vector<std::string> restart;
  if (!(next.proxy.listen == config_.proxy.listen)) {
    restart.push_back("[proxy] listen (running on " + config_.proxy.listen.to_string() + ", the file says " +
                      next.proxy.listen.to_string() + ")");
    next.proxy.listen = config_.proxy.listen;
  }
  // A client's requests to a server share one connection (client id modulo the count), which
  // keeps a pipelining client's writes in order; a new count would split a pipeline.
  if (next.pool.backend_connections != config_.pool.backend_connections) {
    restart.push_back("[pool] backend_connections (running with " + std::to_string(config_.pool.backend_connections) +
                      ", the file says " + std::to_string(next.pool.backend_connections) + ")");
    next.pool.backend_connections = config_.pool.backend_connections;
  }
  if (next.metrics.listen != config_.metrics.listen) {
    restart.push_back("[metrics] listen (running on " + describe(config_.metrics.listen) + ", the file says " +
                      describe(next.metrics.listen) + ")");
    next.metrics.listen = config_.metrics.listen;
  }
  restart_needed_.clear();
  for (const std::string& item : restart) restart_needed_ += (restart_needed_.empty() ? "" : "; ") + item;

  const std::shared_ptr<const Topology> previous = topology_;
  const size_t servers_before = servers_.size();
  const size_t draining_before = draining_.size();
  config_ = std::move(next);
  bind_topology(routing::RoutingTable::build(config_.pool));
  const bool ring_changed = !routing::same_ring(*previous->table, *topology_->table);

  std::string migration = "none";
  if (config_.pool.migration == conf::Migration::none) {
    if (migration_) migration_->abandon();
  } else if (ring_changed || migration_) {
    if (!migration_) migration_ = std::make_unique<Migration>(*this);
    migration_->on_reload(ring_changed ? previous->table : nullptr, previous, topology_->table, config_.pool);
    migration = std::string(conf::migration_name(config_.pool.migration));
  }

  config_digest_ = loaded.digest;
  config_loaded_unix_ = static_cast<uint64_t>(std::time(nullptr));
  ++reloads_ok_;
  last_reload_error_.clear();
  metrics_->count_reload(true);
  metrics_->set_config(config_digest_, static_cast<double>(config_loaded_unix_));
  metrics_->set_restart_needed(!restart_needed_.empty());

  const size_t removed = draining_.size() - draining_before;
  const size_t kept = servers_before - removed;
  std::ostringstream summary;
  summary << "reloaded (" << trigger << "): digest " << config_digest_ << ", " << topology_->table->shards().size()
          << " shards, " << servers_.size() << " servers (" << kept << " kept, " << servers_.size() - kept
          << " added, " << removed << " removed and draining); ring " << (ring_changed ? "changed" : "unchanged")
          << ", migration " << migration;
  if (!restart_needed_.empty()) summary << "; needs a restart to apply: " << restart_needed_;
  report.ok = true;
  report.message = summary.str();
  spdlog::info("{}", report.message);
  if (!restart_needed_.empty()) spdlog::warn("config: needs a restart to apply: {}", restart_needed_);
  return report;
}

void Proxy::resume_parked(Request& request, std::string_view error) {
  request.fragments_pending = 0;
  if (request.client == nullptr) return free_request(&request);
  if (!error.empty()) return reply_error(request, error);
  route(request, true);
}

// ------------------------------------------------------------------ ConfigWatcher --

ConfigWatcher::ConfigWatcher(Proxy& proxy, const std::string& path) : proxy_(proxy), path_(path) {
  const size_t slash = path.rfind('/');
  directory_ = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  last_digest_ = proxy.config_digest();
}

void ConfigWatcher::start() {
  uv_timer_init(proxy_.loop(), &debounce_);
  debounce_.data = this;
  uv_fs_event_init(proxy_.loop(), &event_);
  event_.data = this;
  int rc = uv_fs_event_start(&event_, on_change, directory_.c_str(), 0);
  watching_ = rc == 0;
  if (!watching_) {
    spdlog::warn("cannot watch {} for changes ({}): reload with SIGHUP or PROXY RELOAD", directory_, uv_strerror(rc));
  }
}

void ConfigWatcher::stop() {
  uv_close(reinterpret_cast<uv_handle_t*>(&debounce_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&event_), nullptr);
}

void ConfigWatcher::on_change(uv_fs_event_t* handle, const char*, int, int status) {
  auto* self = static_cast<ConfigWatcher*>(handle->data);
  // Any change in the directory: a symlinked file (a Kubernetes ConfigMap swaps a "..data"
  // link) changes without an event of its own. The digest says whether it really changed.
  if (status < 0) return;
  const uint64_t now = self->proxy_.now_ms();
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&self->debounce_))) self->first_event_ms_ = now;
  const uint64_t deadline = self->first_event_ms_ + kDebounceMaxMs;
  // Restarts: the last event counts, up to the deadline.
  uv_timer_start(&self->debounce_, on_settled, std::min(kDebounceMs, deadline > now ? deadline - now : 0), 0);
}

void ConfigWatcher::on_settled(uv_timer_t* timer) {
  auto* self = static_cast<ConfigWatcher*>(timer->data);
  std::ifstream in(self->path_, std::ios::binary);
  if (!in) return;  // removed (for now): a later event brings it back
  std::stringstream text;
  text << in.rdbuf();
  const std::string digest = conf::text_digest(text.str());
  if (digest == self->last_digest_ || digest == self->proxy_.config_digest()) return;
  self->last_digest_ = digest;
  self->proxy_.reload("file change");
}

}  // namespace ringproxy::proxy
