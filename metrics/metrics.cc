#include "metrics/metrics.h"

#include <algorithm>

#include <prometheus/text_serializer.h>

#include "metrics/series.h"

namespace ringproxy::metrics {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

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

  client_bytes_received = &single_counter(*registry_, "ringproxy_client_received_bytes_total",
                                          "Bytes read from clients.");
  client_bytes_sent = &single_counter(*registry_, "ringproxy_client_sent_bytes_total", "Bytes written to clients.");
  requests_ = &BuildCounter()
                   .Name("ringproxy_requests_total")
                   .Help("Client requests by command (lower case; \"unknown\" for commands redis does not have) "
                         "and outcome (ok; error: the reply was an error; rejected: refused by the proxy before "
                         "reaching a server).")
                   .Register(*registry_);
  auto& latency = BuildHistogram()
                      .Name("ringproxy_request_duration_seconds")
                      .Help("Time from the read that brought a request to the write of its reply, by command class "
                            "(read, write, local: answered by the proxy, other).")
                      .Register(*registry_);
  for (size_t c = 0; c < 4; ++c) request_latency_[c] = &latency.Add({{"class", kClasses[c]}}, LatencyHistogram::bounds());
  process_ = std::make_unique<ProcessMetrics>(*registry_);
  auto& errors = BuildCounter()
                     .Name("ringproxy_error_replies_total")
                     .Help("Replies to clients that were errors (the proxy's or a server's).")
                     .Register(*registry_);
  error_replies = &errors.Add({});
  evalsha_as_eval = &BuildCounter()
                          .Name("ringproxy_evalsha_as_eval_total")
                          .Help("EVALSHA calls of a script the proxy remembers, sent as EVAL with its body (so that a "
                                "server that restarted, was resynced or missed SCRIPT LOAD runs it all the same).")
                          .Register(*registry_)
                          .Add({});
  auto& protocol = BuildCounter()
                       .Name("ringproxy_protocol_errors_total")
                       .Help("Client connections closed for a RESP protocol error.")
                       .Register(*registry_);
  protocol_errors = &protocol.Add({});
  auth_failures = &BuildCounter()
                       .Name("ringproxy_auth_failures_total")
                       .Help("AUTH or HELLO AUTH refused: no such user, or a wrong password.")
                       .Register(*registry_)
                       .Add({});
  clients_disconnected_by_reload = &BuildCounter()
                                        .Name("ringproxy_auth_reload_disconnects_total")
                                        .Help("Clients closed by a reload that removed their user or changed its password.")
                                        .Register(*registry_)
                                        .Add({});

  auto& handshakes = BuildCounter()
                         .Name("ringproxy_tls_handshakes_total")
                         .Help("TLS handshakes by side (clients: the proxy's TLS listener; servers: its connections to them) and outcome (ok, failed).")
                         .Register(*registry_);
  tls_client_handshakes_ok = &handshakes.Add({{"side", "clients"}, {"outcome", "ok"}});
  tls_client_handshakes_failed = &handshakes.Add({{"side", "clients"}, {"outcome", "failed"}});
  tls_server_handshakes_ok = &handshakes.Add({{"side", "servers"}, {"outcome", "ok"}});
  tls_server_handshakes_failed = &handshakes.Add({{"side", "servers"}, {"outcome", "failed"}});
  auto& tls_connections = BuildGauge()
                              .Name("ringproxy_tls_connections")
                              .Help("Open TLS connections, by side.")
                              .Register(*registry_);
  auto& resp3_connections = BuildGauge()
                                .Name("ringproxy_resp3_connections")
                                .Help("Connections speaking RESP3: clients after HELLO 3 (side=clients), and the "
                                      "proxy's connections to servers that carry their requests (side=servers).")
                                .Register(*registry_);
  resp3_client_connections = &resp3_connections.Add({{"side", "clients"}});
  resp3_server_connections = &resp3_connections.Add({{"side", "servers"}});
  tls_client_connections = &tls_connections.Add({{"side", "clients"}});
  tls_server_connections = &tls_connections.Add({{"side", "servers"}});
  tls_expiry_ = &BuildGauge()
                     .Name("ringproxy_tls_certificate_expiry_timestamp_seconds")
                     .Help("When a certificate the proxy presents stops being valid (notAfter), Unix seconds.")
                     .Register(*registry_);

  server_latency_ = &BuildHistogram()
                         .Name("ringproxy_server_request_duration_seconds")
                         .Help("Time from a request's write to a server to its reply.")
                         .Register(*registry_);
  server_connections_ = &BuildGauge()
                             .Name("ringproxy_server_connections")
                             .Help("Open connections to the server.")
                             .Register(*registry_);
  server_pending_ = &BuildGauge()
                         .Name("ringproxy_server_pending_requests")
                         .Help("Requests sent or queued to the server and not answered yet.")
                         .Register(*registry_);
  server_dedicated_ = &BuildGauge()
                           .Name("ringproxy_server_dedicated_connections")
                           .Help("Dedicated connections to the server held by clients (WATCH, blocking commands, subscriptions), of [pool] "
                                 "dedicated_connections.")
                           .Register(*registry_);
  server_dedicated_exhausted_ = &BuildCounter()
                                     .Name("ringproxy_server_dedicated_exhausted_total")
                                     .Help("Clients refused a dedicated connection to the server: all were held.")
                                     .Register(*registry_);
  auto& transaction_family = BuildCounter()
                           .Name("ringproxy_transactions_total")
                           .Help("Transactions, by outcome: exec (sent to the shard), execabort (a queuing error), "
                                 "discard, watch_lost (the WATCH's connection failed: EXEC answered nil).")
                           .Register(*registry_);
  for (size_t i = 0; i < 4; ++i) transactions[i] = &transaction_family.Add({{"outcome", kTransactionOutcomes[i]}});
  auto& blocked_family = BuildGauge()
                             .Name("ringproxy_blocked_clients")
                             .Help("Clients in a blocking command: where=server (on a dedicated connection), "
                                   "where=proxy (a pop on a replicated shard, waiting in the proxy).")
                             .Register(*registry_);
  blocked_on_servers = &blocked_family.Add({{"where", "server"}});
  blocked_in_proxy = &blocked_family.Add({{"where", "proxy"}});
  auto& pops_family = BuildCounter()
                          .Name("ringproxy_proxy_pops_total")
                          .Help("Pops the proxy ran for clients waiting on a replicated shard: outcome=run, "
                                "or undone (its client had left: the element was put back).")
                          .Register(*registry_);
  proxy_pops = &pops_family.Add({{"outcome", "run"}});
  proxy_pops_undone = &pops_family.Add({{"outcome", "undone"}});
  pubsub_subscribers = &BuildGauge()
                            .Name("ringproxy_pubsub_subscribers")
                            .Help("Clients with at least one subscription (SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE).")
                            .Register(*registry_)
                            .Add({});
  pubsub_messages = &BuildCounter()
                         .Name("ringproxy_pubsub_messages_total")
                         .Help("Pub/sub messages forwarded to subscribed clients.")
                         .Register(*registry_)
                         .Add({});
  pubsub_dropped = &BuildCounter()
                        .Name("ringproxy_pubsub_subscribers_dropped_total")
                        .Help("Subscribed clients closed because a server they listened on failed (they "
                              "resubscribe).")
                        .Register(*registry_)
                        .Add({});
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
  replays_ = &BuildCounter()
                  .Name("ringproxy_server_replays_total")
                  .Help("Catch-ups of a lagging or returning server by replaying the writes it missed.")
                  .Register(*registry_);
  fences_ = &BuildCounter()
                 .Name("ringproxy_server_fences_total")
                 .Help("Abandoned connections killed on the server before anything newer ran on it.")
                 .Register(*registry_);
  login_failures_ = &BuildCounter()
                         .Name("ringproxy_server_login_failures_total")
                         .Help("Connections to the server whose AUTH it refused ([pool] username/password): each marks it down.")
                         .Register(*registry_);
  resolve_failures_ = &BuildCounter()
                           .Name("ringproxy_server_resolve_failures_total")
                           .Help("Lookups of the server's host name that failed (a name that does not resolve marks it down).")
                           .Register(*registry_);
  leader_changes_ = &BuildCounter()
                         .Name("ringproxy_leader_changes_total")
                         .Help("Changes of the server that leads a shard's writes (a promotion, or the primary back).")
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

  config_info_ = &BuildGauge()
                      .Name("ringproxy_config_info")
                      .Help("1, labelled with the running config's digest (first 16 hex digits of its SHA-256).")
                      .Register(*registry_);
  config_loaded_at_ = &single_gauge(*registry_, "ringproxy_config_loaded_timestamp_seconds",
                                    "When the running config was loaded (Unix time).");
  last_reload_success_ = &single_gauge(*registry_, "ringproxy_config_last_reload_success_timestamp_seconds",
                                       "When a reload last succeeded (Unix time; 0: never).");
  auto& reloads = BuildCounter()
                      .Name("ringproxy_config_reloads_total")
                      .Help("Config reloads, by outcome (ok; failed: the file was rejected and nothing changed).")
                      .Register(*registry_);
  reloads_ok_ = &reloads.Add({{"outcome", "ok"}});
  reloads_failed_ = &reloads.Add({{"outcome", "failed"}});
  restart_needed_ =
      &single_gauge(*registry_, "ringproxy_config_restart_needed",
                    "1 when the config file changes a setting only a restart applies (listen addresses).");
  shards_ = &single_gauge(*registry_, "ringproxy_shards", "Shards in the ring.");
  servers_ = &single_gauge(*registry_, "ringproxy_servers", "Servers of all shards.");
  ring_points_ = &single_gauge(*registry_, "ringproxy_ring_points",
                               "Points on the hash ring (ketama), or shards (modula, jump).");
  migration_active = &single_gauge(*registry_, "ringproxy_migration_active",
                                   "1 while keys whose shard changed in a reload are being moved.");
  migration_keys_to_move = &single_gauge(*registry_, "ringproxy_migration_keys_to_move",
                                         "Keys found to move by the current migration (so far).");
  auto& migrated = BuildCounter()
                       .Name("ringproxy_migration_keys_total")
                       .Help("Keys moved to their new shard after a ring change, by outcome (moved, failed).")
                       .Register(*registry_);
  migration_keys_moved = &migrated.Add({{"outcome", "moved"}});
  migration_keys_failed = &migrated.Add({{"outcome", "failed"}});
}

Metrics::~Metrics() = default;

void Metrics::set_config(const std::string& digest, double loaded_at_unix) {
  if (config_info_current_ != nullptr) config_info_->Remove(config_info_current_);
  config_info_current_ = &config_info_->Add({{"digest", digest.empty() ? "none" : digest}});
  config_info_current_->Set(1);
  config_loaded_at_->Set(loaded_at_unix);
}

void Metrics::count_reload(bool ok) {
  if (ok) {
    reloads_ok_->Increment();
    last_reload_success_->SetToCurrentTime();
  } else {
    reloads_failed_->Increment();
  }
}

void Metrics::set_topology(size_t shards, size_t servers, size_t ring_points) {
  shards_->Set(static_cast<double>(shards));
  servers_->Set(static_cast<double>(servers));
  ring_points_->Set(static_cast<double>(ring_points));
}

void Metrics::forget_server(const ServerMetrics& m) {
  server_requests_->Remove(m.requests);
  server_errors_->Remove(m.errors);
  server_timeouts_->Remove(m.timeouts);
  server_up_->Remove(m.up);
  for (prometheus::Gauge* state : m.state) server_state_->Remove(state);
  replay_queue_->Remove(m.replay_queue);
  replay_dropped_->Remove(m.replay_dropped);
  resyncs_->Remove(m.resyncs);
  replays_->Remove(m.replays);
  fences_->Remove(m.fences);
  login_failures_->Remove(m.login_failures);
  resolve_failures_->Remove(m.resolve_failures);
  server_latency_->Remove(m.latency);
  server_connections_->Remove(m.connections);
  server_pending_->Remove(m.pending);
  server_dedicated_->Remove(m.dedicated);
  server_dedicated_exhausted_->Remove(m.dedicated_exhausted);
}

std::string Metrics::render() const { return prometheus::TextSerializer().Serialize(registry_->Collect()); }

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
  m.replays = &replays_->Add(labels);
  m.fences = &fences_->Add(labels);
  m.login_failures = &login_failures_->Add(labels);
  m.resolve_failures = &resolve_failures_->Add(labels);
  m.latency = &server_latency_->Add(labels, LatencyHistogram::bounds());
  m.connections = &server_connections_->Add(labels);
  m.pending = &server_pending_->Add(labels);
  m.dedicated = &server_dedicated_->Add(labels);
  m.dedicated_exhausted = &server_dedicated_exhausted_->Add(labels);
  return m;
}

prometheus::Counter* Metrics::requests(std::string_view command, Outcome outcome) {
  return &requests_->Add({{"command", std::string(command)}, {"outcome", kOutcomes[outcome]}});
}

ShardMetrics Metrics::shard(const std::string& shard) {
  return ShardMetrics{&repairs_->Add({{"shard", shard}, {"outcome", "started"}}),
                      &repairs_->Add({{"shard", shard}, {"outcome", "finished"}}),
                      &repairs_->Add({{"shard", shard}, {"outcome", "failed"}}),
                      &repair_keys_fixed_->Add({{"shard", shard}}), &read_repairs_->Add({{"shard", shard}}),
                      &leader_changes_->Add({{"shard", shard}})};
}

void Metrics::set_certificate_expiry(const std::string& side, const std::vector<std::pair<std::string, double>>& files) {
  std::vector<prometheus::Gauge*>& series = tls_expiry_series_[side];
  for (prometheus::Gauge* gauge : series) tls_expiry_->Remove(gauge);
  series.clear();
  for (const auto& [file, unix_seconds] : files) {
    prometheus::Gauge& gauge = tls_expiry_->Add({{"side", side}, {"file", file}});
    gauge.Set(unix_seconds);
    if (std::find(series.begin(), series.end(), &gauge) == series.end()) series.push_back(&gauge);
  }
}

}  // namespace ringproxy::metrics
