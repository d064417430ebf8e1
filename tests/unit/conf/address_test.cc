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
    {"redis1:6379", "use an IP address (hostnames are not resolved)"},
    {"cache.example.com:6379", "use an IP address (hostnames are not resolved)"},
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

TEST(AddressToString, BracketsIpv6Only) {
  EXPECT_EQ((Address{"127.0.0.1", 7001}).to_string(), "127.0.0.1:7001");
  EXPECT_EQ((Address{"::1", 7001}).to_string(), "[::1]:7001");
  EXPECT_EQ((Address{"2001:db8::1", 1}).to_string(), "[2001:db8::1]:1");
}

}  // namespace
}  // namespace ringproxy::conf
