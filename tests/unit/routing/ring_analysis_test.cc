#include "routing/ring_analysis.h"

#include <gtest/gtest.h>

namespace ringproxy::routing {
namespace {

conf::PoolConfig shards(int n) {
  conf::PoolConfig pool;
  for (int i = 1; i <= n; ++i) {
    conf::ShardConfig shard;
    shard.name = "shard" + std::to_string(i);
    shard.servers.push_back({"127.0.0.1", static_cast<uint16_t>(7000 + i)});
    pool.shards.push_back(shard);
  }
  return pool;
}

const DistributionReport& of(const std::vector<DistributionReport>& reports, Distribution d) {
  for (const auto& r : reports) {
    if (r.distribution == d) return r;
  }
  throw std::logic_error("missing distribution");
}

// The seed's comparison, in numbers: adding one shard to N moves about 1/(N+1) of the keys
// with consistent hashing, and most of them with hash mod N.
TEST(RingAnalysis, AddingOneShardMovesAboutOneInNPlusOne) {
  const std::vector<std::string> keys = sample_keys(50000);
  for (int n : {3, 4, 9}) {
    conf::PoolConfig before = shards(n), after = shards(n + 1);
    before.hash = after.hash = HashFunction::murmur3;  // FNV-1a is uneven modulo small N
    auto reports = analyze_ring(before, &after, keys);
    const double expected = 1.0 / (n + 1);
    EXPECT_NEAR(of(reports, Distribution::ketama).moved, expected, 0.06) << n;
    EXPECT_NEAR(of(reports, Distribution::jump).moved, expected, 0.02) << n;
    EXPECT_GT(of(reports, Distribution::modula).moved, 0.5) << n;
  }
}

TEST(RingAnalysis, RemovingAShardMovesOnlyItsKeys) {
  const std::vector<std::string> keys = sample_keys(30000);
  const conf::PoolConfig four = shards(4), three = shards(3);
  auto reports = analyze_ring(four, &three, keys);
  const DistributionReport& ketama = of(reports, Distribution::ketama);
  EXPECT_NEAR(ketama.moved, ketama.shares[3].actual, 1e-9);  // exactly shard4's keys
}

TEST(RingAnalysis, SharesFollowWeights) {
  conf::PoolConfig pool = shards(3);
  pool.shards[2].weight = 2;
  auto reports = analyze_ring(pool, nullptr, sample_keys(100000));
  const DistributionReport& ketama = of(reports, Distribution::ketama);
  EXPECT_DOUBLE_EQ(ketama.shares[2].expected, 0.5);
  EXPECT_NEAR(ketama.shares[2].actual, 0.5, 0.08);
  EXPECT_LT(ketama.max_deviation, 0.25);
  EXPECT_EQ(ketama.moved, -1);
  std::string text = format_report(reports, 100000, false);
  EXPECT_NE(text.find("ketama: max deviation"), std::string::npos);
  EXPECT_NE(text.find("shard3"), std::string::npos);
}

}  // namespace
}  // namespace ringproxy::routing
