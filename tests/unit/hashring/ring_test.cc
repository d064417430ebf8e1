// Distributions. The golden tables come from tests/unit/hashring/ketama_reference.py, an
// independent Python re-implementation of twemproxy's ketama, modula and of jump hash;
// re-run it to regenerate them.
#include "routing/ring.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "routing/hash.h"

namespace ringproxy::routing {
namespace {

using namespace std::string_view_literals;

std::vector<RingMember> equal_members(size_t count, std::string_view prefix = "shard") {
  std::vector<RingMember> members;
  for (size_t i = 1; i <= count; ++i) members.push_back({std::string(prefix) + std::to_string(i), 1});
  return members;
}

std::vector<size_t> points_per_member(const Ring& ring) {
  std::vector<size_t> counts(ring.member_count());
  for (const Ring::Point& point : ring.points()) ++counts.at(point.member);
  return counts;
}

std::string test_key(size_t i) { return "key:" + std::to_string(i); }

// Member index for each of `count` keys "key:<i>", hashed with fnv1a_64 (twemproxy's
// default) unless told otherwise.
std::vector<uint32_t> assign_keys(const Ring& ring, size_t count,
                                  HashFunction fn = HashFunction::fnv1a_64) {
  std::vector<uint32_t> owners(count);
  for (size_t i = 0; i < count; ++i) owners[i] = ring.locate(hash_key(fn, test_key(i)));
  return owners;
}

// --- Names and preconditions -------------------------------------------------------------

TEST(DistributionNames, RoundTripAndRejectUnknown) {
  ASSERT_EQ(all_distributions().size(), 3u);
  for (Distribution d : all_distributions()) {
    EXPECT_EQ(parse_distribution(distribution_name(d)), d);
  }
  EXPECT_EQ(parse_distribution("ketama"), Distribution::ketama);
  EXPECT_EQ(parse_distribution("modula"), Distribution::modula);
  EXPECT_EQ(parse_distribution("jump"), Distribution::jump);
  for (std::string_view name : {"", "random", "Ketama", "ketama ", "consistent"}) {
    EXPECT_EQ(parse_distribution(name), std::nullopt) << "'" << name << "'";
  }
}

TEST(RingBuild, RejectsBrokenPreconditions) {
  for (Distribution d : all_distributions()) {
    EXPECT_THROW(Ring::build(d, {}), std::invalid_argument);
    const std::vector<RingMember> zero_weight = {{"a", 1}, {"b", 0}};
    EXPECT_THROW(Ring::build(d, zero_weight), std::invalid_argument);
    const std::vector<RingMember> huge = {{"a", 0x7fffffff}, {"b", 1}};
    EXPECT_THROW(Ring::build(d, huge), std::invalid_argument);
  }
}

TEST(RingBuild, ReportsWhatItWasBuiltFrom) {
  const auto members = equal_members(3);
  const Ring ring = Ring::build(Distribution::jump, members);
  EXPECT_EQ(ring.distribution(), Distribution::jump);
  EXPECT_EQ(ring.member_count(), 3u);
}

// --- Ketama: the continuum ---------------------------------------------------------------

TEST(Ketama, EqualWeightsGive160PointsPerMember) {
  for (size_t n = 1; n <= 24; ++n) {
    const Ring ring = Ring::build(Distribution::ketama, equal_members(n));
    EXPECT_EQ(ring.point_count(), 160 * n) << n << " members";
    for (size_t count : points_per_member(ring)) EXPECT_EQ(count, 160u) << n << " members";
  }
}

// twemproxy computes the count in float: for 25 equal members share * 40 * 25 rounds to
// just under 40, so each gets 156 points. Matching this is what keeps keys in place.
TEST(Ketama, PointCountsFollowTwemproxysFloatRounding) {
  const Ring ring25 = Ring::build(Distribution::ketama, equal_members(25));
  for (size_t count : points_per_member(ring25)) EXPECT_EQ(count, 156u);

  const std::vector<RingMember> one_to_ten = {{"a", 1}, {"b", 10}};
  EXPECT_EQ(points_per_member(Ring::build(Distribution::ketama, one_to_ten)),
            (std::vector<size_t>{28, 288}));
}

TEST(Ketama, WeightsScalePoints) {
  const std::vector<RingMember> members = {{"alpha", 1}, {"beta", 2}, {"gamma", 3}, {"delta", 10}};
  const Ring ring = Ring::build(Distribution::ketama, members);
  EXPECT_EQ(points_per_member(ring), (std::vector<size_t>{40, 80, 120, 400}));
  EXPECT_EQ(ring.point_count(), 640u);
}

// As in twemproxy, a member whose share rounds below one digest's 4 points gets none.
TEST(Ketama, TinyShareGetsNoPointsAndNoKeys) {
  const std::vector<RingMember> members = {{"big", 100}, {"small", 1}};
  const Ring ring = Ring::build(Distribution::ketama, members);
  EXPECT_EQ(points_per_member(ring), (std::vector<size_t>{316, 0}));
  for (uint32_t owner : assign_keys(ring, 10000)) ASSERT_EQ(owner, 0u);
}

TEST(Ketama, ContinuumIsSorted) {
  const Ring ring = Ring::build(Distribution::ketama, equal_members(10));
  const auto points = ring.points();
  EXPECT_TRUE(std::is_sorted(points.begin(), points.end(),
                             [](const auto& a, const auto& b) { return a.value < b.value; }));
}

// Points are the four little-endian words of MD5("<name>-<i>"), i = 0 .. points/4 - 1.
TEST(Ketama, PointsComeFromMd5OfNameDashIndex) {
  const std::vector<RingMember> members = {{"cache-a", 1}, {"cache-b", 2}};
  const Ring ring = Ring::build(Distribution::ketama, members);
  std::multimap<uint32_t, uint32_t> expected;  // value -> member
  for (uint32_t m = 0; m < members.size(); ++m) {
    const size_t digests = points_per_member(ring)[m] / 4;
    for (size_t i = 0; i < digests; ++i) {
      unsigned char digest[16];
      md5_digest(members[m].name + "-" + std::to_string(i), digest);
      for (int k = 0; k < 4; ++k) {
        const unsigned char* word = digest + 4 * k;
        expected.emplace(uint32_t{word[0]} | uint32_t{word[1]} << 8 | uint32_t{word[2]} << 16 |
                             uint32_t{word[3]} << 24,
                         m);
      }
    }
  }
  std::multimap<uint32_t, uint32_t> actual;
  for (const Ring::Point& point : ring.points()) actual.emplace(point.value, point.member);
  EXPECT_EQ(actual, expected);
}

TEST(Ketama, GoldenContinuumEnds) {
  const Ring ring = Ring::build(Distribution::ketama, equal_members(3));
  ASSERT_EQ(ring.point_count(), 480u);
  EXPECT_EQ(ring.points().front().value, 2994181u);
  EXPECT_EQ(ring.points().front().member, 1u);
  EXPECT_EQ(ring.points().back().value, 4288981721u);
  EXPECT_EQ(ring.points().back().member, 0u);

  const std::vector<RingMember> weighted = {{"alpha", 1}, {"beta", 2}, {"gamma", 3}, {"delta", 10}};
  const Ring weighted_ring = Ring::build(Distribution::ketama, weighted);
  const auto points = weighted_ring.points();
  EXPECT_EQ(points[0].value, 3258377u);
  EXPECT_EQ(points[0].member, 3u);
  EXPECT_EQ(points[1].value, 35082634u);
  EXPECT_EQ(points[1].member, 3u);
  EXPECT_EQ(points[2].value, 37992617u);
  EXPECT_EQ(points[2].member, 2u);
  EXPECT_EQ(points.back().value, 4290928610u);
  EXPECT_EQ(points.back().member, 2u);
}

// --- Ketama: locate ----------------------------------------------------------------------

TEST(Ketama, LocatePicksTheFirstPointAtOrAboveTheHash) {
  const Ring ring = Ring::build(Distribution::ketama, equal_members(4));
  const auto points = ring.points();
  EXPECT_EQ(ring.locate(0), points[0].member);
  for (size_t i = 0; i + 1 < points.size(); ++i) {
    if (points[i].value == points[i + 1].value) continue;
    ASSERT_EQ(ring.locate(points[i].value), points[i].member);
    ASSERT_EQ(ring.locate(points[i].value + 1), points[i + 1].member);
  }
}

TEST(Ketama, LocateWrapsPastTheLastPoint) {
  const Ring ring = Ring::build(Distribution::ketama, equal_members(4));
  const Ring::Point last = ring.points().back();
  ASSERT_LT(last.value, 0xffffffffu);
  EXPECT_EQ(ring.locate(last.value), last.member);
  EXPECT_EQ(ring.locate(last.value + 1), ring.points().front().member);
  EXPECT_EQ(ring.locate(0xffffffffu), ring.points().front().member);
}

struct GoldenKey {
  std::string_view key;
  uint32_t hash;
  uint32_t member;
};

// Members "shard1".."shard3", weight 1, fnv1a_64: what twemproxy maps each key to
// (ketama_reference.py's output, which crosscheck_nutcracker.py matched against nutcracker).
constexpr GoldenKey kKetamaFnv1a64Golden[] = {
    {"foo"sv, 0xfed9d577, 0},
    {"bar"sv, 0x1339461a, 2},
    {"baz"sv, 0x13393882, 2},
    {"key:1"sv, 0x962f5ac9, 1},
    {"key:2"sv, 0x962f55b0, 1},
    {"key:3"sv, 0x962f5763, 1},
    {"user:1000"sv, 0xae7b4289, 1},
    {"user:1001"sv, 0xae7b40d6, 1},
    {"session:abc"sv, 0x7b271d79, 0},
    {"a"sv, 0x8601ec8c, 1},
    {"b"sv, 0x8601f1a5, 1},
    {"c"sv, 0x8601eff2, 1},
    {"hello"sv, 0x80aabd0b, 1},
    {"world"sv, 0x730c8af3, 0},
    {"counter"sv, 0x16517c63, 1},
    {"queue:jobs"sv, 0x5a0afb6e, 0},
    {"\xc3\xa9t\xc3\xa9"sv, 0xea769c57, 1},
    {"\xff\xfe"sv, 0xb4ee4fb0, 0},
    {"{tag}x"sv, 0x148381cf, 2},
    {"0"sv, 0x86019caf, 1},
};

TEST(Ketama, GoldenMappingMatchesTwemproxyReference) {
  const Ring ring = Ring::build(Distribution::ketama, equal_members(3));
  for (const GoldenKey& golden : kKetamaFnv1a64Golden) {
    const uint32_t hash = hash_key(HashFunction::fnv1a_64, golden.key);
    EXPECT_EQ(hash, golden.hash) << golden.key;
    EXPECT_EQ(ring.locate(hash), golden.member) << golden.key;
  }
}

// twemproxy routes the empty key by hash 0, i.e. to the first point's member, where hashing
// "" would pick another member (checked against nutcracker 0.5.0).
TEST(Ketama, EmptyKeyGoesWhereTwemproxySendsIt) {
  const Ring ring = Ring::build(Distribution::ketama, equal_members(3));
  EXPECT_EQ(ring.locate(shard_hash(HashFunction::fnv1a_64, "", "")), 1u);
  EXPECT_EQ(ring.locate(hash_key(HashFunction::fnv1a_64, "")), 0u);
}

// Weighted members, md5 key hash.
TEST(Ketama, GoldenWeightedMappingMatchesTwemproxyReference) {
  const std::vector<RingMember> members = {{"alpha", 1}, {"beta", 2}, {"gamma", 3}, {"delta", 10}};
  const Ring ring = Ring::build(Distribution::ketama, members);
  const std::pair<std::string_view, uint32_t> golden[] = {
      {"foo", 3},   {"bar", 3},       {"baz", 3},       {"key:1", 0},       {"key:2", 3},
      {"key:3", 3}, {"user:1000", 3}, {"user:1001", 0}, {"session:abc", 0}, {"a", 3},
  };
  for (const auto& [key, member] : golden) {
    EXPECT_EQ(ring.locate(hash_key(HashFunction::md5, key)), member) << key;
  }
}

// The ring is built from names: listing the members in another order changes indices,
// never which name a key maps to.
TEST(Ketama, MappingDependsOnNamesNotOrder) {
  const std::vector<RingMember> forward = {{"a", 1}, {"b", 2}, {"c", 1}, {"d", 3}};
  std::vector<RingMember> backward(forward.rbegin(), forward.rend());
  const Ring ring_forward = Ring::build(Distribution::ketama, forward);
  const Ring ring_backward = Ring::build(Distribution::ketama, backward);
  const auto owners_forward = assign_keys(ring_forward, 20000);
  const auto owners_backward = assign_keys(ring_backward, 20000);
  for (size_t i = 0; i < owners_forward.size(); ++i) {
    ASSERT_EQ(forward[owners_forward[i]].name, backward[owners_backward[i]].name) << i;
  }
}

// --- Modula and jump ----------------------------------------------------------------------

TEST(ModulaAndJump, OneSlotPerUnitOfWeightInMemberOrder) {
  const std::vector<RingMember> members = {{"a", 1}, {"b", 2}, {"c", 3}};
  for (Distribution d : {Distribution::modula, Distribution::jump}) {
    const Ring ring = Ring::build(d, members);
    ASSERT_EQ(ring.point_count(), 6u);
    const std::array<uint32_t, 6> expected_members = {0, 1, 1, 2, 2, 2};
    for (size_t slot = 0; slot < 6; ++slot) {
      EXPECT_EQ(ring.points()[slot].member, expected_members[slot]);
      EXPECT_EQ(ring.points()[slot].value, slot);
    }
  }
}

TEST(ModulaAndJump, GoldenMappingMatchesReference) {
  struct Golden {
    uint32_t hash, modula_member, jump_member;
  };
  constexpr Golden kGolden[] = {
      {0x00000000, 0, 0}, {0x00000001, 1, 0}, {0x00000005, 2, 2},
      {0x00000006, 0, 2}, {0x00000007, 1, 0}, {0xffffffff, 2, 2},
      {0x12345678, 0, 2}, {0x9e3779b9, 2, 1}, {0x000f4243, 1, 2},
  };
  const std::vector<RingMember> members = {{"a", 1}, {"b", 2}, {"c", 3}};
  const Ring modula = Ring::build(Distribution::modula, members);
  const Ring jump = Ring::build(Distribution::jump, members);
  for (const Golden& golden : kGolden) {
    EXPECT_EQ(modula.locate(golden.hash), golden.modula_member) << golden.hash;
    EXPECT_EQ(jump.locate(golden.hash), golden.jump_member) << golden.hash;
  }
}

TEST(Jump, GoldenBuckets) {
  struct Golden {
    uint32_t hash;
    size_t buckets;
    uint32_t bucket;
  };
  constexpr Golden kGolden[] = {{0, 1, 0}, {1, 10, 6}, {0xdeadbeef, 100, 87}, {0xffffffff, 1000, 875}};
  for (const Golden& golden : kGolden) {
    const Ring ring = Ring::build(Distribution::jump, equal_members(golden.buckets, "b"));
    EXPECT_EQ(ring.locate(golden.hash), golden.bucket) << golden.hash << " " << golden.buckets;
  }
}

TEST(Modula, IsHashModTotalWeight) {
  const Ring ring = Ring::build(Distribution::modula, equal_members(7));
  for (uint32_t hash : {0u, 6u, 7u, 13u, 0xffffffffu, 0x80000000u}) {
    EXPECT_EQ(ring.locate(hash), hash % 7) << hash;
  }
}

// --- Balance, determinism, movement -------------------------------------------------------

constexpr size_t kManyKeys = 100000;

// Modula uses the hash's low-order residues, where FNV-1a is weak on sequential keys
// ("key:0".."key:99999" mod 3 splits 44/32/25%, in twemproxy too); measure the
// distribution with a hash that mixes well there.
HashFunction balance_hash(Distribution d) {
  return d == Distribution::modula ? HashFunction::murmur3 : HashFunction::fnv1a_64;
}

std::vector<size_t> keys_per_member(const Ring& ring, size_t keys) {
  std::vector<size_t> counts(ring.member_count());
  for (uint32_t owner : assign_keys(ring, keys, balance_hash(ring.distribution()))) {
    ++counts.at(owner);
  }
  return counts;
}

TEST(Balance, KeysSpreadWithinToleranceOfFairShare) {
  for (Distribution d : all_distributions()) {
    // Ketama's 160 random points per member leave it visibly uneven; the others are not.
    const double tolerance = d == Distribution::ketama ? 0.15 : 0.05;
    for (size_t n : {3u, 5u, 10u}) {
      const Ring ring = Ring::build(d, equal_members(n));
      const double fair = static_cast<double>(kManyKeys) / static_cast<double>(n);
      for (size_t count : keys_per_member(ring, kManyKeys)) {
        EXPECT_NEAR(static_cast<double>(count), fair, fair * tolerance)
            << distribution_name(d) << " over " << n << " members";
      }
    }
  }
}

TEST(Balance, WeightsScaleKeyShares) {
  const std::vector<RingMember> members = {{"light", 1}, {"heavy", 3}};
  for (Distribution d : all_distributions()) {
    const auto counts = keys_per_member(Ring::build(d, members), kManyKeys);
    const double heavy_share = static_cast<double>(counts[1]) / kManyKeys;
    EXPECT_NEAR(heavy_share, 0.75, 0.05) << distribution_name(d);
  }
}

TEST(Determinism, SameMembersSameRing) {
  const std::vector<RingMember> members = {{"a", 1}, {"b", 2}, {"c", 5}};
  for (Distribution d : all_distributions()) {
    const Ring first = Ring::build(d, members);
    const Ring second = Ring::build(d, members);
    ASSERT_EQ(first.point_count(), second.point_count());
    for (size_t i = 0; i < first.point_count(); ++i) {
      ASSERT_EQ(first.points()[i].value, second.points()[i].value);
      ASSERT_EQ(first.points()[i].member, second.points()[i].member);
    }
    EXPECT_EQ(assign_keys(first, 5000), assign_keys(second, 5000));
  }
}

struct Movement {
  double moved_fraction;
  bool only_to_new_member;
};

// Adds member n+1 to n equal members and compares where kManyKeys keys go.
Movement movement_on_adding_one(Distribution d, size_t n) {
  const auto before = assign_keys(Ring::build(d, equal_members(n)), kManyKeys);
  const auto after = assign_keys(Ring::build(d, equal_members(n + 1)), kManyKeys);
  size_t moved = 0;
  bool only_to_new_member = true;
  for (size_t i = 0; i < kManyKeys; ++i) {
    if (before[i] == after[i]) continue;
    ++moved;
    only_to_new_member = only_to_new_member && after[i] == n;
  }
  return {static_cast<double>(moved) / kManyKeys, only_to_new_member};
}

TEST(Movement, AddingOneMemberMovesAboutOneInNPlusOneForKetamaAndJump) {
  for (Distribution d : {Distribution::ketama, Distribution::jump}) {
    const double relative_tolerance = d == Distribution::ketama ? 0.15 : 0.05;
    for (size_t n : {3u, 4u, 9u}) {
      const Movement movement = movement_on_adding_one(d, n);
      const double ideal = 1.0 / static_cast<double>(n + 1);
      EXPECT_NEAR(movement.moved_fraction, ideal, ideal * relative_tolerance)
          << distribution_name(d) << " " << n << " -> " << n + 1;
      // Consistency: a key either stays or moves to the newcomer.
      EXPECT_TRUE(movement.only_to_new_member) << distribution_name(d) << " " << n;
    }
  }
}

TEST(Movement, AddingOneMemberMovesMostKeysForModula) {
  const Movement movement = movement_on_adding_one(Distribution::modula, 3);
  EXPECT_GT(movement.moved_fraction, 0.5);
  EXPECT_FALSE(movement.only_to_new_member);
}

// Removing a member (the last, so indices of the rest stay put) moves only its keys.
TEST(Movement, RemovingAKetamaMemberMovesOnlyItsKeys) {
  const auto before = assign_keys(Ring::build(Distribution::ketama, equal_members(5)), kManyKeys);
  const auto after = assign_keys(Ring::build(Distribution::ketama, equal_members(4)), kManyKeys);
  for (size_t i = 0; i < kManyKeys; ++i) {
    if (before[i] == 4) continue;
    ASSERT_EQ(after[i], before[i]) << test_key(i);
  }
}

}  // namespace
}  // namespace ringproxy::routing

namespace ringproxy::routing {
namespace {

// twemproxy builds modula's slot table from its servers sorted by name length, then bytes;
// the e2e test against a real nutcracker found this (alpha, beta, gamma, delta ->
// beta, alpha, delta, gamma).
TEST(RingModula, SlotsFollowTwemproxysServerOrder) {
  std::vector<RingMember> members = {{"alpha", 1}, {"beta", 1}, {"gamma", 2}, {"delta", 1}};
  Ring ring = Ring::build(Distribution::modula, members);
  std::vector<uint32_t> slots;
  for (uint32_t h = 0; h < 5; ++h) slots.push_back(ring.locate(h));
  EXPECT_EQ(slots, (std::vector<uint32_t>{1, 0, 3, 2, 2}));
}

TEST(RingJump, KeepsConfigOrderSoAppendingMovesOnlyTheNewShare) {
  std::vector<RingMember> three = {{"zeta", 1}, {"a", 1}, {"mm", 1}};
  std::vector<RingMember> four = three;
  four.push_back({"b", 1});
  Ring before = Ring::build(Distribution::jump, three);
  Ring after = Ring::build(Distribution::jump, four);
  int moved = 0;
  for (uint32_t i = 0; i < 20000; ++i) {
    uint32_t h = i * 2654435761u;
    if (before.locate(h) != after.locate(h)) {
      ++moved;
      EXPECT_EQ(after.locate(h), 3u);  // only to the new member
    }
  }
  EXPECT_NEAR(moved / 20000.0, 0.25, 0.03);
}

}  // namespace
}  // namespace ringproxy::routing

namespace ringproxy::routing {
namespace {

// locate() narrows its binary search with an index; it must agree with a plain scan of the
// continuum for every hash, edges included.
TEST(RingKetama, IndexedLocateEqualsALinearScan) {
  std::vector<RingMember> members = {{"a", 1}, {"bb", 3}, {"ccc", 1}, {"d", 2}};
  Ring ring = Ring::build(Distribution::ketama, members);
  auto linear = [&](uint32_t h) {
    for (const Ring::Point& p : ring.points()) {
      if (p.value >= h) return p.member;
    }
    return ring.points().front().member;
  };
  std::vector<uint32_t> hashes = {0, 1, 0xffff, 0x10000, 0xffffffffu, 0xfffeffffu};
  for (const Ring::Point& p : ring.points()) {
    hashes.push_back(p.value);
    hashes.push_back(p.value - 1);
    hashes.push_back(p.value + 1);
  }
  for (uint32_t i = 0; i < 200000; ++i) hashes.push_back(i * 2654435761u);
  for (uint32_t h : hashes) ASSERT_EQ(ring.locate(h), linear(h)) << h;
}

}  // namespace
}  // namespace ringproxy::routing
