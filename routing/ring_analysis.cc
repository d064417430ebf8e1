#include "routing/ring_analysis.h"

#include <cmath>
#include <cstdio>

#include "routing/routing_table.h"

namespace ringproxy::routing {
namespace {

conf::PoolConfig with_distribution(const conf::PoolConfig& pool, Distribution d) {
  conf::PoolConfig copy = pool;
  copy.distribution = d;
  return copy;
}

}  // namespace

std::vector<std::string> sample_keys(size_t n) {
  std::vector<std::string> keys;
  keys.reserve(n);
  for (size_t i = 0; i < n; ++i) keys.push_back("key:" + std::to_string(i));
  return keys;
}

std::vector<DistributionReport> analyze_ring(const conf::PoolConfig& pool, const conf::PoolConfig* against,
                                             const std::vector<std::string>& keys) {
  std::vector<DistributionReport> reports;
  for (Distribution d : all_distributions()) {
    auto table = RoutingTable::build(with_distribution(pool, d));
    DistributionReport report;
    report.distribution = d;
    uint64_t total_weight = 0;
    for (const ShardEntry& shard : table->shards()) total_weight += shard.weight;
    std::vector<uint64_t> counts(table->shards().size(), 0);
    std::vector<uint32_t> placement;
    placement.reserve(keys.size());
    for (const std::string& key : keys) {
      uint32_t shard = table->shard_of(key);
      ++counts[shard];
      placement.push_back(shard);
    }
    for (size_t i = 0; i < counts.size(); ++i) {
      const ShardEntry& shard = table->shards()[i];
      ShardShare share{shard.name, shard.weight, static_cast<double>(shard.weight) / static_cast<double>(total_weight),
                       keys.empty() ? 0 : static_cast<double>(counts[i]) / static_cast<double>(keys.size())};
      report.max_deviation = std::max(report.max_deviation, std::fabs(share.actual - share.expected) / share.expected);
      report.shares.push_back(std::move(share));
    }
    if (against != nullptr) {
      auto other = RoutingTable::build(with_distribution(*against, d));
      uint64_t moved = 0;
      for (size_t k = 0; k < keys.size(); ++k) {
        // A key moves when the shard *name* it lands on changes (names are what the data
        // lives under; indexes may shift when shards are added or removed).
        moved += table->shards()[placement[k]].name != other->shards()[other->shard_of(keys[k])].name;
      }
      report.moved = keys.empty() ? 0 : static_cast<double>(moved) / static_cast<double>(keys.size());
    }
    reports.push_back(std::move(report));
  }
  return reports;
}

std::string format_report(const std::vector<DistributionReport>& reports, size_t keys, bool compared) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof(line), "%zu keys\n", keys);
  out += line;
  for (const DistributionReport& r : reports) {
    std::snprintf(line, sizeof(line), "\n%s: max deviation from weights %.1f%%", std::string(distribution_name(r.distribution)).c_str(),
                  r.max_deviation * 100);
    out += line;
    if (compared) {
      std::snprintf(line, sizeof(line), ", keys that change shard %.1f%%", r.moved * 100);
      out += line;
    }
    out += "\n";
    for (const ShardShare& s : r.shares) {
      std::snprintf(line, sizeof(line), "  %-24s weight %-5u expected %6.2f%%  actual %6.2f%%\n", s.name.c_str(), s.weight,
                    s.expected * 100, s.actual * 100);
      out += line;
    }
  }
  return out;
}

}  // namespace ringproxy::routing
