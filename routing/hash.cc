#include "routing/hash.h"

#include <openssl/evp.h>
#include <zlib.h>
#include <murmurhash.h>
#include <xxhash.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>

namespace ringproxy::routing {
namespace {

constexpr std::array kHashFunctions = {
    HashFunction::fnv1a_64, HashFunction::fnv1_64, HashFunction::fnv1a_32,
    HashFunction::fnv1_32,  HashFunction::crc32,   HashFunction::crc32a,
    HashFunction::md5,      HashFunction::murmur3, HashFunction::xxh64,
    HashFunction::xxh3,
};

constexpr uint64_t kFnv64Basis = 0xcbf29ce484222325;
constexpr uint64_t kFnv64Prime = 0x100000001b3;
constexpr uint32_t kFnv32Basis = 2166136261u;
constexpr uint32_t kFnv32Prime = 16777619u;

// twemproxy reads keys through a signed `const char *` and widens each byte before mixing
// it in, so on x86 a byte >= 0x80 enters the FNV state sign-extended (0xff -> 0xff...ff).
uint64_t widened_like_twemproxy(char byte) {
  return static_cast<uint64_t>(static_cast<int64_t>(static_cast<signed char>(byte)));
}

uint32_t fnv1_64(std::string_view key) {
  uint64_t state = kFnv64Basis;
  for (char byte : key) {
    state *= kFnv64Prime;
    state ^= widened_like_twemproxy(byte);
  }
  return static_cast<uint32_t>(state);
}

// twemproxy's "fnv1a_64" keeps only a 32-bit state seeded and multiplied with the low
// halves of the 64-bit basis and prime; compatibility means doing the same.
uint32_t fnv1a_64(std::string_view key) {
  auto state = static_cast<uint32_t>(kFnv64Basis);
  for (char byte : key) {
    state ^= static_cast<uint32_t>(widened_like_twemproxy(byte));
    state *= static_cast<uint32_t>(kFnv64Prime);
  }
  return state;
}

uint32_t fnv1_32(std::string_view key) {
  uint32_t state = kFnv32Basis;
  for (char byte : key) {
    state *= kFnv32Prime;
    state ^= static_cast<uint32_t>(widened_like_twemproxy(byte));
  }
  return state;
}

uint32_t fnv1a_32(std::string_view key) {
  uint32_t state = kFnv32Basis;
  for (char byte : key) {
    state ^= static_cast<uint32_t>(widened_like_twemproxy(byte));
    state *= kFnv32Prime;
  }
  return state;
}

uint32_t crc32a(std::string_view key) {
  return static_cast<uint32_t>(
      ::crc32_z(0, reinterpret_cast<const Bytef*>(key.data()), key.size()));
}

// libmemcached's "crc32", kept by twemproxy: 15 bits taken from the top half.
uint32_t crc32_libmemcached(std::string_view key) { return (crc32a(key) >> 16) & 0x7fff; }

uint32_t md5_low_word(std::string_view key) {
  unsigned char digest[16];
  md5_digest(key, digest);
  return static_cast<uint32_t>(digest[0]) | static_cast<uint32_t>(digest[1]) << 8 |
         static_cast<uint32_t>(digest[2]) << 16 | static_cast<uint32_t>(digest[3]) << 24;
}

uint32_t murmur3(std::string_view key) {
  uint32_t out[1];
  ::lmmh_x86_32(key.data(), static_cast<unsigned int>(key.size()), 0, out);
  return out[0];
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "ringproxy: %s\n", what);
  std::abort();
}

// Fetched once: an explicit fetch spares OpenSSL 3 a provider lookup on every digest.
// Never freed; it lives as long as the process.
const EVP_MD* md5_algorithm() {
  static const EVP_MD* const algorithm = EVP_MD_fetch(nullptr, "MD5", nullptr);
  if (algorithm == nullptr) die("OpenSSL offers no MD5 (FIPS-only configuration?)");
  return algorithm;
}

struct DigestContextFree {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};

}  // namespace

std::span<const HashFunction> all_hash_functions() { return kHashFunctions; }

std::optional<HashFunction> parse_hash_function(std::string_view name) {
  for (HashFunction fn : kHashFunctions) {
    if (hash_function_name(fn) == name) return fn;
  }
  return std::nullopt;
}

// The names are twemproxy's `hash:` values, for the functions it has.
std::string_view hash_function_name(HashFunction fn) {
  switch (fn) {
    case HashFunction::fnv1a_64: return "fnv1a_64";
    case HashFunction::fnv1_64: return "fnv1_64";
    case HashFunction::fnv1a_32: return "fnv1a_32";
    case HashFunction::fnv1_32: return "fnv1_32";
    case HashFunction::crc32: return "crc32";
    case HashFunction::crc32a: return "crc32a";
    case HashFunction::md5: return "md5";
    case HashFunction::murmur3: return "murmur3";
    case HashFunction::xxh64: return "xxh64";
    case HashFunction::xxh3: return "xxh3";
  }
  return "unknown";
}

uint32_t hash_key(HashFunction fn, std::string_view key) {
  switch (fn) {
    case HashFunction::fnv1a_64: return fnv1a_64(key);
    case HashFunction::fnv1_64: return fnv1_64(key);
    case HashFunction::fnv1a_32: return fnv1a_32(key);
    case HashFunction::fnv1_32: return fnv1_32(key);
    case HashFunction::crc32: return crc32_libmemcached(key);
    case HashFunction::crc32a: return crc32a(key);
    case HashFunction::md5: return md5_low_word(key);
    case HashFunction::murmur3: return murmur3(key);
    case HashFunction::xxh64: return static_cast<uint32_t>(XXH64(key.data(), key.size(), 0));
    case HashFunction::xxh3: return static_cast<uint32_t>(XXH3_64bits(key.data(), key.size()));
  }
  return fnv1a_64(key);  // unreachable: the switch covers every enumerator (-Wswitch)
}

void md5_digest(std::string_view data, unsigned char out[16]) {
  // One context per thread, reused: a fresh one per call would allocate on the hot path.
  thread_local const std::unique_ptr<EVP_MD_CTX, DigestContextFree> context(EVP_MD_CTX_new());
  unsigned int length = 0;
  if (context == nullptr || EVP_DigestInit_ex2(context.get(), md5_algorithm(), nullptr) != 1 ||
      EVP_DigestUpdate(context.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(context.get(), out, &length) != 1 || length != 16) {
    die("OpenSSL failed to compute an MD5 digest");
  }
}

std::string_view apply_hash_tag(std::string_view key, std::string_view tag) {
  if (tag.size() != 2) return key;
  const size_t open = key.find(tag[0]);
  if (open == std::string_view::npos) return key;
  const size_t close = key.find(tag[1], open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

uint32_t shard_hash(HashFunction fn, std::string_view hash_tag, std::string_view key) {
  const std::string_view hashed = apply_hash_tag(key, hash_tag);
  if (hashed.empty()) return 0;
  return hash_key(fn, hashed);
}

}  // namespace ringproxy::routing
