// The proxy's request counters: plain integers on the data path, handed to Prometheus by the
// sweep (admin/metrics_publisher.h), at most one sweep period later.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "metrics/metrics.h"
#include "proxy/requests/request.h"

namespace ringproxy::proxy {

struct ProxyStats {
  uint64_t clients_accepted = 0;
  uint64_t clients_rejected = 0;
  uint64_t requests = 0;
  uint64_t error_replies = 0;   // replies that were errors (the proxy's or a server's)
  uint64_t protocol_errors = 0;
  uint64_t evalsha_as_eval = 0;  // EVALSHA of a script the proxy has, sent as EVAL with its body
  std::array<uint64_t, 4> transactions{};  // by metrics::kTransactionOutcomes
  // Blocking commands (blocking/): clients blocked now, on a server or waiting in the proxy;
  // the pops the proxy ran for waiting clients, and those undone (their client had left).
  uint64_t blocked_on_servers = 0, blocked_in_proxy = 0;
  uint64_t proxy_pops = 0, proxy_pops_undone = 0;
  // Pub/sub (pubsub/): subscribed clients now, messages forwarded to them, subscribers closed
  // because a server they listened on failed.
  uint64_t subscribers = 0, messages_forwarded = 0, subscribers_dropped = 0;
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

}  // namespace ringproxy::proxy
