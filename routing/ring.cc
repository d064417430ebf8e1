#include "routing/ring.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>

#include "routing/hash.h"

namespace ringproxy::routing {
namespace {

constexpr std::array kDistributions = {Distribution::ketama, Distribution::modula,
                                       Distribution::jump};

// twemproxy gives each server 160 points when weights are equal, 4 per MD5 digest.
constexpr int kKetamaPointsPerServer = 160;
constexpr uint32_t kKetamaPointsPerDigest = 4;

// twemproxy's expression, kept in float and in the same order on purpose: changing the
// precision or the order changes the rounding, hence the point counts, hence the mapping.
// The tiny double addend does not survive the cast back to float; it is kept for fidelity.
uint32_t ketama_points_for(uint32_t weight, uint32_t total_weight, size_t member_count) {
  const float share = static_cast<float>(weight) / static_cast<float>(total_weight);
  const float quarter_points =
      share * kKetamaPointsPerServer / 4 * static_cast<float>(member_count);
  const auto nudged = static_cast<float>(quarter_points + 0.0000000001);
  return static_cast<uint32_t>(std::floor(nudged) * 4);
}

uint32_t little_endian_word(const unsigned char* bytes) {
  return static_cast<uint32_t>(bytes[0]) | static_cast<uint32_t>(bytes[1]) << 8 |
         static_cast<uint32_t>(bytes[2]) << 16 | static_cast<uint32_t>(bytes[3]) << 24;
}

// twemproxy sorts its servers by name before building a distribution (it checks for
// duplicate names that way), comparing lengths first, then bytes (its string_compare).
// Modula's slot order depends on it, as does the order of tied ketama points.
std::vector<uint32_t> twemproxy_order(std::span<const RingMember> members) {
  std::vector<uint32_t> order(members.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const std::string& x = members[a].name;
    const std::string& y = members[b].name;
    return x.size() != y.size() ? x.size() < y.size() : x < y;
  });
  return order;
}

std::vector<Ring::Point> ketama_continuum(std::span<const RingMember> members,
                                          uint32_t total_weight) {
  std::vector<Ring::Point> points;
  points.reserve(members.size() * kKetamaPointsPerServer);
  std::string label;  // "<name>-<digest index>", the MD5 input twemproxy uses
  for (uint32_t member : twemproxy_order(members)) {
    const RingMember& m = members[member];
    const uint32_t digests =
        ketama_points_for(m.weight, total_weight, members.size()) / kKetamaPointsPerDigest;
    for (uint32_t i = 0; i < digests; ++i) {
      label.assign(m.name).append("-").append(std::to_string(i));
      unsigned char digest[16];
      md5_digest(label, digest);
      for (uint32_t k = 0; k < kKetamaPointsPerDigest; ++k) {
        points.push_back({little_endian_word(digest + 4 * k), member});
      }
    }
  }
  // Stable, so equal values keep member order, as glibc's qsort does for twemproxy.
  std::stable_sort(points.begin(), points.end(),
                   [](const Ring::Point& a, const Ring::Point& b) { return a.value < b.value; });
  return points;
}

// `weight` consecutive slots per member, members in `order`: twemproxy's order for modula
// (its slot table); config order for jump, so that a shard appended to the config only
// adds buckets at the end and moves only the keys it takes.
std::vector<Ring::Point> slots_by_weight(std::span<const RingMember> members, uint32_t total_weight,
                                         const std::vector<uint32_t>& order) {
  std::vector<Ring::Point> slots;
  slots.reserve(total_weight);
  for (uint32_t member : order) {
    for (uint32_t w = 0; w < members[member].weight; ++w) {
      slots.push_back({static_cast<uint32_t>(slots.size()), member});
    }
  }
  return slots;
}

// Jump consistent hash, Lamping & Veach 2014, "A Fast, Minimal Memory, Consistent Hash
// Algorithm", figure 1: a bucket in [0, buckets).
uint32_t jump_bucket(uint64_t key, size_t buckets) {
  int64_t bucket = -1;
  int64_t next = 0;
  while (next < static_cast<int64_t>(buckets)) {
    bucket = next;
    key = key * 2862933555777941757ULL + 1;
    next = static_cast<int64_t>(static_cast<double>(bucket + 1) *
                                (static_cast<double>(int64_t{1} << 31) /
                                 static_cast<double>((key >> 33) + 1)));
  }
  return static_cast<uint32_t>(bucket);
}

uint32_t checked_total_weight(std::span<const RingMember> members) {
  if (members.empty()) throw std::invalid_argument("a ring needs at least one member");
  uint64_t total = 0;
  for (const RingMember& m : members) {
    if (m.weight == 0) throw std::invalid_argument("ring member '" + m.name + "' has weight 0");
    total += m.weight;
  }
  if (total > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
    throw std::invalid_argument("ring weights add up to 2^31 or more");
  }
  return static_cast<uint32_t>(total);
}

}  // namespace

std::span<const Distribution> all_distributions() { return kDistributions; }

std::optional<Distribution> parse_distribution(std::string_view name) {
  for (Distribution d : kDistributions) {
    if (distribution_name(d) == name) return d;
  }
  return std::nullopt;
}

std::string_view distribution_name(Distribution d) {
  switch (d) {
    case Distribution::ketama: return "ketama";
    case Distribution::modula: return "modula";
    case Distribution::jump: return "jump";
  }
  return "unknown";
}

Ring Ring::build(Distribution d, std::span<const RingMember> members) {
  const uint32_t total_weight = checked_total_weight(members);
  Ring ring;
  ring.distribution_ = d;
  ring.member_count_ = members.size();
  switch (d) {
    case Distribution::ketama: {
      ring.points_ = ketama_continuum(members, total_weight);
      ring.index_.resize((1u << 16) + 1);
      size_t point = 0;
      for (uint32_t top = 0; top <= (1u << 16); ++top) {
        const uint64_t floor = static_cast<uint64_t>(top) << 16;
        while (point < ring.points_.size() && ring.points_[point].value < floor) ++point;
        ring.index_[top] = static_cast<uint32_t>(point);
      }
      break;
    }
    case Distribution::modula:
      ring.points_ = slots_by_weight(members, total_weight, twemproxy_order(members));
      break;
    case Distribution::jump: {
      std::vector<uint32_t> config_order(members.size());
      for (uint32_t i = 0; i < config_order.size(); ++i) config_order[i] = i;
      ring.points_ = slots_by_weight(members, total_weight, config_order);
      break;
    }
  }
  return ring;
}

uint32_t Ring::locate(uint32_t hash) const {
  switch (distribution_) {
    case Distribution::ketama: {
      // The answer lies in [index_[top], index_[top + 1]]: the same lower_bound, narrowed.
      const uint32_t top = hash >> 16;
      const auto first_at_or_above = std::lower_bound(
          points_.begin() + index_[top], points_.begin() + index_[top + 1], hash,
          [](const Point& point, uint32_t h) { return point.value < h; });
      return first_at_or_above == points_.end() ? points_.front().member
                                                : first_at_or_above->member;
    }
    case Distribution::modula:
      return points_[hash % points_.size()].member;
    case Distribution::jump:
      return points_[jump_bucket(hash, points_.size())].member;
  }
  return 0;  // unreachable: the switch covers every enumerator (-Wswitch)
}

}  // namespace ringproxy::routing
