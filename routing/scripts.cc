#include "routing/scripts.h"

#include <openssl/sha.h>

#include <cctype>
#include <iterator>

namespace ringproxy::routing {

std::string script_sha1(std::string_view body) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(body.data()), body.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex(2 * SHA_DIGEST_LENGTH, '0');
  for (size_t i = 0; i < SHA_DIGEST_LENGTH; ++i) {
    hex[2 * i] = kHex[digest[i] >> 4];
    hex[2 * i + 1] = kHex[digest[i] & 15];
  }
  return hex;
}

bool ScriptBook::remember(std::string_view body) {
  std::string sha = script_sha1(body);
  if (auto it = by_sha_.find(sha); it != by_sha_.end()) {
    used(it->second);
    return true;
  }
  if (body.size() > max_bytes_) return false;
  while (bytes_ + body.size() > max_bytes_) {  // the least recently used make room
    auto oldest = by_sha_.find(use_order_.front());
    bytes_ -= oldest->second.body.size();
    by_sha_.erase(oldest);
    use_order_.pop_front();
  }
  bytes_ += body.size();
  use_order_.push_back(sha);
  by_sha_.emplace(std::move(sha), Entry{std::string(body), std::prev(use_order_.end())});
  return true;
}

void ScriptBook::used(Entry& entry) { use_order_.splice(use_order_.end(), use_order_, entry.in_use_order); }

const std::string* ScriptBook::body(std::string_view sha) {
  if (sha.size() != 2 * SHA_DIGEST_LENGTH) return nullptr;
  std::string lower(sha);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto it = by_sha_.find(lower);
  if (it == by_sha_.end()) return nullptr;
  used(it->second);
  return &it->second.body;
}

void ScriptBook::forget_all() {
  by_sha_.clear();
  use_order_.clear();
  bytes_ = 0;
}

}  // namespace ringproxy::routing
