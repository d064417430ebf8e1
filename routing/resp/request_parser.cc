#include "routing/resp/request_parser.h"

#include <algorithm>
#include <cstring>

namespace ringproxy::resp {
namespace {

// Redis's own limits for the parts of a request that are not bulk payloads.
constexpr size_t kMaxInlineBytes = 64 * 1024;
constexpr size_t kMaxHeaderLine = 64 * 1024;
// ArgRef holds uint32 offsets and lengths: no request may be longer, whatever the limit says.
constexpr uint64_t kMaxRepresentableRequest = UINT32_MAX;

// Finds "\r\n" at or after `from`; returns the index of '\r' or npos.
size_t find_crlf(const char* data, size_t len, size_t from) {
  while (from < len) {
    const void* cr = std::memchr(data + from, '\r', len - from);
    if (cr == nullptr) return std::string_view::npos;
    size_t at = static_cast<const char*>(cr) - data;
    if (at + 1 >= len) return std::string_view::npos;  // '\n' not here yet
    if (data[at + 1] == '\n') return at;
    from = at + 1;
  }
  return std::string_view::npos;
}

// Parses a decimal integer in [begin, end); false unless the whole range is one.
// At most 18 digits: cannot overflow, and no valid count or length is longer.
bool parse_int(const char* begin, const char* end, int64_t* out) {
  if (begin == end || end - begin > 19) return false;
  if (end - begin == 19 && *begin != '-') return false;
  bool negative = false;
  if (*begin == '-') {
    negative = true;
    if (++begin == end) return false;
  }
  int64_t value = 0;
  for (const char* p = begin; p != end; ++p) {
    if (*p < '0' || *p > '9') return false;
    value = value * 10 + (*p - '0');
  }
  *out = negative ? -value : value;
  return true;
}

// Reads "<digits>\r\n" starting at data[pos] (after the type byte) in one pass.
// Returns the position after "\r\n"; 0 when more bytes are needed; -1 when malformed.
// Only non-negative numbers of at most 18 digits: every caller rejects the rest anyway.
[[gnu::always_inline]] inline int64_t read_count_line(const char* data, size_t len, size_t pos, int64_t* out) {
  int64_t value = 0;
  size_t start = pos;
  while (pos < len && data[pos] >= '0' && data[pos] <= '9') {
    if (pos - start == 18) return -1;  // checked first: a 19th digit could overflow
    value = value * 10 + (data[pos] - '0');
    ++pos;
  }
  if (pos + 1 >= len) return len - start > 20 ? -1 : 0;
  if (pos == start || data[pos] != '\r' || data[pos + 1] != '\n') return -1;
  *out = value;
  return static_cast<int64_t>(pos + 2);
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

void RequestParser::reset() {
  args_.clear();
  pos_ = 0;
  needed_ = 0;
  argc_ = -1;
  bulk_len_ = -1;
  inline_ = false;
  error_ = {};
}

ParseStatus RequestParser::fail(std::string_view why) {
  error_ = why;
  return ParseStatus::error;
}

ParseStatus RequestParser::parse(char* data, size_t len) {
  if (pos_ == 0 && argc_ < 0 && !inline_) {
    if (len == 0) return ParseStatus::incomplete;
    inline_ = data[0] != '*';
  }
  return inline_ ? parse_inline(data, len) : parse_multibulk(data, len);
}

ParseStatus RequestParser::parse_multibulk(const char* data, size_t len) {
  if (argc_ < 0) {
    int64_t count_fast;
    int64_t next = read_count_line(data, len, 1, &count_fast);
    if (next > 0 && count_fast > 0 && static_cast<uint64_t>(count_fast) <= limits_.max_arguments) {
      argc_ = count_fast;
      pos_ = static_cast<size_t>(next);
      args_.reserve(static_cast<size_t>(count_fast < 1024 ? count_fast : 1024));
    } else if (next == 0) {
      return ParseStatus::incomplete;
    }
  }
  if (argc_ < 0) {  // negative, zero, too many or malformed: the careful path says which
    size_t cr = find_crlf(data, len, 1);
    if (cr == std::string_view::npos) {
      if (len > kMaxHeaderLine) return fail("too big mbulk count string");
      return ParseStatus::incomplete;
    }
    int64_t count;
    if (!parse_int(data + 1, data + cr, &count) || count > INT32_MAX) {
      return fail("invalid multibulk length");
    }
    pos_ = cr + 2;
    if (count <= 0) {  // "*0" and "*-1" are empty requests, as in Redis
      argc_ = 0;
      return ParseStatus::complete;
    }
    if (static_cast<uint64_t>(count) > limits_.max_arguments) {
      return fail("too many arguments in request (max_arguments)");
    }
    argc_ = count;
    args_.reserve(static_cast<size_t>(count < 1024 ? count : 1024));
  }

  while (static_cast<int64_t>(args_.size()) < argc_) {
    if (bulk_len_ < 0) {
      if (pos_ >= len) return ParseStatus::incomplete;
      if (data[pos_] != '$') {
        // Redis's words, the byte it got included (the error is read before the next parse).
        static char expected[] = "expected '$', got ' '";
        expected[sizeof(expected) - 3] = data[pos_];
        error_ = expected;
        return ParseStatus::error;
      }
      int64_t bulk;
      int64_t next = read_count_line(data, len, pos_ + 1, &bulk);
      if (next == 0) return ParseStatus::incomplete;
      if (next < 0) return fail("invalid bulk length");
      if (static_cast<uint64_t>(next) + static_cast<uint64_t>(bulk) + 2 >
          std::min(limits_.max_request_bytes, kMaxRepresentableRequest)) {
        return fail("invalid bulk length (max_request_bytes)");
      }
      bulk_len_ = bulk;
      pos_ = static_cast<size_t>(next);
    }
    size_t end = pos_ + static_cast<size_t>(bulk_len_);
    needed_ = end + 2;
    if (len < end + 2) return ParseStatus::incomplete;
    if (data[end] != '\r' || data[end + 1] != '\n') return fail("bulk string not terminated by CRLF");
    args_.push_back({static_cast<uint32_t>(pos_), static_cast<uint32_t>(bulk_len_)});
    pos_ = end + 2;
    bulk_len_ = -1;
  }
  return ParseStatus::complete;
}

// Inline commands ("SET k v\r\n"), split like Redis's sdssplitargs: whitespace separated,
// "double quotes" with \n \r \t \b \a \\ \" \xHH escapes, 'single quotes' with \'.
// Quoted arguments are unescaped in place (the result is never longer than the input).
ParseStatus RequestParser::parse_inline(char* data, size_t len) {
  const void* nl = std::memchr(data, '\n', len);
  if (nl == nullptr) {
    if (len > kMaxInlineBytes) return fail("too big inline request");
    return ParseStatus::incomplete;
  }
  size_t line_end = static_cast<const char*>(nl) - data;
  if (line_end > kMaxInlineBytes) return fail("too big inline request");
  pos_ = line_end + 1;
  if (line_end > 0 && data[line_end - 1] == '\r') --line_end;

  size_t p = 0;
  while (true) {
    while (p < line_end && is_space(data[p])) ++p;
    if (p >= line_end) break;
    if (args_.size() >= limits_.max_arguments) return fail("too many arguments in request (max_arguments)");
    char quote = data[p];
    if (quote != '"' && quote != '\'') {
      size_t start = p;
      while (p < line_end && !is_space(data[p])) ++p;
      args_.push_back({static_cast<uint32_t>(start), static_cast<uint32_t>(p - start)});
      continue;
    }
    size_t start = ++p;
    size_t out = start;
    bool closed = false;
    while (p < line_end) {
      char c = data[p];
      if (c == quote) {
        closed = true;
        ++p;
        break;
      }
      if (c == '\\' && p + 1 < line_end) {
        char e = data[p + 1];
        if (quote == '\'') {
          if (e == '\'') { data[out++] = '\''; p += 2; continue; }
        } else if (e == 'x' && p + 3 < line_end && hex_value(data[p + 2]) >= 0 && hex_value(data[p + 3]) >= 0) {
          data[out++] = static_cast<char>(hex_value(data[p + 2]) * 16 + hex_value(data[p + 3]));
          p += 4;
          continue;
        } else {
          switch (e) {
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'b': c = '\b'; break;
            case 'a': c = '\a'; break;
            default: c = e; break;
          }
          data[out++] = c;
          p += 2;
          continue;
        }
      }
      data[out++] = c;
      ++p;
    }
    // Redis requires a quoted argument to be closed and followed by a space or the end.
    if (!closed || (p < line_end && !is_space(data[p]))) return fail("unbalanced quotes in request");
    args_.push_back({static_cast<uint32_t>(start), static_cast<uint32_t>(out - start)});
  }
  return ParseStatus::complete;
}

}  // namespace ringproxy::resp
