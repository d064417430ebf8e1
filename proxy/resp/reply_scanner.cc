#include "proxy/resp/reply_scanner.h"

#include <cstring>

namespace ringproxy::resp {
namespace {

size_t find_crlf(const char* data, size_t len, size_t from) {
  while (from < len) {
    const void* cr = std::memchr(data + from, '\r', len - from);
    if (cr == nullptr) return std::string_view::npos;
    size_t at = static_cast<const char*>(cr) - data;
    if (at + 1 >= len) return std::string_view::npos;
    if (data[at + 1] == '\n') return at;
    from = at + 1;
  }
  return std::string_view::npos;
}

bool parse_int(const char* begin, const char* end, int64_t* out) {
  if (begin == end || end - begin > 19) return false;  // 18 digits and a sign: no overflow
  bool negative = *begin == '-';
  if (negative && ++begin == end) return false;
  if (end - begin > 18) return false;
  uint64_t value = 0;
  for (const char* p = begin; p != end; ++p) {
    if (*p < '0' || *p > '9') return false;
    value = value * 10 + static_cast<uint64_t>(*p - '0');
  }
  *out = negative ? -static_cast<int64_t>(value) : static_cast<int64_t>(value);
  return true;
}

}  // namespace

void ReplyScanner::reset() {
  pos_ = 0;
  needed_ = 0;
  depth_ = 0;
  error_ = {};
}

ParseStatus ReplyScanner::scan(const char* data, size_t len) {
  while (true) {
    if (pos_ >= len) return ParseStatus::incomplete;
    char type = data[pos_];
    size_t cr = find_crlf(data, len, pos_ + 1);
    if (cr == std::string_view::npos) return ParseStatus::incomplete;
    size_t next = cr + 2;
    switch (type) {
      case '+':
      case '-':
        break;
      case ':': {
        int64_t unused;
        if (!parse_int(data + pos_ + 1, data + cr, &unused)) {
          error_ = "invalid integer reply";
          return ParseStatus::error;
        }
        break;
      }
      case '$': {
        int64_t n;
        if (!parse_int(data + pos_ + 1, data + cr, &n) || n < -1) {
          error_ = "invalid bulk length in reply";
          return ParseStatus::error;
        }
        if (n >= 0) {
          next += static_cast<size_t>(n) + 2;
          needed_ = next;
          if (len < next) return ParseStatus::incomplete;  // resume at this header
          if (data[next - 2] != '\r' || data[next - 1] != '\n') {
            error_ = "bulk reply not terminated by CRLF";
            return ParseStatus::error;
          }
        }
        break;
      }
      case '*': {
        int64_t n;
        if (!parse_int(data + pos_ + 1, data + cr, &n) || n < -1) {
          error_ = "invalid multibulk length in reply";
          return ParseStatus::error;
        }
        if (n > 0) {
          if (depth_ == kMaxDepth) {
            error_ = "reply nested too deeply";
            return ParseStatus::error;
          }
          // Counts this array as an element of its parent before descending.
          if (depth_ > 0) --remaining_[depth_ - 1];
          remaining_[depth_++] = n;
          pos_ = next;
          continue;
        }
        break;
      }
      default:
        error_ = "unknown reply type byte";
        return ParseStatus::error;
    }
    pos_ = next;
    if (depth_ == 0) return ParseStatus::complete;
    --remaining_[depth_ - 1];
    while (depth_ > 0 && remaining_[depth_ - 1] == 0) --depth_;
    if (depth_ == 0) return ParseStatus::complete;
  }
}

std::optional<int64_t> integer_reply(std::string_view reply) {
  if (reply.size() < 4 || reply[0] != ':') return std::nullopt;
  int64_t value;
  if (!parse_int(reply.data() + 1, reply.data() + reply.size() - 2, &value)) return std::nullopt;
  return value;
}

bool split_array_reply(std::string_view reply, std::vector<std::string_view>& elements) {
  elements.clear();
  if (reply.empty() || reply[0] != '*') return false;
  size_t cr = find_crlf(reply.data(), reply.size(), 1);
  int64_t n;
  if (cr == std::string_view::npos || !parse_int(reply.data() + 1, reply.data() + cr, &n)) return false;
  size_t pos = cr + 2;
  for (int64_t i = 0; i < n; ++i) {
    ReplyScanner scanner;
    std::string_view rest = reply.substr(pos);
    if (scanner.scan(rest.data(), rest.size()) != ParseStatus::complete) return false;
    elements.push_back(rest.substr(0, scanner.reply_bytes()));
    pos += scanner.reply_bytes();
  }
  return pos == reply.size();
}

}  // namespace ringproxy::resp
