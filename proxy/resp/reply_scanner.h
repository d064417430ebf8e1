// Frames RESP2 replies from a backend without copying or allocating per reply: it only
// finds where each reply ends. Resumable like RequestParser: a reply split across reads is
// scanned once, not from its start on every read.
//
// Also: one-shot helpers over a complete reply, used by the reducers that merge replies of
// fanned-out commands (MGET, DEL, DBSIZE...).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "proxy/resp/request_parser.h"  // ParseStatus

namespace ringproxy::resp {

class ReplyScanner {
 public:
  static constexpr int kMaxDepth = 32;

  // Scans the reply that starts at data[0]; same contract as RequestParser::parse.
  ParseStatus scan(const char* data, size_t len);
  size_t reply_bytes() const { return pos_; }   // valid after `complete`
  size_t bytes_needed() const { return needed_; }
  std::string_view error() const { return error_; }
  void reset();

 private:
  size_t pos_ = 0;
  size_t needed_ = 0;
  int depth_ = 0;                   // open arrays
  int64_t remaining_[kMaxDepth]{};  // elements still expected at each depth
  std::string_view error_;
};

// A complete reply, for reducers.
inline bool is_error_reply(std::string_view reply) { return !reply.empty() && reply[0] == '-'; }
inline bool is_ok_reply(std::string_view reply) { return reply == "+OK\r\n"; }
std::optional<int64_t> integer_reply(std::string_view reply);

// Splits a complete array reply into the raw bytes of its top-level elements.
// False when `reply` is not an array (or is malformed).
bool split_array_reply(std::string_view reply, std::vector<std::string_view>& elements);

}  // namespace ringproxy::resp
