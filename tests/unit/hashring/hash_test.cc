// Hash functions: published vectors where they exist, and vectors for the twemproxy-specific
// variants computed by tests/unit/hashring/ketama_reference.py (an independent Python
// re-implementation; re-run it to regenerate the tables below).
#include "routing/hash.h"

#include <gtest/gtest.h>

#include <array>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace ringproxy::routing {
namespace {

using namespace std::string_view_literals;

uint32_t hash_of(std::string_view function_name, std::string_view key) {
  const std::optional<HashFunction> fn = parse_hash_function(function_name);
  if (!fn) ADD_FAILURE() << "unknown hash function " << function_name;
  return fn ? hash_key(*fn, key) : 0;
}

// --- Published vectors ------------------------------------------------------------------

TEST(HashPublishedVectors, Fnv32FromTheFnvReferenceSuite) {
  EXPECT_EQ(hash_of("fnv1_32", ""), 0x811c9dc5u);
  EXPECT_EQ(hash_of("fnv1_32", "a"), 0x050c5d7eu);
  EXPECT_EQ(hash_of("fnv1_32", "foobar"), 0x31f0b262u);
  EXPECT_EQ(hash_of("fnv1a_32", ""), 0x811c9dc5u);
  EXPECT_EQ(hash_of("fnv1a_32", "a"), 0xe40c292cu);
  EXPECT_EQ(hash_of("fnv1a_32", "foobar"), 0xbf9cf968u);
}

// For ASCII keys twemproxy's 64-bit FNV variants are the low halves of the real 64-bit
// hashes (the low 32 bits of a product depend only on the operands' low 32 bits).
TEST(HashPublishedVectors, Fnv64LowHalvesFromTheFnvReferenceSuite) {
  EXPECT_EQ(hash_of("fnv1_64", ""), 0x84222325u);        // 0xcbf29ce484222325
  EXPECT_EQ(hash_of("fnv1_64", "a"), 0x8601b7beu);       // 0xaf63bd4c8601b7be
  EXPECT_EQ(hash_of("fnv1_64", "foobar"), 0xa4dda9c2u);  // 0x340d8765a4dda9c2
  EXPECT_EQ(hash_of("fnv1a_64", ""), 0x84222325u);
  EXPECT_EQ(hash_of("fnv1a_64", "a"), 0x8601ec8cu);       // 0xaf63dc4c8601ec8c
  EXPECT_EQ(hash_of("fnv1a_64", "foobar"), 0xf73967e8u);  // 0x85944171f73967e8
}

TEST(HashPublishedVectors, Crc32CheckValue) {
  EXPECT_EQ(hash_of("crc32a", "123456789"), 0xcbf43926u);
  EXPECT_EQ(hash_of("crc32a", ""), 0u);
  // libmemcached's crc32: bits 16..30 of the same CRC.
  EXPECT_EQ(hash_of("crc32", "123456789"), 0xcbf43926u >> 16 & 0x7fff);
}

TEST(HashPublishedVectors, Md5DigestsFromRfc1321) {
  const std::array<std::pair<std::string_view, std::array<unsigned char, 16>>, 4> cases = {{
      {"", {0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04, 0xe9, 0x80, 0x09, 0x98, 0xec,
            0xf8, 0x42, 0x7e}},
      {"a", {0x0c, 0xc1, 0x75, 0xb9, 0xc0, 0xf1, 0xb6, 0xa8, 0x31, 0xc3, 0x99, 0xe2, 0x69,
             0x77, 0x26, 0x61}},
      {"abc", {0x90, 0x01, 0x50, 0x98, 0x3c, 0xd2, 0x4f, 0xb0, 0xd6, 0x96, 0x3f, 0x7d, 0x28,
               0xe1, 0x7f, 0x72}},
      {"message digest", {0xf9, 0x6b, 0x69, 0x7d, 0x7c, 0xb7, 0x93, 0x8d, 0x52, 0x5a, 0x2f,
                          0x31, 0xaa, 0xf1, 0x61, 0xd0}},
  }};
  for (const auto& [input, expected] : cases) {
    std::array<unsigned char, 16> digest{};
    md5_digest(input, digest.data());
    EXPECT_EQ(digest, expected) << "MD5(\"" << input << "\")";
  }
  // The key hash is the digest's first four bytes read little-endian.
  EXPECT_EQ(hash_of("md5", ""), 0xd98c1dd4u);
  EXPECT_EQ(hash_of("md5", "abc"), 0x98500190u);
}

TEST(HashPublishedVectors, MurmurHash3X86_32SeedZero) {
  EXPECT_EQ(hash_of("murmur3", ""), 0u);
  EXPECT_EQ(hash_of("murmur3", "hello"), 0x248bfa47u);
  EXPECT_EQ(hash_of("murmur3", "The quick brown fox jumps over the lazy dog"), 0x2e4ff723u);
}

TEST(HashPublishedVectors, XxHashEmptyInputLowHalves) {
  EXPECT_EQ(hash_of("xxh64", ""), 0x51d8e999u);  // XXH64("", 0) = 0xef46db3751d8e999
  EXPECT_EQ(hash_of("xxh3", ""), 0x38d394c2u);   // XXH3_64bits("") = 0x2d06800538d394c2
}

// --- Reference vectors (ketama_reference.py) --------------------------------------------

constexpr uint32_t kNoVector = 0xffffffff;  // the Python reference covers XXH3 <= 16 bytes
constexpr std::array<std::string_view, 10> kReferenceOrder = {
    "fnv1a_64", "fnv1_64", "fnv1a_32", "fnv1_32", "crc32",
    "crc32a",   "md5",     "murmur3",  "xxh64",   "xxh3"};

struct ReferenceVector {
  std::string_view key;
  std::array<uint32_t, 10> hashes;  // in kReferenceOrder
};

// Keys with bytes >= 0x80 pin twemproxy's sign extension in the FNV variants; the key
// with a NUL pins that keys are sized, not NUL-terminated.
const ReferenceVector kReferenceVectors[] = {
    {""sv, {0x84222325, 0x84222325, 0x811c9dc5, 0x811c9dc5, 0x00000000, 0x00000000, 0xd98c1dd4, 0x00000000, 0x51d8e999, 0x38d394c2}},
    {"a"sv, {0x8601ec8c, 0x8601b7be, 0xe40c292c, 0x050c5d7e, 0x000068b7, 0xe8b7be43, 0xb975c10c, 0x3c2569b2, 0xa98c6e5b, 0x1e964e1f}},
    {"foobar"sv, {0xf73967e8, 0xa4dda9c2, 0xbf9cf968, 0x31f0b262, 0x00001ef6, 0x9ef61f95, 0x22f65838, 0xa4c4d4bd, 0x9085aaf9, 0x144c5c84}},
    {"hello"sv, {0x80aabd0b, 0xbdbdd4c7, 0x4f9f2cab, 0xb6fa7167, 0x00003610, 0x3610a686, 0x2a40415d, 0x248bfa47, 0x889f6da3, 0x5c62dcfd}},
    {"123456789"sv, {0x23c6cdfc, 0x2bf916d6, 0xbb86b11c, 0x24148816, 0x00004bf4, 0xcbf43926, 0x94e7f925, 0xb4fef382, 0x40e6ae83, 0x67a17dff}},
    {"user:1000"sv, {0xae7b4289, 0xd39e3d21, 0x507c1d89, 0xa6affca1, 0x00001f74, 0x9f7417e3, 0x2e986207, 0x396d9e9c, 0x27b0500a, 0x068c0c9f}},
    {"\x80"sv, {0x79fdec5f, 0x79fe485f, 0x04f3b29f, 0xfaf3a29f, 0x00003fba, 0x3fba6cad, 0x7edd398d, 0x0feb9e1d, 0x7060849f, 0x72500941}},
    {"\xff"sv, {0x79fe466e, 0x79fe4820, 0xf9f3a14e, 0xfaf3a2e0, 0x00007f00, 0xff000000, 0xd44f5900, 0xfd6cf10d, 0xa60b7544, 0x6b29d72e}},
    {"caf\xc3\xa9"sv, {0xcef6bb89, 0x8a06fef1, 0x7572c049, 0xd682f171, 0x000018ad, 0x98ad42b5, 0xe47f1107, 0x241c0f08, 0x74d85a6a, 0xf29d367f}},
    {"\xfe\xff\x00\x01"sv, {0x98e616fd, 0x9dcb30cd, 0x0daf435d, 0x25937aad, 0x00000e62, 0x8e62baf3, 0x214bae8b, 0xa1dcd47a, 0x23fb43ef, 0xb218d3e7}},
    {"0123456789abcdef"sv, {0xe5ad677d, 0x3b82ecc1, 0x87bc333d, 0x9e1b6f41, 0x000068c4, 0x68c4f033, 0x8daf3240, 0x36c7e0df, 0x4e376d0b, 0xd8fa212d}},
    {"The quick brown fox jumps over the lazy dog"sv, {0xe7e47110, 0x7de37ace, 0x048fff90, 0xe9c86c6e, 0x0000414f, 0x414fa339, 0x9d7d109e, 0x2e4ff723, 0x1fda71bc, kNoVector}},
};

TEST(HashReferenceVectors, EveryFunctionMatchesTheIndependentReference) {
  for (const ReferenceVector& vector : kReferenceVectors) {
    for (size_t i = 0; i < kReferenceOrder.size(); ++i) {
      if (vector.hashes[i] == kNoVector) continue;
      EXPECT_EQ(hash_of(kReferenceOrder[i], vector.key), vector.hashes[i])
          << kReferenceOrder[i] << " of a " << vector.key.size() << "-byte key starting '"
          << vector.key.substr(0, 8) << "'";
    }
  }
}

TEST(HashReferenceVectors, CoverEveryFunction) {
  std::set<HashFunction> covered;
  for (std::string_view name : kReferenceOrder) covered.insert(*parse_hash_function(name));
  EXPECT_EQ(covered.size(), all_hash_functions().size());
}

// Spelled out because it is the detail most likely to be "fixed" by accident: twemproxy
// (x86, signed char) mixes 0xff in as 0xffffffff, where textbook FNV-1a uses 0x000000ff.
TEST(HashTwemproxyQuirks, FnvSignExtendsHighBytes) {
  const uint32_t textbook_fnv1a_32_of_ff = (0x811c9dc5u ^ 0xffu) * 16777619u;
  const uint32_t twemproxy_fnv1a_32_of_ff = (0x811c9dc5u ^ 0xffffffffu) * 16777619u;
  EXPECT_EQ(hash_of("fnv1a_32", "\xff"), twemproxy_fnv1a_32_of_ff);
  EXPECT_NE(hash_of("fnv1a_32", "\xff"), textbook_fnv1a_32_of_ff);
  // fnv1a_64 keeps a 32-bit state seeded and multiplied by the low 32 bits of the 64-bit
  // basis and prime.
  EXPECT_EQ(hash_of("fnv1a_64", "\xff"), (0x84222325u ^ 0xffffffffu) * 0x1b3u);
}

TEST(HashTwemproxyQuirks, Crc32IsFifteenBitsOfCrc32a) {
  for (const ReferenceVector& vector : kReferenceVectors) {
    const uint32_t crc32 = hash_of("crc32", vector.key);
    EXPECT_LE(crc32, 0x7fffu);
    EXPECT_EQ(crc32, hash_of("crc32a", vector.key) >> 16 & 0x7fff);
  }
}

TEST(HashKey, UsesTheWholeViewNotANulTerminatedPrefix) {
  const std::string key("ab\0cd", 5);
  for (HashFunction fn : all_hash_functions()) {
    if (fn == HashFunction::crc32) continue;  // 15 bits: a collision is plausible
    EXPECT_NE(hash_key(fn, key), hash_key(fn, "ab")) << hash_function_name(fn);
  }
  // A view into a larger buffer hashes only its own bytes.
  const std::string_view inner = std::string_view("xxfoobarxx").substr(2, 6);
  for (HashFunction fn : all_hash_functions()) {
    EXPECT_EQ(hash_key(fn, inner), hash_key(fn, "foobar")) << hash_function_name(fn);
  }
}

TEST(HashKey, Md5IsThreadSafe) {
  // md5_digest keeps one OpenSSL context per thread; hash concurrently and compare.
  std::vector<std::thread> threads;
  std::array<bool, 4> all_equal{};
  for (size_t t = 0; t < all_equal.size(); ++t) {
    threads.emplace_back([&all_equal, t] {
      bool equal = true;
      for (int i = 0; i < 2000; ++i) {
        equal = equal && hash_key(HashFunction::md5, "abc") == 0x98500190u &&
                hash_key(HashFunction::md5, "") == 0xd98c1dd4u;
      }
      all_equal[t] = equal;
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (bool equal : all_equal) EXPECT_TRUE(equal);
}

// --- Names ------------------------------------------------------------------------------

TEST(HashFunctionNames, RoundTripForEveryFunction) {
  std::set<std::string_view> names;
  for (HashFunction fn : all_hash_functions()) {
    const std::string_view name = hash_function_name(fn);
    EXPECT_EQ(parse_hash_function(name), fn) << name;
    names.insert(name);
  }
  EXPECT_EQ(names.size(), all_hash_functions().size());
}

TEST(HashFunctionNames, EachNameMeansItsFunction) {
  EXPECT_EQ(parse_hash_function("fnv1a_64"), HashFunction::fnv1a_64);
  EXPECT_EQ(parse_hash_function("fnv1_64"), HashFunction::fnv1_64);
  EXPECT_EQ(parse_hash_function("fnv1a_32"), HashFunction::fnv1a_32);
  EXPECT_EQ(parse_hash_function("fnv1_32"), HashFunction::fnv1_32);
  EXPECT_EQ(parse_hash_function("crc32"), HashFunction::crc32);
  EXPECT_EQ(parse_hash_function("crc32a"), HashFunction::crc32a);
  EXPECT_EQ(parse_hash_function("md5"), HashFunction::md5);
  EXPECT_EQ(parse_hash_function("murmur3"), HashFunction::murmur3);
  EXPECT_EQ(parse_hash_function("xxh64"), HashFunction::xxh64);
  EXPECT_EQ(parse_hash_function("xxh3"), HashFunction::xxh3);
}

TEST(HashFunctionNames, AllFunctionsAreListedInDeclarationOrder) {
  const auto all = all_hash_functions();
  ASSERT_EQ(all.size(), 10u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(static_cast<size_t>(all[i]), i);
}

TEST(HashFunctionNames, RejectsUnknownAndMisspelt) {
  // twemproxy's "murmur" is MurmurHash2 with another seed: accepting it as murmur3 would
  // silently remap every key of a migrating user.
  for (std::string_view name : {"", "murmur", "one_at_a_time", "hsieh", "jenkins", "crc16",
                                "FNV1A_64", "fnv1a_64 ", " md5", "fnv1a", "xxh128"}) {
    EXPECT_EQ(parse_hash_function(name), std::nullopt) << "'" << name << "'";
  }
}

// --- Hash tags --------------------------------------------------------------------------

TEST(HashTag, ExtractsTheFirstNonEmptyTag) {
  struct Case {
    std::string_view key, expected;
  };
  const Case cases[] = {
      {"{user1000}.following", "user1000"},
      {"{a}b", "a"},
      {"a{b}c{d}", "b"},         // only the first tag counts
      {"}{a}", "a"},             // a closer before the opener is ignored
      {"{}", "{}"},              // empty tag: the whole key
      {"{}a}", "{}a}"},          // the first closer ends it, even when that is empty
      {"a{", "a{"},              // no closer
      {"a}", "a}"},              // no opener
      {"{{a}}", "{a"},           // from the first opener to the first closer after it
      {"", ""},
      {"plain", "plain"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(apply_hash_tag(c.key, "{}"), c.expected) << "key '" << c.key << "'";
  }
}

TEST(HashTag, EmptyTagMeansTheWholeKey) {
  EXPECT_EQ(apply_hash_tag("{a}b", ""), "{a}b");
  EXPECT_EQ(apply_hash_tag("{a}b", "{"), "{a}b");  // malformed: treated as no tag
}

TEST(HashTag, OtherTagCharacters) {
  EXPECT_EQ(apply_hash_tag("user:[42]:name", "[]"), "42");
  EXPECT_EQ(apply_hash_tag("a$b$c$d", "$$"), "b");  // same opener and closer
  EXPECT_EQ(apply_hash_tag("a{b}c", "[]"), "a{b}c");
}

TEST(HashTag, ReturnsAViewIntoTheKey) {
  const std::string key = "x{tag}y";
  const std::string_view tag = apply_hash_tag(key, "{}");
  EXPECT_EQ(tag.data(), key.data() + 2);
  EXPECT_EQ(apply_hash_tag(key, "").data(), key.data());
}

// --- shard_hash -------------------------------------------------------------------------

TEST(ShardHash, HashesTheTaggedPart) {
  for (HashFunction fn : all_hash_functions()) {
    EXPECT_EQ(shard_hash(fn, "{}", "{user1}:a"), hash_key(fn, "user1"));
    EXPECT_EQ(shard_hash(fn, "{}", "{user1}:a"), shard_hash(fn, "{}", "{user1}:b"));
    EXPECT_EQ(shard_hash(fn, "", "{user1}:a"), hash_key(fn, "{user1}:a"));
    EXPECT_EQ(shard_hash(fn, "{}", "{}"), hash_key(fn, "{}"));
  }
}

// twemproxy's server_pool_hash returns 0 for an empty key instead of hashing it.
TEST(ShardHash, EmptyKeyHashesToZero) {
  for (HashFunction fn : all_hash_functions()) {
    EXPECT_EQ(shard_hash(fn, "", ""), 0u) << hash_function_name(fn);
    EXPECT_EQ(shard_hash(fn, "{}", ""), 0u) << hash_function_name(fn);
  }
  EXPECT_NE(hash_key(HashFunction::fnv1a_64, ""), 0u);  // so the rule is not a no-op
}

}  // namespace
}  // namespace ringproxy::routing
