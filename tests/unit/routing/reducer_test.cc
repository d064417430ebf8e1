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

namespace ringproxy::routing {
namespace {

std::string scan_reply(const std::string& cursor, const std::string& keys_array) {
  return "*2\r\n$" + std::to_string(cursor.size()) + "\r\n" + cursor + "\r\n" + keys_array;
}

std::string finish_scan(ScanPosition at, const std::string& reply) {
  Reducer r(Merge::scan_cursor, {{}}, 0);
  r.set_scan(at);
  r.add(0, reply);
  std::string out;
  r.finish(out);
  return out;
}

TEST(Reducer, ScanCursorNamesTheShardTheServerAndItsCursor) {
  const std::string keys = "*2\r\n$1\r\na\r\n$1\r\nb\r\n";
  const ScanPosition at{1, 2, 3, 77, 99};  // shard 1 of 3, its server 2; the checks
  const std::string mid = std::to_string(ScanCursor{1, 2, 77, 99, 4711}.encode());
  EXPECT_EQ(finish_scan(at, scan_reply("4711", keys)), scan_reply(mid, keys));
  // The server's 0 ends its shard: the next one, from 0 ...
  const std::string next = std::to_string(ScanCursor{2, 0, 77, 0, 0}.encode());
  EXPECT_EQ(finish_scan(at, scan_reply("0", keys)), scan_reply(next, keys));
  // ... or the end, after the last.
  EXPECT_EQ(finish_scan({2, 0, 3, 77, 5}, scan_reply("0", "*0\r\n")), scan_reply("0", "*0\r\n"));
  EXPECT_EQ(finish_scan({2, 0, 3}, "-ERR shard 'c' down\r\n"), "-ERR shard 'c' down\r\n");
  EXPECT_EQ(finish_scan({0, 0, 3}, ":1\r\n").rfind("-ERR unexpected reply to SCAN", 0), 0u);
  EXPECT_EQ(finish_scan({0, 0, 3}, scan_reply("x", "*0\r\n")).rfind("-ERR unexpected reply to SCAN", 0), 0u);
  // A server cursor past what the proxy's cursor holds (2^34) is an error, never a wrong cursor.
  EXPECT_EQ(finish_scan({0, 0, 3}, scan_reply(std::to_string(uint64_t{1} << 40), "*0\r\n")).rfind("-ERR", 0), 0u);
}

TEST(Reducer, ConcatArraysJoinsEveryShardsElements) {
  Reducer r(Merge::concat_arrays, {{}, {}, {}}, 0);
  const std::vector<std::pair<uint32_t, std::string>> replies = {
      {2, "*1\r\n$1\r\nc\r\n"}, {0, "*2\r\n$1\r\na\r\n$2\r\nbb\r\n"}, {1, "*0\r\n"}};
  for (const auto& [fragment, reply] : replies) r.add(fragment, reply);  // (views: the replies outlive finish)
  std::string merged;
  r.finish(merged);
  EXPECT_EQ(merged, "*3\r\n$1\r\na\r\n$2\r\nbb\r\n$1\r\nc\r\n");
}

}  // namespace
}  // namespace ringproxy::routing

namespace ringproxy::routing {
namespace {

std::string reduce(Merge merge, const std::vector<std::string>& replies) {
  Reducer r(merge, std::vector<std::vector<uint32_t>>(replies.size()), 0);
  for (uint32_t i = 0; i < replies.size(); ++i) r.add(i, replies[i]);
  std::string out;
  r.finish(out);
  return out;
}

TEST(Reducer, AnyKeyPrefersItsFirstChoiceAndIsNilOnlyWhenEveryShardIs) {
  Reducer r(Merge::any_key, {{}, {}, {}}, 0);
  r.set_first_choice(1);
  const std::vector<std::string> replies = {"$1\r\na\r\n", "$-1\r\n", "$1\r\nc\r\n"};
  for (uint32_t i = 0; i < 3; ++i) r.add(i, replies[i]);
  std::string out;
  r.finish(out);
  EXPECT_EQ(out, "$1\r\nc\r\n");  // 1 is empty: the next
  EXPECT_EQ(reduce(Merge::any_key, {"$-1\r\n", "$-1\r\n"}), "$-1\r\n");
}

TEST(Reducer, SameReplyAndAllOfArrays) {
  const std::string sha = "$40\r\ne0e1f9fabfc9d4800c877a703b823ac0578ff8db\r\n";
  EXPECT_EQ(reduce(Merge::same_reply, {sha, sha, sha}), sha);
  EXPECT_EQ(reduce(Merge::same_reply, {sha, "$3\r\nabc\r\n"}).rfind("-ERR the servers answered differently", 0), 0u);
  EXPECT_EQ(reduce(Merge::same_reply, {sha, "-ERR Error compiling script\r\n"}), "-ERR Error compiling script\r\n");
  // SCRIPT EXISTS: 1 only where every server has it.
  EXPECT_EQ(reduce(Merge::all_of_arrays, {"*3\r\n:1\r\n:1\r\n:0\r\n", "*3\r\n:1\r\n:0\r\n:0\r\n"}),
            "*3\r\n:1\r\n:0\r\n:0\r\n");
  EXPECT_EQ(reduce(Merge::all_of_arrays, {"*2\r\n:1\r\n:1\r\n", "*1\r\n:1\r\n"}).rfind("-ERR unexpected reply shape", 0), 0u);
}

}  // namespace
}  // namespace ringproxy::routing
