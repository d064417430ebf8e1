#include "routing/scripts.h"

#include <openssl/sha.h>

#include <cctype>

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
  if (by_sha_.count(sha) != 0) return true;
  if (bytes_ + body.size() > max_bytes_) return false;
  bytes_ += body.size();
  by_sha_.emplace(std::move(sha), std::string(body));
  return true;
}

const std::string* ScriptBook::body(std::string_view sha) const {
  if (sha.size() != 2 * SHA_DIGEST_LENGTH) return nullptr;
  std::string lower(sha);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto it = by_sha_.find(lower);
  return it == by_sha_.end() ? nullptr : &it->second;
}

void ScriptBook::forget_all() {
  by_sha_.clear();
  bytes_ = 0;
}

}  // namespace ringproxy::routing
