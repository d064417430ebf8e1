// The Lua scripts clients loaded (SCRIPT LOAD) or ran (EVAL), by SHA1, so that an EVALSHA can
// go to the servers as EVAL with its body (data_path.cc note_scripts). Bounded: past
// `max_bytes` the scripts least recently used are forgotten (their EVALSHA then goes as it
// came, and works wherever a server still has them).
#pragma once

#include <cstddef>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

namespace ringproxy::routing {

class ScriptBook {
 public:
  explicit ScriptBook(size_t max_bytes = size_t{64} << 20) : max_bytes_(max_bytes) {}

  // False when the body alone is larger than the bound (it is not remembered).
  bool remember(std::string_view body);
  // The body whose SHA1 is `sha` (40 hex digits, either case), or nullptr. (Used: kept longer.)
  const std::string* body(std::string_view sha);
  void forget_all();  // SCRIPT FLUSH
  size_t size() const { return by_sha_.size(); }
  size_t bytes() const { return bytes_; }

 private:
  struct Entry {
    std::string body;
    std::list<std::string>::iterator in_use_order;
  };
  void used(Entry& entry);

  std::unordered_map<std::string, Entry> by_sha_;
  std::list<std::string> use_order_;  // SHAs, least recently used first
  size_t bytes_ = 0;
  size_t max_bytes_;
};

// SHA1 as redis names scripts: 40 lower-case hex digits.
std::string script_sha1(std::string_view body);

// A server's reply saying it does not have the script EVALSHA named.
inline bool is_noscript_reply(std::string_view reply) { return reply.substr(0, 9) == "-NOSCRIPT"; }

}  // namespace ringproxy::routing
