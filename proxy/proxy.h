// The Proxy owns what lives for the process and wires the rooms together; it decides nothing.
//
//   net/        the event loop's Worker (clocks, the once-per-iteration flush), buffers,
//               addresses, the hiredis adapter for side connections
//   requests/   the unit of work: Request, Fragment, the bound Topology, the counters
//   clients/    the listener and the client sessions (parse in, replies out in order)
//   backend/    the servers: connections, health, replay, resync, repair, probes, fences
//   datapath/   classify -> plan -> send -> reduce -> reply (see data_path.h)
//   transactions/  MULTI ... EXEC queued by the proxy; WATCH on a dedicated connection
//   blocking/   BLPOP ... on a dedicated connection, or waiting in the proxy (replicated pops)
//   pubsub/     channels on shards like keys; subscribers' links; PUBSUB merged
//   reconfig/   reload, the config file watch, the migration of moved keys
//   admin/      local commands, INFO, the metrics endpoint and publisher
//   service/    the process as a service: SIGTERM's drain, systemd's readiness notices
//
// Includes point one way: a room includes only the rooms listed before it (and routing/,
// conf/, metrics/, which include nothing of proxy/). The ways back up are four interfaces,
// declared low and implemented high, wired here: RequestHandler (clients -> data path),
// ServerEvents (backend -> data path), LocalCommandHandler and KeyMoves (data path -> admin,
// reconfig). tests/layout/check_includes.py checks it.
//
// Single-threaded: every method runs on the loop thread, the metrics endpoint included.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>

#include "conf/config.h"
#include "metrics/metrics.h"
#include "proxy/admin/local_commands.h"
#include "proxy/admin/metrics_endpoint.h"
#include "proxy/admin/metrics_publisher.h"
#include "proxy/backend/servers.h"
#include "proxy/clients/clients.h"
#include "proxy/datapath/data_path.h"
#include "proxy/net/worker.h"
#include "proxy/reconfig/reloader.h"
#include "proxy/service/drain.h"
#include "proxy/service/service_notifier.h"
#include "proxy/transactions/transactions.h"
#include "proxy/blocking/blocking.h"
#include "proxy/pubsub/pubsub.h"
#include "proxy/requests/request.h"
#include "proxy/requests/stats.h"

namespace ringproxy::proxy {

class Proxy {
 public:
  // `config_path` is what a reload reads again ("" : no reload); `digest` its text's digest.
  Proxy(uv_loop_t* loop, conf::Config config, metrics::Metrics* metrics, std::string config_path = "",
        std::string digest = "");
  ~Proxy() = default;
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Before start(): whether the config file's directory is watched for changes (reloads
  // then come only from SIGHUP and PROXY RELOAD).
  void watch_config(bool watch) { watch_config_ = watch; }

  // Binds the listener and connects to the servers; false with `error` set on failure.
  bool start(std::string* error);
  // Stops accepting, closes every connection; the loop then runs out.
  void stop();
  // What the process exits with: 0, or 1 when a second SIGTERM cut its drain short.
  int exit_status() const { return exit_status_; }

 private:
  static void on_sweep(uv_timer_t* handle);
  static void on_signal(uv_signal_t* handle, int signum);
  void sweep();

  // Declared in the order they depend on each other: destroyed in reverse, the data path and
  // the request pool outlive the servers (closing a connection fails its fragments), and the
  // servers outlive the reloader (its migration may still hold requests).
  conf::Config config_;           // the running config; a reload replaces its value
  Worker worker_;
  RequestPool requests_;
  ProxyStats stats_;
  RequestAccounting accounting_;
  DataPath data_path_;
  Servers servers_;
  Clients clients_;
  Reloader reloader_;
  Transactions transactions_;
  Blocking blocking_;
  PubSub pubsub_;
  LocalCommands local_commands_;
  MetricsPublisher publisher_;
  ServiceNotifier notifier_;
  Drain drain_;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint_;

  bool watch_config_ = true;
  bool stopping_ = false;
  int exit_status_ = 0;
  uint64_t started_at_ms_ = 0;
  uv_timer_t sweeper_{};
  uint64_t sweep_period_ms_ = 100;
  uint64_t last_sweep_ms_ = 0;
  bool skipped_stalled_sweep_ = false;
  uv_signal_t sigint_{}, sigterm_{}, sighup_{};
};

}  // namespace ringproxy::proxy
