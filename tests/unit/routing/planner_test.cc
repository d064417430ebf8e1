#include "routing/planner.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ringproxy::routing {
namespace {

conf::PoolConfig three_shards(std::string hash_tag = "{}") {
  conf::PoolConfig pool;
  pool.hash_tag = std::move(hash_tag);
  for (int i = 1; i <= 3; ++i) {
    conf::ShardConfig shard;
    shard.name = "shard" + std::to_string(i);
    shard.servers.push_back({"127.0.0.1", static_cast<uint16_t>(7000 + i)});
    pool.shards.push_back(shard);
  }
  return pool;
}

class PlannerTest : public ::testing::Test {
 protected:
  PlannerTest() : table_(RoutingTable::build(three_shards())), usable_(3, kServerLive) {}

  const Plan& run(std::vector<std::string> words, PlanSettings settings = {}) {
    words_ = std::move(words);
    args_.assign(words_.begin(), words_.end());
    const CommandInfo* cmd = find_command(args_[0]);
    EXPECT_NE(cmd, nullptr) << words_[0];
    if (cmd->is_container()) cmd = find_subcommand(*cmd, args_[1]);
    plan(*cmd, args_, *table_, Health{usable_, {}, 0}, settings, scratch_, plan_);
    return plan_;
  }

  // A key that maps to `shard`, with a prefix so tests stay readable.
  std::string key_on(uint32_t shard, const std::string& prefix = "k") {
    for (int i = 0;; ++i) {
      std::string key = prefix + std::to_string(i);
      if (table_->shard_of(key) == shard) return key;
    }
  }

  std::shared_ptr<const RoutingTable> table_;
  std::vector<uint8_t> usable_;
  std::vector<std::string> words_;
  std::vector<std::string_view> args_;
  PlanScratch scratch_;
  Plan plan_;
};

TEST_F(PlannerTest, SingleKeyGoesToItsShardUnchanged) {
  for (uint32_t shard = 0; shard < 3; ++shard) {
    const Plan& p = run({"GET", key_on(shard)});
    ASSERT_EQ(p.kind, PlanKind::forward);
    ASSERT_EQ(p.fragments.size(), 1u);
    EXPECT_EQ(p.fragments[0].shard, shard);
    EXPECT_EQ(p.fragments[0].server, shard);
  }
}

TEST_F(PlannerTest, SplitsMgetByShardKeepingSlots) {
  std::string a = key_on(0, "a"), b = key_on(1, "b"), c = key_on(0, "c"), d = key_on(2, "d");
  const Plan& p = run({"MGET", a, b, c, d});
  ASSERT_EQ(p.kind, PlanKind::split);
  EXPECT_EQ(p.merge, Merge::array_by_position);
  ASSERT_EQ(p.fragments.size(), 3u);
  // Shards in order of first appearance; keys of a shard in client order.
  EXPECT_EQ(p.fragments[0].shard, 0u);
  EXPECT_EQ(std::vector<uint32_t>(p.key_args.begin() + p.fragments[0].keys_begin,
                                  p.key_args.begin() + p.fragments[0].keys_end),
            (std::vector<uint32_t>{1, 3}));
  EXPECT_EQ(std::vector<uint32_t>(p.key_slots.begin() + p.fragments[0].keys_begin,
                                  p.key_slots.begin() + p.fragments[0].keys_end),
            (std::vector<uint32_t>{0, 2}));
  EXPECT_EQ(p.fragments[1].shard, 1u);
  EXPECT_EQ(p.fragments[2].shard, 2u);
}

TEST_F(PlannerTest, MultiKeyOnOneShardIsForwardedWhole) {
  const Plan& p = run({"MGET", "{u}a", "{u}b", "{u}c"});
  EXPECT_EQ(p.kind, PlanKind::forward);
  EXPECT_EQ(p.merge, Merge::forward);
}

TEST_F(PlannerTest, MsetSplitsPairsDelSums) {
  const Plan& mset = run({"MSET", key_on(0), "1", key_on(1), "2"});
  ASSERT_EQ(mset.kind, PlanKind::split);
  EXPECT_EQ(mset.merge, Merge::all_ok);
  EXPECT_EQ(mset.key_args, (std::vector<uint32_t>{1, 3}));
  const Plan& del = run({"DEL", key_on(0), key_on(2)});
  EXPECT_EQ(del.kind, PlanKind::split);
  EXPECT_EQ(del.merge, Merge::sum_integers);
}

TEST_F(PlannerTest, CrossShardSingleShardCommandIsRejected) {
  const Plan& p = run({"SINTER", key_on(0), key_on(1)});
  ASSERT_EQ(p.kind, PlanKind::reject);
  EXPECT_NE(p.error.find("different shards"), std::string::npos) << p.error;
  EXPECT_NE(p.error.find("hash tag"), std::string::npos);
}

TEST_F(PlannerTest, DownShardFailsFastNamingIt) {
  usable_[1] = kServerQueue;
  const Plan& p = run({"GET", key_on(1)});
  ASSERT_EQ(p.kind, PlanKind::reject);
  EXPECT_NE(p.error.find("shard 'shard2' is unavailable"), std::string::npos) << p.error;
  EXPECT_NE(p.error.find("127.0.0.1:7002"), std::string::npos);
  // Other shards are unaffected; a split touching the down shard fails as a whole.
  EXPECT_EQ(run({"GET", key_on(0)}).kind, PlanKind::forward);
  EXPECT_EQ(run({"MGET", key_on(0), key_on(1)}).kind, PlanKind::reject);
  EXPECT_EQ(run({"DBSIZE"}).kind, PlanKind::reject);
}

TEST_F(PlannerTest, BroadcastAndAdminCommands) {
  const Plan& dbsize = run({"DBSIZE"});
  ASSERT_EQ(dbsize.kind, PlanKind::broadcast);
  EXPECT_EQ(dbsize.fragments.size(), 3u);
  EXPECT_EQ(dbsize.merge, Merge::sum_integers);
  const Plan& refused = run({"FLUSHALL"});
  ASSERT_EQ(refused.kind, PlanKind::reject);
  EXPECT_NE(refused.error.find("allow_admin_commands"), std::string::npos);
  const Plan& allowed = run({"FLUSHALL"}, PlanSettings{.allow_admin_commands = true});
  EXPECT_EQ(allowed.kind, PlanKind::broadcast);
  EXPECT_EQ(allowed.merge, Merge::all_ok);
}

TEST_F(PlannerTest, UnsupportedAndKeylessCommands) {
  EXPECT_EQ(run({"MONITOR"}).kind, PlanKind::reject);
  // A script without keys runs on one shard: the one its body maps to, every time.
  const Plan& eval = run({"EVAL", "return 1", "0"});
  ASSERT_EQ(eval.kind, PlanKind::forward);
  const uint32_t eval_shard = eval.fragments[0].shard;
  EXPECT_EQ(run({"EVAL", "return 1", "0", "other", "args"}).fragments[0].shard, eval_shard);  // the same, always
  std::vector<bool> shards(3, false);
  for (const char* name : {"f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8"}) {
    const Plan& fcall = run({"FCALL", name, "0", "arg"});
    ASSERT_EQ(fcall.kind, PlanKind::forward);
    shards[fcall.fragments[0].shard] = true;
  }
  EXPECT_EQ(shards, std::vector<bool>(3, true));  // spread over the shards
  const Plan& no_key = run({"GET"});  // (no key where one is due: still refused)
  EXPECT_EQ(no_key.kind, PlanKind::reject);
  // A key count redis refuses too: one live server refuses it in redis's own words.
  const Plan& bad_numkeys = run({"EVAL", "return 1", "5", "a"});
  EXPECT_EQ(bad_numkeys.kind, PlanKind::forward);
  EXPECT_EQ(bad_numkeys.fragments.size(), 1u);
  EXPECT_EQ(run({"ZUNIONSTORE", "d", "0", "k"}).kind, PlanKind::forward);
  const Plan& eval_keys = run({"EVAL", "return 1", "2", "{t}a", "{t}b"});
  EXPECT_EQ(eval_keys.kind, PlanKind::forward);
}

TEST_F(PlannerTest, SubcommandKeysRoute) {
  std::string key = key_on(2);
  const Plan& p = run({"OBJECT", "ENCODING", key});
  ASSERT_EQ(p.kind, PlanKind::forward);
  EXPECT_EQ(p.fragments[0].shard, 2u);
}

TEST(RoutingTable, BuildsFromConfigWithNamesNotAddresses) {
  conf::PoolConfig pool = three_shards("");
  auto table = RoutingTable::build(pool);
  ASSERT_EQ(table->shards().size(), 3u);
  EXPECT_EQ(table->servers()[1].name, "127.0.0.1:7002");
  EXPECT_EQ(table->servers()[1].shard, 1u);
  // Same names, other addresses: the same key -> shard mapping.
  for (auto& shard : pool.shards) shard.servers[0].port += 100;
  auto moved = RoutingTable::build(pool);
  for (int i = 0; i < 1000; ++i) {
    std::string key = "key:" + std::to_string(i);
    EXPECT_EQ(table->shard_of(key), moved->shard_of(key));
  }
}

}  // namespace
}  // namespace ringproxy::routing

namespace ringproxy::routing {
namespace {

// One shard "s" of three servers, 127.0.0.1:7001-7003.
conf::PoolConfig one_replicated_shard(conf::ReplicationStrategy strategy) {
  conf::PoolConfig pool;
  conf::ShardConfig shard;
  shard.name = "s";
  for (uint16_t p : {7001, 7002, 7003}) shard.servers.push_back({"127.0.0.1", p});
  shard.replication.strategy = strategy;
  shard.replication.write_ack = conf::WriteAck::quorum;
  pool.shards.push_back(shard);
  return pool;
}

TEST(PlannerReplication, PromoteLetsTheFirstLiveReplicaLead) {
  conf::PoolConfig pool = one_replicated_shard(conf::ReplicationStrategy::primary_replica);
  std::vector<uint8_t> mode = {kServerQueue, kServerLive, kServerLive};
  std::vector<std::string_view> set = {"SET", "k", "v"}, get = {"GET", "k"};
  PlanScratch scratch;
  Plan plan_out;

  auto fail_table = RoutingTable::build(pool);
  plan(*find_command("SET"), set, *fail_table, Health{mode, {}, 0}, {}, scratch, plan_out);
  EXPECT_EQ(plan_out.kind, PlanKind::reject);
  EXPECT_NE(plan_out.error.find("primary 127.0.0.1:7001 is not available"), std::string::npos);
  plan(*find_command("GET"), get, *fail_table, Health{mode, {}, 0}, {}, scratch, plan_out);
  EXPECT_EQ(plan_out.kind, PlanKind::reject);  // read_from = primary, and no promotion

  pool.shards[0].replication.on_primary_down = conf::PrimaryDown::promote;
  auto promote_table = RoutingTable::build(pool);
  plan(*find_command("SET"), set, *promote_table, Health{mode, {}, 0}, {}, scratch, plan_out);
  ASSERT_EQ(plan_out.kind, PlanKind::forward);
  ASSERT_EQ(plan_out.fragments.size(), 3u);
  EXPECT_EQ(plan_out.fragments[0].server, 1u);  // the acting primary goes first
  EXPECT_EQ(plan_out.fragments[0].stage, 0);
  EXPECT_EQ(plan_out.fragments[1].server, 2u);
  EXPECT_EQ(plan_out.fragments[1].stage, 1);
  EXPECT_EQ(plan_out.fragments[2].server, 0u);  // the old primary: into its replay queue
  EXPECT_EQ(plan_out.fragments[2].delivery, Delivery::replay);
  plan(*find_command("GET"), get, *promote_table, Health{mode, {}, 0}, {}, scratch, plan_out);
  ASSERT_EQ(plan_out.kind, PlanKind::forward);
  EXPECT_EQ(plan_out.fragments[0].server, 1u);
}

}  // namespace
}  // namespace ringproxy::routing

// The keyspace across shards (issue 13): SCAN one shard at a time, KEYS on all, RANDOMKEY on any.
namespace ringproxy::routing {
namespace {

TEST_F(PlannerTest, ScanStartsOnTheFirstShardWithTheServersOwnCursor) {
  const Plan& start = run({"SCAN", "0", "MATCH", "user:*", "COUNT", "100"});
  ASSERT_EQ(start.kind, PlanKind::rewrite);
  EXPECT_EQ(start.merge, Merge::scan_cursor);
  ASSERT_EQ(start.fragments.size(), 1u);
  EXPECT_EQ(start.fragments[0].server, 0u);
  EXPECT_EQ(start.rewritten_position, 1u);
  EXPECT_EQ(start.rewritten_arg, "0");
  EXPECT_EQ(start.scan.shard, 0u);
  EXPECT_EQ(start.scan.shards, 3u);
  const uint32_t table = start.scan.table_check;

  const Plan& next_shard = run({"SCAN", std::to_string(ScanCursor{2, 0, table, 0, 0}.encode())});
  ASSERT_EQ(next_shard.kind, PlanKind::rewrite);
  EXPECT_EQ(next_shard.fragments[0].server, 2u);
  EXPECT_EQ(next_shard.rewritten_arg, "0");
  const uint32_t server = next_shard.scan.server_check;

  const Plan& later = run({"SCAN", std::to_string(ScanCursor{2, 0, table, server, 12345}.encode())});
  ASSERT_EQ(later.kind, PlanKind::rewrite);
  EXPECT_EQ(later.fragments[0].server, 2u);
  EXPECT_EQ(later.rewritten_arg, "12345");  // the same server: its own cursor goes on
  EXPECT_EQ(later.scan.shard, 2u);

  // Another process at that address (restarted, resynced): its shard again, from 0.
  const Plan& other_server =
      run({"SCAN", std::to_string(ScanCursor{2, 0, table, (server + 1) & 255, 12345}.encode())});
  ASSERT_EQ(other_server.kind, PlanKind::rewrite);
  EXPECT_EQ(other_server.rewritten_arg, "0");
  const std::vector<uint32_t> epochs = {0, 0, 1};  // as the proxy counts them: server 2 restarted
  const std::string cursor_text = std::to_string(ScanCursor{2, 0, table, server, 12345}.encode());
  std::vector<std::string_view> args = {"SCAN", cursor_text};
  scratch_.server_epochs = &epochs;
  plan(*find_command("SCAN"), args, *table_, Health{usable_, {}, 0}, {}, scratch_, plan_);
  scratch_.server_epochs = nullptr;
  ASSERT_EQ(plan_.kind, PlanKind::rewrite);
  EXPECT_EQ(plan_.rewritten_arg, "0");
}

TEST_F(PlannerTest, ScanRefusesBadCursorsAndWaitsForAShardThatIsDown) {
  for (const char* bad : {"x", "-1", "", "1.5", "18446744073709551616"}) {
    const Plan& p = run({"SCAN", bad});
    ASSERT_EQ(p.kind, PlanKind::reject) << bad;
    EXPECT_EQ(p.error.rfind("ERR invalid cursor", 0), 0u) << p.error;
  }
  const uint32_t table = run({"SCAN", "0"}).scan.table_check;
  // Shards the table does not have, or a table that changed (a reload added, removed or
  // reordered shards): the shards already scanned may not be the ones the cursor says.
  for (const ScanCursor& changed : {ScanCursor{7, 0, table, 0, 3}, ScanCursor{1, 0, (table + 1) & 255, 0, 0}}) {
    const Plan& p = run({"SCAN", std::to_string(changed.encode())});
    ASSERT_EQ(p.kind, PlanKind::reject);
    EXPECT_NE(p.error.find("start again from 0"), std::string::npos) << p.error;
  }
  // An unreplicated shard that is down is not skipped: its keys would be missed.
  usable_[1] = kServerQueue;
  const Plan& down = run({"SCAN", std::to_string(ScanCursor{1, 0, table, 0, 0}.encode())});
  ASSERT_EQ(down.kind, PlanKind::reject);
  EXPECT_NE(down.error.find("unavailable"), std::string::npos) << down.error;
}

TEST(PlannerScan, AReplicatedShardKeepsItsServerOrStartsAgainOnAnother) {
  auto table = RoutingTable::build(one_replicated_shard(conf::ReplicationStrategy::multi_primary));
  std::vector<uint8_t> mode = {kServerLive, kServerLive, kServerLive};
  PlanScratch scratch;
  Plan out;
  std::vector<std::string_view> start = {"SCAN", "0"};
  plan(*find_command("SCAN"), start, *table, Health{mode, {}, 0}, {}, scratch, out);
  const uint32_t table_check = out.scan.table_check;
  // The server check of the second server: what a cursor from it carries.
  mode = {kServerQueue, kServerLive, kServerLive};
  plan(*find_command("SCAN"), start, *table, Health{mode, {}, 0}, {}, scratch, out);
  ASSERT_EQ(out.scan.slot, 1u);
  const uint32_t second = out.scan.server_check;
  mode = {kServerLive, kServerLive, kServerLive};
  const std::string on_second = std::to_string(ScanCursor{0, 1, table_check, second, 99}.encode());
  std::vector<std::string_view> args = {"SCAN", on_second};
  plan(*find_command("SCAN"), args, *table, Health{mode, {}, 0}, {}, scratch, out);
  ASSERT_EQ(out.kind, PlanKind::rewrite);
  EXPECT_EQ(out.fragments[0].server, 1u);  // a cursor means something only to its own server
  EXPECT_EQ(out.rewritten_arg, "99");
  EXPECT_EQ(out.scan.slot, 1u);
  mode = {kServerQueue, kServerSkip, kServerLive};
  plan(*find_command("SCAN"), args, *table, Health{mode, {}, 0}, {}, scratch, out);
  ASSERT_EQ(out.kind, PlanKind::rewrite);
  EXPECT_EQ(out.fragments[0].server, 2u);  // its server is gone: the shard again, from 0
  EXPECT_EQ(out.rewritten_arg, "0");
  EXPECT_EQ(out.scan.slot, 2u);
}

TEST_F(PlannerTest, KeysAsksEveryShardAndRandomKeyAnyShard) {
  const Plan& keys = run({"KEYS", "user:*"});
  ASSERT_EQ(keys.kind, PlanKind::broadcast);
  EXPECT_EQ(keys.merge, Merge::concat_arrays);
  EXPECT_EQ(keys.groups.size(), 3u);
  // RANDOMKEY asks every shard (an empty one would answer nil) and prefers a different one each time.
  std::vector<bool> seen(3, false);
  std::vector<std::string_view> args = {"RANDOMKEY"};
  for (uint64_t rotation = 0; rotation < 12; ++rotation) {
    plan(*find_command("RANDOMKEY"), args, *table_, Health{usable_, {}, rotation}, {}, scratch_, plan_);
    ASSERT_EQ(plan_.kind, PlanKind::broadcast);
    EXPECT_EQ(plan_.merge, Merge::any_key);
    EXPECT_EQ(plan_.groups.size(), 3u);
    seen[plan_.first_choice] = true;
  }
  EXPECT_EQ(seen, std::vector<bool>(3, true));
}

}  // namespace
}  // namespace ringproxy::routing

// Scripts and functions live in each server (issue 13): SCRIPT LOAD goes to every live one.
namespace ringproxy::routing {
namespace {

TEST(PlannerScripts, ScriptLoadGoesToEveryLiveServerOfEveryShard) {
  conf::PoolConfig pool = one_replicated_shard(conf::ReplicationStrategy::primary_replica);
  conf::ShardConfig plain;
  plain.name = "p";
  plain.servers.push_back({"127.0.0.1", 7004});
  pool.shards.push_back(plain);
  auto table = RoutingTable::build(pool);
  std::vector<uint8_t> mode = {kServerLive, kServerQueue, kServerLive, kServerLive};
  std::vector<std::string_view> args = {"SCRIPT", "LOAD", "return 1"};
  const CommandInfo& load = *find_subcommand(*find_command("SCRIPT"), "LOAD");
  PlanScratch scratch;
  Plan out;
  plan(load, args, *table, Health{mode, {}, 0}, {}, scratch, out);
  ASSERT_EQ(out.kind, PlanKind::broadcast);
  EXPECT_EQ(out.merge, Merge::same_reply);
  EXPECT_FALSE(out.replicated);  // not a replicated write: no replay, no ack levels
  std::vector<uint32_t> servers;
  for (const PlannedFragment& f : out.fragments) servers.push_back(f.server);
  EXPECT_EQ(servers, (std::vector<uint32_t>{0, 2, 3}));  // the replica that is down gets it on NOSCRIPT
  EXPECT_EQ(out.groups.size(), 3u);
  // A shard with no live server: SCRIPT LOAD goes on (the proxy has the script for it), a
  // FUNCTION LOAD would leave it without the library: refused.
  mode = {kServerLive, kServerLive, kServerLive, kServerQueue};
  plan(load, args, *table, Health{mode, {}, 0}, {}, scratch, out);
  EXPECT_EQ(out.kind, PlanKind::broadcast);
  EXPECT_EQ(out.fragments.size(), 3u);
  std::vector<std::string_view> function_args = {"FUNCTION", "LOAD", "#!lua name=l\n"};
  plan(*find_subcommand(*find_command("FUNCTION"), "LOAD"), function_args, *table, Health{mode, {}, 0}, {}, scratch, out);
  ASSERT_EQ(out.kind, PlanKind::reject);
  EXPECT_NE(out.error.find("while server 127.0.0.1:7004 (shard 'p') is down or catching up"), std::string::npos)
      << out.error;
  // A replica catching up would keep running the old library: refused too. A stale one is
  // resynced from a peer, functions included: it is left out.
  mode = {kServerLive, kServerQueue, kServerLive, kServerLive};
  plan(*find_subcommand(*find_command("FUNCTION"), "LOAD"), function_args, *table, Health{mode, {}, 0}, {}, scratch, out);
  EXPECT_EQ(out.kind, PlanKind::reject);
  mode = {kServerLive, kServerSkip, kServerLive, kServerLive};
  plan(*find_subcommand(*find_command("FUNCTION"), "LOAD"), function_args, *table, Health{mode, {}, 0}, {}, scratch, out);
  ASSERT_EQ(out.kind, PlanKind::broadcast);
  EXPECT_EQ(out.fragments.size(), 3u);
}

}  // namespace
}  // namespace ringproxy::routing
