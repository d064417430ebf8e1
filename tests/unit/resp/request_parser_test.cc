#include "routing/resp/request_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ringproxy::resp {
namespace {

struct Parsed {
  ParseStatus status;
  std::vector<std::string> args;
  size_t bytes = 0;
  std::string error;
};

// Feeds `input` growing one chunk at a time: first `split` bytes, then all of it.
Parsed parse_split(std::string input, size_t split, ParserLimits limits = {}) {
  RequestParser parser(limits);
  Parsed out;
  out.status = parser.parse(input.data(), split);
  if (out.status == ParseStatus::incomplete) out.status = parser.parse(input.data(), input.size());
  if (out.status == ParseStatus::complete) {
    out.bytes = parser.request_bytes();
    for (ArgRef a : parser.args()) {
      // Views point into the caller's buffer: offsets, not copies.
      EXPECT_LE(a.offset + a.length, input.size());
      out.args.emplace_back(input.data() + a.offset, a.length);
    }
  }
  out.error = std::string(parser.error());
  return out;
}

TEST(RequestParser, MultibulkEverySplitPoint) {
  const std::string req = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n";
  for (size_t split = 0; split <= req.size(); ++split) {
    Parsed p = parse_split(req, split);
    ASSERT_EQ(p.status, ParseStatus::complete) << "split " << split;
    EXPECT_EQ(p.args, (std::vector<std::string>{"SET", "key", "va\r\nl"})) << "split " << split;
    EXPECT_EQ(p.bytes, req.size());
  }
}

TEST(RequestParser, ByteByByte) {
  std::string req = "*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n";
  RequestParser parser;
  for (size_t n = 0; n < req.size(); ++n) {
    ASSERT_EQ(parser.parse(req.data(), n), ParseStatus::incomplete) << n;
  }
  ASSERT_EQ(parser.parse(req.data(), req.size()), ParseStatus::complete);
  ASSERT_EQ(parser.args().size(), 2u);
  EXPECT_EQ(parser.args()[1].offset, req.find("0123456789"));
}

TEST(RequestParser, StopsAtRequestBoundaryInPipeline) {
  std::string two = "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
  RequestParser parser;
  ASSERT_EQ(parser.parse(two.data(), two.size()), ParseStatus::complete);
  EXPECT_EQ(parser.request_bytes(), 14u);
  parser.reset();
  ASSERT_EQ(parser.parse(two.data() + 14, two.size() - 14), ParseStatus::complete);
  EXPECT_EQ(parser.args().size(), 2u);
}

TEST(RequestParser, EmptyAndBinaryArguments) {
  std::string req = std::string("*2\r\n$0\r\n\r\n$3\r\n\0\r\n\r\n", 19);
  Parsed p = parse_split(req, 5);
  ASSERT_EQ(p.status, ParseStatus::complete);
  EXPECT_EQ(p.args[0], "");
  EXPECT_EQ(p.args[1], std::string("\0\r\n", 3));
}

TEST(RequestParser, EmptyRequestsComplete) {
  for (std::string req : {"*0\r\n", "*-1\r\n", "\r\n", "\n", "   \r\n"}) {
    Parsed p = parse_split(req, 0);
    EXPECT_EQ(p.status, ParseStatus::complete) << req;
    EXPECT_TRUE(p.args.empty()) << req;
    EXPECT_EQ(p.bytes, req.size()) << req;
  }
}

TEST(RequestParser, InlineCommands) {
  struct Case {
    std::string in;
    std::vector<std::string> args;
  } cases[] = {
      {"PING\r\n", {"PING"}},
      {"set  k   v\n", {"set", "k", "v"}},
      {"SET k \"a b\"\r\n", {"SET", "k", "a b"}},
      {"SET k \"\\x41\\n\\\"\"\r\n", {"SET", "k", "A\n\""}},
      {"SET k 'it\\'s'\r\n", {"SET", "k", "it's"}},
      {"SET k \"\"\r\n", {"SET", "k", ""}},
  };
  for (const Case& c : cases) {
    for (size_t split = 0; split <= c.in.size(); ++split) {
      Parsed p = parse_split(c.in, split);
      ASSERT_EQ(p.status, ParseStatus::complete) << c.in << " split " << split;
      EXPECT_EQ(p.args, c.args) << c.in;
    }
  }
}

TEST(RequestParser, MalformedInputIsAnError) {
  struct Case {
    std::string in;
    std::string error;
  } cases[] = {
      {"*x\r\n", "invalid multibulk length"},
      {"*1\r\n+PING\r\n", "expected '$'"},
      {"*1\r\n$-3\r\n", "invalid bulk length"},
      {"*1\r\n$abc\r\n", "invalid bulk length"},
      {"*1\r\n$4\r\nPINGxx", "not terminated"},
      {"SET k \"open\r\n", "unbalanced quotes"},
      {"SET k \"a\"b\r\n", "unbalanced quotes"},
      {"*99999999999999999999\r\n", "invalid multibulk length"},
  };
  for (const Case& c : cases) {
    Parsed p = parse_split(c.in, c.in.size());
    ASSERT_EQ(p.status, ParseStatus::error) << c.in;
    EXPECT_NE(p.error.find(c.error), std::string::npos) << c.in << " -> " << p.error;
  }
}

TEST(RequestParser, Limits) {
  ParserLimits limits{.max_request_bytes = 64, .max_arguments = 3};
  Parsed too_many = parse_split("*4\r\n", 4, limits);
  EXPECT_EQ(too_many.status, ParseStatus::error);
  EXPECT_NE(too_many.error.find("max_arguments"), std::string::npos);

  Parsed too_big = parse_split("*2\r\n$3\r\nSET\r\n$100\r\n", 20, limits);
  EXPECT_EQ(too_big.status, ParseStatus::error);
  EXPECT_NE(too_big.error.find("max_request_bytes"), std::string::npos);

  // A header line that never ends must not be buffered forever.
  std::string endless = "*" + std::string(70 * 1024, '1');
  EXPECT_EQ(parse_split(endless, endless.size()).status, ParseStatus::error);
  std::string endless_inline(70 * 1024, 'a');
  EXPECT_EQ(parse_split(endless_inline, endless_inline.size()).status, ParseStatus::error);
}

// Arguments are uint32 offsets into the request: with max_request_bytes above 4 GiB (the
// loader accepts up to 2^63), a 4 GiB bulk was accepted and its length would be truncated,
// e.g. an MSET split with a 1-byte value. Such a request is refused instead.
TEST(RequestParser, RequestsBeyond4GiBAreRefusedWhateverTheLimit) {
  ParserLimits limits{.max_request_bytes = 8ull << 30, .max_arguments = 1u << 20};
  Parsed p = parse_split("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4294967296\r\n", 30, limits);
  EXPECT_EQ(p.status, ParseStatus::error);
  EXPECT_NE(p.error.find("max_request_bytes"), std::string::npos) << p.error;
  RequestParser parser(limits);
  std::string fits = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4294967000\r\n";
  EXPECT_EQ(parser.parse(fits.data(), fits.size()), ParseStatus::incomplete);
}

TEST(RequestParser, ReportsBytesNeededForLargeArgument) {
  std::string req = "*2\r\n$3\r\nSET\r\n$1000\r\n";
  RequestParser parser;
  ASSERT_EQ(parser.parse(req.data(), req.size()), ParseStatus::incomplete);
  EXPECT_EQ(parser.bytes_needed(), req.size() + 1000 + 2);
}

}  // namespace
}  // namespace ringproxy::resp
