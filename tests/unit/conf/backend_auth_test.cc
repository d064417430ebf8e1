// [pool] / [[pool.shards]] username, password, password_file, password_env and dns_refresh_ms
// (issue 11: backend credentials and names).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "conf/loader.h"
#include "tests/unit/conf/parse_helpers.h"

namespace ringproxy::conf {
namespace {

using testing::error_of;
using testing::parse_ok;

std::string temp_file(const std::string& content) {
  std::string path = ::testing::TempDir() + "ringproxy-secret-" + std::to_string(::getpid()) + "-" +
                     std::to_string(std::hash<std::string>{}(content));
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

constexpr char kTwoShards[] = R"(
[[pool.shards]]
name = "a"
servers = ["127.0.0.1:7001"]

[[pool.shards]]
name = "b"
servers = ["cache-b.internal:6379"]
username = "proxy-b"
password = "pw-b"
)";

TEST(BackendAuth, NoneByDefault) {
  const Config c = parse_ok("[[pool.shards]]\nname = \"a\"\nservers = [\"127.0.0.1:7001\"]\n");
  EXPECT_EQ(c.pool.auth, BackendAuth{});
  EXPECT_EQ(c.pool.shards[0].auth, BackendAuth{});
  EXPECT_EQ(c.pool.dns_refresh_ms, 30000u);
}

TEST(BackendAuth, ShardsInheritThePoolsUnlessTheyNameTheirOwn) {
  const Config c = parse_ok(std::string("[pool]\npassword = \"pw-pool\"\ndns_refresh_ms = 500\n") + kTwoShards);
  EXPECT_EQ(c.pool.auth, (BackendAuth{"", "pw-pool", ""}));
  EXPECT_EQ(c.pool.shards[0].auth, (BackendAuth{"", "pw-pool", ""}));
  EXPECT_EQ(c.pool.shards[1].auth, (BackendAuth{"proxy-b", "pw-b", ""}));
  EXPECT_EQ(c.pool.shards[1].servers[0].host, "cache-b.internal");
  EXPECT_EQ(c.pool.dns_refresh_ms, 500u);
}

// [pool]'s keys may follow its shards (an inline array): shards still inherit them.
TEST(BackendAuth, PoolCredentialsWrittenAfterTheShards) {
  const Config c = parse_ok(
      "[pool]\nshards = [{name = \"a\", servers = [\"127.0.0.1:7001\"]}]\nusername = \"u\"\npassword = \"p\"\n");
  EXPECT_EQ(c.pool.shards[0].auth, (BackendAuth{"u", "p", ""}));
}

TEST(BackendAuth, PasswordFromAFileWithoutItsFinalNewline) {
  const std::string path = temp_file("from-file\n");
  const Config c = parse_ok("[pool]\npassword_file = \"" + path + "\"\n" + kTwoShards);
  EXPECT_EQ(c.pool.shards[0].auth.password, "from-file");
  EXPECT_EQ(c.pool.shards[0].auth.password_file, path);  // read again when it changes
  const std::string crlf = temp_file("crlf\r\n");
  EXPECT_EQ(parse_ok("[pool]\npassword_file = \"" + crlf + "\"\n" + kTwoShards).pool.auth.password, "crlf");
  std::remove(path.c_str());
  std::remove(crlf.c_str());
}

TEST(BackendAuth, PasswordFromTheEnvironment) {
  ::setenv("RINGPROXY_TEST_BACKEND_PW", "from-env", 1);
  const Config c = parse_ok("[pool]\nusername = \"u\"\npassword_env = \"RINGPROXY_TEST_BACKEND_PW\"\n" +
                            std::string(kTwoShards));
  EXPECT_EQ(c.pool.shards[0].auth, (BackendAuth{"u", "from-env", ""}));
  ::unsetenv("RINGPROXY_TEST_BACKEND_PW");
}

TEST(BackendAuth, MistakesAreErrorsThatNeverShowTheSecret) {
  const std::string secret_file = temp_file("topsecret-file\n");
  const std::string empty_file = temp_file("\n");
  ::setenv("RINGPROXY_TEST_EMPTY", "", 1);
  ::setenv("RINGPROXY_TEST_SET", "topsecret-env", 1);
  struct Case {
    std::string pool;
    std::string wanted;
  };
  const Case cases[] = {
      {"password = \"\"\n", "'password' must not be empty"},
      {"password = \"topsecret1\"\npassword_env = \"RINGPROXY_TEST_SET\"\n",
       "one of 'password', 'password_file' and 'password_env', not several"},
      {"password = \"topsecret1\"\npassword_file = \"" + secret_file + "\"\n", "not several"},
      {"username = \"u\"\n", "'username' needs a password"},
      {"username = \"a b\"\npassword = \"topsecret1\"\n", "without whitespace"},
      {"password_file = \"/nonexistent/ringproxy-pw\"\n",
       "cannot read password_file '/nonexistent/ringproxy-pw': No such file or directory"},
      {"password_file = \"" + empty_file + "\"\n", "is empty"},
      {"password_env = \"RINGPROXY_TEST_UNSET_VARIABLE\"\n",
       "the environment variable 'RINGPROXY_TEST_UNSET_VARIABLE', which is not set"},
      {"password_env = \"RINGPROXY_TEST_EMPTY\"\n", "which is empty"},
      {"password = 5\n", "'password' must be a string"},
      {"dns_refresh_ms = 10\n", "'dns_refresh_ms' must be at least 100"},
      {"pasword = \"topsecret1\"\n", "unknown key 'pasword'"},
  };
  for (const Case& c : cases) {
    const std::string error = error_of("[pool]\n" + c.pool + kTwoShards);
    EXPECT_NE(error.find(c.wanted), std::string::npos) << c.pool << "\n-> " << error;
    EXPECT_EQ(error.find("topsecret"), std::string::npos) << error;
    EXPECT_EQ(error.find("test.toml:"), 0u) << error;
  }
  // A shard's own credentials are checked the same way.
  const std::string error =
      error_of("[[pool.shards]]\nname = \"a\"\nservers = [\"127.0.0.1:7001\"]\nusername = \"u\"\n");
  EXPECT_NE(error.find("'username' needs a password"), std::string::npos) << error;
  ::unsetenv("RINGPROXY_TEST_EMPTY");
  ::unsetenv("RINGPROXY_TEST_SET");
  std::remove(secret_file.c_str());
  std::remove(empty_file.c_str());
}

}  // namespace
}  // namespace ringproxy::conf
