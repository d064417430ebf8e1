// A routing snapshot bound to the proxy's per-shard runtime state.
//
// A request holds the Topology it was planned with (one shared_ptr copy), so a reload can
// swap in a new one while requests in flight finish on theirs. A shard's runtime state is
// kept across reloads by shard name: the old and the new Topology share it, so a write in
// flight on the old snapshot is still counted where a repair or a resync cutover looks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "metrics/metrics.h"
#include "routing/routing_table.h"

namespace ringproxy::proxy {

class RepairJob;
class BackendServer;

struct RepairStats {
  uint64_t started = 0, finished = 0, failed = 0;
  uint64_t keys_scanned = 0, keys_fixed = 0;   // totals over every run
  uint64_t read_repairs = 0;                   // quorum reads whose copies differed
  uint64_t last_end_ms = 0;
  std::string last_error;
};

struct ShardRuntime {
  ShardRuntime(std::string name, metrics::ShardMetrics metrics, uint64_t created_ms)
      : name(std::move(name)), metrics(metrics) {
    repair_stats.last_end_ms = created_ms;  // the periodic repair counts from here
  }
  std::string name;
  uint32_t inflight_writes = 0;  // replicated write requests in flight (see DataPath::leave_flight)
  uint32_t held = 0;             // hold_writes() count: a resync cutover, a repair batch
  // Who led the last write: the server that applies it first (primary-replica: the primary,
  // or the replica standing in for it; SPOP: the first live server), or nullptr for a write
  // sent to every server at once (multi-primary). Compared, never dereferenced unless found
  // among the current servers; forgotten when its server is destroyed.
  BackendServer* leader = nullptr;
  bool leader_known = false;
  bool leader_change_pending = false;  // a write waits for the last leader's writes to finish
  uint64_t leader_changes = 0;
  uint64_t cutovers = 0;         // resyncs that completed (a write planned before one may need a copy)
  RepairJob* repair = nullptr;   // owned, self-deleting
  RepairStats repair_stats;
  metrics::ShardMetrics metrics;
};

struct Topology {
  std::shared_ptr<const routing::RoutingTable> table;
  std::vector<std::shared_ptr<ShardRuntime>> shards;  // indexed like table->shards()
};

}  // namespace ringproxy::proxy
