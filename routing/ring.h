// Distributions: how a 32-bit key hash picks a shard.
//
//   ketama  twemproxy-compatible consistent hashing: per member, floor(weight share * 160 *
//           n / 4) * 4 points, placed by MD5 of "<name>-<i>" (4 points per digest), sorted;
//           a key goes to the first point >= its hash, wrapping to the first point.
//   modula  hash mod N, the textbook scheme (twemproxy's: `weight` slots per member).
//   jump    Jump consistent hash (Lamping & Veach 2014) over `weight` buckets per member,
//           buckets of later members appended after earlier ones.
//
// A Ring is immutable after build(); locate() is the hot path.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ringproxy::routing {

enum class Distribution : uint8_t { ketama, modula, jump };

std::span<const Distribution> all_distributions();
std::optional<Distribution> parse_distribution(std::string_view name);
std::string_view distribution_name(Distribution d);

struct RingMember {
  std::string name;    // the ring is built from the name, never the address
  uint32_t weight = 1; // > 0
};

class Ring {
 public:
  struct Point {
    uint32_t value;
    uint32_t member;
  };

  // Members must be non-empty with weights > 0 (the config loader guarantees it).
  static Ring build(Distribution d, std::span<const RingMember> members);

  // Index into the members given to build().
  uint32_t locate(uint32_t hash) const;

  Distribution distribution() const { return distribution_; }
  size_t member_count() const { return member_count_; }
  // Ketama: continuum points; modula/jump: slots / buckets.
  size_t point_count() const { return points_.size(); }
  std::span<const Point> points() const { return points_; }

 private:
  Distribution distribution_ = Distribution::ketama;
  size_t member_count_ = 0;
  std::vector<Point> points_;  // ketama: sorted continuum; modula/jump: slot -> member
};

}  // namespace ringproxy::routing
