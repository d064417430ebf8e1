// A family with one unlabelled series: most of ringproxy's gauges and some counters.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <string>

namespace ringproxy::metrics {

inline prometheus::Gauge& single_gauge(prometheus::Registry& registry, const std::string& name,
                                       const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
}

inline prometheus::Counter& single_counter(prometheus::Registry& registry, const std::string& name,
                                           const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}

}  // namespace ringproxy::metrics
