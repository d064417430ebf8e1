#include "routing/replication.h"

#include <gtest/gtest.h>

namespace ringproxy::routing {
namespace {

using Outcome = WriteTracker::Outcome;
using conf::ReplicationStrategy;
using conf::WriteAck;

conf::ReplicationConfig config(ReplicationStrategy s, WriteAck a) {
  conf::ReplicationConfig c;
  c.strategy = s;
  c.write_ack = a;
  return c;
}

TEST(AckRule, EveryStrategyAndLevel) {
  struct Case {
    ReplicationStrategy s;
    WriteAck a;
    size_t n;
    uint32_t needed;
    bool primary_first;
  } cases[] = {
      {ReplicationStrategy::primary_replica, WriteAck::primary, 3, 1, true},
      {ReplicationStrategy::primary_replica, WriteAck::one, 3, 2, true},
      {ReplicationStrategy::primary_replica, WriteAck::quorum, 3, 2, true},
      {ReplicationStrategy::primary_replica, WriteAck::quorum, 5, 3, true},
      {ReplicationStrategy::primary_replica, WriteAck::all, 3, 3, true},
      {ReplicationStrategy::multi_primary, WriteAck::one, 3, 1, false},
      {ReplicationStrategy::multi_primary, WriteAck::quorum, 3, 2, false},
      {ReplicationStrategy::multi_primary, WriteAck::quorum, 4, 3, false},
      {ReplicationStrategy::multi_primary, WriteAck::all, 3, 3, false},
  };
  for (const Case& c : cases) {
    AckRule rule = ack_rule(config(c.s, c.a), c.n);
    EXPECT_EQ(rule.needed, c.needed) << conf::write_ack_name(c.a) << " of " << c.n;
    EXPECT_EQ(rule.primary_first, c.primary_first);
  }
}

TEST(WriteTracker, QuorumAnswersAtTheSecondAckWhateverTheOrder) {
  WriteTracker t({2, false}, 3);
  EXPECT_FALSE(t.on_outcome(2, Outcome::ack).answer);
  WriteTracker::Decision d = t.on_outcome(0, Outcome::ack);
  EXPECT_TRUE(d.answer);
  EXPECT_EQ(d.reply_from, 2);  // the first server that acknowledged
  EXPECT_FALSE(t.on_outcome(1, Outcome::ack).answer);  // answered once only
}

TEST(WriteTracker, QuorumWithOneServerDownStillAnswers) {
  WriteTracker t({2, false}, 3);
  EXPECT_FALSE(t.on_outcome(1, Outcome::missed).answer);
  EXPECT_FALSE(t.on_outcome(0, Outcome::ack).answer);
  EXPECT_TRUE(t.on_outcome(2, Outcome::ack).answer);
}

TEST(WriteTracker, ShortfallIsReportedAsSoonAsTheLevelIsUnreachable) {
  WriteTracker t({3, false}, 3);
  t.on_outcome(0, Outcome::ack);
  WriteTracker::Decision d = t.on_outcome(1, Outcome::missed);
  ASSERT_TRUE(d.answer);
  EXPECT_EQ(d.reply_from, -1);
  EXPECT_EQ(t.shortfall_error("s1"),
            "-ERR write to shard 's1' acknowledged by 1 of 3 servers, 3 needed (it may be applied on the "
            "servers that acknowledged it, and on those that did not answer in time)\r\n");
}

TEST(WriteTracker, SameErrorEverywhereIsTheAnswer) {
  WriteTracker t({2, false}, 3);
  EXPECT_FALSE(t.on_outcome(0, Outcome::error_reply).answer);
  WriteTracker::Decision d = t.on_outcome(1, Outcome::error_reply);  // 2 of 3 now impossible
  ASSERT_TRUE(d.answer);
  EXPECT_EQ(d.reply_from, 0);
  EXPECT_FALSE(t.on_outcome(2, Outcome::error_reply).answer);
}

TEST(WriteTracker, PrimaryFirstSendsToReplicasOnlyAfterThePrimaryAcks) {
  WriteTracker t({2, true}, 3);
  WriteTracker::Decision d = t.on_outcome(0, Outcome::ack);
  EXPECT_TRUE(d.send_to_replicas);
  EXPECT_FALSE(d.answer);
  d = t.on_outcome(2, Outcome::ack);
  EXPECT_TRUE(d.answer);
  EXPECT_EQ(d.reply_from, 0);  // the primary's reply is the answer
}

TEST(WriteTracker, PrimaryAckLevelAnswersAtOnceAndStillReplicates) {
  WriteTracker t({1, true}, 3);
  WriteTracker::Decision d = t.on_outcome(0, Outcome::ack);
  EXPECT_TRUE(d.answer);
  EXPECT_TRUE(d.send_to_replicas);
}

TEST(WriteTracker, PrimaryErrorGoesToTheClientAndIsNotReplicated) {
  WriteTracker t({2, true}, 3);
  WriteTracker::Decision d = t.on_outcome(0, Outcome::error_reply);
  EXPECT_TRUE(d.answer);
  EXPECT_EQ(d.reply_from, 0);
  EXPECT_TRUE(d.cancel_replicas);
  EXPECT_FALSE(d.send_to_replicas);
}

TEST(WriteTracker, PrimaryMissedFailsTheWrite) {
  WriteTracker t({1, true}, 2);
  WriteTracker::Decision d = t.on_outcome(0, Outcome::missed);
  EXPECT_TRUE(d.answer);
  EXPECT_EQ(d.reply_from, -1);
  EXPECT_TRUE(d.cancel_replicas);
}

TEST(PickReadServer, Policies) {
  const uint8_t all[] = {1, 1, 1};
  const uint8_t primary_down[] = {0, 1, 1};
  const uint8_t replicas_down[] = {1, 0, 0};
  const uint32_t pending[] = {5, 9, 2};
  using conf::ReadFrom;
  EXPECT_EQ(pick_read_server(ReadFrom::primary, all, pending, 0), 0u);
  EXPECT_EQ(pick_read_server(ReadFrom::primary, primary_down, pending, 0), std::nullopt);
  EXPECT_EQ(pick_read_server(ReadFrom::replica, all, pending, 0), 1u);
  EXPECT_EQ(pick_read_server(ReadFrom::replica, all, pending, 1), 2u);
  EXPECT_EQ(pick_read_server(ReadFrom::replica, replicas_down, pending, 0), std::nullopt);
  EXPECT_EQ(pick_read_server(ReadFrom::prefer_replica, replicas_down, pending, 0), 0u);
  EXPECT_EQ(pick_read_server(ReadFrom::any, all, pending, 0), 2u);  // least loaded
  EXPECT_EQ(pick_read_server(ReadFrom::any, replicas_down, pending, 0), 0u);
}

std::vector<std::string> rewrite(std::vector<std::string_view> args, bool expect = true) {
  std::vector<std::string> out;
  EXPECT_EQ(rewrite_relative_expiry(args, 1'000'000, out), expect) << args[0];
  return out;
}

TEST(RepairWinner, PrimaryWinsMajorityWinsTiesToLowestServer) {
  using C = std::optional<std::string_view>;
  const C abc[] = {C("a"), C("b"), C("b")};
  EXPECT_EQ(repair_winner(ReplicationStrategy::primary_replica, abc), 0u);
  EXPECT_EQ(repair_winner(ReplicationStrategy::multi_primary, abc), 1u);
  const C absent_majority[] = {C("a"), std::nullopt, std::nullopt};
  EXPECT_EQ(repair_winner(ReplicationStrategy::multi_primary, absent_majority), 1u);  // deleted everywhere
  const C tie[] = {C("x"), C("y")};
  EXPECT_EQ(repair_winner(ReplicationStrategy::multi_primary, tie), 0u);
  const C three_way[] = {C("x"), C("y"), C("z")};
  EXPECT_EQ(repair_winner(ReplicationStrategy::multi_primary, three_way), 0u);
}

TEST(RewriteRelativeExpiry, BecomesAbsolute) {
  using V = std::vector<std::string>;
  EXPECT_EQ(rewrite({"SET", "k", "v", "EX", "10"}), (V{"SET", "k", "v", "PXAT", "1010000"}));
  EXPECT_EQ(rewrite({"set", "k", "v", "NX", "px", "250"}), (V{"set", "k", "v", "NX", "PXAT", "1000250"}));
  EXPECT_EQ(rewrite({"SETEX", "k", "10", "v"}), (V{"SET", "k", "v", "PXAT", "1010000"}));
  EXPECT_EQ(rewrite({"PSETEX", "k", "10", "v"}), (V{"SET", "k", "v", "PXAT", "1000010"}));
  EXPECT_EQ(rewrite({"EXPIRE", "k", "5", "NX"}), (V{"PEXPIREAT", "k", "1005000", "NX"}));
  EXPECT_EQ(rewrite({"PEXPIRE", "k", "5"}), (V{"PEXPIREAT", "k", "1000005"}));
  EXPECT_EQ(rewrite({"GETEX", "k", "EX", "1"}), (V{"GETEX", "k", "PXAT", "1001000"}));
  EXPECT_EQ(rewrite({"RESTORE", "k", "100", "payload"}), (V{"RESTORE", "k", "1000100", "payload", "ABSTTL"}));
}

TEST(RewriteRelativeExpiry, LeavesTheRestAlone) {
  rewrite({"SET", "k", "v"}, false);
  rewrite({"SET", "k", "v", "PXAT", "5"}, false);
  rewrite({"SET", "k", "v", "EX", "notanumber"}, false);  // the server gives its own error
  rewrite({"RESTORE", "k", "0", "payload"}, false);
  rewrite({"RESTORE", "k", "100", "payload", "ABSTTL"}, false);
  rewrite({"EXPIREAT", "k", "100"}, false);
  rewrite({"INCR", "k"}, false);
}

}  // namespace
}  // namespace ringproxy::routing
