// [proxy.tls] and listen = "" (issue 12, client side).
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <cstdio>
#include <string>
#include <vector>

#include "conf/loader.h"
#include "tests/unit/conf/parse_helpers.h"

namespace ringproxy::conf {
namespace {

using testing::error_of;
using testing::parse_ok;

constexpr char kShard[] = "[[pool.shards]]\nname = \"s\"\nservers = [\"127.0.0.1:7001\"]\n";

// Files the loader only checks are readable (their contents are the TLS layer's to judge).
struct Files {
  Files() {
    for (const char* name : {"cert", "key", "ca"}) {
      const std::string path = ::testing::TempDir() + "ringproxy-tls-" + std::to_string(::getpid()) + "-" + name;
      std::ofstream(path) << "PEM\n";
      paths.push_back(path);
    }
  }
  ~Files() {
    for (const std::string& path : paths) std::remove(path.c_str());
  }
  std::string table(const std::string& more = "", const std::string& listen = "127.0.0.1:7443") const {
    return "[proxy.tls]\nlisten = \"" + listen + "\"\ncert_file = \"" + paths[0] + "\"\nkey_file = \"" + paths[1] +
           "\"\n" + more;
  }
  std::vector<std::string> paths;
};

TEST(ProxyTls, NoneByDefault) {
  const Config c = parse_ok(kShard);
  EXPECT_FALSE(c.proxy.tls.has_value());
  EXPECT_TRUE(c.proxy.plain_listener);
}

TEST(ProxyTls, AListenerBesideThePlainOneOrAlone) {
  Files files;
  const Config c = parse_ok(files.table("ca_file = \"" + files.paths[2] +
                                        "\"\nrequire_client_cert = true\nmin_version = \"1.3\"\n"
                                        "ciphers = \"ECDHE+AESGCM\"\nciphersuites = \"TLS_AES_256_GCM_SHA384\"\n") +
                            kShard);
  ASSERT_TRUE(c.proxy.tls.has_value());
  EXPECT_EQ(c.proxy.tls->listen, (Address{"127.0.0.1", 7443}));
  EXPECT_EQ(c.proxy.tls->cert_file, files.paths[0]);
  EXPECT_EQ(c.proxy.tls->ca_file, files.paths[2]);
  EXPECT_TRUE(c.proxy.tls->require_client_cert);
  EXPECT_EQ(c.proxy.tls->min_version, TlsVersion::tls1_3);
  EXPECT_EQ(c.proxy.tls->ciphersuites, "TLS_AES_256_GCM_SHA384");
  EXPECT_TRUE(c.proxy.plain_listener);
}

TEST(ProxyTls, TlsOnly) {
  Files files;
  const Config c = parse_ok("[proxy]\nlisten = \"\"\n" + files.table() + kShard);
  EXPECT_FALSE(c.proxy.plain_listener);
  // Mutual TLS authenticates clients: a public TLS listener may do without passwords.
  const Config open = parse_ok("[proxy]\nlisten = \"\"\n" +
                               files.table("ca_file = \"" + files.paths[2] + "\"\nrequire_client_cert = true\n",
                                           "0.0.0.0:7443") +
                               kShard);
  EXPECT_EQ(open.proxy.tls->listen, (Address{"0.0.0.0", 7443}));
}

TEST(ProxyTls, MistakesAreErrors) {
  Files files;
  struct Case {
    std::string text;
    std::string wanted;
  };
  const Case cases[] = {
      {"[proxy]\nlisten = \"\"\n", "nothing to listen on"},
      {"[proxy.tls]\nlisten = \"127.0.0.1:7443\"\n", "[proxy.tls] needs 'cert_file'"},
      {files.table("require_client_cert = true\n"), "require_client_cert = true needs ca_file"},
      {files.table("min_version = \"1.1\"\n"), "'min_version' must be one of 1.2, 1.3"},
      {files.table("ca_file = \"/nonexistent/ca.pem\"\n"), "cannot read ca_file '/nonexistent/ca.pem'"},
      {files.table("", "127.0.0.1:7000"), "[proxy.tls] listen is the plain listener's address too"},
      {files.table("", "0.0.0.0:7443"), "protected mode: ringproxy would listen for TLS on 0.0.0.0:7443"},
      {files.table("certfile = \"x\"\n"), "did you mean 'cert_file'?"},
  };
  for (const Case& c : cases) {
    const std::string error = error_of(c.text + kShard);
    EXPECT_NE(error.find(c.wanted), std::string::npos) << c.text << "\n-> " << error;
    EXPECT_EQ(error.find("test.toml:"), 0u) << error;
  }
}

// [pool.tls] and a shard's own tls table (issue 12, server side).
TEST(ServerTls, NoneByDefault) {
  const Config c = parse_ok(kShard);
  EXPECT_FALSE(c.pool.tls.has_value());
  EXPECT_FALSE(c.pool.shards[0].tls.has_value());
}

TEST(ServerTls, ThePoolsTableIsEveryShardsUnlessOneHasItsOwn) {
  Files files;
  const std::string pool = "[pool.tls]\nca_file = \"" + files.paths[2] + "\"\ncert_file = \"" + files.paths[0] +
                           "\"\nkey_file = \"" + files.paths[1] +
                           "\"\nserver_name = \"cache.internal\"\nmin_version = \"1.3\"\n";
  // The table may come after the shards in the file: shards still inherit it.
  const Config c = parse_ok("[[pool.shards]]\nname = \"a\"\nservers = [\"127.0.0.1:7001\"]\n"
                            "[[pool.shards]]\nname = \"b\"\nservers = [\"127.0.0.1:7002\"]\ntls = {enabled = false}\n"
                            "[[pool.shards]]\nname = \"c\"\nservers = [\"127.0.0.1:7003\"]\n"
                            "tls = {verify = false}\n" + pool);
  ASSERT_TRUE(c.pool.tls.has_value());
  EXPECT_TRUE(c.pool.tls->enabled);
  EXPECT_TRUE(c.pool.tls->verify);
  EXPECT_EQ(c.pool.tls->ca_file, files.paths[2]);
  EXPECT_EQ(c.pool.tls->cert_file, files.paths[0]);
  EXPECT_EQ(c.pool.tls->key_file, files.paths[1]);
  EXPECT_EQ(c.pool.tls->server_name, "cache.internal");
  EXPECT_EQ(c.pool.tls->min_version, TlsVersion::tls1_3);
  EXPECT_EQ(c.pool.shards[0].tls, c.pool.tls);
  ASSERT_TRUE(c.pool.shards[1].tls.has_value());
  EXPECT_FALSE(c.pool.shards[1].tls->enabled);
  // A shard's table replaces the pool's whole table: nothing of the pool's is kept.
  ASSERT_TRUE(c.pool.shards[2].tls.has_value());
  EXPECT_FALSE(c.pool.shards[2].tls->verify);
  EXPECT_EQ(c.pool.shards[2].tls->ca_file, "");
}

TEST(ServerTls, MistakesAreErrors) {
  Files files;
  struct Case {
    std::string text;
    std::string wanted;
  };
  const Case cases[] = {
      {"[pool.tls]\ncert_file = \"" + files.paths[0] + "\"\n", "[pool.tls] needs both cert_file and key_file"},
      {"[pool.tls]\nca_file = \"/nonexistent/ca.pem\"\n", "cannot read ca_file '/nonexistent/ca.pem'"},
      {"[pool.tls]\nmin_version = \"1.0\"\n", "'min_version' must be one of 1.2, 1.3"},
      {"[pool.tls]\nserver_name = \"a b\"\n", "'server_name' must be a host name"},
      {"[pool.tls]\nverfy = false\n", "did you mean 'verify'?"},
      {"[pool]\ntls = true\n", "tls"},
  };
  for (const Case& c : cases) {
    const std::string error = error_of(c.text + kShard);
    EXPECT_NE(error.find(c.wanted), std::string::npos) << c.text << "\n-> " << error;
    EXPECT_EQ(error.find("test.toml:"), 0u) << error;
  }
  const std::string shard_error =
      error_of("[[pool.shards]]\nname = \"s\"\nservers = [\"127.0.0.1:7001\"]\ntls = {key_file = \"" + files.paths[1] + "\"}\n");
  EXPECT_NE(shard_error.find("a shard's tls needs both cert_file and key_file"), std::string::npos) << shard_error;
}

}  // namespace
}  // namespace ringproxy::conf
