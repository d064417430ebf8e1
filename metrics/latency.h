// A latency histogram counted on the data path with plain integers, and handed to a
// prometheus::Histogram in one ObserveMultiple per sweep: no atomic or lock per request.
#pragma once

#include <prometheus/histogram.h>

#include <array>
#include <cstdint>
#include <vector>

namespace ringproxy::metrics {

class LatencyHistogram {
 public:
  static constexpr size_t kBounds = 14;
  // Bucket upper bounds, in nanoseconds (and in seconds for Prometheus: bounds()).
  static constexpr std::array<uint64_t, kBounds> kBoundsNs = {
      100'000,     250'000,     500'000,       1'000'000,     2'500'000,   5'000'000,     10'000'000,
      25'000'000,  50'000'000,  100'000'000,   250'000'000,   500'000'000, 1'000'000'000, 2'500'000'000};
  static const std::vector<double>& bounds();

  void observe_ns(uint64_t ns) {
    size_t i = 0;
    while (i < kBounds && ns > kBoundsNs[i]) ++i;
    ++counts_[i];
    sum_ns_ += ns;
    dirty_ = true;
  }
  // Adds what was observed since the last call to `histogram`, and starts again from zero.
  void publish(prometheus::Histogram& histogram);

 private:
  std::array<uint64_t, kBounds + 1> counts_{};  // the last one is +Inf
  uint64_t sum_ns_ = 0;
  bool dirty_ = false;
};

}  // namespace ringproxy::metrics
