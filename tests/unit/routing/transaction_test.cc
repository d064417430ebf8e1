#include "routing/transaction.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "routing/reducer.h"
#include "routing/replication.h"
#include "routing/resp/reply_scanner.h"
#include "routing/resp/writer.h"

namespace ringproxy::routing {
namespace {

// Shards 1 and 2 plain; shard 3 replicated (three servers, multi-primary).
conf::PoolConfig pool_with_a_replicated_shard() {
  conf::PoolConfig pool;
  pool.hash_tag = "{}";
  for (int i = 1; i <= 3; ++i) {
    conf::ShardConfig shard;
    shard.name = "shard" + std::to_string(i);
    shard.servers.push_back({"127.0.0.1", static_cast<uint16_t>(7000 + i)});
    if (i == 3) {
      shard.servers.push_back({"127.0.0.1", 7013});
      shard.servers.push_back({"127.0.0.1", 7023});
      shard.replication.strategy = conf::ReplicationStrategy::multi_primary;
    }
    pool.shards.push_back(shard);
  }
  return pool;
}

class TransactionTest : public ::testing::Test {
 protected:
  TransactionTest() : table_(RoutingTable::build(pool_with_a_replicated_shard())) {}

  QueueDecision queue(std::vector<std::string> words, std::optional<uint32_t> tx_shard = std::nullopt) {
    words_ = std::move(words);
    args_.assign(words_.begin(), words_.end());
    const CommandInfo* cmd = find_command(args_[0]);
    EXPECT_NE(cmd, nullptr) << words_[0];
    if (cmd->is_container()) cmd = find_subcommand(*cmd, args_[1]);
    return decide_queued(*cmd, args_, *table_, tx_shard, positions_);
  }

  WatchDecision watch(std::vector<std::string> keys, std::optional<uint32_t> watched = std::nullopt) {
    words_ = {"WATCH"};
    words_.insert(words_.end(), keys.begin(), keys.end());
    args_.assign(words_.begin(), words_.end());
    return decide_watch(args_, *table_, watched);
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

TEST_F(TransactionTest, KeyedCommandsAreQueuedOnTheirShard) {
  for (uint32_t shard = 0; shard < 3; ++shard) {
    QueueDecision d = queue({"SET", key_on(shard), "v"});
    EXPECT_EQ(d.what, InTransaction::queue);
    EXPECT_EQ(d.shard, shard);
    d = queue({"INCR", key_on(shard, "x")}, shard);
    EXPECT_EQ(d.what, InTransaction::queue);
    EXPECT_EQ(d.shard, shard);
  }
  // Multi-key commands with every key on one shard, by hash tag.
  QueueDecision d = queue({"MSET", "{u}:a", "1", "{u}:b", "2"});
  EXPECT_EQ(d.what, InTransaction::queue);
  d = queue({"RENAME", "{u}:a", "{u}:c"}, d.shard);
  EXPECT_EQ(d.what, InTransaction::queue);
}

TEST_F(TransactionTest, CommandsWithoutKeysRunOnTheTransactionsShard) {
  for (const char* name : {"PING", "ECHO", "UNWATCH"}) {
    std::vector<std::string> words = {name};
    if (std::string(name) == "ECHO") words.push_back("hi");
    QueueDecision d = queue(words, 1);
    EXPECT_EQ(d.what, InTransaction::queue) << name;
    EXPECT_FALSE(d.shard.has_value()) << name;
  }
  QueueDecision d = queue({"EVAL", "return 1", "0"});
  EXPECT_EQ(d.what, InTransaction::queue);
  EXPECT_FALSE(d.shard.has_value());
}

TEST_F(TransactionTest, AKeyOnAnotherShardIsAQueuingErrorThatSaysWhere) {
  const std::string other = key_on(1);
  QueueDecision d = queue({"SET", other, "v"}, 0);
  EXPECT_EQ(d.what, InTransaction::refuse);
  EXPECT_NE(d.error.find("'" + other + "' is on shard 'shard2', the transaction's keys on 'shard1'"), std::string::npos)
      << d.error;
  EXPECT_NE(d.error.find("hash tag"), std::string::npos);
  // Within one command too.
  d = queue({"MGET", key_on(0), key_on(2)});
  EXPECT_EQ(d.what, InTransaction::refuse);
}

TEST_F(TransactionTest, WhatCannotBeQueued) {
  struct Case {
    std::vector<std::string> words;
    std::string error;
  };
  const std::vector<Case> cases = {
      {{"KEYS", "*"}, "KEYS cannot be queued in a transaction through ringproxy: it runs on every shard"},
      {{"SCAN", "0"}, "SCAN cannot be queued"},
      {{"DBSIZE"}, "DBSIZE cannot be queued"},
      {{"SCRIPT", "LOAD", "return 1"}, "SCRIPT LOAD cannot be queued"},
      {{"INFO"}, "INFO cannot be queued in a transaction through ringproxy: the proxy answers it itself"},
      {{"CLIENT", "LIST"}, "CLIENT LIST cannot be queued"},
      {{"SUBSCRIBE", "c"}, "SUBSCRIBE"},
      {{"SPOP", key_on(2)}, "SPOP cannot be queued in a transaction on replicated shard 'shard3'"},
  };
  for (const Case& c : cases) {
    QueueDecision d = queue(c.words);
    EXPECT_EQ(d.what, InTransaction::refuse) << c.words[0];
    EXPECT_NE(d.error.find(c.error), std::string::npos) << d.error;
  }
  // SPOP on a plain shard is fine; so are one server's keyless commands (TIME) and blocking
  // commands, which do not block inside MULTI (BLMPOP names its keys by a count).
  EXPECT_EQ(queue({"SPOP", key_on(0)}).what, InTransaction::queue);
  EXPECT_EQ(queue({"TIME"}, 0).what, InTransaction::queue);
  QueueDecision blocking = queue({"BLMPOP", "0", "1", key_on(1), "LEFT"});
  EXPECT_EQ(blocking.what, InTransaction::queue);
  EXPECT_EQ(blocking.shard, 1u);
}

TEST_F(TransactionTest, TheTransactionsOwnCommands) {
  EXPECT_EQ(queue({"EXEC"}).what, InTransaction::exec);
  EXPECT_EQ(queue({"DISCARD"}).what, InTransaction::discard);
  EXPECT_EQ(queue({"QUIT"}).what, InTransaction::run_now);
  EXPECT_EQ(queue({"RESET"}).what, InTransaction::run_now);  // (it ends the transaction, as in redis)
  QueueDecision d = queue({"MULTI"});
  EXPECT_EQ(d.what, InTransaction::error_only);
  EXPECT_EQ(d.error, "ERR MULTI calls can not be nested");
  d = queue({"WATCH", "k"});
  EXPECT_EQ(d.what, InTransaction::error_only);
  EXPECT_EQ(d.error, "ERR WATCH inside MULTI is not allowed");
}

TEST_F(TransactionTest, WatchKeysMustShareAPlainShard) {
  WatchDecision d = watch({"{u}:a", "{u}:b"});
  ASSERT_TRUE(d.shard.has_value()) << d.error;
  const uint32_t shard = *d.shard;
  EXPECT_TRUE(watch({"{u}:c"}, shard).shard.has_value());
  const uint32_t elsewhere = shard == 0 ? 1 : 0;
  d = watch({key_on(elsewhere)}, shard);
  EXPECT_FALSE(d.shard.has_value());
  EXPECT_NE(d.error.find("a transaction runs on one shard"), std::string::npos);
  d = watch({key_on(0), key_on(1)});
  EXPECT_FALSE(d.shard.has_value());
  d = watch({key_on(2)});  // a replicated shard: watched on its write leader
  EXPECT_EQ(d.shard, 2u);
}

TEST_F(TransactionTest, AWatchedTransactionLeadsOnTheShardsWriteLeader) {
  std::vector<uint8_t> live(5, kServerLive);
  const ShardEntry& replicated = table_->shards()[2];
  EXPECT_EQ(write_leader(replicated, Health{live, {}, 0}), replicated.servers[0]);
  live[replicated.servers[0]] = kServerQueue;  // down: multi-primary's next live server leads
  EXPECT_EQ(write_leader(replicated, Health{live, {}, 0}), replicated.servers[1]);
  PlanScratch scratch;
  Plan plan;
  const std::vector<std::string> words = {"EXEC", "2", "shard3", "3"};
  std::vector<std::string_view> args(words.begin(), words.end());
  routing::plan(watched_transaction_command(), args, *table_, Health{live, {}, 0}, {}, scratch, plan);
  ASSERT_EQ(plan.kind, PlanKind::transaction);
  ASSERT_EQ(plan.groups.size(), 1u);
  EXPECT_TRUE(plan.groups[0].rule.primary_first);
  EXPECT_EQ(plan.fragments[0].server, replicated.servers[1]);  // the leader, first
  EXPECT_EQ(plan.fragments[0].stage, 0);
  for (size_t i = 1; i < plan.fragments.size(); ++i) EXPECT_EQ(plan.fragments[i].stage, 1);
}

TEST_F(TransactionTest, ExecPlansOneGroupByTheShardsReplication) {
  std::vector<uint8_t> live(5, kServerLive);
  PlanScratch scratch;
  Plan plan;
  const std::vector<std::string> plain = {"EXEC", "1", "shard2", "3"};
  std::vector<std::string_view> args(plain.begin(), plain.end());
  routing::plan(transaction_command(true), args, *table_, Health{live, {}, 0}, {}, scratch, plan);
  ASSERT_EQ(plan.kind, PlanKind::transaction);
  EXPECT_EQ(plan.merge, Merge::transaction);
  ASSERT_EQ(plan.fragments.size(), 1u);
  EXPECT_EQ(plan.fragments[0].shard, 1u);
  EXPECT_FALSE(plan.replicated);

  const std::vector<std::string> replicated = {"EXEC", "2", "shard3", "3"};
  args.assign(replicated.begin(), replicated.end());
  routing::plan(transaction_command(true), args, *table_, Health{live, {}, 0}, {}, scratch, plan);
  ASSERT_EQ(plan.kind, PlanKind::transaction);
  EXPECT_EQ(plan.fragments.size(), 3u);  // a write: every server
  EXPECT_TRUE(plan.replicated);
  routing::plan(transaction_command(false), args, *table_, Health{live, {}, 0}, {}, scratch, plan);
  EXPECT_EQ(plan.fragments.size(), 1u);  // a read: one server

  // A held EXEC planned after a reload renumbered the shards is refused, not sent elsewhere.
  const std::vector<std::string> renamed = {"EXEC", "1", "shard3", "3"};
  args.assign(renamed.begin(), renamed.end());
  routing::plan(transaction_command(true), args, *table_, Health{live, {}, 0}, {}, scratch, plan);
  EXPECT_EQ(plan.kind, PlanKind::reject);
  EXPECT_NE(plan.error.find("the shards changed"), std::string::npos);
}

TEST(ExecReply, IsExecsReplyOfAll) {
  std::string out;
  exec_reply("+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:2\r\n", out);
  EXPECT_EQ(out, "*2\r\n+OK\r\n:2\r\n");
  out.clear();
  exec_reply("+OK\r\n*-1\r\n", out);  // a WATCH that saw a change
  EXPECT_EQ(out, "*-1\r\n");
  out.clear();
  exec_reply("+OK\r\n+QUEUED\r\n-OOM command not allowed when used memory > 'maxmemory'.\r\n"
             "-EXECABORT Transaction discarded because of previous errors.\r\n",
             out);
  EXPECT_EQ(out,
            "-EXECABORT Transaction discarded because of previous errors: the server refused a queued command: OOM "
            "command not allowed when used memory > 'maxmemory'.\r\n");
  // Through the reducer, as the data path merges it; a failed server's error stays the reply.
  Reducer reducer(Merge::transaction, std::vector<std::vector<uint32_t>>(1), 0);
  ASSERT_TRUE(reducer.add(0, "+OK\r\n+QUEUED\r\n*1\r\n$1\r\nv\r\n"));
  out.clear();
  reducer.finish(out);
  EXPECT_EQ(out, "*1\r\n$1\r\nv\r\n");
  Reducer failed(Merge::transaction, std::vector<std::vector<uint32_t>>(1), 0);
  ASSERT_TRUE(failed.add(0, "-ERR shard 's1' server x: connection reset\r\n"));
  out.clear();
  failed.finish(out);
  EXPECT_EQ(out, "-ERR shard 's1' server x: connection reset\r\n");
}

TEST(ReplyScanner, ScansSeveralRepliesAsOneWhenTold) {
  const std::string replies = "+OK\r\n+QUEUED\r\n*2\r\n$1\r\na\r\n*1\r\n:1\r\n";
  resp::ReplyScanner scanner;
  // Split at every byte: resumable across reads.
  for (size_t split = 1; split < replies.size(); ++split) {
    scanner.reset();
    ASSERT_EQ(scanner.scan(replies.data(), replies.size()), resp::ParseStatus::complete);
    EXPECT_EQ(scanner.reply_bytes(), 5u);
    scanner.expect_more(2);
    const size_t available = std::max(split, size_t{5});
    if (available < replies.size()) {
      EXPECT_EQ(scanner.scan(replies.data(), available), resp::ParseStatus::incomplete) << split;
    }
    ASSERT_EQ(scanner.scan(replies.data(), replies.size()), resp::ParseStatus::complete) << split;
    EXPECT_EQ(scanner.reply_bytes(), replies.size());
  }
  EXPECT_EQ(resp::last_reply(replies), "*2\r\n$1\r\na\r\n*1\r\n:1\r\n");
  EXPECT_EQ(resp::first_error_reply(replies), "");
  EXPECT_EQ(resp::first_error_reply("+OK\r\n-ERR x\r\n-ERR y\r\n"), "-ERR x\r\n");
}

}  // namespace
}  // namespace ringproxy::routing

namespace ringproxy::routing {
namespace {

std::vector<std::string_view> views(const std::vector<std::string>& words) { return {words.begin(), words.end()}; }

TEST(XaddAutoId, FindsTheStarPastTheOptions) {
  using W = std::vector<std::string>;
  EXPECT_EQ(xadd_auto_id(views(W{"XADD", "s", "*", "f", "v"})), 2u);
  EXPECT_EQ(xadd_auto_id(views(W{"xadd", "s", "NOMKSTREAM", "MAXLEN", "~", "10", "LIMIT", "5", "*", "f", "v"})), 8u);
  EXPECT_EQ(xadd_auto_id(views(W{"XADD", "s", "MINID", "100", "*", "f", "v"})), 4u);
  EXPECT_EQ(xadd_auto_id(views(W{"XADD", "s", "1-1", "f", "v"})), std::nullopt);  // its own ID
  EXPECT_EQ(xadd_auto_id(views(W{"XADD", "s", "5-*", "f", "v"})), std::nullopt);  // sequence only: deterministic
  EXPECT_EQ(xadd_auto_id(views(W{"SET", "s", "*"})), std::nullopt);
  EXPECT_EQ(xadd_auto_id(views(W{"XADD", "s", "MAXLEN"})), std::nullopt);  // malformed: nothing to rewrite
}

std::string command(const std::vector<std::string>& words) {
  std::string out;
  const std::vector<std::string_view> v(words.begin(), words.end());
  resp::append_command(out, v);
  return out;
}

TEST(CopyWithLeaderIds, TheCopiesGetTheIdsTheLeaderChose) {
  const std::string block = command({"MULTI"}) + command({"XADD", "s", "*", "f", "v"}) + command({"INCR", "n"}) +
                            command({"XADD", "s", "MAXLEN", "=", "5", "*", "g", "w"}) + command({"EXEC"});
  const std::string replies = "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n$5\r\n100-0\r\n:1\r\n$5\r\n100-1\r\n";
  std::string out;
  ASSERT_TRUE(copy_with_leader_ids(block, replies, out));
  EXPECT_EQ(out, command({"MULTI"}) + command({"XADD", "s", "100-0", "f", "v"}) + command({"INCR", "n"}) +
                     command({"XADD", "s", "MAXLEN", "=", "5", "100-1", "g", "w"}) + command({"EXEC"}));
  // Nothing to change: no XADD '*', or the leader did not commit.
  EXPECT_FALSE(copy_with_leader_ids(command({"MULTI"}) + command({"INCR", "n"}) + command({"EXEC"}),
                                    "+OK\r\n+QUEUED\r\n*1\r\n:1\r\n", out));
  EXPECT_FALSE(copy_with_leader_ids(block, "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*-1\r\n", out));
}

}  // namespace
}  // namespace ringproxy::routing

namespace ringproxy::routing {
namespace {

TEST(ConfigGet, TheServersPasswordsAreHidden) {
  Reducer array(Merge::config_get, std::vector<std::vector<uint32_t>>(2), 0);
  array.add(0, "*4\r\n$11\r\nrequirepass\r\n$6\r\nsecret\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n");
  array.add(1, "*4\r\n$11\r\nrequirepass\r\n$6\r\nsecret\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n");
  std::string out;
  array.finish(out);
  EXPECT_EQ(out, "*4\r\n$11\r\nrequirepass\r\n$21\r\n(hidden by ringproxy)\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n");
  Reducer map(Merge::config_get, std::vector<std::vector<uint32_t>>(1), 0);  // RESP3
  map.add(0, "%2\r\n$10\r\nmasterauth\r\n$1\r\nx\r\n$3\r\ndir\r\n$4\r\n/tmp\r\n");
  out.clear();
  map.finish(out);
  EXPECT_EQ(out, "%2\r\n$10\r\nmasterauth\r\n$21\r\n(hidden by ringproxy)\r\n$3\r\ndir\r\n$4\r\n/tmp\r\n");
  Reducer empty(Merge::config_get, std::vector<std::vector<uint32_t>>(1), 0);  // no password: shown as empty
  empty.add(0, "*2\r\n$11\r\nrequirepass\r\n$0\r\n\r\n");
  out.clear();
  empty.finish(out);
  EXPECT_EQ(out, "*2\r\n$11\r\nrequirepass\r\n$0\r\n\r\n");
}

TEST(ConfigSet, WhatTheProxyReliesOnIsRefused) {
  conf::PoolConfig pool;
  conf::ShardConfig shard;
  shard.name = "s";
  shard.servers.push_back({"127.0.0.1", 7001});
  pool.shards.push_back(shard);
  auto table = RoutingTable::build(pool);
  std::vector<uint8_t> live(1, kServerLive);
  PlanScratch scratch;
  Plan plan;
  auto run = [&](std::vector<std::string> words, bool admin_allowed) {
    std::vector<std::string_view> args(words.begin(), words.end());
    const CommandInfo* cmd = find_subcommand(*find_command(args[0]), args[1]);
    routing::plan(*cmd, args, *table, Health{live, {}, 0}, {admin_allowed}, scratch, plan);
  };
  run({"CONFIG", "SET", "maxmemory", "10mb"}, true);
  EXPECT_EQ(plan.kind, PlanKind::broadcast);
  run({"CONFIG", "SET", "maxmemory", "10mb", "RequirePass", "x"}, true);
  ASSERT_EQ(plan.kind, PlanKind::reject);
  EXPECT_NE(plan.error.find("CONFIG SET requirepass is refused through ringproxy"), std::string::npos) << plan.error;
  run({"CONFIG", "GET", "maxmemory"}, false);
  ASSERT_EQ(plan.kind, PlanKind::reject);
  EXPECT_NE(plan.error.find("allow_admin_commands"), std::string::npos);
}

}  // namespace
}  // namespace ringproxy::routing
