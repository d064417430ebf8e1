#include "proxy/requests/stats.h"

#include "routing/pubsub.h"
#include "routing/resp/reply_scanner.h"

namespace ringproxy::proxy {

RequestAccounting::RequestAccounting() {
  const size_t slots = routing::all_commands().size() + 1;  // + "unknown"
  counts.assign(slots, {});
  published.assign(slots, {});
  counters.assign(slots, {});
}

void RequestAccounting::account(const Request& request, uint64_t now_ns) {
  const std::span<const routing::CommandInfo> table = routing::all_commands();
  size_t slot = table.size();  // (unknown)
  if (request.top_cmd != nullptr) {
    slot = static_cast<size_t>(request.top_cmd - table.data());
  } else if (request.cmd == &routing::push_marker()) [[unlikely]] {
    return;  // a pub/sub message: not a request
  }
  const metrics::Outcome outcome = request.rejected                      ? metrics::kRejected
                                   : resp::is_error_reply(request.reply) ? metrics::kError
                                                                         : metrics::kOk;
  ++counts[slot][outcome];
  if (request.started_ns == 0 || now_ns < request.started_ns) return;
  size_t cls = 3;
  if (request.cmd != nullptr) {
    switch (request.cmd->cls) {
      case routing::CommandClass::read: cls = 0; break;
      case routing::CommandClass::write: cls = 1; break;
      case routing::CommandClass::local: cls = 2; break;
      default: break;
    }
  }
  latency[cls].observe_ns(now_ns - request.started_ns);
}

void RequestAccounting::publish(metrics::Metrics& metrics) {
  const std::span<const routing::CommandInfo> table = routing::all_commands();
  for (size_t slot = 0; slot < counts.size(); ++slot) {
    for (size_t o = 0; o < 3; ++o) {
      const uint64_t delta = counts[slot][o] - published[slot][o];
      if (delta == 0) continue;
      if (counters[slot][o] == nullptr) {  // first use: the only lookup (and lock) it takes
        counters[slot][o] = metrics.requests(slot < table.size() ? table[slot].name : "unknown",
                                             static_cast<metrics::Outcome>(o));
      }
      counters[slot][o]->Increment(static_cast<double>(delta));
      published[slot][o] = counts[slot][o];
    }
  }
  for (size_t c = 0; c < 4; ++c) latency[c].publish(*metrics.request_latency(c));
}

}  // namespace ringproxy::proxy
