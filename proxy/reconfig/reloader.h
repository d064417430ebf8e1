// Live reconfiguration: reads the config file again and swaps it in, or changes nothing and
// says why. SIGHUP, the file watch (config_watcher.h) and PROXY RELOAD call reload().
//
// A reload binds the new routing table to the servers (Servers::bind keeps what is
// unchanged, drains what was removed, resyncs what joined a replicated shard), and when the
// ring changed, starts or extends the migration that moves the keys whose shard changed
// (migration.h). What only a restart applies keeps its running value and is reported.
//
// Ownership: owned by the Proxy; owns the file watch and the migration.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "conf/config.h"
#include "proxy/backend/servers.h"
#include "proxy/clients/clients.h"
#include "proxy/datapath/data_path.h"
#include "proxy/net/worker.h"
#include "proxy/reconfig/config_watcher.h"
#include "proxy/reconfig/migration.h"

namespace ringproxy::proxy {

// What a reload did (PROXY RELOAD prints it; INFO and the metrics count it).
struct ReloadReport {
  bool ok = false;
  std::string message;  // the error (file:line:column) or a summary of what changed
};

class Reloader {
 public:
  // `config` is the proxy's running config, replaced in place by a reload; `config_path` is
  // what a reload reads again ("" : no reload); `digest` its text's digest.
  Reloader(Worker& worker, conf::Config& config, Servers& servers, DataPath& data_path, Clients& clients,
           std::string config_path, std::string digest);
  ~Reloader();
  Reloader(const Reloader&) = delete;
  Reloader& operator=(const Reloader&) = delete;

  // `watch`: whether the config file's directory is watched for changes.
  void start(bool watch);
  void stop();                           // shutdown: no more reloads; parked requests fail
  void sweep(uint64_t now_ms);           // the migration's deadlines and background pass

  ReloadReport reload(std::string_view trigger);

  const std::string& config_digest() const { return config_digest_; }
  const std::string& config_path() const { return config_path_; }
  uint64_t config_loaded_at_unix() const { return config_loaded_unix_; }
  uint64_t reloads_ok() const { return reloads_ok_; }
  uint64_t reloads_failed() const { return reloads_failed_; }
  const std::string& last_reload_error() const { return last_reload_error_; }
  const std::string& restart_needed() const { return restart_needed_; }
  Migration* migration() const { return migration_.get(); }
  // The running migration's progress, else the last one's (mode none: there was none).
  const MigrationProgress& migration_progress() const;

 private:
  void set_migration(std::unique_ptr<Migration> migration);

  Worker& worker_;
  conf::Config& config_;
  Servers& servers_;
  DataPath& data_path_;
  Clients& clients_;
  std::string config_path_;
  std::string config_digest_;
  uint64_t config_loaded_unix_ = 0;
  uint64_t reloads_ok_ = 0, reloads_failed_ = 0;
  std::string last_reload_error_;
  std::string restart_needed_;     // settings changed in the file that only a restart applies
  bool stopping_ = false;
  std::unique_ptr<ConfigWatcher> watcher_;
  std::unique_ptr<Migration> migration_;
  MigrationProgress last_migration_;
};

}  // namespace ringproxy::proxy
