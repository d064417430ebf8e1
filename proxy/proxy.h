// The Proxy owns everything that lives for the process: the libuv loop's handles, the
// listener, client sessions, backend servers, the routing snapshot and the counters.
// Single-threaded: every method runs on the loop thread, the metrics endpoint included.
//
// The data path (dispatcher.cc), top-down:
//
//   client bytes -> parse (resp::RequestParser, views into the read block)
//     -> classify (routing::find_command)
//     -> local command? answer it (local_commands.cc)
//     -> plan (routing::plan: shard, server, split)
//     -> send (BackendServer::send: queued, flushed once per loop iteration)
//     -> reduce (routing::Reducer for split/broadcast; the reply itself otherwise)
//     -> reply (ClientSession: completed prefix of the in-order queue, flushed once per
//        loop iteration)
#pragma once

#include <uv.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "conf/config.h"
#include "metrics/metrics.h"
#include "proxy/fence.h"
#include "proxy/metrics_endpoint.h"
#include "proxy/migration.h"
#include "proxy/request.h"
#include "proxy/topology.h"
#include "routing/planner.h"
#include "routing/routing_table.h"

namespace ringproxy::proxy {

class BackendServer;
class BackendConnection;
class ClientSession;
class RepairJob;
class ConfigWatcher;

// What a reload did (PROXY RELOAD prints it; INFO and the metrics count it).
struct ReloadReport {
  bool ok = false;
  std::string message;  // the error (file:line:column) or a summary of what changed
};

struct ProxyStats {
  uint64_t clients_accepted = 0;
  uint64_t clients_rejected = 0;
  uint64_t requests = 0;
  uint64_t error_replies = 0;   // replies that were errors (the proxy's or a server's)
  uint64_t protocol_errors = 0;
  uint64_t bytes_received = 0, bytes_sent = 0;  // from and to clients
};

// Requests by command and outcome, and their latency by class: counted with plain integers
// as replies are written, handed to Prometheus by the sweep.
struct RequestAccounting {
  RequestAccounting();
  void account(const Request& request, uint64_t now_ns);
  void publish(metrics::Metrics& metrics);

  std::vector<std::array<uint64_t, 3>> counts;      // per command table slot (+ unknown), per outcome
  std::vector<std::array<uint64_t, 3>> published;
  std::vector<std::array<prometheus::Counter*, 3>> counters;  // resolved on first use
  metrics::LatencyHistogram latency[4];             // read, write, local, other
};

class Proxy {
 public:
  // `config_path` is what a reload reads again ("" : no reload); `digest` its text's digest.
  Proxy(uv_loop_t* loop, conf::Config config, metrics::Metrics* metrics, std::string config_path = "",
        std::string digest = "");
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Before start(): whether the config file's directory is watched for changes (reloads
  // then come only from SIGHUP and PROXY RELOAD).
  void watch_config(bool watch) { watch_config_ = watch; }

  // Binds the listener and connects to the servers; false with `error` set on failure.
  bool start(std::string* error);
  // Stops accepting, closes every connection; the loop then runs out.
  void stop();

  // --- used by sessions and connections ---
  uv_loop_t* loop() const { return loop_; }
  uint64_t now_ms() const { return uv_now(loop_); }
  const conf::Config& config() const { return config_; }
  metrics::Metrics* metrics() const { return metrics_; }
  ProxyStats& stats() { return stats_; }
  // Latency is measured only when the metrics endpoint is on (two clock reads per batch).
  bool timing() const { return timing_; }
  // The clock for latencies: read once per loop iteration for all the reads it handles,
  // once for all the flushes (not per request or per connection).
  uint64_t loop_ns() {
    if (iteration_ns_ == 0) iteration_ns_ = uv_hrtime();
    return iteration_ns_;
  }
  void account(const Request& request, uint64_t now_ns) { accounting_.account(request, now_ns); }
  const std::shared_ptr<const routing::RoutingTable>& table() const { return topology_->table; }
  const std::shared_ptr<const Topology>& topology() const { return topology_; }
  ShardRuntime& shard_state(uint32_t shard) const { return *topology_->shards[shard]; }
  const std::vector<std::unique_ptr<BackendServer>>& servers() const { return servers_; }
  const std::vector<ClientSession*>& clients() const { return clients_; }
  uint64_t started_at_ms() const { return started_at_ms_; }

  // The data path.
  void dispatch(ClientSession& client, Request& request);

  // Connections abandoned with commands outstanding (fence.h). Side connections (repair,
  // key moves, resync) report theirs with fence(); data connections through their server.
  FenceBook& fences() { return fences_; }
  // `server`: its address as conf::Address::to_string() prints it.
  void fence(const std::string& server, std::string local);

  // Anti-entropy repair of a replicated shard (PROXY REPAIR, or every repair_interval_ms).
  std::string start_repair(uint32_t shard);   // what to tell the client
  void start_read_repair(ShardRuntime& shard, uint32_t shard_index, std::vector<std::string> keys);
  void on_repair_done(ShardRuntime& shard, bool ok, uint64_t keys_scanned, uint64_t keys_fixed,
                      const std::string& why);

  // Resync cutover: while a shard's writes are held, new ones wait (in order) in the proxy.
  void hold_writes(ShardRuntime& shard, bool hold);

  // Live reconfiguration (reload.cc): reads the config file again and swaps it in, or
  // changes nothing and says why. SIGHUP, the file watch and PROXY RELOAD call it.
  ReloadReport reload(std::string_view trigger);
  const std::string& config_digest() const { return config_digest_; }
  const std::string& config_path() const { return config_path_; }
  uint64_t config_loaded_at_unix() const { return config_loaded_unix_; }
  uint64_t reloads_ok() const { return reloads_ok_; }
  uint64_t reloads_failed() const { return reloads_failed_; }
  const std::string& last_reload_error() const { return last_reload_error_; }
  const std::string& restart_needed() const { return restart_needed_; }
  size_t draining_servers() const { return draining_.size(); }
  Migration* migration() const { return migration_.get(); }
  // The running migration's progress, else the last one's (mode none: there was none).
  const MigrationProgress& migration_progress() const;
  void on_migration_finished();
  // Re-enters a request the migration parked (its keys have moved) into the data path.
  void resume_parked(Request& request, std::string_view error);
  void on_fragment_done(Fragment& fragment);
  void on_fragment_settled(Fragment& fragment);

  // Requests are pooled: their buffers keep their capacity between uses.
  Request* new_request();
  void free_request(Request* request);

  // Work for the once-per-iteration flush.
  void mark_dirty(ClientSession* client);
  void mark_dirty(BackendConnection* connection);
  void forget_dirty(ClientSession* client);
  void forget_dirty(BackendConnection* connection);

  // Server health, as the planner sees it.
  // `server` is an index into the current table; kDetached (a removed server) is ignored.
  void set_server_mode(uint32_t server, routing::ServerMode mode);
  routing::ServerMode server_mode(uint32_t server) const { return static_cast<routing::ServerMode>(modes_[server]); }
  routing::Health health() const { return routing::Health{modes_, pending_, rotation_}; }
  void count_pending(uint32_t server, int64_t delta) {
    if (server < pending_.size()) pending_[server] = static_cast<uint32_t>(pending_[server] + delta);
  }

  void on_client_closed(ClientSession* client);

 private:
  friend class ConfigWatcher;
  void bind_topology(std::shared_ptr<const routing::RoutingTable> table);
  void drain_removed_servers();
  static void on_connection(uv_stream_t* server, int status);
  static void on_prepare(uv_prepare_t* handle);
  static void on_sweep(uv_timer_t* handle);
  static void on_release(uv_timer_t* handle);
  void release_held_soon();
  static void on_signal(uv_signal_t* handle, int signum);

  void accept_client();
  void flush_dirty();
  void publish_metrics();
  void sweep();
  // `keys_moved`: a request the migration parked and released (its keys are where the ring
  // says) is not looked at again.
  void route(Request& request, bool keys_moved = false);
  bool send_plan(Request& request, const routing::Plan& plan);
  void fragment_finished(Request& request, bool leaves_flight = true);
  void leave_flight(Request& request);
  bool leader_change_waits(const routing::Plan& plan);
  void release_held_requests();
  void drop_waiting_copies(Request& request, const Fragment& leader);
  void on_group_outcome(Request& request, Fragment& fragment);
  void send_second_stage(Request& request, GroupState& group, const Fragment& leader);
  void send_late_second_stage(Request& request, Fragment& leader);
  void answer_group(Request& request, uint32_t group_index, int reply_from, const Fragment& last);
  void answer_quorum_read(Request& request, uint32_t group_index, int reply_from);
  void finish_request(Request& request, std::string_view reply);
  void release_if_finished(Request& request);
  void answer_local(ClientSession& client, Request& request);
  void reply_error(Request& request, std::string_view message);
  void complete_local(Request& request);
  BlockRef bytes_block(std::string_view bytes, std::string_view* view);

  uv_loop_t* loop_;
  conf::Config config_;
  metrics::Metrics* metrics_;
  std::string config_path_;
  bool watch_config_ = true;
  std::string config_digest_;
  uint64_t config_loaded_unix_ = 0;
  uint64_t reloads_ok_ = 0, reloads_failed_ = 0;
  std::string last_reload_error_;
  std::string restart_needed_;     // settings changed in the file that only a restart applies
  std::unique_ptr<ConfigWatcher> watcher_;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint_;
  std::unique_ptr<Migration> migration_;
  MigrationProgress last_migration_;
  ProxyStats stats_;
  ProxyStats published_;          // what publish_metrics() has handed to Prometheus
  RequestAccounting accounting_;
  bool timing_ = false;
  uint64_t iteration_ns_ = 0;     // see loop_ns()
  uint64_t process_published_ms_ = 0;
  uint64_t started_at_ms_ = 0;
  uint64_t next_client_id_ = 1;
  bool stopping_ = false;
  bool started_listening_ = false;  // servers added later are started when they are bound

  std::shared_ptr<const Topology> topology_;
  std::vector<std::unique_ptr<BackendServer>> servers_;  // indexed like table()->servers()
  std::vector<std::unique_ptr<BackendServer>> draining_; // removed by a reload; closed once idle
  std::vector<uint8_t> modes_;      // routing::ServerMode per server
  std::vector<uint32_t> pending_;   // requests in flight per server
  uint64_t rotation_ = 0;
  std::vector<Request*> held_requests_;            // waiting for a cutover, in arrival order
  FenceBook fences_;
  std::vector<ClientSession*> clients_;

  uv_tcp_t listener_{};
  uv_prepare_t flusher_{};
  uv_timer_t sweeper_{};
  uv_timer_t releaser_{};           // release_held_soon()
  uint64_t sweep_period_ms_ = 100;
  uint64_t last_sweep_ms_ = 0;
  bool skipped_stalled_sweep_ = false;
  uv_signal_t sigint_{}, sigterm_{}, sighup_{};

  std::vector<ClientSession*> dirty_clients_;
  std::vector<BackendConnection*> dirty_connections_;
  std::vector<Request*> request_pool_;
  std::string scratch_;           // rebuilt commands, before they get their own block
  std::vector<std::string> rewritten_;
  std::vector<std::string_view> rewritten_views_;

  routing::Plan plan_;            // reused for every request
  routing::PlanScratch plan_scratch_;
};

}  // namespace ringproxy::proxy
