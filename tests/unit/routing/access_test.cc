// Who may run what (issue 11): routing/access.h.
#include "routing/access.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ringproxy::routing {
namespace {

conf::UserConfig user(std::string name, std::string password, conf::Access access,
                      std::vector<std::string> keys = {}) {
  return conf::UserConfig{std::move(name), conf::password_digest(password), access, std::move(keys)};
}

std::string check(const conf::UserConfig& u, std::vector<std::string_view> args) {
  const CommandInfo* cmd = find_command(args[0]);
  EXPECT_NE(cmd, nullptr) << args[0];
  if (cmd->is_container() && args.size() > 1) cmd = find_subcommand(*cmd, args[1]);
  std::vector<uint32_t> positions;
  return refusal(u, *cmd, args, positions);
}

TEST(Authenticate, NameAndPasswordMustBothMatch) {
  const std::vector<conf::UserConfig> users = {user("default", "root", conf::Access::admin),
                                               user("app", "app-pass", conf::Access::readwrite)};
  EXPECT_EQ(authenticate(users, "default", "root"), &users[0]);
  EXPECT_EQ(authenticate(users, "app", "app-pass"), &users[1]);
  EXPECT_EQ(authenticate(users, "app", "root"), nullptr);
  EXPECT_EQ(authenticate(users, "default", "app-pass"), nullptr);
  EXPECT_EQ(authenticate(users, "nobody", "root"), nullptr);
  EXPECT_EQ(authenticate(users, "app", ""), nullptr);
  EXPECT_EQ(authenticate({}, "default", ""), nullptr);
  EXPECT_EQ(authenticate(users, "app", std::string_view("app-pass\0x", 10)), nullptr);
}

TEST(Refusal, AccessLevels) {
  const auto reader = user("r", "p", conf::Access::read);
  const auto writer = user("w", "p", conf::Access::readwrite);
  const auto admin = user("a", "p", conf::Access::admin);
  EXPECT_EQ(check(reader, {"GET", "k"}), "");
  EXPECT_EQ(check(reader, {"MGET", "a", "b"}), "");
  EXPECT_EQ(check(reader, {"SET", "k", "v"}), "NOPERM this user has no permissions to run the 'set' command");
  EXPECT_EQ(check(reader, {"PING"}), "");
  EXPECT_EQ(check(reader, {"INFO"}), "");
  EXPECT_EQ(check(reader, {"PROXY", "ROUTE", "k"}), "");
  EXPECT_NE(check(reader, {"PROXY", "reload"}), "");
  EXPECT_EQ(check(writer, {"SET", "k", "v"}), "");
  EXPECT_EQ(check(writer, {"DEL", "a", "b"}), "");
  EXPECT_EQ(check(writer, {"FLUSHALL"}), "NOPERM this user has no permissions to run the 'flushall' command");
  EXPECT_NE(check(writer, {"PROXY", "REPAIR", "s"}), "");
  EXPECT_EQ(check(admin, {"FLUSHALL"}), "");
  EXPECT_EQ(check(admin, {"PROXY", "RELOAD"}), "");
}

TEST(Refusal, EveryKeyMustMatchAPattern) {
  const auto app = user("app", "p", conf::Access::readwrite, {"app:*", "shared:[ab]"});
  const std::string no_key = "NOPERM this user has no permissions to access one of the keys used as arguments";
  EXPECT_EQ(check(app, {"GET", "app:1"}), "");
  EXPECT_EQ(check(app, {"GET", "other"}), no_key);
  EXPECT_EQ(check(app, {"MSET", "app:1", "v", "shared:a", "v"}), "");
  EXPECT_EQ(check(app, {"MSET", "app:1", "v", "shared:c", "v"}), no_key);
  EXPECT_EQ(check(app, {"MGET", "app:1", "other"}), no_key);
  EXPECT_EQ(check(app, {"RENAME", "app:1", "x"}), no_key);  // both keys count
  EXPECT_EQ(check(app, {"PING"}), "");                      // no keys
  EXPECT_EQ(check(app, {"FLUSHALL"}), "NOPERM this user has no permissions to run the 'flushall' command");
  // Listing the keyspace shows everyone's key names: not for a user limited to some keys.
  const std::string no_listing =
      "NOPERM this user has no permissions to list keys: the keyspace holds keys outside its key patterns";
  EXPECT_EQ(check(app, {"KEYS", "app:*"}), no_listing);
  EXPECT_EQ(check(app, {"SCAN", "0", "MATCH", "app:*"}), no_listing);
  EXPECT_EQ(check(app, {"RANDOMKEY"}), no_listing);
  const auto reader = user("r", "p", conf::Access::read);  // every key: it may
  EXPECT_EQ(check(reader, {"KEYS", "*"}), "");
  EXPECT_EQ(check(reader, {"SCAN", "0"}), "");
  EXPECT_EQ(check(reader, {"RANDOMKEY"}), "");
}

TEST(Refusal, ScriptAndFunctionManagement) {
  const auto writer = user("w", "p", conf::Access::readwrite);
  const auto admin = user("a", "p", conf::Access::admin);
  EXPECT_EQ(check(writer, {"SCRIPT", "LOAD", "return 1"}), "");
  EXPECT_EQ(check(writer, {"SCRIPT", "EXISTS", "abc"}), "");
  EXPECT_NE(check(writer, {"SCRIPT", "FLUSH"}), "");  // everyone's scripts
  EXPECT_NE(check(writer, {"FUNCTION", "LOAD", "#!lua name=l\n"}), "");
  EXPECT_NE(check(writer, {"FUNCTION", "FLUSH"}), "");
  EXPECT_EQ(check(writer, {"FUNCTION", "LIST"}), "");
  EXPECT_EQ(check(admin, {"SCRIPT", "FLUSH"}), "");
  EXPECT_EQ(check(admin, {"FUNCTION", "DELETE", "l"}), "");
}

TEST(KeyAllowed, RedisGlobSyntax) {
  const std::vector<std::string> p = {"a*", "b?", "c[xy]", "d[^x]", "e[a-c]", "f\\*"};
  for (std::string_view k : {"a", "abc", "a:b/c", "bz", "cx", "cy", "dz", "eb", "f*"}) EXPECT_TRUE(key_allowed(p, k)) << k;
  for (std::string_view k : {"b", "bzz", "cz", "dx", "ed", "fx", "", "xa"}) EXPECT_FALSE(key_allowed(p, k)) << k;
  EXPECT_TRUE(key_allowed(p, std::string_view("a\0", 2)));  // binary-safe, as redis
  EXPECT_FALSE(key_allowed({}, "a"));
}

// Redis's stringmatchlen, not fnmatch: checked against redis-server 7.0.15's ACL DRYRUN.
TEST(KeyAllowed, RedisNotFnmatch) {
  EXPECT_TRUE(glob_match("[!x]*", "!bc"));   // '!' is a literal in redis's classes
  EXPECT_FALSE(glob_match("[!x]*", "abc"));
  EXPECT_TRUE(glob_match("[!x]*", "xbc"));
  EXPECT_TRUE(glob_match("[z-a]", "m"));     // reversed ranges are swapped
  EXPECT_TRUE(glob_match("a\\*b", "a*b"));
  EXPECT_FALSE(glob_match("a\\*b", "axb"));
  EXPECT_FALSE(glob_match("*", ""));        // as stringmatchlen; but "~*" is every key:
  EXPECT_TRUE(key_allowed(std::vector<std::string>{"*"}, ""));
  EXPECT_FALSE(glob_match("?", ""));
  EXPECT_TRUE(glob_match("[abc", "a"));      // an unterminated class
  // No exponential time on a hostile pattern.
  EXPECT_FALSE(glob_match("a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", std::string(5000, 'a')));
}

TEST(Refusal, ScriptsAndSortPatterns) {
  const auto app = user("app", "p", conf::Access::readwrite, {"app:*"});
  const auto rw = user("rw", "p", conf::Access::readwrite);
  const auto admin = user("a", "p", conf::Access::admin);
  EXPECT_EQ(check(rw, {"EVAL", "return 1", "1", "k"}), "NOPERM this user has no permissions to run the 'eval' command");
  EXPECT_EQ(check(rw, {"EVAL_RO", "return 1", "1", "k"}), "");
  EXPECT_EQ(check(admin, {"EVAL", "return 1", "1", "k"}), "");
  EXPECT_NE(check(app, {"EVAL_RO", "return 1", "1", "app:1"}).find("run scripts"), std::string::npos);
  EXPECT_NE(check(app, {"SORT", "app:l", "GET", "x*"}).find("SORT's GET"), std::string::npos);
  EXPECT_NE(check(app, {"SORT", "app:l", "BY", "w_*"}).find("SORT's BY"), std::string::npos);
  EXPECT_EQ(check(app, {"SORT", "app:l", "BY", "nosort", "GET", "#"}), "");
  EXPECT_EQ(check(app, {"SORT", "app:l", "LIMIT", "0", "10", "ALPHA"}), "");
  EXPECT_EQ(check(rw, {"SORT", "l", "GET", "x*"}), "");  // no key patterns: every key is its own
}

}  // namespace
}  // namespace ringproxy::routing
