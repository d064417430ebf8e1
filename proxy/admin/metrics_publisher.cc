#include "proxy/admin/metrics_publisher.h"

namespace ringproxy::proxy {

void MetricsPublisher::publish() {
  metrics::Metrics& metrics = *worker_.metrics();
  if (uint64_t delta = stats_.error_replies - published_.error_replies; delta > 0) {
    metrics.error_replies->Increment(static_cast<double>(delta));
  }
  if (uint64_t delta = stats_.evalsha_as_eval - published_.evalsha_as_eval; delta > 0) {
    metrics.evalsha_as_eval->Increment(static_cast<double>(delta));
  }
  for (size_t i = 0; i < stats_.transactions.size(); ++i) {
    if (uint64_t delta = stats_.transactions[i] - published_.transactions[i]; delta > 0) {
      metrics.transactions[i]->Increment(static_cast<double>(delta));
    }
  }
  if (uint64_t delta = stats_.proxy_pops - published_.proxy_pops; delta > 0) {
    metrics.proxy_pops->Increment(static_cast<double>(delta));
  }
  if (uint64_t delta = stats_.proxy_pops_undone - published_.proxy_pops_undone; delta > 0) {
    metrics.proxy_pops_undone->Increment(static_cast<double>(delta));
  }
  if (uint64_t delta = stats_.messages_forwarded - published_.messages_forwarded; delta > 0) {
    metrics.pubsub_messages->Increment(static_cast<double>(delta));
  }
  if (uint64_t delta = stats_.subscribers_dropped - published_.subscribers_dropped; delta > 0) {
    metrics.pubsub_dropped->Increment(static_cast<double>(delta));
  }
  metrics.blocked_on_servers->Set(static_cast<double>(stats_.blocked_on_servers));
  metrics.blocked_in_proxy->Set(static_cast<double>(stats_.blocked_in_proxy));
  metrics.pubsub_subscribers->Set(static_cast<double>(stats_.subscribers));
  if (uint64_t delta = stats_.bytes_received - published_.bytes_received; delta > 0) {
    metrics.client_bytes_received->Increment(static_cast<double>(delta));
  }
  if (uint64_t delta = stats_.bytes_sent - published_.bytes_sent; delta > 0) {
    metrics.client_bytes_sent->Increment(static_cast<double>(delta));
  }
  accounting_.publish(metrics);
  published_ = stats_;
  const MigrationProgress& migration = reloader_.migration_progress();
  metrics.migration_active->Set(reloader_.migration() != nullptr && !reloader_.migration()->finished() ? 1 : 0);
  metrics.migration_keys_to_move->Set(static_cast<double>(migration.keys_to_move));
  servers_.publish_metrics();
  const uint64_t now = worker_.now_ms();
  if (now - process_published_ms_ >= 1000) {  // /proc reads: once a second is plenty
    process_published_ms_ = now;
    metrics.update_process();
  }
}

}  // namespace ringproxy::proxy
