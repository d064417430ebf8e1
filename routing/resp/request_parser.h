// Incremental RESP2 request parser: multibulk arrays and inline commands.
//
// Zero-copy: arguments are returned as (offset, length) pairs relative to the first byte
// of the request, so the caller can move the unparsed bytes to a bigger buffer between
// calls without invalidating anything. The parser keeps its position across calls: a
// request split at any byte boundary parses the same, and a large request is not rescanned
// from the start on every read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace ringproxy::resp {

struct ArgRef {
  uint32_t offset;  // from the first byte of the request
  uint32_t length;
};

struct ParserLimits {
  uint64_t max_request_bytes = 64ull << 20;
  uint32_t max_arguments = 1u << 20;
};

enum class ParseStatus : uint8_t { complete, incomplete, error };

class RequestParser {
 public:
  explicit RequestParser(ParserLimits limits = {}) : limits_(limits) {}
  // Between requests (after reset()): e.g. tighter before a client has authenticated.
  void set_limits(ParserLimits limits) { limits_ = limits; }
  const ParserLimits& limits() const { return limits_; }

  // Parses the request that starts at data[0]. Until it returns `complete` or `error`,
  // every call must pass the same request start (more bytes may follow each time).
  // Inline requests may be rewritten in place (quoted arguments are unescaped), which is
  // why `data` is mutable. An empty request (empty line, "*0") completes with no args:
  // the caller skips it.
  ParseStatus parse(char* data, size_t len);

  // Valid after `complete`: bytes the request occupied and its arguments.
  size_t request_bytes() const { return pos_; }
  std::span<const ArgRef> args() const { return args_; }
  bool is_inline() const { return inline_; }

  // Valid after `error`: the text after "-ERR Protocol error: ".
  std::string_view error() const { return error_; }

  // Lower bound of the bytes this request needs in total, once known (for buffer sizing).
  size_t bytes_needed() const { return needed_; }

  // Starts over for the next request.
  void reset();

 private:
  ParseStatus parse_multibulk(const char* data, size_t len);
  ParseStatus parse_inline(char* data, size_t len);
  ParseStatus fail(std::string_view why);

  ParserLimits limits_;
  std::vector<ArgRef> args_;
  size_t pos_ = 0;            // bytes of the request consumed so far
  size_t needed_ = 0;
  int64_t argc_ = -1;         // multibulk: announced count; -1 before the header
  int64_t bulk_len_ = -1;     // multibulk: length of the argument being read; -1: need "$"
  bool inline_ = false;
  std::string_view error_;
};

}  // namespace ringproxy::resp
