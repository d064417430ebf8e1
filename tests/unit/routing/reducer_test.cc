#include "routing/reducer.h"

#include <gtest/gtest.h>

namespace ringproxy::routing {
namespace {

TEST(Reducer, MgetElementsGoBackToTheirSlotsWhateverTheReplyOrder) {
  Reducer r(Merge::array_by_position, {{0, 2}, {1}, {3}}, 4);
  EXPECT_FALSE(r.add(2, "*1\r\n$1\r\nd\r\n"));
  EXPECT_FALSE(r.add(0, "*2\r\n$1\r\na\r\n$-1\r\n"));
  EXPECT_FALSE(r.add(0, "*2\r\n$1\r\nX\r\n$1\r\nX\r\n"));  // duplicate: ignored
  EXPECT_TRUE(r.add(1, "*1\r\n$1\r\nb\r\n"));
  std::string out;
  r.finish(out);
  EXPECT_EQ(out, "*4\r\n$1\r\na\r\n$1\r\nb\r\n$-1\r\n$1\r\nd\r\n");
}

TEST(Reducer, SumsIntegers) {
  Reducer r(Merge::sum_integers, {{}, {}, {}}, 0);
  r.add(1, ":2\r\n");
  r.add(0, ":0\r\n");
  r.add(2, ":40\r\n");
  std::string out;
  r.finish(out);
  EXPECT_EQ(out, ":42\r\n");
}

TEST(Reducer, AllOk) {
  Reducer r(Merge::all_ok, {{}, {}}, 0);
  r.add(0, "+OK\r\n");
  r.add(1, "+OK\r\n");
  std::string out;
  r.finish(out);
  EXPECT_EQ(out, "+OK\r\n");
}

TEST(Reducer, FirstErrorInFragmentOrderWins) {
  Reducer r(Merge::sum_integers, {{}, {}, {}}, 0);
  r.add(2, "-ERR shard 'c' down\r\n");
  r.add(1, "-ERR shard 'b' down\r\n");
  r.add(0, ":1\r\n");
  std::string out;
  r.finish(out);
  EXPECT_EQ(out, "-ERR shard 'b' down\r\n");
}

TEST(Reducer, UnexpectedShapesBecomeErrors) {
  std::string out;
  Reducer mget(Merge::array_by_position, {{0, 1}}, 2);
  mget.add(0, "*1\r\n$1\r\na\r\n");  // one element where two were asked
  mget.finish(out);
  EXPECT_EQ(out.rfind("-ERR", 0), 0u) << out;
  out.clear();
  Reducer sum(Merge::sum_integers, {{}}, 0);
  sum.add(0, "+OK\r\n");
  sum.finish(out);
  EXPECT_EQ(out.rfind("-ERR", 0), 0u);
  out.clear();
  Reducer ok(Merge::all_ok, {{}}, 0);
  ok.add(0, ":1\r\n");
  ok.finish(out);
  EXPECT_EQ(out.rfind("-ERR", 0), 0u);
}

// Found by tests/fuzz/routing_fuzz: the sum of the shards' counts overflowed int64 (undefined
// behaviour; a wrapped, negative count otherwise).
TEST(Reducer, SumThatOverflowsIsAnError) {
  for (auto [a, b] : {std::pair{":9223372036854775807\r\n", ":1\r\n"},
                      std::pair{":-9223372036854775808\r\n", ":-1\r\n"}}) {
    Reducer r(Merge::sum_integers, {{}, {}}, 0);
    r.add(0, a);
    r.add(1, b);
    std::string out;
    r.finish(out);
    EXPECT_EQ(out.rfind("-ERR", 0), 0u) << out;
  }
  Reducer edge(Merge::sum_integers, {{}, {}}, 0);
  edge.add(0, ":9223372036854775806\r\n");
  edge.add(1, ":1\r\n");
  std::string out;
  edge.finish(out);
  EXPECT_EQ(out, ":9223372036854775807\r\n");
}

}  // namespace
}  // namespace ringproxy::routing
