// The immutable routing snapshot: shards, their servers and the ring. Built once per
// config (load or reload) and shared as std::shared_ptr<const RoutingTable>; each
// in-flight request keeps the snapshot it was planned with.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "conf/config.h"
#include "routing/hash.h"
#include "routing/ring.h"

namespace ringproxy::routing {

struct ServerEntry {
  conf::Address address;
  std::string name;  // "host:port", the server's identity across reloads
  uint32_t shard = 0;
};

struct ShardEntry {
  std::string name;
  uint32_t weight = 1;
  std::vector<uint32_t> servers;  // indexes into RoutingTable::servers(); [0] is the primary
  conf::ReplicationConfig replication;
  conf::BackendAuth auth;         // what the proxy logs in to its servers with
};

class RoutingTable {
 public:
  static std::shared_ptr<const RoutingTable> build(const conf::PoolConfig& pool);

  // The hot path: hash tag, hash, ring.
  uint32_t shard_of(std::string_view key) const { return ring_.locate(shard_hash(hash_, hash_tag_, key)); }
  // The same, out of line, for new callers off the hot path: one more caller of shard_of made
  // the compiler stop inlining it into plan() (+31 instructions per GET).
  uint32_t shard_of_cold(std::string_view key) const;

  const std::vector<ShardEntry>& shards() const { return shards_; }
  const std::vector<ServerEntry>& servers() const { return servers_; }
  const Ring& ring() const { return ring_; }
  HashFunction hash() const { return hash_; }
  std::string_view hash_tag() const { return hash_tag_; }

 private:
  HashFunction hash_ = HashFunction::fnv1a_64;
  std::string hash_tag_;
  Ring ring_;
  std::vector<ShardEntry> shards_;
  std::vector<ServerEntry> servers_;
};

}  // namespace ringproxy::routing
