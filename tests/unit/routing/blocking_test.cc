#include "routing/blocking.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ringproxy::routing {
namespace {

conf::PoolConfig two_shards() {
  conf::PoolConfig pool;
  pool.hash_tag = "{}";
  for (int i = 1; i <= 2; ++i) {
    conf::ShardConfig shard;
    shard.name = "shard" + std::to_string(i);
    shard.servers.push_back({"127.0.0.1", static_cast<uint16_t>(7000 + i)});
    pool.shards.push_back(shard);
  }
  return pool;
}

class BlockingTest : public ::testing::Test {
 protected:
  BlockingTest() : table_(RoutingTable::build(two_shards())) {}

  BlockingDecision decide(std::vector<std::string> words) {
    words_ = std::move(words);
    args_.assign(words_.begin(), words_.end());
    const CommandInfo* cmd = find_command(args_[0]);
    EXPECT_NE(cmd, nullptr) << words_[0];
    EXPECT_TRUE(blocks(*cmd, args_)) << words_[0];
    return decide_blocking(*cmd, args_, *table_, positions_);
  }

  std::string key_on(uint32_t shard, const std::string& prefix = "k") {
    for (int i = 0;; ++i) {
      std::string key = prefix + std::to_string(i);
      if (table_->shard_of(key) == shard) return key;
    }
  }

  std::shared_ptr<const RoutingTable> table_;
  std::vector<std::string> words_;
  std::vector<std::string_view> args_;
  std::vector<uint32_t> positions_;
};

TEST_F(BlockingTest, WhatBlocks) {
  std::vector<std::string_view> plain = {"XREAD", "COUNT", "1", "STREAMS", "s", "0"};
  std::vector<std::string_view> blocking = {"XREAD", "BLOCK", "0", "STREAMS", "s", "0"};
  std::vector<std::string_view> named_block = {"XREADGROUP", "GROUP", "block", "c", "STREAMS", "s", ">"};
  EXPECT_FALSE(blocks(*find_command("xread"), plain));
  EXPECT_TRUE(blocks(*find_command("xread"), blocking));
  EXPECT_FALSE(blocks(*find_command("xreadgroup"), named_block));
  std::vector<std::string_view> lpop = {"LPOP", "k"};
  EXPECT_FALSE(blocks(*find_command("lpop"), lpop));
}

TEST_F(BlockingTest, NonBlockingFormsAndTimeouts) {
  BlockingDecision d = decide({"BLPOP", "{q}a", "{q}b", "1.5"});
  ASSERT_EQ(d.error, "");
  EXPECT_TRUE(d.pops);
  EXPECT_EQ(d.timeout_ms, 1500u);
  EXPECT_EQ(d.nonblocking, (std::vector<std::string>{"LMPOP", "2", "{q}a", "{q}b", "LEFT"}));
  EXPECT_EQ(d.shape, PopShape::list_pop);
  EXPECT_EQ(d.keys, (std::vector<std::string>{"{q}a", "{q}b"}));

  d = decide({"BRPOP", "q", "0"});
  EXPECT_FALSE(d.timeout_ms.has_value());  // for ever
  EXPECT_EQ(d.nonblocking, (std::vector<std::string>{"LMPOP", "1", "q", "RIGHT"}));

  d = decide({"BZPOPMAX", "z", "0.001"});
  EXPECT_EQ(d.timeout_ms, 1u);
  EXPECT_EQ(d.nonblocking, (std::vector<std::string>{"ZMPOP", "1", "z", "MAX"}));
  EXPECT_EQ(d.shape, PopShape::zset_pop);

  d = decide({"BLMOVE", "{q}a", "{q}b", "LEFT", "RIGHT", "2"});
  EXPECT_EQ(d.nonblocking, (std::vector<std::string>{"LMOVE", "{q}a", "{q}b", "LEFT", "RIGHT"}));
  d = decide({"BRPOPLPUSH", "{q}a", "{q}b", "2"});
  EXPECT_EQ(d.nonblocking, (std::vector<std::string>{"RPOPLPUSH", "{q}a", "{q}b"}));
  d = decide({"BLMPOP", "3", "2", "{q}a", "{q}b", "RIGHT", "COUNT", "4"});
  EXPECT_EQ(d.timeout_ms, 3000u);
  EXPECT_EQ(d.nonblocking, (std::vector<std::string>{"LMPOP", "2", "{q}a", "{q}b", "RIGHT", "COUNT", "4"}));
  d = decide({"BZMPOP", "0", "1", "z", "MIN"});
  EXPECT_EQ(d.nonblocking, (std::vector<std::string>{"ZMPOP", "1", "z", "MIN"}));

  d = decide({"XREADGROUP", "GROUP", "g", "c", "BLOCK", "250", "STREAMS", "s", ">"});
  EXPECT_TRUE(d.pops);
  EXPECT_EQ(d.timeout_ms, 250u);
  EXPECT_EQ(d.nonblocking, (std::vector<std::string>{"XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"}));
  d = decide({"XREAD", "BLOCK", "0", "STREAMS", "s", "$"});
  EXPECT_FALSE(d.pops);  // a read: it blocks on the server
  EXPECT_FALSE(d.timeout_ms.has_value());
}

TEST_F(BlockingTest, RedisErrorsForBadTimeoutsAndShards) {
  EXPECT_EQ(decide({"BLPOP", "q", "abc"}).error, "ERR timeout is not a float or out of range");
  EXPECT_EQ(decide({"BLPOP", "q", "-1"}).error, "ERR timeout is negative");
  EXPECT_EQ(decide({"BLPOP", "q", "inf"}).error, "ERR timeout is not a float or out of range");
  EXPECT_EQ(decide({"XREAD", "BLOCK", "1.5", "STREAMS", "s", "$"}).error,
            "ERR timeout is not an integer or out of range");
  const BlockingDecision d = decide({"BLPOP", key_on(0), key_on(1), "0"});
  EXPECT_NE(d.error.find("keys map to different shards ('shard1', 'shard2')"), std::string::npos) << d.error;
  EXPECT_NE(d.error.find("hash tag"), std::string::npos);
}

TEST_F(BlockingTest, RepliesInTheBlockingCommandsShape) {
  const std::string lmpop = "*2\r\n$1\r\nq\r\n*1\r\n$1\r\nx\r\n";
  EXPECT_EQ(blocked_reply(PopShape::list_pop, lmpop, 2), "*2\r\n$1\r\nq\r\n$1\r\nx\r\n");
  const std::string zmpop = "*2\r\n$1\r\nz\r\n*1\r\n*2\r\n$1\r\nm\r\n$3\r\n1.5\r\n";
  EXPECT_EQ(blocked_reply(PopShape::zset_pop, zmpop, 2), "*3\r\n$1\r\nz\r\n$1\r\nm\r\n$3\r\n1.5\r\n");
  EXPECT_EQ(blocked_reply(PopShape::zset_pop, zmpop, 3), "*3\r\n$1\r\nz\r\n$1\r\nm\r\n,1.5\r\n");
  EXPECT_EQ(blocked_reply(PopShape::zset_mpop, zmpop, 2), zmpop);
  EXPECT_EQ(blocked_reply(PopShape::zset_mpop, zmpop, 3), "*2\r\n$1\r\nz\r\n*1\r\n*2\r\n$1\r\nm\r\n,1.5\r\n");
  const std::string xread = "*1\r\n*2\r\n$1\r\ns\r\n*0\r\n";
  EXPECT_EQ(blocked_reply(PopShape::stream_read, xread, 2), xread);
  EXPECT_EQ(blocked_reply(PopShape::stream_read, xread, 3), "%1\r\n$1\r\ns\r\n*0\r\n");
  EXPECT_EQ(blocked_reply(PopShape::same, "$1\r\nx\r\n", 2), "$1\r\nx\r\n");
  // Nothing found: the client waits on.
  EXPECT_FALSE(blocked_reply(PopShape::list_pop, "*-1\r\n", 2).has_value());
  EXPECT_FALSE(blocked_reply(PopShape::same, "$-1\r\n", 2).has_value());
  // An error is the answer.
  EXPECT_EQ(blocked_reply(PopShape::list_pop, "-WRONGTYPE x\r\n", 2), "-WRONGTYPE x\r\n");
  EXPECT_EQ(timed_out_reply(2), "*-1\r\n");
  EXPECT_EQ(timed_out_reply(3), "_\r\n");
}

TEST_F(BlockingTest, UndoPutsBackWhatWasPopped) {
  const std::vector<std::string> left = {"LMPOP", "1", "q", "LEFT", "COUNT", "2"};
  EXPECT_EQ(undo_pop(left, "*2\r\n$1\r\nq\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n"),
            (std::vector<std::string>{"LPUSH", "q", "b", "a"}));
  const std::vector<std::string> right = {"LMPOP", "1", "q", "RIGHT"};
  EXPECT_EQ(undo_pop(right, "*2\r\n$1\r\nq\r\n*1\r\n$1\r\na\r\n"), (std::vector<std::string>{"RPUSH", "q", "a"}));
  const std::vector<std::string> named_left = {"LMPOP", "1", "left", "RIGHT"};  // (a key named "left")
  EXPECT_EQ(undo_pop(named_left, "*2\r\n$4\r\nleft\r\n*1\r\n$1\r\nc\r\n"),
            (std::vector<std::string>{"RPUSH", "left", "c"}));
  const std::vector<std::string> zset = {"ZMPOP", "1", "z", "MIN"};
  EXPECT_EQ(undo_pop(zset, "*2\r\n$1\r\nz\r\n*1\r\n*2\r\n$1\r\nm\r\n$1\r\n2\r\n"),
            (std::vector<std::string>{"ZADD", "z", "2", "m"}));
  const std::vector<std::string> move = {"LMOVE", "a", "b", "LEFT", "RIGHT"};
  EXPECT_EQ(undo_pop(move, "$1\r\nx\r\n"), (std::vector<std::string>{"LMOVE", "b", "a", "RIGHT", "LEFT"}));
  const std::vector<std::string> rpoplpush = {"RPOPLPUSH", "a", "b"};
  EXPECT_EQ(undo_pop(rpoplpush, "$1\r\nx\r\n"), (std::vector<std::string>{"LMOVE", "b", "a", "LEFT", "RIGHT"}));
  EXPECT_FALSE(undo_pop(left, "*-1\r\n").has_value());
  const std::vector<std::string> group = {"XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"};
  EXPECT_FALSE(undo_pop(group, "*1\r\n*2\r\n$1\r\ns\r\n*0\r\n").has_value());
}

}  // namespace
}  // namespace ringproxy::routing

namespace ringproxy::routing {
namespace {

TEST(ClientIdAt, FindsTheClientByItsAddress) {
  constexpr std::string_view list =
      "id=3 addr=127.0.0.1:51000 laddr=127.0.0.1:6379 fd=8 name= age=9 idle=0 flags=N db=0 cmd=client|list\n"
      "id=17 addr=127.0.0.1:51012 laddr=127.0.0.1:6379 fd=9 name= age=2 idle=2 flags=b db=0 cmd=blpop\n"
      "id=21 addr=[::1]:40000 laddr=[::1]:6379 fd=10 name= age=1 idle=1 flags=N db=0 cmd=get\n";
  EXPECT_EQ(client_id_at(list, "127.0.0.1:51012"), 17u);
  EXPECT_EQ(client_id_at(list, "[::1]:40000"), 21u);
  EXPECT_EQ(client_id_at(list, "127.0.0.1:5101"), std::nullopt);  // (a prefix is not the address)
  EXPECT_EQ(client_id_at(list, "127.0.0.1:6379"), std::nullopt);   // (laddr is the server's side)
  EXPECT_EQ(client_id_at("", "127.0.0.1:51012"), std::nullopt);
}

}  // namespace
}  // namespace ringproxy::routing
