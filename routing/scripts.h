// The Lua scripts clients loaded (SCRIPT LOAD) or ran (EVAL), by SHA1: a server that answers
// NOSCRIPT to EVALSHA (it restarted, or was down when the script was loaded everywhere) gets
// the script again with the same call, as EVAL (data_path.cc). Bounded: past `max_bytes`, new
// scripts are not remembered (their EVALSHA still works wherever a server has them).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>

namespace ringproxy::routing {

class ScriptBook {
 public:
  explicit ScriptBook(size_t max_bytes = size_t{64} << 20) : max_bytes_(max_bytes) {}

  // False when it is full (the script is not remembered).
  bool remember(std::string_view body);
  // The body whose SHA1 is `sha` (40 hex digits, either case), or nullptr.
  const std::string* body(std::string_view sha) const;
  void forget_all();  // SCRIPT FLUSH
  size_t size() const { return by_sha_.size(); }
  size_t bytes() const { return bytes_; }

 private:
  std::unordered_map<std::string, std::string> by_sha_;
  size_t bytes_ = 0;
  size_t max_bytes_;
};

// SHA1 as redis names scripts: 40 lower-case hex digits.
std::string script_sha1(std::string_view body);

// A server's reply saying it does not have the script EVALSHA named.
inline bool is_noscript_reply(std::string_view reply) { return reply.substr(0, 9) == "-NOSCRIPT"; }

}  // namespace ringproxy::routing
