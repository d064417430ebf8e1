// One event loop and what every object on it shares: the loop, its clocks, the running
// config and the metrics registry, and the once-per-iteration flush.
//
// Writes are batched: a connection with bytes to send marks itself dirty, and the Worker
// flushes every dirty connection once per loop iteration, before libuv polls (a
// uv_prepare_t): requests to servers first (so they are on the wire as early as possible),
// then replies to clients. Today there is one Worker; with several event-loop threads each
// would have its own (see the README's "Layout").
//
// Ownership: owned by the Proxy; outlives every connection. Single-threaded.
#pragma once

#include <uv.h>

#include <cstdint>
#include <vector>

#include "conf/config.h"
#include "metrics/metrics.h"

namespace ringproxy::proxy {

// A connection whose writes the Worker flushes.
class Flushable {
 public:
  virtual void flush() = 0;
  bool dirty = false;  // in a Worker's flush list

 protected:
  ~Flushable() = default;
};

class Worker {
 public:
  // `config` is the proxy's running config (a reload replaces its value in place).
  Worker(uv_loop_t* loop, const conf::Config& config, metrics::Metrics* metrics)
      : loop_(loop), config_(config), metrics_(metrics), timing_(config.metrics.listen.has_value()) {}
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  uv_loop_t* loop() const { return loop_; }
  uint64_t now_ms() const { return uv_now(loop_); }
  const conf::Config& config() const { return config_; }
  metrics::Metrics* metrics() const { return metrics_; }
  // Latency is measured only when the metrics endpoint is on (two clock reads per batch).
  bool timing() const { return timing_; }
  // The clock for latencies: read once per loop iteration for all the reads it handles,
  // once for all the flushes (not per request or per connection).
  uint64_t loop_ns() {
    if (iteration_ns_ == 0) iteration_ns_ = uv_hrtime();
    return iteration_ns_;
  }

  void start();  // the flush hook
  void stop();   // closes it (the loop runs its close callback)

  // Work for the once-per-iteration flush.
  void flush_to_server(Flushable* connection) {
    connection->dirty = true;
    to_servers_.push_back(connection);
  }
  void flush_to_client(Flushable* client) {
    client->dirty = true;
    to_clients_.push_back(client);
  }
  // A connection going away: leaves a tombstone (the flush may be iterating right now).
  void forget(Flushable* connection);

 private:
  static void on_prepare(uv_prepare_t* handle);
  void flush_dirty();

  uv_loop_t* loop_;
  const conf::Config& config_;
  metrics::Metrics* metrics_;
  bool timing_;
  uint64_t iteration_ns_ = 0;  // see loop_ns()
  uv_prepare_t flusher_{};
  std::vector<Flushable*> to_servers_;
  std::vector<Flushable*> to_clients_;
};

}  // namespace ringproxy::proxy
