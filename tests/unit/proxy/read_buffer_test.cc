#include "proxy/net/buffer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "routing/resp/request_parser.h"

namespace ringproxy::proxy {
namespace {

// Reads a pipelined stream in random-sized pieces through ReadBuffer, parsing as the
// client session does (pausing now and then), and checks every request comes out whole.
TEST(ReadBuffer, ParsesAPipelinedStreamReadInRandomPieces) {
  std::mt19937 rng(42);
  std::string stream;
  std::vector<std::string> values;
  for (int i = 0; i < 3000; ++i) {
    std::string value(rng() % 3000, static_cast<char>('a' + i % 26));
    if (i % 97 == 0) value.assign(40000 + rng() % 20000, 'B');  // bigger than a block
    values.push_back(value);
    stream += "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$" + std::to_string(value.size()) + "\r\n" + value + "\r\n";
  }
  ReadBuffer input;
  resp::RequestParser parser;
  std::vector<BlockRef> held;  // requests in flight keep their blocks
  size_t fed = 0, parsed = 0;
  while (parsed < values.size()) {
    auto [space, size] = input.prepare(parser.bytes_needed());
    size_t n = std::min<size_t>({size, stream.size() - fed, 1 + rng() % 5000});
    std::memcpy(space, stream.data() + fed, n);
    fed += n;
    input.commit(n);
    bool pause = rng() % 4 == 0;
    while (input.unconsumed_size() > 0 && !pause) {
      char* start = input.unconsumed();
      resp::ParseStatus status = parser.parse(start, input.unconsumed_size());
      ASSERT_NE(status, resp::ParseStatus::error) << "request " << parsed << ": " << parser.error();
      if (status == resp::ParseStatus::incomplete) break;
      ASSERT_EQ(parser.args().size(), 3u);
      resp::ArgRef value = parser.args()[2];
      ASSERT_EQ(std::string(start + value.offset, value.length), values[parsed]) << parsed;
      held.push_back(input.block());
      if (held.size() > 50) held.erase(held.begin(), held.begin() + 25);
      input.consume(parser.request_bytes());
      parser.reset();
      ++parsed;
      pause = rng() % 16 == 0;
    }
  }
  EXPECT_EQ(fed, stream.size());
}

}  // namespace
}  // namespace ringproxy::proxy
