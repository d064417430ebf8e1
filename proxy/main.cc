// ringproxy: command line, config, and the event loop's life.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <memory>

#include "conf/loader.h"
#include "metrics/metrics.h"
#include "proxy/proxy.h"
#include "ringproxy_version.h"

namespace {

int run(const ringproxy::conf::Config& config) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  auto metrics = std::make_unique<ringproxy::metrics::Metrics>();
  if (config.metrics.listen) {
    std::string error;
    if (!metrics->listen(config.metrics.listen->to_string(), &error)) {
      spdlog::critical("{}", error);
      return 1;
    }
    spdlog::info("metrics on http://{}/metrics", config.metrics.listen->to_string());
  }
  int status = 0;
  {
    ringproxy::proxy::Proxy proxy(&loop, config, metrics.get());
    std::string error;
    if (!proxy.start(&error)) {
      spdlog::critical("{}", error);
      status = 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // close callbacks of what the proxy's destructor closed
  uv_loop_close(&loop);
  spdlog::info("ringproxy stopped");
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ringproxy: a sharding proxy for Redis-protocol servers"};
  std::string config_path;
  bool check_only = false;
  std::string log_level = "info";
  app.add_option("-c,--config", config_path, "TOML config file")->check(CLI::ExistingFile);
  app.add_flag("--check-config", check_only, "validate the config file and exit");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.set_version_flag("-v,--version", std::string("ringproxy ") + RINGPROXY_VERSION);
  CLI11_PARSE(app, argc, argv);

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
    size_t servers = 0;
    for (const auto& shard : loaded.config->pool.shards) servers += shard.servers.size();
    std::printf("%s: OK (%zu shards, %zu servers)\n", config_path.c_str(), loaded.config->pool.shards.size(), servers);
    return 0;
  }
  std::signal(SIGPIPE, SIG_IGN);
  return run(*loaded.config);
}
