#include "proxy/admin/info.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "proxy/backend/backend_server.h"
#include "ringproxy_version.h"

namespace ringproxy::proxy {
namespace {

// INFO values are one token: no CR/LF, and no ',' inside the a=b,c=d lists.
std::string sanitize(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '\r' || c == '\n' || c == ',') c = ' ';
  }
  return out;
}

bool wanted(std::string_view section, std::string_view name) {
  if (section.empty()) return true;
  for (std::string_view all : {"all", "everything", "default"}) {
    if (section.size() == all.size() && strncasecmp(section.data(), all.data(), all.size()) == 0) return true;
  }
  return section.size() == name.size() && strncasecmp(section.data(), name.data(), name.size()) == 0;
}

// Resident memory, from /proc/self/statm (its second field, in pages).
uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace

std::string info_text(const InfoSources& sources, std::string_view section) {
  std::string out;
  auto line = [&out](std::string_view key, const std::string& value) {
    out.append(key).append(":").append(value).append("\r\n");
  };
  const conf::Config& config = sources.worker.config();
  const ProxyStats& stats = sources.stats;
  const routing::RoutingTable& table = *sources.servers.table();

  if (wanted(section, "server")) {
    out += "# Server\r\n";
    line("ringproxy_version", RINGPROXY_VERSION);
    line("redis_version", std::string(routing::redis_version()));  // (the command set it speaks)
    line("redis_mode", "proxy");
    line("process_id", std::to_string(getpid()));
    line("tcp_port", std::to_string(config.proxy.plain_listener ? config.proxy.listen.port : 0));
    if (config.proxy.tls) line("tls_port", std::to_string(config.proxy.tls->listen.port));
    line("uptime_in_seconds", std::to_string((sources.worker.now_ms() - sources.started_at_ms) / 1000));
    out += "\r\n";
  }
  if (wanted(section, "memory")) {  // the proxy's own (each server's: INFO on the server)
    out += "# Memory\r\n";
    line("used_memory_rss", std::to_string(resident_bytes()));
    line("mem_allocator", "libc");
    out += "\r\n";
  }
  if (wanted(section, "cpu")) {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    auto seconds = [](const timeval& t) {
      char text[32];
      std::snprintf(text, sizeof(text), "%ld.%06ld", static_cast<long>(t.tv_sec), static_cast<long>(t.tv_usec));
      return std::string(text);
    };
    out += "# CPU\r\n";
    line("used_cpu_sys", seconds(usage.ru_stime));
    line("used_cpu_user", seconds(usage.ru_utime));
    out += "\r\n";
  }
  if (wanted(section, "clients")) {
    out += "# Clients\r\n";
    line("connected_clients", std::to_string(sources.clients.sessions().size()));
    line("maxclients", std::to_string(config.proxy.max_clients));
    line("blocked_clients", std::to_string(stats.blocked_on_servers + stats.blocked_in_proxy));
    line("blocked_on_servers", std::to_string(stats.blocked_on_servers));
    line("blocked_in_proxy", std::to_string(stats.blocked_in_proxy));
    line("pubsub_clients", std::to_string(stats.subscribers));
    out += "\r\n";
  }
  if (wanted(section, "persistence")) {
    out += "# Persistence\r\n";
    line("loading", "0");  // clients such as ioredis wait for this before sending commands
    out += "\r\n";
  }
  if (wanted(section, "stats")) {
    out += "# Stats\r\n";
    line("total_connections_received", std::to_string(stats.clients_accepted));
    line("rejected_connections", std::to_string(stats.clients_rejected));
    line("total_commands_processed", std::to_string(stats.requests));
    line("total_error_replies", std::to_string(stats.error_replies));
    line("total_protocol_errors", std::to_string(stats.protocol_errors));
    line("evalsha_as_eval", std::to_string(stats.evalsha_as_eval));
    for (size_t i = 0; i < stats.transactions.size(); ++i) {
      line(std::string("transactions_") + metrics::kTransactionOutcomes[i], std::to_string(stats.transactions[i]));
    }
    line("proxy_pops", std::to_string(stats.proxy_pops));
    line("proxy_pops_undone", std::to_string(stats.proxy_pops_undone));
    line("pubsub_messages_forwarded", std::to_string(stats.messages_forwarded));
    line("pubsub_subscribers_dropped", std::to_string(stats.subscribers_dropped));
    out += "\r\n";
  }
  if (wanted(section, "proxy")) {
    out += "# Proxy\r\n";
    line("hash", std::string(routing::hash_function_name(table.hash())));
    line("distribution", std::string(routing::distribution_name(table.ring().distribution())));
    line("hash_tag", table.hash_tag().empty() ? "none" : std::string(table.hash_tag()));
    line("ring_points", std::to_string(table.ring().point_count()));
    line("config_file", sources.reloader.config_path().empty() ? "none" : sanitize(sources.reloader.config_path()));
    line("config_digest", sources.reloader.config_digest().empty() ? "none" : sources.reloader.config_digest());
    line("config_loaded_at", std::to_string(sources.reloader.config_loaded_at_unix()));
    line("config_reloads_ok", std::to_string(sources.reloader.reloads_ok()));
    line("config_reloads_failed", std::to_string(sources.reloader.reloads_failed()));
    line("config_last_reload_error", sources.reloader.last_reload_error().empty() ? "none" : sanitize(sources.reloader.last_reload_error()));
    line("config_restart_needed", sources.reloader.restart_needed().empty() ? "no" : sanitize(sources.reloader.restart_needed()));
    line("servers_draining", std::to_string(sources.servers.draining()));
    const MigrationProgress& migration = sources.reloader.migration_progress();
    const bool moving = sources.reloader.migration() != nullptr && !sources.reloader.migration()->finished();
    line("migration", std::string(conf::migration_name(sources.worker.config().pool.migration)));
    line("migration_state", moving ? (migration.scanning ? "scanning" : "moving")
                                   : (migration.passes > 0 || migration.keys_moved > 0 ? "done" : "idle"));
    line("migration_previous_rings", std::to_string(migration.previous_rings));
    line("migration_keys_to_move", std::to_string(migration.keys_to_move));
    line("migration_keys_moved", std::to_string(migration.keys_moved));
    line("migration_keys_absent", std::to_string(migration.keys_absent));
    line("migration_keys_failed", std::to_string(migration.keys_failed));
    line("migration_passes", std::to_string(migration.passes));
    line("shards", std::to_string(table.shards().size()));
    line("servers", std::to_string(table.servers().size()));
    for (size_t i = 0; i < table.shards().size(); ++i) {
      const routing::ShardEntry& shard = table.shards()[i];
      bool available = false;
      for (uint32_t s : shard.servers) available = available || sources.servers.health().is_usable(s);
      std::string servers;
      for (uint32_t s : shard.servers) servers += (servers.empty() ? "" : " ") + table.servers()[s].name;
      const ShardRuntime& state = sources.servers.shard_state(static_cast<uint32_t>(i));
      const RepairStats& repair = state.repair_stats;
      line("shard" + std::to_string(i),
           "name=" + sanitize(shard.name) + ",weight=" + std::to_string(shard.weight) + ",servers=" + servers +
               ",state=" + (available ? "up" : "down") + ",strategy=" +
               std::string(conf::strategy_name(shard.replication.strategy)) + ",repair=" +
               (state.repair != nullptr ? "running" : "idle") +
               ",repairs_started=" + std::to_string(repair.started) + ",repairs_finished=" +
               std::to_string(repair.finished) + ",repairs_failed=" + std::to_string(repair.failed) +
               ",repair_keys_fixed=" + std::to_string(repair.keys_fixed) +
               ",read_repairs=" + std::to_string(repair.read_repairs) +
               ",leader_changes=" + std::to_string(state.leader_changes));
    }
    for (size_t i = 0; i < sources.servers.servers().size(); ++i) {
      const BackendServer& server = *sources.servers.servers()[i];
      line("server" + std::to_string(i),
           "addr=" + server.name() +
               // A host name: where it resolved to last ("none" before the first answer).
               (server.address().is_name()
                    ? ",resolved=" + (server.endpoint().host.empty() ? std::string("none") : server.endpoint().to_string())
                    : std::string()) +
               ",shard=" + sanitize(server.shard_name()) + ",state=" +
               std::string(server_state_name(server.state())) + ",requests=" + std::to_string(server.requests()) +
               ",failures=" + std::to_string(server.failures()) + ",pending=" + std::to_string(server.pending()) +
               ",replay_queue=" + std::to_string(server.replay_queue_length()) + ",replay_dropped=" +
               std::to_string(server.replay_dropped()) + ",resyncs=" + std::to_string(server.resyncs()) +
               ",replays=" + std::to_string(server.replays()) + ",fences=" + std::to_string(server.fences_run()) +
               ",last_error=" + (server.last_error().empty() ? "none" : sanitize(server.last_error())));
    }
    out += "\r\n";
  }
  if (out.size() >= 2) out.resize(out.size() - 2);  // no blank line after the last section
  return out;
}

}  // namespace ringproxy::proxy
