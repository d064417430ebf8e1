// libFuzzer target: resp::RequestParser over a pipeline of client bytes.
//
// Input: 3 control bytes, then the client's bytes.
//   [0..1] where the bytes are split (a fraction of the request's length, 0-65535)
//   [2]    the parser's limits (defaults, or small ones that the fuzzer can hit)
// Each request of the pipeline is parsed three ways: whole; first `split` bytes then all;
// and in three growing chunks. All must agree (status, request_bytes, arguments, error,
// and the bytes an inline request was unescaped into), and every argument must lie inside
// the request's bytes.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "routing/resp/request_parser.h"

namespace {

using ringproxy::resp::ArgRef;
using ringproxy::resp::ParserLimits;
using ringproxy::resp::ParseStatus;
using ringproxy::resp::RequestParser;


struct Outcome {
  ParseStatus status = ParseStatus::incomplete;
  size_t bytes = 0;
  std::vector<ArgRef> args;
  std::string error;
  bool is_inline = false;
  std::string buffer;  // the bytes after parsing (inline arguments are unescaped in place)
};

// Feeds `input` as the prefixes ends[0] < ends[1] < ... (the last is the whole input).
Outcome parse_in_steps(const std::string& input, std::vector<size_t> ends, ParserLimits limits) {
  Outcome out;
  out.buffer = input;
  RequestParser parser(limits);
  for (size_t end : ends) {
    out.status = parser.parse(out.buffer.data(), end);
    if (out.status != ParseStatus::incomplete) break;
    // Nothing is announced beyond what the limits allow.
    CHECK(parser.bytes_needed() <= limits.max_request_bytes);
  }
  if (out.status == ParseStatus::complete) {
    out.bytes = parser.request_bytes();
    out.args.assign(parser.args().begin(), parser.args().end());
    out.is_inline = parser.is_inline();
  } else if (out.status == ParseStatus::error) {
    out.error = std::string(parser.error());
    CHECK(!out.error.empty());
  }
  return out;
}

bool same(const Outcome& a, const Outcome& b) {
  if (a.status != b.status || a.bytes != b.bytes || a.error != b.error || a.is_inline != b.is_inline) return false;
  if (a.args.size() != b.args.size()) return false;
  for (size_t i = 0; i < a.args.size(); ++i) {
    if (a.args[i].offset != b.args[i].offset || a.args[i].length != b.args[i].length) return false;
  }
  return a.buffer == b.buffer;
}

ParserLimits limits_from(uint8_t selector) {
  switch (selector % 4) {
    case 1: return {.max_request_bytes = 64, .max_arguments = 3};
    case 2: return {.max_request_bytes = uint64_t{1} + selector, .max_arguments = 1u << 20};
    case 3: return {.max_request_bytes = 64ull << 20, .max_arguments = 1u + (selector >> 2)};
    default: return {};
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const uint32_t split_fraction = data[0] | (data[1] << 8);
  const ParserLimits limits = limits_from(data[2]);
  std::string stream(reinterpret_cast<const char*>(data) + 3, size - 3);

  // The pipeline: request after request, as ClientSession::parse_requests does.
  size_t start = 0;
  for (int requests = 0; start < stream.size() && requests < 64; ++requests) {
    const std::string input = stream.substr(start);
    const size_t n = input.size();
    const size_t split = static_cast<size_t>(uint64_t{split_fraction} * n / 65535);
    const size_t third = split + (n - split) / 2;

    const Outcome whole = parse_in_steps(input, {n}, limits);
    const Outcome two = parse_in_steps(input, {split, n}, limits);
    const Outcome three = parse_in_steps(input, {split, third, n}, limits);
    CHECK(same(whole, two));
    CHECK(same(whole, three));

    if (whole.status != ParseStatus::complete) break;
    CHECK(whole.bytes > 0);
    CHECK(whole.bytes <= n);
    CHECK(whole.args.size() <= limits.max_arguments);
    for (const ArgRef& arg : whole.args) {
      // Views into the request's own bytes, nothing beyond them.
      CHECK(uint64_t{arg.offset} + arg.length <= whole.bytes);
      if (!whole.is_inline) {
        // A multibulk argument is the payload of a "$<length>\r\n...\r\n" bulk, in place.
        CHECK(arg.offset >= 4);
        CHECK(input.compare(arg.offset - 2, 2, "\r\n") == 0);
        CHECK(input.compare(arg.offset + arg.length, 2, "\r\n") == 0);
      }
    }
    if (!whole.is_inline) {
      CHECK(input[0] == '*');
      CHECK(whole.bytes <= limits.max_request_bytes || whole.args.empty());
      CHECK(whole.buffer == input);  // multibulk requests are never rewritten
    } else {
      CHECK(input[0] != '*');
      CHECK(whole.buffer.compare(whole.bytes, std::string::npos, input, whole.bytes) == 0);
    }
    start += whole.bytes;
  }
  return 0;
}
