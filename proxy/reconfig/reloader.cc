#include "proxy/reconfig/reloader.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <sstream>

#include "conf/loader.h"
#include "proxy/net/tls.h"
#include "routing/resharding.h"

namespace ringproxy::proxy {
namespace {

std::string describe(const std::optional<conf::Address>& address) {
  return address ? address->to_string() : std::string("off");
}

}  // namespace

Reloader::Reloader(Worker& worker, conf::Config& config, Servers& servers, DataPath& data_path, Clients& clients,
                   std::string config_path, std::string digest)
    : worker_(worker),
      config_(config),
      servers_(servers),
      data_path_(data_path),
      clients_(clients),
      config_path_(std::move(config_path)),
      config_digest_(std::move(digest)) {}

Reloader::~Reloader() { set_migration(nullptr); }  // first: it may hold parked requests

void Reloader::start(bool watch) {
  config_loaded_unix_ = static_cast<uint64_t>(std::time(nullptr));
  worker_.metrics()->set_config(config_digest_, static_cast<double>(config_loaded_unix_));
  if (!config_path_.empty() && watch) {
    watcher_ = std::make_unique<ConfigWatcher>(*this, worker_.loop(), config_path_);
    watcher_->start();
  }
}

void Reloader::stop() {
  stopping_ = true;
  if (watcher_) watcher_->stop();
  if (migration_) migration_->stop();  // after the clients: its parked requests are orphans now
}

void Reloader::sweep(uint64_t now_ms) {
  if (watcher_ && !stopping_) watcher_->check_password_files(config_, now_ms);
  if (!migration_) return;
  migration_->sweep(now_ms);
  if (migration_->finished()) {
    last_migration_ = migration_->progress();
    set_migration(nullptr);
  }
}

const MigrationProgress& Reloader::migration_progress() const {
  return migration_ ? migration_->progress() : last_migration_;
}

// The data path parks requests with the running migration only.
void Reloader::set_migration(std::unique_ptr<Migration> migration) {
  data_path_.set_key_moves(migration.get());
  migration_ = std::move(migration);
}

ReloadReport Reloader::reload(std::string_view trigger) {
  ReloadReport report;
  if (stopping_) {
    report.message = "ringproxy is shutting down";
    return report;
  }
  if (config_path_.empty()) {
    report.message = "ringproxy was started without a config file: nothing to reload";
    return report;
  }
  conf::LoadResult loaded = conf::load_config_file(config_path_);
  if (!loaded.config) {
    ++reloads_failed_;
    worker_.metrics()->count_reload(false);
    last_reload_error_ = loaded.error;
    spdlog::error("reload ({}) rejected, the running config stays: {}", trigger, loaded.error);
    report.message = "reload rejected, the running config stays: " + loaded.error;
    return report;
  }
  conf::Config next = std::move(*loaded.config);

  // What only a restart applies keeps its running value, and is reported.
  std::vector<std::string> restart;
  if (!(next.proxy.listen == config_.proxy.listen)) {
    restart.push_back("[proxy] listen (running on " + config_.proxy.listen.to_string() + ", the file says " +
                      next.proxy.listen.to_string() + ")");
    next.proxy.listen = config_.proxy.listen;
  }
  // A client's requests to a server share one connection (client id modulo the count), which
  // keeps a pipelining client's writes in order; a new count would split a pipeline.
  if (next.pool.backend_connections != config_.pool.backend_connections) {
    restart.push_back("[pool] backend_connections (running with " + std::to_string(config_.pool.backend_connections) +
                      ", the file says " + std::to_string(next.pool.backend_connections) + ")");
    next.pool.backend_connections = config_.pool.backend_connections;
  }
  if (next.metrics.listen != config_.metrics.listen) {
    restart.push_back("[metrics] listen (running on " + describe(config_.metrics.listen) + ", the file says " +
                      describe(next.metrics.listen) + ")");
    next.metrics.listen = config_.metrics.listen;
  }
  if (next.proxy.reuse_port != config_.proxy.reuse_port) {
    restart.push_back(std::string("[proxy] reuse_port (running ") + (config_.proxy.reuse_port ? "with" : "without") +
                      " it, the file says " + (next.proxy.reuse_port ? "true" : "false") + ")");
    next.proxy.reuse_port = config_.proxy.reuse_port;
  }
  if (next.proxy.plain_listener != config_.proxy.plain_listener) {
    restart.push_back(std::string("[proxy] listen (the plain listener is ") + (config_.proxy.plain_listener ? "on" : "off") +
                      ", the file turns it " + (next.proxy.plain_listener ? "on" : "off") + ")");
    next.proxy.plain_listener = config_.proxy.plain_listener;
  }
  // TLS: the listener's address is a restart's; its certificate, key, CAs and ciphers a
  // reload's (new sessions use them; open ones keep theirs). A context that cannot be built
  // rejects the reload.
  const std::optional<conf::TlsListenConfig>& tls_running = config_.proxy.tls;
  if (next.proxy.tls.has_value() != tls_running.has_value() ||
      (tls_running && !(next.proxy.tls->listen == tls_running->listen))) {
    restart.push_back("[proxy.tls] listen (running " + (tls_running ? "on " + tls_running->listen.to_string() : "without TLS") +
                      ", the file says " + (next.proxy.tls ? next.proxy.tls->listen.to_string() : "none") + ")");
    if (tls_running && next.proxy.tls) {
      next.proxy.tls->listen = tls_running->listen;
    } else {
      next.proxy.tls = tls_running;
    }
  }
  auto reject = [&](std::string why) {
    ++reloads_failed_;
    worker_.metrics()->count_reload(false);
    last_reload_error_ = std::move(why);
    spdlog::error("reload ({}) rejected, the running config stays: {}", trigger, last_reload_error_);
    report.message = "reload rejected, the running config stays: " + last_reload_error_;
    return report;
  };
  std::shared_ptr<TlsContext> tls_context;
  if (next.proxy.tls) {
    std::string error;
    tls_context = TlsContext::for_listener(*next.proxy.tls, &error);
    if (tls_context == nullptr) return reject("[proxy.tls]: " + error);
  }
  ServerTlsContexts server_tls;
  if (std::string error; !ServerTlsContexts::build(next.pool, &server_tls, &error)) return reject(error);
  // Protected mode against the listeners that keep running (the file's may differ): a reload
  // must not take the last password (or the client certificates) off a public port.
  const bool open = next.proxy.protected_mode && next.proxy.users.empty();
  if (open && next.proxy.tls && !next.proxy.tls->require_client_cert && !conf::is_loopback(next.proxy.tls->listen)) {
    return reject("protected mode: ringproxy keeps listening for TLS on " + next.proxy.tls->listen.to_string() +
                  " (a restart applies a new listen), which is not a loopback address: the new config needs a "
                  "password, users or require_client_cert = true, or protected_mode = false");
  }
  if (open && next.proxy.plain_listener && !conf::is_loopback(next.proxy.listen)) {
    return reject("protected mode: ringproxy keeps listening on " + next.proxy.listen.to_string() +
                  " (a restart applies a new listen), which is not a loopback address: the new config "
                  "needs a password or users, or protected_mode = false");
  }
  restart_needed_.clear();
  for (const std::string& item : restart) restart_needed_ += (restart_needed_.empty() ? "" : "; ") + item;

  const std::shared_ptr<const Topology> previous = servers_.topology();
  const size_t servers_before = servers_.servers().size();
  const size_t draining_before = servers_.draining();
  config_ = std::move(next);
  if (tls_context) {
    clients_.set_tls_context(tls_context);
    worker_.metrics()->set_certificate_expiry(
        "clients", {{config_.proxy.tls->cert_file, static_cast<double>(tls_context->certificate_expiry())}});
  }
  worker_.metrics()->set_certificate_expiry("servers", server_tls.expiries);
  servers_.set_tls(std::move(server_tls));  // connections opened from now on use it
  clients_.rebind_users();  // the sessions' users now live in the new config: before any reads them
  servers_.bind(routing::RoutingTable::build(config_.pool));
  const std::shared_ptr<const Topology>& current = servers_.topology();
  const bool ring_changed = !routing::same_ring(*previous->table, *current->table);

  std::string migration = "none";
  if (config_.pool.migration == conf::Migration::none) {
    if (migration_) migration_->abandon();
  } else if (ring_changed || migration_) {
    if (!migration_) set_migration(std::make_unique<Migration>(servers_, data_path_));
    migration_->on_reload(ring_changed ? previous->table : nullptr, previous, current->table, config_.pool);
    migration = std::string(conf::migration_name(config_.pool.migration));
  }

  config_digest_ = loaded.digest;
  config_loaded_unix_ = static_cast<uint64_t>(std::time(nullptr));
  ++reloads_ok_;
  last_reload_error_.clear();
  worker_.metrics()->count_reload(true);
  worker_.metrics()->set_config(config_digest_, static_cast<double>(config_loaded_unix_));
  worker_.metrics()->set_restart_needed(!restart_needed_.empty());

  const size_t removed = servers_.draining() - draining_before;
  const size_t kept = servers_before - removed;
  std::ostringstream summary;
  summary << "reloaded (" << trigger << "): digest " << config_digest_ << ", " << current->table->shards().size()
          << " shards, " << servers_.servers().size() << " servers (" << kept << " kept, "
          << servers_.servers().size() - kept
          << " added, " << removed << " removed and draining); ring " << (ring_changed ? "changed" : "unchanged")
          << ", migration " << migration;
  if (!restart_needed_.empty()) summary << "; needs a restart to apply: " << restart_needed_;
  report.ok = true;
  report.message = summary.str();
  spdlog::info("{}", report.message);
  if (!restart_needed_.empty()) spdlog::warn("config: needs a restart to apply: {}", restart_needed_);
  return report;
}

}  // namespace ringproxy::proxy
