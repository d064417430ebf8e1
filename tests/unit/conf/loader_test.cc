#include "conf/loader.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace ringproxy::conf {
namespace {

using routing::Distribution;
using routing::HashFunction;

// A valid shard, three lines, appended to cases whose error is elsewhere.
constexpr char kShard[] = "[[pool.shards]]\nname = \"s\"\nservers = [\"127.0.0.1:7001\"]\n";

LoadResult parse(const std::string& text) { return parse_config(text, "test.toml"); }

Config parse_ok(const std::string& text) {
  LoadResult result = parse(text);
  EXPECT_TRUE(result.config.has_value()) << result.error;
  EXPECT_EQ(result.error, "");
  return result.config.value_or(Config{});
}

TEST(Loader, DefaultsForEveryOptionalKey) {
  const Config c = parse_ok(kShard);
  EXPECT_EQ(c.proxy.listen, (Address{"127.0.0.1", 7000}));
  EXPECT_EQ(c.proxy.max_clients, 10000u);
  EXPECT_EQ(c.proxy.max_request_bytes, 67108864u);
  EXPECT_EQ(c.proxy.max_arguments, 1048576u);
  EXPECT_EQ(c.proxy.max_pending_per_client, 1024u);
  EXPECT_EQ(c.proxy.client_idle_timeout_ms, 0u);
  EXPECT_FALSE(c.proxy.allow_admin_commands);
  EXPECT_EQ(c.proxy.ping, PingAnswer::proxy);
  EXPECT_EQ(c.proxy.shutdown_timeout_ms, 10000u);
  EXPECT_FALSE(c.proxy.reuse_port);
  EXPECT_EQ(c.metrics.listen, (Address{"127.0.0.1", 9121}));
  EXPECT_EQ(c.pool.hash, HashFunction::fnv1a_64);
  EXPECT_EQ(c.pool.distribution, Distribution::ketama);
  EXPECT_EQ(c.pool.hash_tag, "");
  EXPECT_EQ(c.pool.connect_timeout_ms, 1000u);
  EXPECT_EQ(c.pool.request_timeout_ms, 2000u);
  EXPECT_EQ(c.pool.failure_limit, 3u);
  EXPECT_EQ(c.pool.retry_interval_ms, 1000u);
  EXPECT_EQ(c.pool.backend_connections, 1u);
  ASSERT_EQ(c.pool.shards.size(), 1u);
  EXPECT_EQ(c.pool.shards[0].name, "s");
  EXPECT_EQ(c.pool.shards[0].weight, 1u);
  ASSERT_EQ(c.pool.shards[0].servers.size(), 1u);
  EXPECT_EQ(c.pool.shards[0].servers[0], (Address{"127.0.0.1", 7001}));
}

TEST(Loader, EveryKeyIsRead) {
  const Config c = parse_ok(R"(
[proxy]
listen = "[::1]:7100"
max_clients = 5
max_request_bytes = 8589934592
max_arguments = 7
max_pending_per_client = 8
client_idle_timeout_ms = 9
allow_admin_commands = true
ping = "servers"
shutdown_timeout_ms = 2500
reuse_port = true

[metrics]
listen = "0.0.0.0:9999"

[pool]
hash = "murmur3"
distribution = "jump"
hash_tag = "::"
connect_timeout_ms = 11
request_timeout_ms = 12
failure_limit = 13
retry_interval_ms = 14
backend_connections = 64
dedicated_connections = 17
migration = "move"
migration_keys_per_second = 15
warm_window_ms = 16

[[pool.shards]]
name = "alpha"
weight = 65535
servers = ["localhost:7001"]

[[pool.shards]]
name = "beta"
servers = ["10.0.0.2:6379"]
)");
  EXPECT_EQ(c.proxy.listen, (Address{"::1", 7100}));
  EXPECT_EQ(c.proxy.max_clients, 5u);
  EXPECT_EQ(c.proxy.max_request_bytes, 8589934592u);
  EXPECT_EQ(c.proxy.max_arguments, 7u);
  EXPECT_EQ(c.proxy.max_pending_per_client, 8u);
  EXPECT_EQ(c.proxy.client_idle_timeout_ms, 9u);
  EXPECT_TRUE(c.proxy.allow_admin_commands);
  EXPECT_EQ(c.proxy.ping, PingAnswer::servers);
  EXPECT_EQ(c.proxy.shutdown_timeout_ms, 2500u);
  EXPECT_TRUE(c.proxy.reuse_port);
  EXPECT_EQ(c.metrics.listen, (Address{"0.0.0.0", 9999}));
  EXPECT_EQ(c.pool.hash, HashFunction::murmur3);
  EXPECT_EQ(c.pool.distribution, Distribution::jump);
  EXPECT_EQ(c.pool.hash_tag, "::");
  EXPECT_EQ(c.pool.dedicated_connections, 17u);
  EXPECT_EQ(c.pool.connect_timeout_ms, 11u);
  EXPECT_EQ(c.pool.request_timeout_ms, 12u);
  EXPECT_EQ(c.pool.failure_limit, 13u);
  EXPECT_EQ(c.pool.retry_interval_ms, 14u);
  EXPECT_EQ(c.pool.backend_connections, 64u);
  EXPECT_EQ(c.pool.migration, Migration::move);
  EXPECT_EQ(c.pool.migration_keys_per_second, 15u);
  EXPECT_EQ(c.pool.warm_window_ms, 16u);
  ASSERT_EQ(c.pool.shards.size(), 2u);  // in file order
  EXPECT_EQ(c.pool.shards[0].name, "alpha");
  EXPECT_EQ(c.pool.shards[0].weight, 65535u);
  EXPECT_EQ(c.pool.shards[0].servers, (std::vector<Address>{{"127.0.0.1", 7001}}));
  EXPECT_EQ(c.pool.shards[1].name, "beta");
  EXPECT_EQ(c.pool.shards[1].weight, 1u);
  EXPECT_EQ(c.pool.shards[1].servers, (std::vector<Address>{{"10.0.0.2", 6379}}));
}

TEST(Loader, EmptyMetricsListenDisablesTheEndpoint) {
  const Config c = parse_ok(std::string("[metrics]\nlisten = \"\"\n") + kShard);
  EXPECT_EQ(c.metrics.listen, std::nullopt);
}

TEST(Loader, EmptyHashTagMeansNone) {
  const Config c = parse_ok(std::string("[pool]\nhash_tag = \"\"\n") + kShard);
  EXPECT_EQ(c.pool.hash_tag, "");
}

TEST(Loader, AcceptsEveryHashAndDistributionName) {
  for (HashFunction fn : routing::all_hash_functions()) {
    const std::string name(routing::hash_function_name(fn));
    SCOPED_TRACE(name);
    EXPECT_EQ(parse_ok("[pool]\nhash = \"" + name + "\"\n" + kShard).pool.hash, fn);
  }
  for (Distribution d : routing::all_distributions()) {
    const std::string name(routing::distribution_name(d));
    SCOPED_TRACE(name);
    EXPECT_EQ(parse_ok("[pool]\ndistribution = \"" + name + "\"\n" + kShard).pool.distribution, d);
  }
}

TEST(Loader, AcceptsInlineTablesAndDottedKeys) {
  const Config c = parse_ok(R"(
proxy = { listen = "127.0.0.1:7100" }
pool.hash = "md5"
pool.shards = [ { name = "a", servers = ["127.0.0.1:7001"] },
                { name = "b", weight = 3, servers = ["127.0.0.1:7002"] } ]
)");
  EXPECT_EQ(c.proxy.listen.port, 7100);
  EXPECT_EQ(c.pool.hash, HashFunction::md5);
  ASSERT_EQ(c.pool.shards.size(), 2u);
  EXPECT_EQ(c.pool.shards[1].weight, 3u);
}

// One bad input: the error must start with "test.toml:<where>: " and contain `phrase`.
struct ErrorCase {
  const char* name;
  std::string text;
  const char* where;
  std::string phrase;
};

std::string with_shard(const char* text) { return std::string(text) + kShard; }

std::string shard_with(const char* lines) {
  return std::string("[[pool.shards]]\nname = \"a\"\n") + lines;
}

const std::string kLongName(65, 'n');

const ErrorCase kErrors[] = {
    // Unknown keys: at the key, with a suggestion.
    {"UnknownTopLevelKey", with_shard("proxi = 1\n"), "1:1",
     "unknown key 'proxi' at the top level; did you mean 'proxy'?"},
    {"UnknownTopLevelTable", with_shard("[poool]\n"), "1:2",
     "unknown key 'poool' at the top level; did you mean 'pool'?"},
    {"UnknownProxyKey", with_shard("[proxy]\nlisten = \"127.0.0.1:7000\"\nmax_client = 5\n"),
     "3:1", "unknown key 'max_client' in [proxy]; did you mean 'max_clients'?"},
    {"UnknownMetricsKey", with_shard("[metrics]\nlistne = \"\"\n"), "2:1",
     "unknown key 'listne' in [metrics]; did you mean 'listen'?"},
    {"UnknownPoolKey", with_shard("[pool]\nhsah = \"md5\"\n"), "2:1",
     "unknown key 'hsah' in [pool]; did you mean 'hash'?"},
    {"UnknownShardKey", shard_with("wieght = 2\nservers = [\"127.0.0.1:7001\"]\n"), "3:1",
     "unknown key 'wieght' in [[pool.shards]]; did you mean 'weight'?"},
    {"UnknownKeyListsKnownKeys", with_shard("[proxy]\ncolour = 1\n"), "2:1",
     "unknown key 'colour' in [proxy]; known keys: listen, tls, max_clients, max_request_bytes, "
     "max_arguments, max_pending_per_client, client_idle_timeout_ms, allow_admin_commands"},
    {"UnknownKeyInInlineTable", with_shard("proxy = { listen = \"127.0.0.1:7000\", lisen = 1 }\n"),
     "1:38", "unknown key 'lisen' in [proxy]; did you mean 'listen'?"},
    {"PoolKeyAfterShardHeader", std::string(kShard) + "hash = \"md5\"\n", "4:1",
     "unknown key 'hash' in [[pool.shards]]; 'hash' belongs in [pool] (keys after a table "
     "header belong to that table)"},
    {"ListenAtTopLevel", with_shard("listen = \"127.0.0.1:7000\"\n"), "1:1",
     "unknown key 'listen' at the top level; 'listen' belongs in [proxy] or [metrics]"},
    {"ReplicationUnknownKey", with_shard("[pool.replication]\nwrite_acks = \"all\"\n"), "2:1",
     "unknown key 'write_acks' in [pool.replication]; did you mean 'write_ack'?"},
    {"BadMigration", with_shard("[pool]\nmigration = \"copy\"\n"), "2:13",
     "'migration' must be one of none, warm, move"},
    {"ZeroMigrationRate", with_shard("[pool]\nmigration_keys_per_second = 0\n"), "2:29",
     "'migration_keys_per_second' must be"},
    {"ReplicationBadStrategy", with_shard("[pool.replication]\nstrategy = \"master-slave\"\n"), "2:12",
     "'strategy' must be one of none, primary-replica, multi-primary"},
    {"BadPing", with_shard("[proxy]\nping = \"backend\"\n"), "2:8",
     "'ping' must be one of proxy, servers, got \"backend\""},
    {"ReplicationBadReadFrom", with_shard("[pool.replication]\nread_from = \"nearest\"\n"), "2:13",
     "'read_from' must be one of primary, prefer-replica, replica, any, quorum"},
    {"ReplicaSetNeedsTwoServers",
     "[pool.replication]\nstrategy = \"multi-primary\"\n" + std::string(kShard), "5:11",
     "uses strategy \"multi-primary\" but lists 1 server"},
    {"MultiPrimaryHasNoPrimaryAck",
     shard_with("servers = [\"127.0.0.1:7001\", \"127.0.0.1:7002\"]\n"
                "replication = { strategy = \"multi-primary\", write_ack = \"primary\" }\n"), "4:15",
     "write_ack = \"primary\" needs strategy \"primary-replica\""},
    {"ShardReplicationUnknownKey",
     shard_with("servers = [\"127.0.0.1:7001\"]\nreplication = { stratgy = \"none\" }\n"), "4:17",
     "unknown key 'stratgy' in the shard's replication; did you mean 'strategy'?"},

    // Types and ranges: at the value.
    {"StringForInteger", with_shard("[proxy]\nmax_clients = \"10\"\n"), "2:15",
     "'max_clients' must be an integer, not a string"},
    {"FloatForInteger", with_shard("[proxy]\nmax_clients = 1.5\n"), "2:15",
     "'max_clients' must be an integer, not a floating-point number"},
    {"DateForInteger", with_shard("[proxy]\nmax_clients = 1979-05-27\n"), "2:15",
     "'max_clients' must be an integer, not a date"},
    {"NegativeInteger", with_shard("[proxy]\nmax_clients = -1\n"), "2:15",
     "'max_clients' must be at least 1, got -1"},
    {"ZeroMaxClients", with_shard("[proxy]\nmax_clients = 0\n"), "2:15",
     "'max_clients' must be at least 1, got 0"},
    {"MaxClientsOverflow", with_shard("[proxy]\nmax_clients = 4294967296\n"), "2:15",
     "'max_clients' must be between 1 and 4294967295, got 4294967296"},
    {"ZeroMaxRequestBytes", with_shard("[proxy]\nmax_request_bytes = 0\n"), "2:21",
     "'max_request_bytes' must be at least 1, got 0"},
    {"ZeroMaxArguments", with_shard("[proxy]\nmax_arguments = 0\n"), "2:17",
     "'max_arguments' must be at least 1, got 0"},
    {"ZeroMaxPending", with_shard("[proxy]\nmax_pending_per_client = 0\n"), "2:26",
     "'max_pending_per_client' must be at least 1, got 0"},
    {"NegativeIdleTimeout", with_shard("[proxy]\nclient_idle_timeout_ms = -5\n"), "2:26",
     "'client_idle_timeout_ms' must be at least 0, got -5"},
    {"StringForBool", with_shard("[proxy]\nallow_admin_commands = \"true\"\n"), "2:24",
     "'allow_admin_commands' must be true or false, not a string"},
    {"IntegerForBool", with_shard("[proxy]\nallow_admin_commands = 1\n"), "2:24",
     "'allow_admin_commands' must be true or false, not an integer"},
    {"IntegerForAddress", with_shard("[proxy]\nlisten = 7000\n"), "2:10",
     "'listen' must be a string, not an integer"},
    {"PortOutOfRange", with_shard("[proxy]\nlisten = \"127.0.0.1:99999\"\n"), "2:10",
     "bad address \"127.0.0.1:99999\" in 'listen': port 99999 is out of range 1-65535"},
    {"EmptyProxyListen", with_shard("[proxy]\nlisten = \"\"\n"), "2:10",
     "listen = \"\" turns the plain listener off, and there is no [proxy.tls] listener: nothing to listen on"},
    {"MetricsWithoutPort", with_shard("[metrics]\nlisten = \"127.0.0.1\"\n"), "2:10",
     "bad address \"127.0.0.1\" in 'listen': missing ':<port>'"},
    {"MetricsListenFalse", with_shard("[metrics]\nlisten = false\n"), "2:10",
     "'listen' must be a string, not a boolean"},
    {"UnknownHash", with_shard("[pool]\nhash = \"fnv1a64\"\n"), "2:8",
     "'hash' must be one of fnv1a_64, fnv1_64, fnv1a_32, fnv1_32, crc32, crc32a, md5, murmur3, "
     "xxh64, xxh3, got \"fnv1a64\"; did you mean 'fnv1a_64'?"},
    {"UnknownDistribution", with_shard("[pool]\ndistribution = \"consistent\"\n"), "2:16",
     "'distribution' must be one of ketama, modula, jump, got \"consistent\""},
    {"IntegerForHash", with_shard("[pool]\nhash = 5\n"), "2:8",
     "'hash' must be a string, not an integer"},
    {"HashTagOneChar", with_shard("[pool]\nhash_tag = \"{\"\n"), "2:12",
     "'hash_tag' must be \"\" (none) or exactly 2 characters such as \"{}\", got \"{\""},
    {"HashTagThreeChars", with_shard("[pool]\nhash_tag = \"{{}\"\n"), "2:12",
     "exactly 2 characters"},
    {"ZeroConnectTimeout", with_shard("[pool]\nconnect_timeout_ms = 0\n"), "2:22",
     "'connect_timeout_ms' must be at least 1, got 0"},
    {"FloatConnectTimeout", with_shard("[pool]\nconnect_timeout_ms = 1e3\n"), "2:22",
     "'connect_timeout_ms' must be an integer, not a floating-point number"},
    {"ZeroRequestTimeout", with_shard("[pool]\nrequest_timeout_ms = 0\n"), "2:22",
     "'request_timeout_ms' must be at least 1, got 0"},
    {"ZeroRetryInterval", with_shard("[pool]\nretry_interval_ms = 0\n"), "2:21",
     "'retry_interval_ms' must be at least 1, got 0"},
    {"ZeroFailureLimit", with_shard("[pool]\nfailure_limit = 0\n"), "2:17",
     "'failure_limit' must be at least 1, got 0"},
    {"ZeroBackendConnections", with_shard("[pool]\nbackend_connections = 0\n"), "2:23",
     "'backend_connections' must be between 1 and 64, got 0"},
    {"TooManyBackendConnections", with_shard("[pool]\nbackend_connections = 65\n"), "2:23",
     "'backend_connections' must be between 1 and 64, got 65"},
    {"ZeroDedicatedConnections", with_shard("[pool]\ndedicated_connections = 0\n"), "2:25",
     "'dedicated_connections' must be between 1 and 10000, got 0"},
    {"ProxyNotATable", with_shard("proxy = 5\n"), "1:9", "'proxy' must be a table, not an integer"},
    {"PoolNotATable", "pool = \"x\"\n", "1:8", "'pool' must be a table, not a string"},

    // Shards.
    {"ZeroWeight", shard_with("weight = 0\nservers = [\"127.0.0.1:7001\"]\n"), "3:10",
     "'weight' must be between 1 and 65535, got 0"},
    {"HugeWeight", shard_with("weight = 70000\nservers = [\"127.0.0.1:7001\"]\n"), "3:10",
     "'weight' must be between 1 and 65535, got 70000"},
    {"StringWeight", shard_with("weight = \"1\"\nservers = [\"127.0.0.1:7001\"]\n"), "3:10",
     "'weight' must be an integer, not a string"},
    {"EmptyName", "[[pool.shards]]\nname = \"\"\nservers = [\"127.0.0.1:7001\"]\n", "2:8",
     "shard 'name' must not be empty"},
    {"NameWithSpace", "[[pool.shards]]\nname = \"a b\"\nservers = [\"127.0.0.1:7001\"]\n", "2:8",
     "shard name \"a b\" must not contain whitespace or control characters"},
    {"NameWithTab", "[[pool.shards]]\nname = \"a\\tb\"\nservers = [\"127.0.0.1:7001\"]\n", "2:8",
     "must not contain whitespace or control characters"},
    {"NameTooLong",
     "[[pool.shards]]\nname = \"" + kLongName + "\"\nservers = [\"127.0.0.1:7001\"]\n", "2:8",
     "is 65 bytes; at most 64 are allowed"},
    {"NameWithNewlineStaysOneLine",
     "[[pool.shards]]\nname = \"a\\nb\"\nservers = [\"127.0.0.1:7001\"]\n", "2:8",
     "shard name \"a\\nb\" must not contain whitespace or control characters"},
    {"IntegerName", "[[pool.shards]]\nname = 5\nservers = [\"127.0.0.1:7001\"]\n", "2:8",
     "'name' must be a string, not an integer"},
    {"ServersNotAnArray", shard_with("servers = \"127.0.0.1:7001\"\n"), "3:11",
     "'servers' must be an array of addresses, e.g. [\"127.0.0.1:7001\"], not a string"},
    {"NoServers", shard_with("servers = []\n"), "3:11", "'servers' must list at least one address"},
    {"IntegerServer", shard_with("servers = [7001]\n"), "3:12",
     "'servers' must be a string, not an integer"},
    {"BadSecondServer", shard_with("servers = [\"127.0.0.1:7001\", \"host name:1\"]\n"), "3:30",
     "bad address \"host name:1\" in 'servers': 'host name' is not an IP address"},
    {"HostnameListener", "[proxy]\nlisten = \"proxy.internal:7000\"\n", "2:10",
     "bad address \"proxy.internal:7000\" in 'listen': 'proxy.internal' is a host name; use an IP address here "
     "(only servers' names are resolved)"},
    {"BadHostnameServer", shard_with("servers = [\"-redis1:6379\"]\n"), "3:12",
     "bad address \"-redis1:6379\" in 'servers': '-redis1' is not a valid host name"},
    {"Ipv6WithoutBrackets", shard_with("servers = [\"::1:7001\"]\n"), "3:12",
     "IPv6 addresses need brackets, e.g. [::1]:7001"},
    {"ControlCharacterInAddress", shard_with("servers = [\"1.2.3.4:1\\u0001\"]\n"), "3:12",
     "bad address \"1.2.3.4:1\\x01\" in 'servers': port '1\\x01' is not a number"},
    {"ReplicaSet", shard_with("servers = [\"127.0.0.1:7001\", \"127.0.0.1:7002\"]\n"), "3:11",
     "shard 'a' lists 2 servers but replication strategy is \"none\""},
    {"MissingName", "[[pool.shards]]\nservers = [\"127.0.0.1:7001\"]\n", "1:1",
     "shard is missing 'name'"},
    {"SecondShardMissingName", std::string(kShard) + "\n[[pool.shards]]\nweight = 2\n", "5:1",
     "shard is missing 'name'"},
    {"MissingServers", "[[pool.shards]]\nname = \"a\"\n", "1:1", "shard 'a' is missing 'servers'"},
    {"DuplicateShardName",
     std::string(kShard) + "[[pool.shards]]\nname = \"s\"\nservers = [\"127.0.0.1:7002\"]\n",
     "5:8", "duplicate shard name 's' (first defined at test.toml:2:8)"},
    {"DuplicateServer",
     std::string(kShard) + "[[pool.shards]]\nname = \"t\"\nservers = [\"127.0.0.1:7001\"]\n",
     "6:12", "duplicate server address 127.0.0.1:7001 (also in shard 's' at test.toml:3:12)"},
    {"DuplicateServerViaLocalhost",
     std::string(kShard) + "[[pool.shards]]\nname = \"t\"\nservers = [\"localhost:7001\"]\n",
     "6:12", "duplicate server address 127.0.0.1:7001 (also in shard 's'"},
    {"DuplicateIpv6Server",
     "[[pool.shards]]\nname = \"a\"\nservers = [\"[::1]:7001\"]\n"
     "[[pool.shards]]\nname = \"b\"\nservers = [\"[0::1]:7001\"]\n",
     "6:12", "duplicate server address [::1]:7001 (also in shard 'a' at test.toml:3:12)"},
    {"EmptyShardsArray", "[pool]\nshards = []\n", "2:10", "'shards' must list at least one shard"},
    {"ShardsNotAnArrayOfTables", "[pool]\nshards = [1, 2]\n", "2:10",
     "'shards' must be an array of tables ([[pool.shards]]), not an array"},
    {"ShardsSingleTable", "[pool.shards]\nname = \"a\"\n", "1:1",
     "'shards' must be an array of tables ([[pool.shards]]), not a table"},

    // Structure.
    {"EmptyFile", "", "1:1", "missing [pool] with at least one [[pool.shards]]"},
    {"NoPool", "[proxy]\nlisten = \"127.0.0.1:7000\"\n", "1:1",
     "missing [pool] with at least one [[pool.shards]]"},
    {"PoolWithoutShards", "# comment\n[pool]\nhash = \"md5\"\n", "2:1",
     "[pool] needs at least one [[pool.shards]]"},

    // TOML syntax: toml++'s description at its position.
    {"UnquotedAddress", with_shard("[proxy]\nlisten = 127.0.0.1:7000\n"), "2:12",
     "Error while parsing"},
    {"DuplicateKey", with_shard("[proxy]\nmax_clients = 1\nmax_clients = 2\n"), "3:15",
     "cannot redefine existing integer 'max_clients'"},
    {"UnterminatedString", "[proxy]\nlisten = \"127.0.0.1:7000\n", "2:25", "Error while parsing"},

    // The first error in the file is the one reported (toml++ iterates keys sorted).
    {"FirstErrorInDocumentOrder", with_shard("[proxy]\nmax_clients = 0\nlisten = 5\n"), "2:15",
     "'max_clients' must be at least 1, got 0"},
};

class LoaderError : public testing::TestWithParam<ErrorCase> {};

TEST_P(LoaderError, NamesLineColumnAndTheProblem) {
  const ErrorCase& c = GetParam();
  const LoadResult result = parse(c.text);
  ASSERT_FALSE(result.config.has_value()) << c.text;
  const std::string prefix = std::string("test.toml:") + c.where + ": ";
  EXPECT_EQ(result.error.substr(0, prefix.size()), prefix) << result.error;
  EXPECT_NE(result.error.find(c.phrase), std::string::npos) << result.error;
  EXPECT_EQ(result.error.find('\n'), std::string::npos) << "one line: " << result.error;
}

INSTANTIATE_TEST_SUITE_P(Cases, LoaderError, testing::ValuesIn(kErrors),
                         [](const testing::TestParamInfo<ErrorCase>& info) {
                           return std::string(info.param.name);
                         });

// routing::Ring::build needs the weights to add up to less than 2^31.
TEST(Loader, TotalWeightIsBounded) {
  std::string text;
  for (int i = 1; i <= 32769; ++i) {  // 32769 * 65535 = 2^31 + 32767
    text += "[[pool.shards]]\nname = \"s" + std::to_string(i) + "\"\nweight = 65535\n" +
            "servers = [\"127.0.0.1:" + std::to_string(i) + "\"]\n";
  }
  const LoadResult result = parse(text);
  EXPECT_EQ(result.error,
            "test.toml:1:1: the shards' weights add up to 2147516415; at most 2147483647 are "
            "allowed");
}

// The planner picks a read server from stack arrays of 64 entries and numbers a group's
// servers in a uint8_t: a replicated shard of 70 servers overflowed them (found while
// writing tests/fuzz/routing_fuzz; config_loader_fuzz now plans over every config it loads).
TEST(Loader, AtMost64ServersInAShard) {
  auto shard_of = [](int servers) {
    std::string text =
        "[[pool.shards]]\nname = \"wide\"\n"
        "replication = { strategy = \"multi-primary\", write_ack = \"one\", read_from = \"any\" }\n"
        "servers = [";
    for (int i = 0; i < servers; ++i) text += (i ? ", \"127.0.0.1:" : "\"127.0.0.1:") + std::to_string(7000 + i) + "\"";
    return text + "]\n";
  };
  EXPECT_TRUE(parse(shard_of(64)).config.has_value());
  const LoadResult result = parse(shard_of(65));
  EXPECT_FALSE(result.config.has_value());
  EXPECT_EQ(result.error, "test.toml:4:11: shard 'wide' lists 65 servers; at most 64 are allowed");
}

TEST(LoadConfigFile, MissingFile) {
  const LoadResult result = load_config_file("/nonexistent/ringproxy.toml");
  EXPECT_FALSE(result.config.has_value());
  EXPECT_EQ(result.error, "cannot read /nonexistent/ringproxy.toml: No such file or directory");
}

TEST(LoadConfigFile, Directory) {
  const std::string dir = testing::TempDir();
  const LoadResult result = load_config_file(dir);
  EXPECT_FALSE(result.config.has_value());
  EXPECT_EQ(result.error, "cannot read " + dir + ": Is a directory");
}

TEST(LoadConfigFile, ReadsAFileAndNamesItInErrors) {
  const std::filesystem::path path =
      std::filesystem::path(testing::TempDir()) / "ringproxy_loader_test.toml";
  {
    std::ofstream out(path);
    out << kShard;
  }
  const LoadResult good = load_config_file(path.string());
  ASSERT_TRUE(good.config.has_value()) << good.error;
  EXPECT_EQ(good.config->pool.shards.at(0).name, "s");
  EXPECT_EQ(good.digest, text_digest(kShard));  // what `sha256sum | cut -c1-16` prints
  EXPECT_EQ(good.digest.size(), 16u);
  EXPECT_EQ(text_digest(""), "e3b0c44298fc1c14");

  {
    std::ofstream out(path);
    out << kShard << "weight = 0\n";
  }
  const LoadResult bad = load_config_file(path.string());
  EXPECT_FALSE(bad.config.has_value());
  EXPECT_EQ(bad.error, path.string() + ":4:10: 'weight' must be between 1 and 65535, got 0");
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace ringproxy::conf

namespace ringproxy::conf {
namespace {

TEST(LoaderReplication, PoolDefaultsAndShardOverrides) {
  LoadResult r = parse_config(
      "[pool]\n"
      "[[pool.shards]]\nname = \"a\"\nservers = [\"127.0.0.1:7001\", \"127.0.0.1:7002\", \"127.0.0.1:7003\"]\n"
      "[[pool.shards]]\nname = \"b\"\nservers = [\"127.0.0.1:7004\", \"127.0.0.1:7005\"]\n"
      "replication = { strategy = \"multi-primary\", write_ack = \"all\", read_from = \"any\" }\n"
      "[[pool.shards]]\nname = \"c\"\nservers = [\"127.0.0.1:7006\"]\nreplication = { strategy = \"none\" }\n"
      "[pool.replication]\nstrategy = \"primary-replica\"\nwrite_ack = \"one\"\nread_from = \"prefer-replica\"\n"
      "replay_queue_max_writes = 500\n",
      "r.toml");
  ASSERT_TRUE(r.config) << r.error;
  const PoolConfig& pool = r.config->pool;
  EXPECT_EQ(pool.replication.strategy, ReplicationStrategy::primary_replica);
  const ReplicationConfig& a = pool.shards[0].replication;
  EXPECT_EQ(a.strategy, ReplicationStrategy::primary_replica);
  EXPECT_EQ(a.write_ack, WriteAck::one);
  EXPECT_EQ(a.read_from, ReadFrom::prefer_replica);
  EXPECT_EQ(a.replay_queue_max_writes, 500u);
  const ReplicationConfig& b = pool.shards[1].replication;
  EXPECT_EQ(b.strategy, ReplicationStrategy::multi_primary);
  EXPECT_EQ(b.write_ack, WriteAck::all);
  EXPECT_EQ(b.read_from, ReadFrom::any);
  EXPECT_EQ(b.replay_queue_max_writes, 500u);  // not overridden: the pool's
  EXPECT_EQ(pool.shards[2].replication.strategy, ReplicationStrategy::none);
}

}  // namespace
}  // namespace ringproxy::conf
