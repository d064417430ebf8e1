#include "proxy/backend/servers.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "proxy/backend/repair.h"

namespace ringproxy::proxy {

Servers::~Servers() {
  draining_.clear();
  servers_.clear();  // closing their connections still updates pending_ and modes_
}

void Servers::start() {
  started_ = true;
  for (auto& server : servers_) server->start();
}

void Servers::stop() {
  for (const auto& shard : topology_->shards) {
    if (shard->repair != nullptr) std::exchange(shard->repair, nullptr)->cancel();
  }
  for (auto& server : servers_) server->stop();
  for (auto& server : draining_) server->stop();
}

void Servers::sweep(uint64_t now) {
  if (now >= next_name_refresh_ms_) {  // every name again, so a server that moved is found
    next_name_refresh_ms_ = now + worker_.config().pool.dns_refresh_ms;
    for (auto& server : servers_) {
      if (server->address().is_name() && server->state() != ServerState::down) server->resolve_name();
    }
  }
  for (auto& server : servers_) server->sweep(now);
  drain_removed_servers();
  for (uint32_t shard = 0; shard < topology_->shards.size(); ++shard) {
    const uint32_t interval = table()->shards()[shard].replication.repair_interval_ms;
    const ShardRuntime& state = shard_state(shard);
    if (interval > 0 && state.repair == nullptr && now - state.repair_stats.last_end_ms >= interval) {
      start_repair(shard);
    }
  }
}

void Servers::on_resolved(const std::string& name, const Resolver::Answer& answer) {
  for (size_t i = 0; i < servers_.size(); ++i) {  // (draining servers open nothing new)
    if (servers_[i]->address().host == name) servers_[i]->on_resolved(answer);
  }
}

ServerLogin Servers::login_of(const conf::Address& address, const conf::BackendAuth& auth, const std::string& shard) {
  for (const auto& server : servers_) {
    if (server->address() == address) return server->login();
  }
  ServerLogin login{address, auth, tls_.of(shard), address.host};
  if (address.is_name()) {
    const Resolver::Answer* answer = resolver_.last(address.host);
    if (answer == nullptr || answer->ips.empty()) {
      resolver_.resolve(address.host);  // for the next attempt; connect_async refuses the name
    } else {
      login.address.host = answer->ips.front();
    }
  }
  return login;
}

void Servers::publish_metrics() {
  for (auto& server : servers_) server->publish_metrics();
  for (auto& server : draining_) server->publish_metrics();
}

bool Servers::current(const BackendServer* server) const {
  return std::any_of(servers_.begin(), servers_.end(), [&](const auto& s) { return s.get() == server; });
}

bool Servers::late_copies_pending(const std::string& shard) const {
  auto leads = [&](const auto& server) { return server->shard_name() == shard && server->late_copies_pending(); };
  return std::any_of(servers_.begin(), servers_.end(), leads) || std::any_of(draining_.begin(), draining_.end(), leads);
}

void Servers::bind(std::shared_ptr<const routing::RoutingTable> table) {
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
      servers_.back()->rebind(i, entry.shard, shard.replication, shard.auth, tls_.of(shard.name));
    } else {
      servers_.push_back(
          std::make_unique<BackendServer>(*this, i, entry, shard.name, shard.replication, shard.auth, tls_.of(shard.name)));
      added.push_back(servers_.back().get());
    }
  }
  modes_.assign(servers_.size(), routing::kServerLive);
  epochs_.assign(servers_.size(), 0);
  pending_.assign(servers_.size(), 0);
  for (size_t i = 0; i < servers_.size(); ++i) {
    modes_[i] = servers_[i]->mode();
    epochs_[i] = servers_[i]->incarnation();
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
                                   : std::make_shared<ShardRuntime>(shard.name, worker_.metrics()->shard(shard.name), worker_.now_ms()));
  }
  topology_ = std::move(topology);
  if (started_) {
    for (BackendServer* server : added) server->start();
  }
  worker_.metrics()->set_topology(topology_->table->shards().size(), topology_->table->servers().size(),
                         topology_->table->ring().point_count());
}

// Removed servers: closed once nothing is in flight on them (their requests finish on the
// snapshot they were planned with), and no copy can still come: none waits for its leader's
// reply, and no leader of their shard settled writes early whose copies it could still send
// (each was a use after free: chaos seeds 3000028 and 800025).
void Servers::drain_removed_servers() {
  for (auto& server : draining_) server->sweep(worker_.now_ms());
  for (size_t i = 0; i < draining_.size();) {
    if (draining_[i]->pending() > 0 || draining_[i]->dedicated_in_use() > 0 || draining_[i]->awaiting_copies() > 0 || draining_[i]->planned_copies() > 0 ||
        late_copies_pending(draining_[i]->shard_name())) {
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

void Servers::fence(const std::string& server, std::string local) {
  if (local.empty()) return;
  fences_.add(server, local);
  for (auto& backend : servers_) {  // it serves nothing until the kill has run
    if (backend->address_key() == server) backend->fence(local);
  }
}

std::string Servers::start_repair(uint32_t shard) {
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
void Servers::start_read_repair(ShardRuntime& shard, uint32_t shard_index, std::vector<std::string> keys) {
  ++shard.repair_stats.read_repairs;
  shard.metrics.read_repairs->Increment();
  // Only for a shard of the current snapshot (its state is kept by name across reloads, so a
  // read planned before one still repairs, with the servers the shard has now).
  if (shard.repair != nullptr || keys.empty() || shard_index >= topology_->shards.size() ||
      topology_->shards[shard_index].get() != &shard) {
    return;
  }
  shard.repair = new RepairJob(*this, shard_index, std::move(keys));
  shard.repair->start();
}

void Servers::on_repair_done(ShardRuntime& shard, bool ok, uint64_t keys_scanned, uint64_t keys_fixed,
                           const std::string& why) {
  shard.repair = nullptr;
  RepairStats& stats = shard.repair_stats;
  stats.keys_scanned += keys_scanned;
  stats.keys_fixed += keys_fixed;
  shard.metrics.repair_keys_fixed->Increment(static_cast<double>(keys_fixed));
  (ok ? shard.metrics.repairs_finished : shard.metrics.repairs_failed)->Increment();
  stats.last_end_ms = worker_.now_ms();
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

}  // namespace ringproxy::proxy
