// Frames RESP2 and RESP3 replies from a backend without copying or allocating per reply: it only
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

#include "routing/resp/request_parser.h"  // ParseStatus

namespace ringproxy::resp {

class ReplyScanner {
 public:
  // Scans the reply that starts at data[0]; same contract as RequestParser::parse.
  ParseStatus scan(const char* data, size_t len);
  size_t reply_bytes() const { return pos_; }   // valid after `complete`
  size_t bytes_needed() const { return needed_; }
  std::string_view error() const { return error_; }
  void reset();
  // After `complete`: `count` more replies follow, and the reply goes on to their end (a
  // transaction's replies, one unit).
  void expect_more(uint64_t count) { remaining_ += count; }

 private:
  struct Header {
    ParseStatus status;
    size_t next;        // where the value (or its first child) starts
    uint64_t children;  // the values it holds
  };
  Header scan_resp3(char type, const char* data, size_t len, size_t cr);

  size_t pos_ = 0;
  size_t needed_ = 0;
  // Values still expected before the reply is complete, all nesting levels together: a
  // frame needs no stack, so any depth redis produces (a script can nest 40 levels) frames.
  uint64_t remaining_ = 1;
  std::string_view error_;
};

// A complete reply, for reducers.
inline bool is_error_reply(std::string_view reply) { return !reply.empty() && reply[0] == '-'; }
// A null in either protocol: RESP2's $-1 and *-1, RESP3's _.
inline bool is_null_reply(std::string_view reply) {
  return reply == "$-1\r\n" || reply == "*-1\r\n" || reply == "_\r\n";
}
inline bool is_ok_reply(std::string_view reply) { return reply == "+OK\r\n"; }
std::optional<int64_t> integer_reply(std::string_view reply);
// A complete bulk string reply's payload ($<n>\r\n<payload>\r\n); nullopt for anything else.
std::optional<std::string_view> bulk_string_reply(std::string_view reply);
// A server's error reply to AUTH that refuses the credentials (WRONGPASS, NOAUTH, NOPERM, and
// older servers' "-ERR invalid password" / "-ERR ... no password is set"), as opposed to an
// error any connection could get (a full server's "-ERR max number of clients reached").
bool is_login_refusal(std::string_view error_line);

// Replies that follow one another (a transaction's): the last one, and the first error
// among them (empty: none). `replies` must be complete.
std::string_view last_reply(std::string_view replies);
std::string_view first_error_reply(std::string_view replies);

// Splits a complete array reply into the raw bytes of its top-level elements.
// False when `reply` is not an array (or is malformed).
bool split_array_reply(std::string_view reply, std::vector<std::string_view>& elements);

}  // namespace ringproxy::resp
