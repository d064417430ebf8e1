// Prometheus metrics. Every family and label set is resolved once (at start-up, or when
// a server is added), so the data path only does atomic increments: prometheus-cpp's
// Family::Add takes a mutex and must never run per request.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <utility>
#include <vector>
#include <string>
#include <string_view>

#include "metrics/latency.h"
#include "metrics/process.h"

namespace ringproxy::metrics {

// Server states, in the order of ringproxy::proxy::ServerState.
inline constexpr const char* kServerStates[] = {"up", "down", "recovering", "stale"};

struct ServerMetrics {
  prometheus::Counter* requests = nullptr;
  prometheus::Counter* errors = nullptr;    // connection failures, timeouts, protocol errors
  prometheus::Counter* timeouts = nullptr;
  prometheus::Gauge* up = nullptr;          // 1 up, 0 down
  prometheus::Gauge* state[4] = {};         // 1 for the current state (kServerStates), else 0
  prometheus::Gauge* replay_queue = nullptr;
  prometheus::Counter* replay_dropped = nullptr;
  prometheus::Counter* resyncs = nullptr;
  prometheus::Counter* replays = nullptr;     // catch-ups by replay that completed
  prometheus::Counter* fences = nullptr;      // abandoned connections killed before reuse
  prometheus::Counter* login_failures = nullptr;    // AUTH refused by the server
  prometheus::Counter* resolve_failures = nullptr;  // its host name did not resolve
  prometheus::Histogram* latency = nullptr;   // request written -> reply read
  prometheus::Gauge* connections = nullptr;   // connected, of backend_connections
  prometheus::Gauge* pending = nullptr;       // requests sent or queued, not answered yet
  prometheus::Gauge* dedicated = nullptr;     // dedicated connections held by clients (WATCH)
  prometheus::Counter* dedicated_exhausted = nullptr;  // a client wanted one, none was free
};

// Request outcomes, the `outcome` label of ringproxy_requests_total.
enum Outcome : uint8_t { kOk = 0, kError = 1, kRejected = 2 };
inline constexpr const char* kOutcomes[] = {"ok", "error", "rejected"};
// Transactions, the `outcome` label of ringproxy_transactions_total: EXEC sent (its reply may
// still be nil or an error), EXECABORT by the proxy (a queuing error), DISCARD, or a WATCH lost
// (its connection failed: EXEC answered nil without running).
inline constexpr const char* kTransactionOutcomes[] = {"exec", "execabort", "discard", "watch_lost"};
// Command classes, the `class` label of the request latency histogram.
inline constexpr const char* kClasses[] = {"read", "write", "local", "other"};

struct ShardMetrics {
  prometheus::Counter* repairs_started = nullptr;
  prometheus::Counter* repairs_finished = nullptr;
  prometheus::Counter* repairs_failed = nullptr;
  prometheus::Counter* repair_keys_fixed = nullptr;
  prometheus::Counter* read_repairs = nullptr;
  prometheus::Counter* leader_changes = nullptr;  // primary-replica: who leads writes changed
};

class Metrics {
 public:
  Metrics();
  ~Metrics();

  // The Prometheus text exposition of every metric (what GET /metrics answers).
  std::string render() const;

  ServerMetrics server(const std::string& server, const std::string& shard);
  ShardMetrics shard(const std::string& shard);
  void forget_server(const ServerMetrics& server);  // a removed server's series leave /metrics

  // Config and reloads.
  void set_config(const std::string& digest, double loaded_at_unix);
  void count_reload(bool ok);
  void set_restart_needed(bool needed) { restart_needed_->Set(needed ? 1 : 0); }
  void set_topology(size_t shards, size_t servers, size_t ring_points);

  // Migration after a ring change (published by the sweep).
  prometheus::Gauge* migration_active;
  prometheus::Gauge* migration_keys_to_move;
  prometheus::Counter* migration_keys_moved;
  prometheus::Counter* migration_keys_failed;
  // Replicated writes answered, by write_ack level (primary one quorum all) and whether
  // the level was met.
  prometheus::Counter* acks(size_t level, bool met) { return acks_[level][met ? 1 : 0]; }

  // Requests by command and outcome: resolved on first use (by the sweep, never per request).
  prometheus::Counter* requests(std::string_view command, Outcome outcome);
  prometheus::Histogram* request_latency(size_t cls) { return request_latency_[cls]; }
  void update_process() { process_->update(); }

  prometheus::Gauge* client_connections;
  prometheus::Counter* client_connections_accepted;
  prometheus::Counter* client_connections_rejected;
  prometheus::Counter* client_bytes_received;
  prometheus::Counter* client_bytes_sent;
  prometheus::Counter* error_replies;
  prometheus::Counter* evalsha_as_eval;
  prometheus::Gauge* resp3_client_connections;   // clients that switched to RESP3 (HELLO 3)
  prometheus::Gauge* resp3_server_connections;   // connections to servers that speak RESP3 for them
  prometheus::Counter* transactions[4];     // by kTransactionOutcomes
  prometheus::Gauge* blocked_on_servers;    // blocking commands on dedicated connections
  prometheus::Gauge* blocked_in_proxy;      // replicated pops waiting in the proxy
  prometheus::Counter* proxy_pops;          // pops the proxy ran for waiting clients
  prometheus::Counter* proxy_pops_undone;   // ... put back: their client had left
  prometheus::Gauge* pubsub_subscribers;    // clients in subscribed mode
  prometheus::Counter* pubsub_messages;     // messages forwarded to subscribers
  prometheus::Counter* pubsub_dropped;      // subscribers closed: a server they listened on failed
  prometheus::Counter* protocol_errors;
  prometheus::Counter* auth_failures;       // AUTH / HELLO AUTH with a wrong user or password
  prometheus::Counter* clients_disconnected_by_reload;  // their user was removed or its password changed
  // TLS ([proxy.tls]).
  prometheus::Counter* tls_client_handshakes_ok;
  prometheus::Counter* tls_client_handshakes_failed;
  prometheus::Gauge* tls_client_connections;
  prometheus::Counter* tls_server_handshakes_ok;  // [pool.tls]: to the servers
  prometheus::Counter* tls_server_handshakes_failed;
  prometheus::Gauge* tls_server_connections;
  // The certificates a side presents ("clients": the TLS listener's; "servers": the client
  // certificates of [pool.tls] and the shards' tables, by file) and when they expire. Replaces
  // that side's series.
  void set_certificate_expiry(const std::string& side, const std::vector<std::pair<std::string, double>>& files);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Histogram* request_latency_[4] = {};
  std::unique_ptr<ProcessMetrics> process_;
  prometheus::Family<prometheus::Histogram>* server_latency_;
  prometheus::Family<prometheus::Gauge>* server_connections_;
  prometheus::Family<prometheus::Gauge>* server_pending_;
  prometheus::Family<prometheus::Gauge>* server_dedicated_;
  prometheus::Family<prometheus::Counter>* server_dedicated_exhausted_;
  prometheus::Family<prometheus::Counter>* server_requests_;
  prometheus::Family<prometheus::Counter>* server_errors_;
  prometheus::Family<prometheus::Counter>* server_timeouts_;
  prometheus::Family<prometheus::Gauge>* server_up_;
  prometheus::Family<prometheus::Gauge>* server_state_;
  prometheus::Family<prometheus::Gauge>* replay_queue_;
  prometheus::Family<prometheus::Counter>* replay_dropped_;
  prometheus::Family<prometheus::Counter>* resyncs_;
  prometheus::Family<prometheus::Counter>* replays_;
  prometheus::Family<prometheus::Counter>* fences_;
  prometheus::Family<prometheus::Counter>* login_failures_;
  prometheus::Family<prometheus::Gauge>* tls_expiry_;
  std::map<std::string, std::vector<prometheus::Gauge*>> tls_expiry_series_;  // by side
  prometheus::Family<prometheus::Counter>* resolve_failures_;
  prometheus::Family<prometheus::Counter>* leader_changes_;
  prometheus::Family<prometheus::Counter>* repairs_;
  prometheus::Family<prometheus::Counter>* repair_keys_fixed_;
  prometheus::Family<prometheus::Counter>* read_repairs_;
  prometheus::Counter* acks_[4][2] = {};
  prometheus::Family<prometheus::Gauge>* config_info_;
  prometheus::Gauge* config_info_current_ = nullptr;
  prometheus::Gauge* config_loaded_at_;
  prometheus::Gauge* last_reload_success_;
  prometheus::Counter* reloads_ok_;
  prometheus::Counter* reloads_failed_;
  prometheus::Gauge* restart_needed_;
  prometheus::Gauge* shards_;
  prometheus::Gauge* servers_;
  prometheus::Gauge* ring_points_;
};

}  // namespace ringproxy::metrics
