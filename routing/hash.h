// Key hash functions, named and computed exactly as twemproxy does, so that the same
// servers, weights and hash give the same key -> shard mapping (see ring.h).
//
// Every function returns 32 bits: that is what the ketama continuum and twemproxy use.
// Library code where a library exists: MD5 from OpenSSL, CRC-32 from zlib, xxHash from
// libxxhash, MurmurHash3 from libmurmurhash. FNV is its four-line definition.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace ringproxy::routing {

enum class HashFunction : uint8_t {
  fnv1a_64,  // twemproxy's default; note twemproxy truncates the state to 32 bits
  fnv1_64,
  fnv1a_32,
  fnv1_32,
  crc32,     // twemproxy/libmemcached "crc32": (crc32(key) >> 16) & 0x7fff
  crc32a,    // the standard CRC-32 of the key
  md5,       // first 4 bytes of MD5, little-endian (twemproxy "md5")
  murmur3,   // MurmurHash3_x86_32, seed 0 (not twemproxy's "murmur", a MurmurHash2 variant)
  xxh64,     // low 32 bits of XXH64, seed 0
  xxh3,      // low 32 bits of XXH3_64bits
};

// All functions, in declaration order (for tests, `ringproxy ring` and docs).
std::span<const HashFunction> all_hash_functions();

std::optional<HashFunction> parse_hash_function(std::string_view name);
std::string_view hash_function_name(HashFunction fn);

// The raw hash function, byte for byte as twemproxy computes it (on x86, where its `char`
// is signed: the FNV variants sign-extend bytes >= 0x80). Allocates nothing itself (OpenSSL
// may, inside an md5 digest). Thread-safe.
uint32_t hash_key(HashFunction fn, std::string_view key);

// The 16-byte MD5 digest (used by ketama to place points). `out` must hold 16 bytes.
// Aborts if OpenSSL offers no MD5 (a FIPS-only configuration): nothing can route then.
void md5_digest(std::string_view data, unsigned char out[16]);

// Hash tags: with tag "{}", only the part between the first '{' and the next '}' is
// hashed, when that part is non-empty (Redis Cluster and twemproxy semantics).
// An empty `tag` means no hash tag (and so, defensively, does any length but two).
std::string_view apply_hash_tag(std::string_view key, std::string_view tag);

// The hash a key is routed by, as twemproxy's server_pool_idx computes it: the hash tag
// first, then 0 for an empty key (twemproxy never hashes an empty key), else hash_key.
// Routing must use this rather than hash_key, or the empty key lands on another shard.
uint32_t shard_hash(HashFunction fn, std::string_view hash_tag, std::string_view key);

}  // namespace ringproxy::routing
