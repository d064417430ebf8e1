// `ringproxy ring`: how a config spreads keys over its shards, and how many keys change
// shard against another config, for every distribution (ketama, modula, jump). Pure.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "conf/config.h"
#include "routing/ring.h"

namespace ringproxy::routing {

struct ShardShare {
  std::string name;
  uint32_t weight = 1;
  double expected = 0;  // weight / total weight
  double actual = 0;    // fraction of the keys
};

struct DistributionReport {
  Distribution distribution = Distribution::ketama;
  std::vector<ShardShare> shares;
  double max_deviation = 0;  // largest |actual - expected| / expected
  double moved = -1;         // against another config: fraction of keys that change shard (-1: none)
};

// `pool`'s hash and hash tag are used; its distribution is replaced by each of the three.
// `against`: another config to compare with (its own hash and hash tag), or null.
std::vector<DistributionReport> analyze_ring(const conf::PoolConfig& pool, const conf::PoolConfig* against,
                                             const std::vector<std::string>& keys);

// "key:0" ... "key:<n-1>": a deterministic sample.
std::vector<std::string> sample_keys(size_t n);

std::string format_report(const std::vector<DistributionReport>& reports, size_t keys, bool compared);

}  // namespace ringproxy::routing
