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
//
// Ketama details kept for twemproxy compatibility, surprising as some are:
//   - the point count is computed in float, so equal weights do not always give 160 points
//     (25 equal members get 156 each), and a member whose share rounds below 4 points gets
//     none and never receives a key (weights 100 and 1: 316 and 0 points);
//   - points with equal values stay in member order, as twemproxy's qsort leaves them on
//     glibc <= 2.36 (a stable merge sort there; qsort itself promises no order);
//   - twemproxy formats "<name>-<i>" into an 86-byte buffer, so names longer than about 80
//     bytes cannot match it; keep names short.
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

  // Members must be non-empty with weights > 0 and a total weight below 2^31 (the config
  // loader guarantees it); otherwise throws std::invalid_argument. Modula and jump hold
  // one slot per unit of weight, so keep weights small.
  static Ring build(Distribution d, std::span<const RingMember> members);

  // Index into the members given to build(). Only on a Ring made by build().
  uint32_t locate(uint32_t hash) const;

  Distribution distribution() const { return distribution_; }
  size_t member_count() const { return member_count_; }
  // Ketama: continuum points; modula/jump: slots / buckets (value = slot index).
  size_t point_count() const { return points_.size(); }
  std::span<const Point> points() const { return points_; }

 private:
  Distribution distribution_ = Distribution::ketama;
  size_t member_count_ = 0;
  std::vector<Point> points_;  // ketama: sorted continuum; modula/jump: slot -> member
  // ketama: for each top 16 bits of a hash, the first point whose value has those top bits
  // or more; locate() then searches only between two neighbouring entries (a few points
  // instead of log2(160 * N) steps over the whole continuum).
  std::vector<uint32_t> index_;
};

}  // namespace ringproxy::routing
