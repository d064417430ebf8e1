// Key extraction: redis 7's key-spec algorithm (getKeysUsingKeySpecs in redis's db.c), and
// the two option parsers redis-server also needs where specs fall short (sortCommand's STORE,
// xreadCommand's STREAMS). Runs for every keyed request: no allocation beyond the caller's
// reused vector, and one-key commands take the fast path.
#include "routing/keys.h"

#include <algorithm>
#include <charconv>

namespace ringproxy::routing {
namespace {

using Args = std::span<const std::string_view>;
using Begin = KeySpec::Begin;
using Find = KeySpec::Find;

// Error texts, in redis's words where redis has them (EVAL's for key counts).
constexpr std::string_view kNotInteger = "value is not an integer or out of range";
constexpr std::string_view kNegativeKeys = "Number of keys can't be negative";
constexpr std::string_view kTooManyKeys = "Number of keys can't be greater than number of args";
constexpr std::string_view kZeroKeys = "numkeys should be greater than 0";
constexpr std::string_view kWrongArgs = "wrong number of arguments";
constexpr std::string_view kSyntax = "syntax error";
constexpr std::string_view kUnbalancedStreams =
    "Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.";

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const char x = a[i], y = b[i];
    if (x == y) continue;
    if ((x | 0x20) != (y | 0x20) || (x | 0x20) < 'a' || (x | 0x20) > 'z') return false;
  }
  return true;
}

// Like redis's string2ll, which EVAL and friends use for their key count: an optional '-',
// then digits without a leading zero (so "01", "+1", " 1" and "-0" are not integers).
bool parse_int(std::string_view s, int64_t& out) {
  const size_t sign = !s.empty() && s[0] == '-' ? 1 : 0;
  if (s.size() == sign) return false;
  if (s[sign] == '0' && (sign == 1 || s.size() > 1)) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

// begin_search keyword: like redis, scan forward from startfrom, or when it is negative
// backwards from argc + startfrom. A keyword in the last argument has no key after it, so
// it does not count. Returns the index after the keyword, 0 when there is none.
int64_t find_keyword(const KeySpec& s, Args args) {
  const int64_t argc = static_cast<int64_t>(args.size());
  if (s.keyword_startfrom > 0) {
    for (int64_t i = s.keyword_startfrom; i < argc - 1; ++i) {
      if (iequals(args[i], s.keyword)) return i + 1;
    }
    return 0;
  }
  for (int64_t i = std::min(argc + s.keyword_startfrom, argc - 2); i >= 1; --i) {
    if (iequals(args[i], s.keyword)) return i + 1;
  }
  return 0;
}

// Appends the keys one spec finds. Specs whose keyword is absent find nothing, as in redis.
std::string_view append_spec_keys(const CommandInfo& cmd, const KeySpec& s, Args args,
                                  std::vector<uint32_t>& out) {
  const int64_t argc = static_cast<int64_t>(args.size());
  int64_t first = 0;
  switch (s.begin) {
    case Begin::index: first = s.begin_index; break;
    case Begin::keyword: first = find_keyword(s, args); break;
    case Begin::unknown: return {};  // SORT/SORT_RO's BY/GET patterns: see keys.h
  }
  if (first == 0) return {};
  if (first >= argc) return kWrongArgs;

  const int64_t step = s.keystep;
  int64_t last = 0;
  switch (s.find) {
    case Find::range:
      if (s.lastkey >= 0) {
        last = first + s.lastkey;
      } else if (s.limit == 0) {
        last = argc + s.lastkey;
        // Keys in groups of `step` (MSET's key/value pairs): a partial group is an error,
        // not a key without its value.
        if (last >= first && (last + 1 - first) % step != 0) return kWrongArgs;
      } else {
        // The remaining arguments are `limit` lists of equal length, the keys first.
        if ((argc - first) % s.limit != 0) return kWrongArgs;
        last = first + (argc - first) / s.limit + s.lastkey;
      }
      break;
    case Find::keynum: {
      const int64_t at = first + s.keynumidx;
      if (at >= argc) return kWrongArgs;
      int64_t count = 0;
      if (!parse_int(args[at], count)) return kNotInteger;
      if (count < 0) return kNegativeKeys;
      if (count == 0) return cmd.has_flag(kFlagNoMandatoryKeys) ? std::string_view() : kZeroKeys;
      if (count > argc) return kTooManyKeys;  // also keeps the arithmetic below in range
      first += s.firstkey;
      last = first + (count - 1) * step;
      if (last >= argc) return kTooManyKeys;
      break;
    }
    case Find::unknown: return {};
  }
  if (last >= argc) return kWrongArgs;
  for (int64_t i = first; i <= last; i += step) out.push_back(static_cast<uint32_t>(i));
  return {};
}

// SORT's options as sortCommand reads them: LIMIT takes two arguments, STORE, BY and GET
// one; the last STORE wins. Returns the STORE key's index, 0 when there is none.
int64_t sort_store_position(Args args) {
  int64_t store = 0;
  for (size_t i = 2; i < args.size(); ++i) {
    const size_t left = args.size() - i - 1;
    if (iequals(args[i], "LIMIT") && left >= 2) {
      i += 2;
    } else if (left >= 1 && iequals(args[i], "STORE")) {
      store = static_cast<int64_t>(++i);
    } else if (left >= 1 && (iequals(args[i], "BY") || iequals(args[i], "GET"))) {
      ++i;
    }
  }
  return store;
}

// XREAD/XREADGROUP options as xreadCommand reads them, up to STREAMS.
struct XreadOptions {
  size_t streams = 0;  // index of the first key
  bool block = false;
  size_t block_at = 0;  // BLOCK's index
  std::string_view error;
};

XreadOptions parse_xread(Args args) {
  XreadOptions o;
  const size_t argc = args.size();
  for (size_t i = 1; i < argc; ++i) {
    const size_t more = argc - i - 1;
    const std::string_view a = args[i];
    if (iequals(a, "BLOCK") && more >= 1) {
      o.block = true;
      o.block_at = i;
      ++i;
    } else if (iequals(a, "COUNT") && more >= 1) {
      ++i;
    } else if (iequals(a, "GROUP") && more >= 2) {
      i += 2;
    } else if (iequals(a, "NOACK")) {
    } else if (iequals(a, "STREAMS") && more >= 1) {
      o.streams = i + 1;
      if ((argc - o.streams) % 2 != 0) o.error = kUnbalancedStreams;
      return o;
    } else {
      break;
    }
  }
  o.error = kSyntax;  // STREAMS is mandatory
  return o;
}

bool is_single_first_key(const CommandInfo& cmd) {
  if (cmd.key_specs.size() != 1 || cmd.keys_proc != KeysProc::specs) return false;
  const KeySpec& s = cmd.key_specs[0];
  return s.begin == Begin::index && s.begin_index == 1 && s.find == Find::range &&
         s.lastkey == 0 && !s.not_key;
}

}  // namespace

std::string_view find_key_positions(const CommandInfo& cmd, Args args,
                                    std::vector<uint32_t>& positions) {
  // Fast path: the one key at argv[1] (GET, SET, HSET, INCR ...: most requests).
  if (args.size() > 1 && is_single_first_key(cmd)) {
    positions.push_back(1);
    return {};
  }

  const size_t start = positions.size();
  if (cmd.keys_proc == KeysProc::xread) {
    const XreadOptions o = parse_xread(args);
    if (!o.error.empty()) return o.error;
    const size_t end = o.streams + (args.size() - o.streams) / 2;
    for (size_t i = o.streams; i < end; ++i) positions.push_back(static_cast<uint32_t>(i));
    return {};
  }

  size_t contributors = 0;
  bool has_keys = false;
  for (const KeySpec& s : cmd.key_specs) {
    if (s.not_key) continue;
    has_keys = true;
    const size_t before = positions.size();
    if (const std::string_view err = append_spec_keys(cmd, s, args, positions); !err.empty()) {
      positions.resize(start);
      return err;
    }
    contributors += positions.size() != before;
  }
  if (cmd.keys_proc == KeysProc::sort) {
    if (const int64_t store = sort_store_position(args)) {
      positions.push_back(static_cast<uint32_t>(store));
      ++contributors;
    }
  }
  if (contributors > 1) {
    std::sort(positions.begin() + start, positions.end());
    positions.erase(std::unique(positions.begin() + start, positions.end()), positions.end());
  }
  // Only EVAL*/FCALL* may have no key; for the rest (XREAD without STREAMS ...) redis
  // would answer a syntax error too.
  if (has_keys && positions.size() == start && !cmd.has_flag(kFlagNoMandatoryKeys)) {
    return kSyntax;
  }
  return {};
}

bool is_key_count_error(std::string_view error) {
  return error == kNotInteger || error == kNegativeKeys || error == kTooManyKeys || error == kZeroKeys;
}

bool has_block_option(const CommandInfo& cmd, Args args) {
  return cmd.has_proxy_flag(kProxyBlockOption) && parse_xread(args).block;
}

std::optional<size_t> block_option_position(const CommandInfo& cmd, Args args) {
  if (!cmd.has_proxy_flag(kProxyBlockOption)) return std::nullopt;
  const XreadOptions o = parse_xread(args);
  if (!o.block || !o.error.empty()) return std::nullopt;
  return o.block_at;
}

}  // namespace ringproxy::routing
