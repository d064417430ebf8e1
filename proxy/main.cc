// ringproxy: command line, config, and the event loop's life.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>
#include <uv.h>

#include <csignal>
#include <fstream>
#include <cstdio>
#include <memory>

#include "conf/loader.h"
#include "conf/twemproxy_import.h"
#include "routing/ring_analysis.h"
#include "metrics/metrics.h"
#include "proxy/net/tls.h"
#include "proxy/proxy.h"
#include "ringproxy_version.h"

namespace {

int run(const ringproxy::conf::Config& config, const std::string& path, const std::string& digest, bool watch) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  auto metrics = std::make_unique<ringproxy::metrics::Metrics>();
  int status = 0;
  {
    ringproxy::proxy::Proxy proxy(&loop, config, metrics.get(), path, digest);
    proxy.watch_config(watch);
    std::string error;
    if (!proxy.start(&error)) {
      spdlog::critical("{}", error);
      status = 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (status == 0) status = proxy.exit_status();
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // close callbacks of what the proxy's destructor closed
  uv_loop_close(&loop);
  spdlog::info("ringproxy stopped");
  return status;
}

// ringproxy ring: the key spread of a config, and the keys that move against another.
int ring_analysis(const std::string& config_path, const std::string& against_path, const std::string& keys_path,
                  size_t sample) {
  ringproxy::conf::LoadResult config = ringproxy::conf::load_config_file(config_path);
  if (!config.config) {
    std::fprintf(stderr, "ringproxy: %s\n", config.error.c_str());
    return 1;
  }
  std::optional<ringproxy::conf::Config> against;
  if (!against_path.empty()) {
    ringproxy::conf::LoadResult loaded = ringproxy::conf::load_config_file(against_path);
    if (!loaded.config) {
      std::fprintf(stderr, "ringproxy: %s\n", loaded.error.c_str());
      return 1;
    }
    against = std::move(loaded.config);
  }
  std::vector<std::string> keys;
  if (!keys_path.empty()) {
    std::ifstream in(keys_path);
    if (!in) {
      std::fprintf(stderr, "ringproxy: cannot read %s\n", keys_path.c_str());
      return 1;
    }
    for (std::string line; std::getline(in, line);) keys.push_back(line);
  } else {
    keys = ringproxy::routing::sample_keys(sample);
  }
  auto reports = ringproxy::routing::analyze_ring(config.config->pool, against ? &against->pool : nullptr, keys);
  std::fputs(ringproxy::routing::format_report(reports, keys.size(), against.has_value()).c_str(), stdout);
  return 0;
}

// ringproxy import-twemproxy: the TOML on stdout, notes and errors on stderr.
int import_twemproxy(const std::string& path, const std::string& pool) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "ringproxy: cannot read %s\n", path.c_str());
    return 1;
  }
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ringproxy::conf::TwemproxyImport result =
      ringproxy::conf::import_twemproxy(text, pool.empty() ? std::nullopt : std::optional<std::string>(pool));
  if (!result.error.empty()) {
    std::fprintf(stderr, "ringproxy: %s: %s\n", path.c_str(), result.error.c_str());
    return 1;
  }
  for (const std::string& note : result.notes) std::fprintf(stderr, "note: %s\n", note.c_str());
  std::fputs(result.toml.c_str(), stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ringproxy: a sharding proxy for Redis-protocol servers"};
  std::string config_path;
  bool check_only = false;
  bool no_watch = false;
  std::string log_level = "info";
  app.add_option("-c,--config", config_path, "TOML config file")->check(CLI::ExistingFile);
  app.add_flag("--check-config", check_only, "validate the config file and exit");
  app.add_flag("--no-watch", no_watch, "do not reload when the config file changes (SIGHUP and PROXY RELOAD still do)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.set_version_flag("-v,--version", std::string("ringproxy ") + RINGPROXY_VERSION);

  CLI::App* ring = app.add_subcommand("ring", "how a config spreads keys over its shards (ketama, modula, jump)");
  std::string ring_config, ring_against, ring_keys;
  size_t ring_sample = 100000;
  ring->add_option("-c,--config", ring_config, "TOML config file")->required()->check(CLI::ExistingFile);
  ring->add_option("--against", ring_against, "another config: also report the keys that change shard")
      ->check(CLI::ExistingFile);
  ring->add_option("--keys", ring_keys, "a file of keys, one per line")->check(CLI::ExistingFile);
  ring->add_option("--sample", ring_sample, "without --keys: this many keys key:0, key:1, ...")
      ->check(CLI::Range(size_t{1}, size_t{100000000}));
  CLI::App* import = app.add_subcommand("import-twemproxy",
                                        "print a nutcracker.yml pool as ringproxy's TOML (keys stay on their servers)");
  std::string import_path, import_pool;
  import->add_option("file", import_path, "twemproxy's YAML config")->required()->check(CLI::ExistingFile);
  import->add_option("--pool", import_pool, "which pool of the file (needed when it has several)");
  CLI11_PARSE(app, argc, argv);
  if (*ring) return ring_analysis(ring_config, ring_against, ring_keys, ring_sample);
  if (*import) return import_twemproxy(import_path, import_pool);

  if (config_path.empty()) {
    std::fprintf(stderr, "ringproxy: --config FILE is required (see --help)\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::from_str(log_level));
  ringproxy::conf::LoadResult loaded = ringproxy::conf::load_config_file(config_path);
  if (!loaded.config) {
    std::fprintf(stderr, "ringproxy: %s\n", loaded.error.c_str());
    return 1;
  }
  if (check_only) {
    // The certificates and keys as the proxy would load them (a key that does not match its
    // certificate passes the loader, which only checks the files are readable).
    std::string error;
    ringproxy::proxy::ServerTlsContexts server_tls;
    if (!ringproxy::proxy::ServerTlsContexts::build(loaded.config->pool, &server_tls, &error)) {
      std::fprintf(stderr, "ringproxy: %s: %s\n", config_path.c_str(), error.c_str());
      return 1;
    }
    if (loaded.config->proxy.tls && !ringproxy::proxy::TlsContext::for_listener(*loaded.config->proxy.tls, &error)) {
      std::fprintf(stderr, "ringproxy: %s: [proxy.tls]: %s\n", config_path.c_str(), error.c_str());
      return 1;
    }
    size_t servers = 0;
    for (const auto& shard : loaded.config->pool.shards) servers += shard.servers.size();
    std::printf("%s: OK (%zu shards, %zu servers)\n", config_path.c_str(), loaded.config->pool.shards.size(), servers);
    return 0;
  }
  std::signal(SIGPIPE, SIG_IGN);
  return run(*loaded.config, config_path, loaded.digest, !no_watch);
}
