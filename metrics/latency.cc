#include "metrics/latency.h"

namespace ringproxy::metrics {

const std::vector<double>& LatencyHistogram::bounds() {
  static const std::vector<double> seconds = [] {
    std::vector<double> out;
    for (uint64_t ns : kBoundsNs) out.push_back(static_cast<double>(ns) / 1e9);
    return out;
  }();
  return seconds;
}

void LatencyHistogram::publish(prometheus::Histogram& histogram) {
  if (!dirty_) return;
  std::vector<double> increments(counts_.begin(), counts_.end());
  histogram.ObserveMultiple(increments, static_cast<double>(sum_ns_) / 1e9);
  counts_.fill(0);
  sum_ns_ = 0;
  dirty_ = false;
}

}  // namespace ringproxy::metrics
