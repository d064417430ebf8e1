// libFuzzer target: resp::ReplyScanner over a stream of backend bytes, and the one-shot
// helpers the reducers use (split_array_reply, integer_reply).
//
// Input: 2 control bytes (where each reply is split, a fraction of its length), then the
// bytes. Each reply is scanned whole, in two pieces and in three; the three must agree, and
// agree with a plain recursive scanner written from the RESP2 and RESP3 grammar (the oracle: the
// real scanner counts the values still expected instead of recursing).
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "routing/resp/reply_scanner.h"

namespace {

using ringproxy::resp::ParseStatus;
using ringproxy::resp::ReplyScanner;


struct Outcome {
  ParseStatus status = ParseStatus::incomplete;
  size_t bytes = 0;  // complete: the reply's length
};

Outcome scan_in_steps(std::string_view input, std::vector<size_t> ends) {
  ReplyScanner scanner;
  Outcome out;
  for (size_t end : ends) {
    out.status = scanner.scan(input.data(), end);
    if (out.status != ParseStatus::incomplete) break;
  }
  if (out.status == ParseStatus::complete) out.bytes = scanner.reply_bytes();
  if (out.status == ParseStatus::error) CHECK(!scanner.error().empty());
  return out;
}

// The oracle: RESP2 replies by recursive descent. Each value takes at least 3 bytes, so
// the depth is bounded by the input's length (libFuzzer's -max_len).
class Reference {
 public:
  explicit Reference(std::string_view in) : in_(in) {}

  // Returns the end of the value at `pos`, or sets status_.
  size_t value(size_t pos) {
    if (pos >= in_.size()) return stop(ParseStatus::incomplete);
    const size_t cr = in_.find("\r\n", pos + 1);
    if (cr == std::string_view::npos) return stop(ParseStatus::incomplete);
    const std::string_view line = in_.substr(pos + 1, cr - pos - 1);
    const size_t next = cr + 2;
    switch (in_[pos]) {
      case '+':
      case '-':
        return leaf(next);
      case ':': {
        int64_t v;
        auto [ptr, ec] = std::from_chars(line.data(), line.data() + line.size(), v);
        if (ec != std::errc() || ptr != line.data() + line.size()) return stop(ParseStatus::error);
        return leaf(next);
      }
      case '$': {
        int64_t n;
        if (!length(line, &n)) return stop(ParseStatus::error);
        if (n < 0) return leaf(next);
        if (in_.size() - next < static_cast<uint64_t>(n) + 2) return stop(ParseStatus::incomplete);
        if (in_.substr(next + n, 2) != "\r\n") return stop(ParseStatus::error);
        return leaf(next + n + 2);
      }
      case '*': {
        int64_t n;
        if (!length(line, &n)) return stop(ParseStatus::error);
        // The scanner's one limit: at most 2^64 - 1 values expected at once (nothing real
        // comes near; counted here without wrapping).
        expected_ += n > 0 ? static_cast<unsigned __int128>(n) : 0;
        if (expected_ - 1 > UINT64_MAX) return stop(ParseStatus::error);
        expected_ -= 1;  // the array itself is done; its elements are expected
        size_t at = next;
        for (int64_t i = 0; i < n; ++i) {
          at = value(at);
          if (status_ != ParseStatus::complete) return 0;
        }
        return at;
      }
      // RESP3 (a HELLO 3 client's servers): one-line scalars, blobs, and aggregates (a map
      // holds 2n values; an attribute's 2n are followed by the value it describes).
      case '_':
      case ',':
      case '(':
      case '#':
        return leaf(next);
      case '=':
      case '!': {
        int64_t n;
        if (!length(line, &n) || n < 0) return stop(ParseStatus::error);
        if (in_.size() - next < static_cast<uint64_t>(n) + 2) return stop(ParseStatus::incomplete);
        if (in_.substr(next + n, 2) != "\r\n") return stop(ParseStatus::error);
        return leaf(next + n + 2);
      }
      case '~':
      case '>':
      case '%':
      case '|': {
        int64_t n;
        if (!length(line, &n) || n < 0) return stop(ParseStatus::error);
        const bool pairs = in_[pos] == '%' || in_[pos] == '|';
        const unsigned __int128 count =
            static_cast<unsigned __int128>(n) * (pairs ? 2 : 1) + (in_[pos] == '|' ? 1 : 0);
        expected_ += count;
        if (expected_ - 1 > UINT64_MAX) return stop(ParseStatus::error);
        expected_ -= 1;
        size_t at = next;
        for (unsigned __int128 i = 0; i < count; ++i) {
          at = value(at);
          if (status_ != ParseStatus::complete) return 0;
        }
        return at;
      }
      default:
        return stop(ParseStatus::error);
    }
  }
  ParseStatus status() const { return status_; }

 private:
  // "-1", or 0 to 18 digits (RESP2 lengths as redis writes them).
  static bool length(std::string_view s, int64_t* out) {
    if (s == "-1") {
      *out = -1;
      return true;
    }
    if (s.empty() || s.size() > 18) return false;
    int64_t v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    *out = v;
    return true;
  }
  size_t leaf(size_t end) {
    expected_ -= 1;
    return end;
  }
  size_t stop(ParseStatus s) {
    status_ = s;
    return 0;
  }

  std::string_view in_;
  ParseStatus status_ = ParseStatus::complete;
  unsigned __int128 expected_ = 1;  // values announced and not yet read
};

void check_helpers(std::string_view reply) {
  std::vector<std::string_view> elements;
  if (ringproxy::resp::split_array_reply(reply, elements)) {
    CHECK(reply[0] == '*' || reply[0] == '~');  // (a RESP3 set splits as an array does)
    // The elements are consecutive complete replies that end where the reply ends.
    size_t total = 0;
    for (std::string_view e : elements) {
      CHECK(e.data() >= reply.data() && e.data() + e.size() <= reply.data() + reply.size());
      ReplyScanner s;
      CHECK(s.scan(e.data(), e.size()) == ParseStatus::complete && s.reply_bytes() == e.size());
      total += e.size();
    }
    if (!elements.empty()) CHECK(elements.back().data() + elements.back().size() == reply.data() + reply.size());
    CHECK(total < reply.size());
  }
  // A complete integer reply is an int64 (the scanner checked it), and nothing else is.
  const std::optional<int64_t> v = ringproxy::resp::integer_reply(reply);
  CHECK(v.has_value() == (reply[0] == ':'));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint32_t split_fraction = data[0] | (data[1] << 8);
  const std::string stream(reinterpret_cast<const char*>(data) + 2, size - 2);

  size_t start = 0;
  for (int replies = 0; start < stream.size() && replies < 64; ++replies) {
    const std::string_view input = std::string_view(stream).substr(start);
    const size_t n = input.size();
    const size_t split = static_cast<size_t>(uint64_t{split_fraction} * n / 65535);
    const size_t third = split + (n - split) / 2;

    const Outcome whole = scan_in_steps(input, {n});
    const Outcome two = scan_in_steps(input, {split, n});
    const Outcome three = scan_in_steps(input, {split, third, n});
    CHECK(whole.status == two.status && whole.bytes == two.bytes);
    CHECK(whole.status == three.status && whole.bytes == three.bytes);

    Reference reference(input);
    const size_t end = reference.value(0);
    CHECK(reference.status() == whole.status);
    if (whole.status != ParseStatus::complete) break;
    CHECK(end == whole.bytes);
    CHECK(whole.bytes > 0 && whole.bytes <= n);

    check_helpers(input.substr(0, whole.bytes));
    start += whole.bytes;
  }
  return 0;
}
