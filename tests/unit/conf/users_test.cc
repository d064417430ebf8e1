// [proxy] password, [[proxy.users]] and protected mode (issue 11).
#include <gtest/gtest.h>

#include <string>

#include "conf/loader.h"
#include "tests/unit/conf/parse_helpers.h"

namespace ringproxy::conf {
namespace {

constexpr char kShard[] = "[[pool.shards]]\nname = \"s\"\nservers = [\"127.0.0.1:7001\"]\n";

using testing::error_of;
using testing::parse;
using testing::parse_ok;

TEST(Users, NoneByDefault) {
  const Config c = parse_ok(kShard);
  EXPECT_TRUE(c.proxy.users.empty());
  EXPECT_TRUE(c.proxy.protected_mode);
}

TEST(Users, PasswordIsTheDefaultUserWithEveryRight) {
  const Config c = parse_ok(std::string("[proxy]\npassword = \"s3cret\"\n") + kShard);
  ASSERT_EQ(c.proxy.users.size(), 1u);
  EXPECT_EQ(c.proxy.users[0].name, "default");
  EXPECT_EQ(c.proxy.users[0].access, Access::admin);
  EXPECT_TRUE(c.proxy.users[0].keys.empty());
  EXPECT_EQ(c.proxy.users[0].password_sha256, password_digest("s3cret"));
  EXPECT_EQ(c.proxy.users[0].password_sha256.size(), 32u);
}

TEST(Users, UsersWithPasswordsDigestsAccessAndKeys) {
  const Config c = parse_ok(std::string(R"([proxy]
password = "root-pass"

[[proxy.users]]
name = "app"
password = "app-pass"
keys = ["app:*", "shared:?"]

[[proxy.users]]
name = "reader"
password_sha256 = "5E884898DA28047151D0E56F8DC6292773603D0D6AABBDD62A11EF721D1542D8"
access = "read"
)") + kShard);
  ASSERT_EQ(c.proxy.users.size(), 3u);
  EXPECT_EQ(c.proxy.users[0].name, "default");
  EXPECT_EQ(c.proxy.users[1].name, "app");
  EXPECT_EQ(c.proxy.users[1].access, Access::readwrite);  // the default access
  EXPECT_EQ(c.proxy.users[1].keys, (std::vector<std::string>{"app:*", "shared:?"}));
  EXPECT_EQ(c.proxy.users[2].access, Access::read);
  EXPECT_EQ(c.proxy.users[2].password_sha256, password_digest("password"));  // sha256("password")
}

TEST(Users, MistakesAreErrorsThatNeverShowTheSecret) {
  struct Case {
    std::string text;
    std::string wanted;
  };
  const Case cases[] = {
      {"[proxy]\npassword = \"\"\n", "'password' must not be empty"},
      {"[[proxy.users]]\nname = \"a\"\n", "user 'a' needs exactly one of 'password' and 'password_sha256'"},
      {"[[proxy.users]]\nname = \"a\"\npassword = \"topsecret1\"\npassword_sha256 = \"" + std::string(64, 'a') + "\"\n",
       "needs exactly one of"},
      {"[[proxy.users]]\nname = \"a\"\npassword_sha256 = \"abc\"\n", "must be 64 hexadecimal digits"},
      {"[[proxy.users]]\nname = \"a b\"\npassword = \"topsecret1\"\n", "without whitespace"},
      {"[[proxy.users]]\nname = \"a\"\npassword = \"topsecret1\"\naccess = \"write\"\n",
       "'access' must be one of read, readwrite, admin"},
      {"[[proxy.users]]\nname = \"a\"\npassword = \"topsecret1\"\nkeys = [\"\"]\n", "must not be empty"},
      {"[[proxy.users]]\nname = \"a\"\npassword = \"topsecret1\"\nkeys = []\n", "'keys' must list at least one pattern"},
      {"[[proxy.users]]\nname = \"a\"\npassword = \"topsecret1\"\n[[proxy.users]]\nname = \"a\"\npassword = "
       "\"topsecret2\"\n",
       "duplicate user name 'a'"},
      {"[proxy]\npassword = \"topsecret1\"\n[[proxy.users]]\nname = \"default\"\npassword = \"topsecret2\"\n",
       "the user 'default' is defined twice"},
      {"[[proxy.users]]\npassword = \"topsecret1\"\n", "user is missing 'name'"},
      {"[[proxy.users]]\nname = \"a\"\npasword = \"topsecret1\"\n", "did you mean 'password'?"},
  };
  for (const Case& c : cases) {
    const std::string error = error_of(c.text + kShard);
    EXPECT_NE(error.find(c.wanted), std::string::npos) << c.text << "\n-> " << error;
    EXPECT_EQ(error.find("topsecret"), std::string::npos) << error;
    EXPECT_EQ(error.find("test.toml:"), 0u) << error;  // file:line:column
  }
}

TEST(ProtectedMode, RefusesANonLoopbackListenerWithoutUsers) {
  const std::string error = error_of(std::string("[proxy]\nlisten = \"0.0.0.0:7000\"\n") + kShard);
  EXPECT_NE(error.find("protected mode"), std::string::npos) << error;
  EXPECT_NE(error.find("test.toml:2:"), std::string::npos) << error;  // at the listen key
  EXPECT_NE(error.find("protected_mode = false"), std::string::npos) << error;
}

TEST(ProtectedMode, LoopbackPasswordOrTurnedOffStarts) {
  for (const char* proxy : {"listen = \"127.0.0.1:7000\"\n", "listen = \"127.5.6.7:7000\"\n",
                            "listen = \"[::1]:7000\"\n", "listen = \"localhost:7000\"\n",
                            "listen = \"0.0.0.0:7000\"\npassword = \"p\"\n",
                            "listen = \"10.1.2.3:7000\"\n[[proxy.users]]\nname = \"u\"\npassword = \"p\"\n",
                            "listen = \"0.0.0.0:7000\"\nprotected_mode = false\n"}) {
    LoadResult result = parse(std::string("[proxy]\n") + proxy + kShard);
    EXPECT_TRUE(result.config.has_value()) << proxy << " -> " << result.error;
  }
}

TEST(ProtectedMode, Loopback) {
  EXPECT_TRUE(is_loopback(Address{"127.0.0.1", 1}));
  EXPECT_TRUE(is_loopback(Address{"127.255.0.1", 1}));
  EXPECT_TRUE(is_loopback(Address{"::1", 1}));
  EXPECT_FALSE(is_loopback(Address{"0.0.0.0", 1}));
  EXPECT_FALSE(is_loopback(Address{"::", 1}));
  EXPECT_FALSE(is_loopback(Address{"128.0.0.1", 1}));
  EXPECT_FALSE(is_loopback(Address{"::ffff:127.0.0.1", 1}));  // counted as not loopback: the safe side
}

}  // namespace
}  // namespace ringproxy::conf
