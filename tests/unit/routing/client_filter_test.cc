// CLIENT LIST / CLIENT KILL filters for the proxy's own clients (issue 13): routing/client_filter.h.
#include "routing/client_filter.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ringproxy::routing {
namespace {

std::string kill_filter(std::vector<std::string_view> args, ClientFilter* f) { return parse_client_kill(args, f); }

TEST(ClientFilter, KillsOldFormAndFilters) {
  ClientFilter f;
  ASSERT_EQ(kill_filter({"127.0.0.1:5000"}, &f), "");
  EXPECT_TRUE(f.old_form);
  EXPECT_FALSE(f.skip_me);  // the old form may kill the caller
  EXPECT_TRUE(matches(f, {7, "127.0.0.1:5000", "", "default", 1, true}));
  EXPECT_FALSE(matches(f, {7, "127.0.0.1:5001", "", "default", 1, false}));

  ASSERT_EQ(kill_filter({"ID", "7", "USER", "app"}, &f), "");
  EXPECT_TRUE(matches(f, {7, "a", "b", "app", 0, false}));
  EXPECT_FALSE(matches(f, {7, "a", "b", "other", 0, false}));
  EXPECT_FALSE(matches(f, {8, "a", "b", "app", 0, false}));
  EXPECT_FALSE(matches(f, {7, "a", "b", "app", 0, true}));  // SKIPME yes by default
  ASSERT_EQ(kill_filter({"ID", "7", "SKIPME", "no"}, &f), "");
  EXPECT_TRUE(matches(f, {7, "a", "b", "app", 0, true}));

  ASSERT_EQ(kill_filter({"MAXAGE", "10"}, &f), "");  // older than 10 s
  EXPECT_TRUE(matches(f, {1, "a", "b", "u", 11, false}));
  EXPECT_FALSE(matches(f, {1, "a", "b", "u", 10, false}));
  ASSERT_EQ(kill_filter({"TYPE", "pubsub"}, &f), "");  // the proxy's clients are all normal
  EXPECT_FALSE(matches(f, {1, "a", "b", "u", 0, false}));
  ASSERT_EQ(kill_filter({"LADDR", "127.0.0.1:7000"}, &f), "");
  EXPECT_TRUE(matches(f, {1, "a", "127.0.0.1:7000", "u", 0, false}));
  EXPECT_FALSE(matches(f, {1, "a", "127.0.0.1:7001", "u", 0, false}));
}

TEST(ClientFilter, Mistakes) {
  ClientFilter f;
  EXPECT_EQ(kill_filter({}, &f), "ERR syntax error");
  ASSERT_EQ(kill_filter({"ID"}, &f), "");  // one argument: the old form's address, as redis reads it
  EXPECT_TRUE(f.old_form);
  EXPECT_EQ(kill_filter({"ID", "1", "USER"}, &f), "ERR syntax error");
  EXPECT_EQ(kill_filter({"ID", "0"}, &f), "ERR client-id should be greater than 0");
  EXPECT_EQ(kill_filter({"ID", "x"}, &f), "ERR client-id should be greater than 0");
  EXPECT_EQ(kill_filter({"SKIPME", "maybe"}, &f), "ERR syntax error");
  EXPECT_EQ(kill_filter({"TYPE", "robot"}, &f), "ERR Unknown client type 'robot'");
  EXPECT_EQ(kill_filter({"NOPE", "1"}, &f), "ERR syntax error");
  EXPECT_EQ(kill_filter({"MAXAGE", "-1"}, &f), "ERR syntax error");
}

TEST(ClientFilter, List) {
  ClientFilter f;
  const std::vector<std::string_view> none, ids = {"ID", "3", "5"}, type = {"TYPE", "normal"}, bad = {"ID", "x"};
  ASSERT_EQ(parse_client_list(none, &f), "");
  EXPECT_TRUE(matches(f, {1, "", "", "u", 0, true}));  // itself too
  ASSERT_EQ(parse_client_list(ids, &f), "");
  EXPECT_TRUE(matches(f, {5, "", "", "u", 0, false}));
  EXPECT_FALSE(matches(f, {4, "", "", "u", 0, false}));
  ASSERT_EQ(parse_client_list(type, &f), "");
  EXPECT_TRUE(matches(f, {4, "", "", "u", 0, false}));
  EXPECT_EQ(parse_client_list(bad, &f), "ERR Invalid client ID");
}

}  // namespace
}  // namespace ringproxy::routing
