#include "metrics/metrics.h"

#include <prometheus/exposer.h>

namespace ringproxy::metrics {

using prometheus::BuildCounter;
using prometheus::BuildGauge;

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& clients = BuildGauge().Name("ringproxy_client_connections").Help("Open client connections.").Register(*registry_);
  client_connections = &clients.Add({});
  auto& accepted = BuildCounter()
                       .Name("ringproxy_client_connections_accepted_total")
                       .Help("Client connections accepted.")
                       .Register(*registry_);
  client_connections_accepted = &accepted.Add({});
  auto& rejected = BuildCounter()
                       .Name("ringproxy_client_connections_rejected_total")
                       .Help("Client connections refused because max_clients was reached.")
                       .Register(*registry_);
  client_connections_rejected = &rejected.Add({});

  auto& requests = BuildCounter()
                       .Name("ringproxy_requests_total")
                       .Help("Client requests, by command class.")
                       .Register(*registry_);
  requests_read = &requests.Add({{"class", "read"}});
  requests_write = &requests.Add({{"class", "write"}});
  requests_local = &requests.Add({{"class", "local"}});
  requests_other = &requests.Add({{"class", "other"}});
  auto& errors = BuildCounter()
                     .Name("ringproxy_error_replies_total")
                     .Help("Replies to clients that were errors (the proxy's or a server's).")
                     .Register(*registry_);
  error_replies = &errors.Add({});
  auto& protocol = BuildCounter()
                       .Name("ringproxy_protocol_errors_total")
                       .Help("Client connections closed for a RESP protocol error.")
                       .Register(*registry_);
  protocol_errors = &protocol.Add({});

  server_requests_ = &BuildCounter()
                          .Name("ringproxy_server_requests_total")
                          .Help("Requests sent to a server.")
                          .Register(*registry_);
  server_errors_ = &BuildCounter()
                        .Name("ringproxy_server_errors_total")
                        .Help("Failures of a server: refused or lost connections, timeouts, protocol errors.")
                        .Register(*registry_);
  server_timeouts_ = &BuildCounter()
                          .Name("ringproxy_server_timeouts_total")
                          .Help("Requests to a server that timed out.")
                          .Register(*registry_);
  server_up_ = &BuildGauge().Name("ringproxy_server_up").Help("1 when the server takes requests.").Register(*registry_);
  server_state_ = &BuildGauge()
                       .Name("ringproxy_server_state")
                       .Help("1 for the server's current state (up, down, recovering, stale), else 0.")
                       .Register(*registry_);
  replay_queue_ = &BuildGauge()
                       .Name("ringproxy_server_replay_queue_writes")
                       .Help("Writes waiting in the server's replay queue.")
                       .Register(*registry_);
  replay_dropped_ = &BuildCounter()
                         .Name("ringproxy_server_replay_dropped_total")
                         .Help("Writes dropped from a full replay queue (the server then needs a resync).")
                         .Register(*registry_);
  resyncs_ = &BuildCounter()
                  .Name("ringproxy_server_resyncs_total")
                  .Help("Full resyncs of a stale server that completed.")
                  .Register(*registry_);
  repairs_ = &BuildCounter()
                  .Name("ringproxy_repairs_total")
                  .Help("Anti-entropy repair passes of a shard, by outcome (started, finished, failed).")
                  .Register(*registry_);
  repair_keys_fixed_ = &BuildCounter()
                            .Name("ringproxy_repair_keys_fixed_total")
                            .Help("Keys made equal across a shard's servers by repair.")
                            .Register(*registry_);
  read_repairs_ = &BuildCounter()
                       .Name("ringproxy_read_repairs_total")
                       .Help("Quorum reads whose copies differed (the key is then repaired on the shard).")
                       .Register(*registry_);
  auto& acks = BuildCounter()
                   .Name("ringproxy_replication_acks_total")
                   .Help("Replicated writes answered, by write_ack level and outcome (met: the level was "
                         "reached; missed: the client got an error saying how many servers acknowledged).")
                   .Register(*registry_);
  const char* levels[] = {"primary", "one", "quorum", "all"};
  for (size_t level = 0; level < 4; ++level) {
    acks_[level][0] = &acks.Add({{"level", levels[level]}, {"outcome", "missed"}});
    acks_[level][1] = &acks.Add({{"level", levels[level]}, {"outcome", "met"}});
  }
}

Metrics::~Metrics() = default;

bool Metrics::listen(const std::string& address, std::string* error) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address, 1);
    exposer_->RegisterCollectable(registry_);
    return true;
  } catch (const std::exception& e) {
    *error = "cannot serve metrics on " + address + ": " + e.what();
    return false;
  }
}

int Metrics::bound_port() const {
  if (!exposer_) return 0;
  auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

ServerMetrics Metrics::server(const std::string& server, const std::string& shard) {
  prometheus::Labels labels{{"server", server}, {"shard", shard}};
  ServerMetrics m{&server_requests_->Add(labels), &server_errors_->Add(labels), &server_timeouts_->Add(labels),
                  &server_up_->Add(labels)};
  for (size_t i = 0; i < 4; ++i) {
    m.state[i] = &server_state_->Add({{"server", server}, {"shard", shard}, {"state", kServerStates[i]}});
  }
  m.replay_queue = &replay_queue_->Add(labels);
  m.replay_dropped = &replay_dropped_->Add(labels);
  m.resyncs = &resyncs_->Add(labels);
  return m;
}

ShardMetrics Metrics::shard(const std::string& shard) {
  return ShardMetrics{&repairs_->Add({{"shard", shard}, {"outcome", "started"}}),
                      &repairs_->Add({{"shard", shard}, {"outcome", "finished"}}),
                      &repairs_->Add({{"shard", shard}, {"outcome", "failed"}}),
                      &repair_keys_fixed_->Add({{"shard", shard}}), &read_repairs_->Add({{"shard", shard}})};
}

}  // namespace ringproxy::metrics
