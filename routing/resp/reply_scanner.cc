#include "routing/resp/reply_scanner.h"

#include <algorithm>
#include <cctype>
#include <charconv>
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

// A length ("$n", "*n"): -1 or a non-negative number of at most 18 digits (no overflow;
// nothing longer is a real length).
bool parse_length(const char* begin, const char* end, int64_t* out) {
  if (end - begin == 2 && begin[0] == '-' && begin[1] == '1') {
    *out = -1;
    return true;
  }
  if (begin == end || end - begin > 18) return false;
  int64_t value = 0;
  for (const char* p = begin; p != end; ++p) {
    if (*p < '0' || *p > '9') return false;
    value = value * 10 + (*p - '0');
  }
  *out = value;
  return true;
}

// An integer reply: any int64, checked without computing it.
bool is_integer(const char* begin, const char* end) {
  int64_t value;
  auto [ptr, ec] = std::from_chars(begin, end, value);
  return ec == std::errc() && ptr == end;
}

}  // namespace

void ReplyScanner::reset() {
  pos_ = 0;
  needed_ = 0;
  remaining_ = 1;
  error_ = {};
}

// One RESP3 header at pos_ (`cr`: its CR): where the value ends and how many values it holds.
// (By value: references would keep scan()'s locals out of registers.)
[[gnu::cold, gnu::noinline]] ReplyScanner::Header ReplyScanner::scan_resp3(char type, const char* data, size_t len,
                                                                           size_t cr) {
  size_t next = cr + 2;
  switch (type) {
    case '_':  // null
    case ',':  // double
    case '(':  // big number
    case '#':  // boolean
      return {ParseStatus::complete, next, 0};
    case '=':    // verbatim string
    case '!': {  // blob error
      int64_t n;
      if (!parse_length(data + pos_ + 1, data + cr, &n) || n < 0) {
        error_ = "invalid blob length in reply";
        return {ParseStatus::error, next, 0};
      }
      next += static_cast<size_t>(n) + 2;
      needed_ = next;
      if (len < next) return {ParseStatus::incomplete, next, 0};  // resume at this header
      if (data[next - 2] != '\r' || data[next - 1] != '\n') {
        error_ = "blob reply not terminated by CRLF";
        return {ParseStatus::error, next, 0};
      }
      return {ParseStatus::complete, next, 0};
    }
    case '~':    // set
    case '>':    // push
    case '%':    // map: a key and a value per entry
    case '|': {  // attribute: a map, then the value it describes (not counted itself)
      int64_t n;
      if (!parse_length(data + pos_ + 1, data + cr, &n) || n < 0 || n > static_cast<int64_t>(UINT64_MAX / 4)) {
        error_ = "invalid aggregate length in reply";
        return {ParseStatus::error, next, 0};
      }
      const uint64_t children = static_cast<uint64_t>(n) * (type == '%' || type == '|' ? 2 : 1) + (type == '|' ? 1 : 0);
      if (children > UINT64_MAX - (remaining_ - 1)) {
        error_ = "multibulk length too large in reply";
        return {ParseStatus::error, next, 0};
      }
      return {ParseStatus::complete, next, children};
    }
    default:
      error_ = "unknown reply type byte";
      return {ParseStatus::error, next, 0};
  }
}

ParseStatus ReplyScanner::scan(const char* data, size_t len) {
  while (remaining_ > 0) {
    if (pos_ >= len) return ParseStatus::incomplete;
    char type = data[pos_];
    size_t cr = find_crlf(data, len, pos_ + 1);
    if (cr == std::string_view::npos) return ParseStatus::incomplete;
    size_t next = cr + 2;
    uint64_t children = 0;
    switch (type) {
      case '+':
      case '-':
        break;
      case ':':
        if (!is_integer(data + pos_ + 1, data + cr)) {
          error_ = "invalid integer reply";
          return ParseStatus::error;
        }
        break;
      case '$': {
        int64_t n;
        if (!parse_length(data + pos_ + 1, data + cr, &n)) {
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
        if (!parse_length(data + pos_ + 1, data + cr, &n)) {
          error_ = "invalid multibulk length in reply";
          return ParseStatus::error;
        }
        if (n > 0) children = static_cast<uint64_t>(n);
        if (children > UINT64_MAX - (remaining_ - 1)) {  // the count would wrap: no real reply is this big
          error_ = "multibulk length too large in reply";
          return ParseStatus::error;
        }
        break;
      }
      default: {  // RESP3's types (a HELLO 3 client's servers), out of RESP2's way
        const Header header = scan_resp3(type, data, len, cr);
        if (header.status != ParseStatus::complete) return header.status;
        next = header.next;
        children = header.children;
        break;
      }
    }
    pos_ = next;
    remaining_ = remaining_ - 1 + children;
  }
  return ParseStatus::complete;
}

std::optional<int64_t> integer_reply(std::string_view reply) {
  if (reply.size() < 4 || reply[0] != ':') return std::nullopt;
  int64_t value;
  auto [ptr, ec] = std::from_chars(reply.data() + 1, reply.data() + reply.size() - 2, value);
  if (ec != std::errc() || ptr != reply.data() + reply.size() - 2) return std::nullopt;
  return value;
}

std::optional<std::string_view> bulk_string_reply(std::string_view reply) {
  if (reply.size() < 5 || reply[0] != '$') return std::nullopt;
  const size_t cr = find_crlf(reply.data(), reply.size(), 1);
  int64_t n;
  if (cr == std::string_view::npos || !parse_length(reply.data() + 1, reply.data() + cr, &n) || n < 0) return std::nullopt;
  if (cr + 2 + static_cast<size_t>(n) + 2 != reply.size()) return std::nullopt;
  return reply.substr(cr + 2, static_cast<size_t>(n));
}

bool split_array_reply(std::string_view reply, std::vector<std::string_view>& elements) {
  elements.clear();
  if (reply.empty() || (reply[0] != '*' && reply[0] != '~')) return false;  // (a RESP3 set too)
  size_t cr = find_crlf(reply.data(), reply.size(), 1);
  int64_t n;
  if (cr == std::string_view::npos || !parse_length(reply.data() + 1, reply.data() + cr, &n)) return false;
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

namespace {

// Calls `each` with every top-level reply of `replies` until it returns false.
template <typename Each>
void for_each_reply(std::string_view replies, Each each) {
  size_t pos = 0;
  while (pos < replies.size()) {
    ReplyScanner scanner;
    std::string_view rest = replies.substr(pos);
    if (scanner.scan(rest.data(), rest.size()) != ParseStatus::complete) return;
    if (!each(rest.substr(0, scanner.reply_bytes()))) return;
    pos += scanner.reply_bytes();
  }
}

}  // namespace

std::string_view last_reply(std::string_view replies) {
  std::string_view last;
  for_each_reply(replies, [&](std::string_view reply) {
    last = reply;
    return true;
  });
  return last;
}

std::string_view first_error_reply(std::string_view replies) {
  std::string_view error;
  for_each_reply(replies, [&](std::string_view reply) {
    if (is_error_reply(reply)) error = reply;
    return error.empty();
  });
  return error;
}

bool is_login_refusal(std::string_view line) {
  for (std::string_view code : {"-WRONGPASS", "-NOAUTH", "-NOPERM"}) {
    if (line.rfind(code, 0) == 0) return true;
  }
  if (line.rfind("-ERR", 0) != 0) return false;
  auto mentions = [&](std::string_view word) {
    return std::search(line.begin(), line.end(), word.begin(), word.end(), [](char a, char b) {
             return std::tolower(static_cast<unsigned char>(a)) == b;
           }) != line.end();
  };
  return mentions("password") || mentions("auth");
}

}  // namespace ringproxy::resp
