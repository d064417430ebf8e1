#include <gtest/gtest.h>

#include "conf/config.h"
#include "conf/loader.h"

namespace ringproxy::conf {
namespace {

struct GoodAddress {
  const char* text;
  const char* host;
  uint16_t port;
  const char* canonical;  // to_string()
};

const GoodAddress kGood[] = {
    {"127.0.0.1:7001", "127.0.0.1", 7001, "127.0.0.1:7001"},
    {"0.0.0.0:1", "0.0.0.0", 1, "0.0.0.0:1"},
    {"10.0.0.1:65535", "10.0.0.1", 65535, "10.0.0.1:65535"},
    {"localhost:6379", "127.0.0.1", 6379, "127.0.0.1:6379"},
    {"LocalHost:6379", "127.0.0.1", 6379, "127.0.0.1:6379"},
    {"[::1]:7001", "::1", 7001, "[::1]:7001"},
    {"[0:0::1]:7001", "::1", 7001, "[::1]:7001"},  // canonical, so duplicates compare equal
    {"[2001:DB8::1]:80", "2001:db8::1", 80, "[2001:db8::1]:80"},
    {"[::ffff:10.0.0.1]:80", "::ffff:10.0.0.1", 80, "[::ffff:10.0.0.1]:80"},
    {"127.0.0.1:07001", "127.0.0.1", 7001, "127.0.0.1:7001"},
};

TEST(ParseAddress, AcceptsNumericAddressesAndLocalhost) {
  for (const GoodAddress& c : kGood) {
    SCOPED_TRACE(c.text);
    std::string why;
    const std::optional<Address> address = parse_address(c.text, &why);
    ASSERT_TRUE(address.has_value()) << why;
    EXPECT_EQ(address->host, c.host);
    EXPECT_EQ(address->port, c.port);
    EXPECT_EQ(address->to_string(), c.canonical);
    EXPECT_EQ(parse_address(address->to_string(), nullptr), address);  // round trip
  }
}

struct BadAddress {
  const char* text;
  const char* why;  // a phrase of the reason
};

const BadAddress kBad[] = {
    {"", "empty address"},
    {"127.0.0.1", "missing ':<port>'"},
    {"127.0.0.1:", "missing port"},
    {"127.0.0.1:99999", "port 99999 is out of range 1-65535"},
    {"127.0.0.1:0", "port 0 is out of range 1-65535"},
    {"127.0.0.1:123456789012345678901234567890", "is out of range 1-65535"},
    {"127.0.0.1:abc", "port 'abc' is not a number"},
    {"127.0.0.1:-1", "port '-1' is not a number"},
    {"127.0.0.1:+1", "port '+1' is not a number"},
    {"127.0.0.1:7000 ", "port '7000 ' is not a number"},
    {"300.1.1.1:7000", "'300.1.1.1' is not a valid IPv4 address"},
    {"1.2.3:7000", "'1.2.3' is not a valid IPv4 address"},
    {"01.2.3.4:7000", "'01.2.3.4' is not a valid IPv4 address"},  // octal-looking
    {"host name:1", "'host name' is not an IP address"},
    {" 127.0.0.1:7000", "' 127.0.0.1' is not an IP address"},
    {"redis1:6379", "is a host name; use an IP address here (only servers' names are resolved)"},
    {"cache.example.com:6379", "is a host name; use an IP address here"},
    {":7000", "missing host"},
    {"[]:7000", "missing host"},
    {"[::1]7000", "expected ':<port>' after ']'"},
    {"[::1]", "expected ':<port>' after ']'"},
    {"[::1:7000", "missing ']'"},
    {"::1:7000", "IPv6 addresses need brackets, e.g. [::1]:7001"},
    {"[127.0.0.1]:7000", "'127.0.0.1' is not a valid IPv6 address"},
    {"[fe80::1%eth0]:7000", "'fe80::1%eth0' is not a valid IPv6 address"},
    {"[localhost]:7000", "'localhost' is not a valid IPv6 address"},
};

TEST(ParseAddress, RejectsWithAReason) {
  for (const BadAddress& c : kBad) {
    SCOPED_TRACE(c.text);
    std::string why;
    EXPECT_EQ(parse_address(c.text, &why), std::nullopt);
    EXPECT_NE(why.find(c.why), std::string::npos) << why;
    EXPECT_EQ(parse_address(c.text, nullptr), std::nullopt);  // `why` is optional
  }
}

// Backend servers may be named; the name is kept (lowercase: names are case-insensitive, so
// duplicates compare equal), resolved at run time.
TEST(ParseAddress, ServersMayBeHostNames) {
  const struct {
    const char* text;
    const char* host;
  } names[] = {
      {"redis1:6379", "redis1"},
      {"Cache-A.Internal:6379", "cache-a.internal"},
      {"cache_a.svc.cluster.local.:6379", "cache_a.svc.cluster.local."},
      {"1.2.3.4a:1", "1.2.3.4a"},
  };
  for (const auto& c : names) {
    SCOPED_TRACE(c.text);
    std::string why;
    const std::optional<Address> address = parse_address(c.text, &why, /*allow_names=*/true);
    ASSERT_TRUE(address.has_value()) << why;
    EXPECT_EQ(address->host, c.host);
    EXPECT_TRUE(address->is_name());
    EXPECT_EQ(parse_address(address->to_string(), nullptr, true), address);  // round trip
  }
  // Numeric addresses are never names, with names allowed or not.
  for (const GoodAddress& c : kGood) {
    SCOPED_TRACE(c.text);
    const std::optional<Address> address = parse_address(c.text, nullptr, true);
    ASSERT_TRUE(address.has_value());
    EXPECT_FALSE(address->is_name());
  }
  const struct {
    const char* text;
    const char* why;
  } bad[] = {
      {"-cache:1", "a part starts or ends with '-'"},
      {"cache-:1", "a part starts or ends with '-'"},
      {"a..b:1", "each part between dots has 1 to 63 characters"},
      {".a:1", "each part between dots has 1 to 63 characters"},
      {"cache a:1", "is not an IP address"},
      {"ca$he:1", "is not an IP address"},
  };
  for (const auto& c : bad) {
    SCOPED_TRACE(c.text);
    std::string why;
    EXPECT_EQ(parse_address(c.text, &why, true), std::nullopt);
    EXPECT_NE(why.find(c.why), std::string::npos) << why;
  }
  std::string why;
  EXPECT_EQ(parse_address(std::string(64, 'a') + ".b:1", &why, true), std::nullopt);
  EXPECT_NE(why.find("1 to 63 characters"), std::string::npos) << why;
  EXPECT_EQ(parse_address(std::string(254, 'a') + ":1", &why, true), std::nullopt);
  EXPECT_NE(why.find("at most 253"), std::string::npos) << why;
}

TEST(AddressToString, BracketsIpv6Only) {
  EXPECT_EQ((Address{"127.0.0.1", 7001}).to_string(), "127.0.0.1:7001");
  EXPECT_EQ((Address{"::1", 7001}).to_string(), "[::1]:7001");
  EXPECT_EQ((Address{"2001:db8::1", 1}).to_string(), "[2001:db8::1]:1");
}

}  // namespace
}  // namespace ringproxy::conf
