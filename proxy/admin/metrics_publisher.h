// Hands the data path's plain counters to Prometheus, once per sweep: per-request counters
// are plain integers (an atomic floating-point add per counter per request cost ~2% of the
// instructions of a pipelined request), published here at most one sweep period later.
#pragma once

#include <cstdint>

#include "proxy/backend/servers.h"
#include "proxy/net/worker.h"
#include "proxy/reconfig/reloader.h"
#include "proxy/requests/stats.h"

namespace ringproxy::proxy {

class MetricsPublisher {
 public:
  MetricsPublisher(Worker& worker, const ProxyStats& stats, RequestAccounting& accounting, Servers& servers,
                   const Reloader& reloader)
      : worker_(worker), stats_(stats), accounting_(accounting), servers_(servers), reloader_(reloader) {}

  void publish();

 private:
  Worker& worker_;
  const ProxyStats& stats_;
  RequestAccounting& accounting_;
  Servers& servers_;
  const Reloader& reloader_;
  ProxyStats published_;            // what publish() has handed to Prometheus
  uint64_t process_published_ms_ = 0;
};

}  // namespace ringproxy::proxy
