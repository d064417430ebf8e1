#include "routing/resharding.h"

#include <gtest/gtest.h>

#include "routing/ring_analysis.h"

namespace ringproxy::routing {
namespace {

std::shared_ptr<const RoutingTable> ring(std::vector<std::string> names, uint16_t base_port = 7000) {
  conf::PoolConfig pool;
  pool.hash = HashFunction::murmur3;
  for (size_t i = 0; i < names.size(); ++i) {
    conf::ShardConfig shard;
    shard.name = names[i];
    shard.servers.push_back({"127.0.0.1", static_cast<uint16_t>(base_port + i)});
    pool.shards.push_back(shard);
  }
  return RoutingTable::build(pool);
}

TEST(Resharding, AKeyThatKeepsItsShardHasNoPreviousOwner) {
  auto before = ring({"a", "b", "c"});
  auto after = ring({"a", "b", "c", "d"});
  std::vector<std::shared_ptr<const RoutingTable>> earlier = {before};
  std::vector<PreviousOwner> owners;
  size_t moved = 0;
  for (const std::string& key : sample_keys(4000)) {
    previous_owners(key, *after, earlier, owners);
    const std::string& now = after->shards()[after->shard_of(key)].name;
    const std::string& then = before->shards()[before->shard_of(key)].name;
    if (now == then) {
      EXPECT_TRUE(owners.empty()) << key;
    } else {
      ++moved;
      ASSERT_EQ(owners.size(), 1u);
      EXPECT_EQ(owners[0].table->shards()[owners[0].shard].name, then);
      EXPECT_EQ(now, "d");  // adding a shard only moves keys to it
    }
  }
  EXPECT_NEAR(static_cast<double>(moved) / 4000, 0.25, 0.06);
}

TEST(Resharding, ShardsAreTheSameShardByNameEvenWhenTheirServersMove) {
  auto before = ring({"a", "b", "c"}, 7000);
  auto after = ring({"a", "b", "c"}, 8000);  // every address changed, no name did
  std::vector<std::shared_ptr<const RoutingTable>> earlier = {before};
  std::vector<PreviousOwner> owners;
  for (const std::string& key : sample_keys(1000)) {
    previous_owners(key, *after, earlier, owners);
    EXPECT_TRUE(owners.empty());
  }
  EXPECT_TRUE(same_ring(*before, *after));
  EXPECT_EQ(moved_fraction(*before, *after, sample_keys(1000)), 0.0);
}

TEST(Resharding, TwoRingChangesInARowGiveBothPreviousOwnersNewestFirst) {
  auto first = ring({"a", "b"});
  auto second = ring({"a", "b", "c"});
  auto third = ring({"a", "b", "c", "d"});
  std::vector<std::shared_ptr<const RoutingTable>> earlier = {second, first};  // newest first
  std::vector<PreviousOwner> owners;
  size_t with_two = 0;
  for (const std::string& key : sample_keys(4000)) {
    previous_owners(key, *third, earlier, owners);
    const std::string& owner = third->shards()[third->shard_of(key)].name;
    for (const PreviousOwner& o : owners) EXPECT_NE(o.table->shards()[o.shard].name, owner);
    if (owners.size() == 2) {
      ++with_two;
      EXPECT_EQ(owners[0].table, second.get());
      EXPECT_EQ(owners[1].table, first.get());
    }
  }
  EXPECT_GT(with_two, 0u);  // keys that went a -> c -> d (or b -> c -> d)
}

TEST(Resharding, SameRingComparesWhatDecidesAKeysShard) {
  auto base = ring({"a", "b", "c"});
  EXPECT_TRUE(same_ring(*base, *ring({"a", "b", "c"})));
  EXPECT_FALSE(same_ring(*base, *ring({"a", "b"})));
  EXPECT_FALSE(same_ring(*base, *ring({"a", "b", "x"})));
  conf::PoolConfig pool;
  pool.hash = HashFunction::md5;  // a changed hash moves keys
  for (const char* name : {"a", "b", "c"}) {
    conf::ShardConfig shard;
    shard.name = name;
    shard.servers.push_back({"127.0.0.1", 7000});
    pool.shards.push_back(shard);
  }
  auto md5 = RoutingTable::build(pool);
  EXPECT_FALSE(same_ring(*base, *md5));
  EXPECT_GT(moved_fraction(*base, *md5, sample_keys(2000)), 0.4);
  pool.hash = HashFunction::murmur3;
  pool.shards[0].weight = 3;  // a changed weight moves some keys
  auto weighted = RoutingTable::build(pool);
  EXPECT_FALSE(same_ring(*base, *weighted));
  const double moved = moved_fraction(*base, *weighted, sample_keys(4000));
  EXPECT_GT(moved, 0.1);
  EXPECT_LT(moved, 0.6);
}

}  // namespace
}  // namespace ringproxy::routing
