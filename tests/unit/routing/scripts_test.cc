// The scripts the proxy remembers for servers that answer NOSCRIPT (issue 13): routing/scripts.h.
#include "routing/scripts.h"

#include <gtest/gtest.h>

#include <string>

namespace ringproxy::routing {
namespace {

TEST(ScriptBook, RemembersBodiesByTheirSha1AsRedisNamesThem) {
  EXPECT_EQ(script_sha1("return 1"), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");  // redis's SCRIPT LOAD says so
  ScriptBook book;
  EXPECT_EQ(book.body("e0e1f9fabfc9d4800c877a703b823ac0578ff8db"), nullptr);
  EXPECT_TRUE(book.remember("return 1"));
  EXPECT_TRUE(book.remember("return 1"));  // once
  EXPECT_EQ(book.size(), 1u);
  ASSERT_NE(book.body("E0E1F9FABFC9D4800C877A703B823AC0578FF8DB"), nullptr);  // EVALSHA takes either case
  EXPECT_EQ(*book.body("e0e1f9fabfc9d4800c877a703b823ac0578ff8db"), "return 1");
  EXPECT_EQ(book.body("e0e1"), nullptr);
  book.forget_all();  // SCRIPT FLUSH
  EXPECT_EQ(book.body("e0e1f9fabfc9d4800c877a703b823ac0578ff8db"), nullptr);
  EXPECT_EQ(book.bytes(), 0u);
}

TEST(ScriptBook, IsBoundedAndForgetsTheLeastRecentlyUsed) {
  ScriptBook book(30);
  EXPECT_TRUE(book.remember("return 'aaaaaaaa'"));  // 17 bytes
  EXPECT_TRUE(book.remember("return 1"));           // 8: 25
  ASSERT_NE(book.body(script_sha1("return 'aaaaaaaa'")), nullptr);  // used: "return 1" is the oldest now
  EXPECT_TRUE(book.remember("return 22"));          // 9: 34 > 30, "return 1" goes
  EXPECT_EQ(book.body(script_sha1("return 1")), nullptr);
  EXPECT_NE(book.body(script_sha1("return 'aaaaaaaa'")), nullptr);
  EXPECT_NE(book.body(script_sha1("return 22")), nullptr);
  EXPECT_EQ(book.bytes(), 26u);
  EXPECT_FALSE(book.remember(std::string(31, 'x')));  // larger than the bound on its own
  EXPECT_EQ(book.size(), 2u);
}

TEST(ScriptBook, NoscriptReplies) {
  EXPECT_TRUE(is_noscript_reply("-NOSCRIPT No matching script. Please use EVAL.\r\n"));
  EXPECT_FALSE(is_noscript_reply("-ERR unknown\r\n"));
  EXPECT_FALSE(is_noscript_reply("+OK\r\n"));
}

}  // namespace
}  // namespace ringproxy::routing
