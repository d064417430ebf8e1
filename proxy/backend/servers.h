// The servers behind the proxy, bound to the routing snapshot: owner of every BackendServer
// (live, or removed by a reload and draining), of the planner's view of their health, of the
// fence book, and of the shards' repairs.
//
// What the backend reports upwards (a fragment's reply, a write settled early, a shard's
// writes to hold) goes to ServerEvents: the data path (datapath/data_path.h).
//
// Ownership: owned by the Proxy. The Topology it binds is shared with the requests planned
// on it (requests/topology.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proxy/backend/backend_server.h"
#include "proxy/backend/fence.h"
#include "proxy/net/worker.h"
#include "proxy/requests/request.h"
#include "proxy/requests/topology.h"
#include "routing/planner.h"
#include "routing/routing_table.h"

namespace ringproxy::proxy {

class ServerEvents {
 public:
  // A fragment has its reply, or failed; a fragment with no request is a server's own write
  // (a replay, a fence), and the data path hands it back to its server.
  virtual void on_fragment_done(Fragment& fragment) = 0;
  // The server lags: the fragment's outcome is given now; its late reply only releases it.
  virtual void on_fragment_settled(Fragment& fragment) = 0;
  // A resync cutover or a repair batch: while a shard's writes are held, new ones wait in
  // order. Counted: a resync and a repair may hold the same shard at once.
  virtual void hold_writes(ShardRuntime& shard, bool hold) = 0;

 protected:
  ~ServerEvents() = default;
};

class Servers final : private Resolver::Listener {
 public:
  Servers(Worker& worker, ServerEvents& events) : worker_(worker), events_(events), resolver_(worker.loop(), *this) {}
  ~Servers();
  Servers(const Servers&) = delete;
  Servers& operator=(const Servers&) = delete;

  // Binds `table` to the servers and the per-shard state: a server is kept (with its
  // connections, health, run_id and replay queue) when the new table has the same address
  // in a shard of the same name; shard state is kept by shard name. What the new table no
  // longer has is detached and drained. The first bind is at start-up.
  void bind(std::shared_ptr<const routing::RoutingTable> table);
  void start();                       // connects every server (and those bound later)
  void stop();                        // shutdown: closes every connection, cancels repairs
  void sweep(uint64_t now_ms);        // timeouts, probes, resyncs, draining, periodic repairs
  void publish_metrics();

  const std::shared_ptr<const Topology>& topology() const { return topology_; }
  const std::shared_ptr<const routing::RoutingTable>& table() const { return topology_->table; }
  ShardRuntime& shard_state(uint32_t shard) const { return *topology_->shards[shard]; }
  // Indexed like table()->servers().
  const std::vector<std::unique_ptr<BackendServer>>& servers() const { return servers_; }
  size_t draining() const { return draining_.size(); }
  bool current(const BackendServer* server) const;  // one of servers() (not removed)
  // Some server of the shard named `shard` (live, or removed by a reload and draining) leads
  // writes settled early whose copies wait for its late reply (DataPath::send_late_second_stage):
  // a server resynced now would miss those copies, and a removed one must not be closed yet.
  bool late_copies_pending(const std::string& shard) const;

  // Server health, as the planner sees it. `server` is an index into the current table.
  void set_server_mode(uint32_t server, routing::ServerMode mode) {
    if (server < modes_.size()) modes_[server] = mode;
  }
  routing::ServerMode server_mode(uint32_t server) const { return static_cast<routing::ServerMode>(modes_[server]); }
  routing::Health health() const { return routing::Health{modes_, pending_, rotation_}; }
  const std::vector<uint32_t>& epochs() const { return epochs_; }  // (the planner's, for SCAN)
  // A server restarted or was resynced: its SCAN cursors are not its own any more.
  void set_server_epoch(uint32_t server, uint32_t epoch) {
    if (server < epochs_.size()) epochs_[server] = epoch;
  }
  // For the next request's plan: one more turn of the round-robin over replicas.
  routing::Health health_for_request() {
    ++rotation_;
    return health();
  }
  void count_pending(uint32_t server, int64_t delta) {
    if (server < pending_.size()) pending_[server] = static_cast<uint32_t>(pending_[server] + delta);
  }

  // Connections abandoned with commands outstanding (fence.h). Side connections (repair,
  // key moves, resync) report theirs with fence(); data connections through their server.
  // `server`: its address as conf::Address::to_string() prints it.
  FenceBook& fences() { return fences_; }
  void fence(const std::string& server, std::string local);

  // Anti-entropy repair of a replicated shard (PROXY REPAIR, or every repair_interval_ms).
  std::string start_repair(uint32_t shard);   // what to tell the client
  // A quorum read found different copies: repair just its keys (unless a full pass runs).
  void start_read_repair(ShardRuntime& shard, uint32_t shard_index, std::vector<std::string> keys);
  void on_repair_done(ShardRuntime& shard, bool ok, uint64_t keys_scanned, uint64_t keys_fixed,
                      const std::string& why);

  // Servers' host names: looked up before each connection and every dns_refresh_ms; side
  // connections use the last answer (login_of).
  Resolver& resolver() { return resolver_; }
  // How a side connection reaches the server at `address` of the shard `shard` with `auth`: the
  // current server's endpoint, or (a server no longer in the table) the address's last lookup.
  ServerLogin login_of(const conf::Address& address, const conf::BackendAuth& auth, const std::string& shard);

  // TLS to the servers, for the next bind() (start-up and each reload): servers kept take the
  // new contexts for the connections they open from then on.
  void set_tls(ServerTlsContexts tls) {
    tls.keep_removed(tls_);
    tls_ = std::move(tls);
  }

  Worker& worker() const { return worker_; }
  ServerEvents& events() const { return events_; }
  void hold_writes(ShardRuntime& shard, bool hold) { events_.hold_writes(shard, hold); }

 private:
  void drain_removed_servers();
  void on_resolved(const std::string& name, const Resolver::Answer& answer) override;

  Worker& worker_;
  ServerEvents& events_;
  bool started_ = false;          // servers bound later are started when they are bound
  std::shared_ptr<const Topology> topology_;
  std::vector<std::unique_ptr<BackendServer>> servers_;  // indexed like table()->servers()
  std::vector<std::unique_ptr<BackendServer>> draining_; // removed by a reload; closed once idle
  std::vector<uint8_t> modes_;      // routing::ServerMode per server
  std::vector<uint32_t> epochs_;    // per server: BackendServer::incarnation()
  std::vector<uint32_t> pending_;   // requests in flight per server
  uint64_t rotation_ = 0;
  FenceBook fences_;
  Resolver resolver_;
  uint64_t next_name_refresh_ms_ = 0;
  ServerTlsContexts tls_;
};

}  // namespace ringproxy::proxy
