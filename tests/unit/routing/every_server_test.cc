#include "routing/every_server.h"

#include <gtest/gtest.h>

#include <vector>

namespace ringproxy::routing {
namespace {

using Kind = ServerAnswer::Kind;

ServerAnswer answer(Kind kind, std::string text = "", std::string server = "127.0.0.1:7001 of shard 's1'") {
  return ServerAnswer{kind, std::move(server), std::move(text)};
}

TEST(ScriptKillReply, OkWhenAnyServerKilledOne) {
  std::vector<ServerAnswer> answers{answer(Kind::error, "NOTBUSY No scripts in execution right now."),
                                    answer(Kind::error, "UNKILLABLE Sorry the script already executed a write"),
                                    answer(Kind::status, "OK"), answer(Kind::no_reply)};
  EXPECT_EQ(script_kill_reply(answers), "+OK\r\n");
}

TEST(ScriptKillReply, NotbusyWhenNoneRanOne) {
  std::vector<ServerAnswer> answers{answer(Kind::error, "NOTBUSY No scripts in execution right now."),
                                    answer(Kind::unreachable, "connection refused")};
  EXPECT_EQ(script_kill_reply(answers), "-NOTBUSY No scripts in execution right now.\r\n");
}

TEST(ScriptKillReply, TheFirstOtherErrorKeepsItsCode) {
  std::vector<ServerAnswer> answers{answer(Kind::error, "NOTBUSY No scripts in execution right now."),
                                    answer(Kind::error, "UNKILLABLE Sorry the script already executed a write")};
  EXPECT_EQ(script_kill_reply(answers), "-UNKILLABLE Sorry the script already executed a write\r\n");
  std::vector<ServerAnswer> function_runs{answer(Kind::error, "BUSY Redis is busy running a script. You can only "
                                                             "call FUNCTION KILL or SHUTDOWN NOSAVE.")};
  EXPECT_EQ(script_kill_reply(function_runs),
            "-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.\r\n");
  std::vector<ServerAnswer> uncoded{answer(Kind::error, "something odd happened")};
  EXPECT_EQ(script_kill_reply(uncoded), "-ERR something odd happened\r\n");
}

TEST(ScriptKillReply, SilenceAndNoServer) {
  EXPECT_EQ(script_kill_reply(std::vector<ServerAnswer>{answer(Kind::error, "NOTBUSY x"), answer(Kind::no_reply)}),
            "-ERR no reply from every server in time\r\n");
  EXPECT_EQ(script_kill_reply(std::vector<ServerAnswer>{answer(Kind::unreachable, "connection refused")}),
            "-ERR no server could be reached: connection refused\r\n");
  EXPECT_EQ(script_kill_reply({}), "-ERR no server could be reached: none is configured\r\n");
}

TEST(PingReply, PongOrTheMessageWhenEveryServerAnswered) {
  std::vector<ServerAnswer> pongs{answer(Kind::status, "PONG"), answer(Kind::status, "PONG")};
  EXPECT_EQ(ping_reply(pongs, std::nullopt), "+PONG\r\n");
  std::vector<ServerAnswer> echoes{answer(Kind::bulk, "hi"), answer(Kind::bulk, "hi")};
  EXPECT_EQ(ping_reply(echoes, "hi"), "$2\r\nhi\r\n");
}

TEST(PingReply, TheFirstServerThatCannotAnswerSaysWhy) {
  std::vector<ServerAnswer> busy{answer(Kind::status, "PONG"),
                                 answer(Kind::error, "BUSY Redis is busy running a script.")};
  EXPECT_EQ(ping_reply(busy, std::nullopt), "-BUSY Redis is busy running a script.\r\n");
  std::vector<ServerAnswer> down{answer(Kind::unreachable, "connection refused", "127.0.0.1:7002 of shard 's2'"),
                                 answer(Kind::error, "LOADING Redis is loading the dataset in memory")};
  EXPECT_EQ(ping_reply(down, std::nullopt), "-ERR server 127.0.0.1:7002 of shard 's2' cannot be reached: connection refused\r\n");
  std::vector<ServerAnswer> silent{answer(Kind::no_reply, "", "'cache3' (10.0.0.3:7003) of shard 's3'")};
  EXPECT_EQ(ping_reply(silent, "x"), "-ERR server 'cache3' (10.0.0.3:7003) of shard 's3' did not answer PING in time\r\n");
  EXPECT_EQ(ping_reply({}, std::nullopt), "-ERR no server is configured\r\n");
}

}  // namespace
}  // namespace ringproxy::routing

namespace ringproxy::routing {
namespace {

constexpr std::string_view kIdle =
    "*4\r\n$14\r\nrunning_script\r\n$-1\r\n$7\r\nengines\r\n*2\r\n$3\r\nLUA\r\n"
    "*4\r\n$15\r\nlibraries_count\r\n:1\r\n$15\r\nfunctions_count\r\n:2\r\n";
constexpr std::string_view kRunning =
    "*4\r\n$14\r\nrunning_script\r\n*6\r\n$4\r\nname\r\n$4\r\ntest\r\n$7\r\ncommand\r\n*3\r\n$5\r\nfcall\r\n"
    "$4\r\ntest\r\n$1\r\n0\r\n$11\r\nduration_ms\r\n:210\r\n$7\r\nengines\r\n*2\r\n$3\r\nLUA\r\n"
    "*4\r\n$15\r\nlibraries_count\r\n:1\r\n$15\r\nfunctions_count\r\n:2\r\n";

TEST(FunctionStatsReply, TheServerRunningAScriptAnswers) {
  std::vector<ServerAnswer> answers{{ServerAnswer::Kind::other, "a", std::string(kIdle)},
                                    {ServerAnswer::Kind::unreachable, "b", "connection refused"},
                                    {ServerAnswer::Kind::other, "c", std::string(kRunning)}};
  EXPECT_EQ(function_stats_reply(answers, 2), kRunning);
  answers.pop_back();
  EXPECT_EQ(function_stats_reply(answers, 2), kIdle);
}

TEST(FunctionStatsReply, MapsForResp3Clients) {
  std::vector<ServerAnswer> idle{{ServerAnswer::Kind::other, "a", std::string(kIdle)}};
  EXPECT_EQ(function_stats_reply(idle, 3),
            "%2\r\n$14\r\nrunning_script\r\n_\r\n$7\r\nengines\r\n%1\r\n$3\r\nLUA\r\n"
            "%2\r\n$15\r\nlibraries_count\r\n:1\r\n$15\r\nfunctions_count\r\n:2\r\n");
  std::vector<ServerAnswer> running{{ServerAnswer::Kind::other, "a", std::string(kRunning)}};
  EXPECT_EQ(function_stats_reply(running, 3).substr(0, 49),
            "%2\r\n$14\r\nrunning_script\r\n%3\r\n$4\r\nname\r\n$4\r\ntest\r\n");
}

TEST(FunctionStatsReply, ErrorsAndNoAnswer) {
  std::vector<ServerAnswer> refused{{ServerAnswer::Kind::other, "a", std::string(kIdle)},
                                    {ServerAnswer::Kind::error, "b", "NOPERM this user has no permissions"}};
  EXPECT_EQ(function_stats_reply(refused, 2), "-NOPERM this user has no permissions\r\n");
  std::vector<ServerAnswer> none{{ServerAnswer::Kind::unreachable, "b", "connection refused"}};
  EXPECT_EQ(function_stats_reply(none, 2), "-ERR no server answered FUNCTION STATS\r\n");
  std::vector<ServerAnswer> odd{{ServerAnswer::Kind::other, "'x' (1.2.3.4:5)", ":1\r\n"}};
  EXPECT_EQ(function_stats_reply(odd, 2), "-ERR server 'x' (1.2.3.4:5) answered FUNCTION STATS unexpectedly\r\n");
}

}  // namespace
}  // namespace ringproxy::routing
