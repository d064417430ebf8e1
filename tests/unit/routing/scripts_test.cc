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

TEST(ScriptBook, IsBounded) {
  ScriptBook book(20);
  EXPECT_TRUE(book.remember("return 'aaaaaaaaa'"));  // 18 bytes
  EXPECT_FALSE(book.remember("return 2"));           // 26 > 20: not remembered
  EXPECT_EQ(book.body(script_sha1("return 2")), nullptr);
  EXPECT_EQ(book.bytes(), 18u);
}

TEST(ScriptBook, NoscriptReplies) {
  EXPECT_TRUE(is_noscript_reply("-NOSCRIPT No matching script. Please use EVAL.\r\n"));
  EXPECT_FALSE(is_noscript_reply("-ERR unknown\r\n"));
  EXPECT_FALSE(is_noscript_reply("+OK\r\n"));
}

}  // namespace
}  // namespace ringproxy::routing
