// Process metrics under the names every Prometheus client library uses (process_*), read
// from /proc/self by the proxy's sweep (prometheus-cpp has no process collector).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

namespace ringproxy::metrics {

class ProcessMetrics {
 public:
  explicit ProcessMetrics(prometheus::Registry& registry);
  void update();

 private:
  prometheus::Counter* cpu_seconds_;
  double cpu_published_ = 0;
  prometheus::Gauge* resident_bytes_;
  prometheus::Gauge* virtual_bytes_;
  prometheus::Gauge* open_fds_;
  prometheus::Gauge* max_fds_;
  prometheus::Gauge* start_time_;
};

}  // namespace ringproxy::metrics
