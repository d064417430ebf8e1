// TlsStream on memory BIOs, a client and a server session talking to each other in memory:
// what is written arrives whole and in order, and small buffers are gathered into full records
// (a pipeline of small replies or commands is one record, not one per buffer).
#include "proxy/net/tls.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace ringproxy::proxy {
namespace {

// A self-signed certificate for 127.0.0.1, written as PEM files for the contexts to read.
struct SelfSigned {
  SelfSigned() {
    const std::string base = ::testing::TempDir() + "ringproxy-tls-stream-" + std::to_string(::getpid());
    cert = base + ".crt";
    key = base + ".key";
    EVP_PKEY* pkey = EVP_RSA_gen(2048);
    X509* x509 = X509_new();
    X509_set_version(x509, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x509), 1);
    X509_gmtime_adj(X509_getm_notBefore(x509), -60);
    X509_gmtime_adj(X509_getm_notAfter(x509), 3600);
    X509_set_pubkey(x509, pkey);
    X509_NAME* name = X509_get_subject_name(x509);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("test"), -1, -1, 0);
    X509_set_issuer_name(x509, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x509, x509, nullptr, nullptr, 0);
    X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, "IP:127.0.0.1");
    X509_add_ext(x509, san, -1);
    X509_EXTENSION_free(san);
    X509_sign(x509, pkey, EVP_sha256());
    FILE* f = std::fopen(cert.c_str(), "w");
    PEM_write_X509(f, x509);
    std::fclose(f);
    f = std::fopen(key.c_str(), "w");
    PEM_write_PrivateKey(f, pkey, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    X509_free(x509);
    EVP_PKEY_free(pkey);
  }
  ~SelfSigned() {
    std::remove(cert.c_str());
    std::remove(key.c_str());
  }
  std::string cert, key;
};

struct Pair {
  explicit Pair(const SelfSigned& files) {
    conf::TlsListenConfig listen;
    listen.cert_file = files.cert;
    listen.key_file = files.key;
    std::string error;
    auto server_context = TlsContext::for_listener(listen, &error);
    EXPECT_NE(server_context, nullptr) << error;
    conf::ServerTlsConfig to_server;
    to_server.ca_file = files.cert;  // self-signed: its own CA
    auto client_context = TlsContext::for_servers(to_server, &error);
    EXPECT_NE(client_context, nullptr) << error;
    server = std::make_unique<TlsStream>(server_context);
    client = std::make_unique<TlsStream>(client_context, "127.0.0.1");
  }
  // Runs the handshake to its end, moving each side's output to the other.
  void handshake() {
    for (int round = 0; round < 10 && !(client->handshake_done() && server->handshake_done()); ++round) {
      ASSERT_GE(client->handshake(), 0) << client->error();
      std::string out;
      client->take_output(out);
      server->feed(out.data(), out.size());
      char scratch[16];
      ASSERT_GE(server->read(scratch, sizeof scratch), 0) << server->error();  // (drives the accept)
      out.clear();
      server->take_output(out);
      client->feed(out.data(), out.size());
    }
    ASSERT_TRUE(client->handshake_done());
    ASSERT_TRUE(server->handshake_done());
  }
  std::string read_all(TlsStream& from) {
    std::string got;
    char buffer[4096];
    long n;
    while ((n = from.read(buffer, sizeof buffer)) > 0) got.append(buffer, static_cast<size_t>(n));
    EXPECT_EQ(n, 0) << from.error();
    return got;
  }
  std::unique_ptr<TlsStream> server, client;
};

TEST(TlsStream, SmallBuffersAreGatheredIntoOneRecord) {
  SelfSigned files;
  Pair pair(files);
  pair.handshake();
  std::vector<std::string> commands;
  std::vector<uv_buf_t> bufs;
  std::string expected;
  for (int i = 0; i < 16; ++i) commands.push_back("*2\r\n$3\r\nGET\r\n$6\r\nkey:" + std::to_string(10 + i) + "\r\n");
  for (std::string& c : commands) {
    bufs.push_back(uv_buf_init(c.data(), static_cast<unsigned>(c.size())));
    expected += c;
  }
  std::string sealed;
  ASSERT_TRUE(pair.client->write(bufs.data(), bufs.size(), sealed));
  // One record: 5 bytes of header, the plaintext, a content type byte and a 16-byte tag (TLS 1.3).
  EXPECT_EQ(sealed.size(), expected.size() + 22) << "16 records would be " << expected.size() + 16 * 22;
  pair.server->feed(sealed.data(), sealed.size());
  EXPECT_EQ(pair.read_all(*pair.server), expected);
}

TEST(TlsStream, LargeAndMixedBuffersArriveWholeAndInOrder) {
  SelfSigned files;
  Pair pair(files);
  pair.handshake();
  std::string big(100 * 1024 + 7, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  std::string small1 = "+OK\r\n", small2 = ":42\r\n";
  std::vector<uv_buf_t> bufs = {uv_buf_init(small1.data(), 5), uv_buf_init(big.data(), static_cast<unsigned>(big.size())),
                                uv_buf_init(small2.data(), 5), uv_buf_init(big.data(), 16 * 1024)};
  std::string sealed;
  ASSERT_TRUE(pair.server->write(bufs.data(), bufs.size(), sealed));
  pair.client->feed(sealed.data(), sealed.size());
  EXPECT_EQ(pair.read_all(*pair.client), small1 + big + small2 + big.substr(0, 16 * 1024));
}

}  // namespace
}  // namespace ringproxy::proxy
