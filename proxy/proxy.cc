#include "proxy/proxy.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace ringproxy::proxy {

Proxy::Proxy(uv_loop_t* loop, conf::Config config, metrics::Metrics* metrics, std::string config_path,
             std::string digest)
    : config_(std::move(config)),
      worker_(loop, config_, metrics),
      data_path_(worker_, servers_, requests_, stats_),
      servers_(worker_, data_path_),
      clients_(worker_, requests_, stats_, accounting_),
      reloader_(worker_, config_, servers_, data_path_, clients_, std::move(config_path), std::move(digest)),
      transactions_(worker_, servers_, data_path_, stats_),
      blocking_(worker_, servers_, data_path_, stats_),
      pubsub_(worker_, servers_, data_path_, stats_),
      local_commands_(data_path_, transactions_, pubsub_, blocking_, servers_, reloader_, clients_,
                      InfoSources{worker_, started_at_ms_, stats_, clients_, servers_, reloader_}),
      publisher_(worker_, stats_, accounting_, servers_, reloader_),
      drain_(worker_, clients_, servers_, blocking_, pubsub_, notifier_) {
  clients_.set_handler(&data_path_);
  data_path_.set_local_commands(&local_commands_);
  data_path_.set_blocking(&blocking_);
  // (Told of every client that closes, whatever handler its requests go to then.)
  clients_.add_state_owner(&blocking_);
  clients_.add_state_owner(&transactions_);
  clients_.add_state_owner(&pubsub_);
}

bool Proxy::start(std::string* error) {
  uv_loop_t* loop = worker_.loop();
  started_at_ms_ = uv_now(loop);
  ServerTlsContexts server_tls;
  if (!ServerTlsContexts::build(config_.pool, &server_tls, error)) return false;
  worker_.metrics()->set_certificate_expiry("servers", server_tls.expiries);
  servers_.set_tls(std::move(server_tls));
  servers_.bind(routing::RoutingTable::build(config_.pool));

  const conf::Address& listen = config_.proxy.listen;
  if (config_.proxy.plain_listener && !clients_.listen(listen, error)) return false;
  if (config_.proxy.tls) {
    const conf::TlsListenConfig& tls = *config_.proxy.tls;
    std::shared_ptr<TlsContext> context = TlsContext::for_listener(tls, error);
    if (context == nullptr || !clients_.listen_tls(tls.listen, context, error)) {
      clients_.stop();
      return false;
    }
    worker_.metrics()->set_certificate_expiry("clients", {{tls.cert_file, static_cast<double>(context->certificate_expiry())}});
    spdlog::info("TLS clients on {} (certificate valid until {} Unix time)", tls.listen.to_string(),
                 context->certificate_expiry());
  }
  if (config_.metrics.listen) {
    metrics_endpoint_ = std::make_unique<MetricsEndpoint>(loop, *worker_.metrics());
    if (!metrics_endpoint_->listen(*config_.metrics.listen, error, config_.proxy.reuse_port)) {
      clients_.stop();
      return false;
    }
    spdlog::info("metrics on http://{}/metrics", config_.metrics.listen->to_string());
  }

  worker_.start();
  data_path_.start();
  blocking_.start_timer();
  // Timeouts are checked by a sweep rather than a timer per request: no timer work on
  // the hot path, at the cost of up to one sweep period of extra delay.
  const conf::PoolConfig& pool = config_.pool;
  sweep_period_ms_ = std::clamp<uint64_t>(std::min(pool.connect_timeout_ms, pool.request_timeout_ms) / 10, 5, 100);
  uv_timer_init(loop, &sweeper_);
  sweeper_.data = this;
  uv_timer_start(&sweeper_, on_sweep, sweep_period_ms_, sweep_period_ms_);

  uv_signal_init(loop, &sigint_);
  uv_signal_init(loop, &sigterm_);
  sigint_.data = sigterm_.data = this;
  uv_signal_start(&sigint_, on_signal, SIGINT);
  uv_signal_start(&sigterm_, on_signal, SIGTERM);
  if (!reloader_.config_path().empty()) {
    uv_signal_init(loop, &sighup_);
    sighup_.data = this;
    uv_signal_start(&sighup_, on_signal, SIGHUP);
  }
  reloader_.start(watch_config_);

  servers_.start();
  const routing::RoutingTable& table = *servers_.table();
  spdlog::info("ringproxy listening on {} with {} shards, {} servers ({} / {}), config digest {}",
               config_.proxy.plain_listener ? listen.to_string() : "TLS only",
               table.shards().size(), table.servers().size(), routing::hash_function_name(pool.hash),
               routing::distribution_name(pool.distribution),
               reloader_.config_digest().empty() ? "none" : reloader_.config_digest());
  notifier_.ready("serving on " + (config_.proxy.plain_listener ? listen.to_string() : std::string("TLS only")) +
                  ", " + std::to_string(table.shards().size()) + " shards");
  return true;
}

void Proxy::stop() {
  if (stopping_) return;
  stopping_ = true;
  spdlog::info("ringproxy stopping");
  drain_.stop();
  worker_.stop();
  data_path_.stop();
  blocking_.stop();
  pubsub_.stop();
  uv_close(reinterpret_cast<uv_handle_t*>(&sweeper_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
  if (!reloader_.config_path().empty()) uv_close(reinterpret_cast<uv_handle_t*>(&sighup_), nullptr);
  if (metrics_endpoint_) metrics_endpoint_->close();
  clients_.stop();
  reloader_.stop();  // after the clients: the migration's parked requests are orphans now
  servers_.stop();
}

void Proxy::on_signal(uv_signal_t* handle, int signum) {
  auto* self = static_cast<Proxy*>(handle->data);
  if (signum == SIGHUP) {
    if (self->drain_.running()) return;  // (it is going away)
    self->notifier_.reloading();
    self->reloader_.reload("SIGHUP");
    self->notifier_.ready(self->reloader_.last_reload_error().empty() ? "serving; config reloaded"
                                                                      : "serving; the last reload was rejected");
  } else if (self->drain_.running()) {
    spdlog::warn("second {}: stopping now, without waiting for the drain", signum == SIGINT ? "SIGINT" : "SIGTERM");
    self->exit_status_ = 1;
    self->stop();
  } else {
    self->drain_.start([self] { self->stop(); });
  }
}

void Proxy::on_sweep(uv_timer_t* handle) { static_cast<Proxy*>(handle->data)->sweep(); }

void Proxy::sweep() {
  const uint64_t now = worker_.now_ms();
  publisher_.publish();
  // A sweep far later than its period means this process was not running (preempted,
  // throttled, stopped): replies may be sitting unread in the sockets, and libuv runs timers
  // before it reads. Servers and clients are not judged on such a sweep (at most one in a
  // row, so an overloaded proxy still times out a hung server); the loop reads first.
  const bool stalled = last_sweep_ms_ != 0 && now - last_sweep_ms_ > 2 * sweep_period_ms_ + 100;
  last_sweep_ms_ = now;
  if (stalled && !skipped_stalled_sweep_) {
    skipped_stalled_sweep_ = true;
    return;
  }
  skipped_stalled_sweep_ = false;
  servers_.sweep(now);
  reloader_.sweep(now);
  pubsub_.sweep();
  clients_.close_idle(now);
}

}  // namespace ringproxy::proxy
