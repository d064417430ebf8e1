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
  return ServerMetrics{&server_requests_->Add(labels), &server_errors_->Add(labels),
                       &server_timeouts_->Add(labels), &server_up_->Add(labels)};
}

}  // namespace ringproxy::metrics
