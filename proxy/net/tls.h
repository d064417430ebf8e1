// TLS with OpenSSL over libuv streams: the session works on memory BIOs (ciphertext is fed
// in from the socket's reads and taken out for its writes), so the event loop, the buffers and
// the write batching stay the proxy's own, as for a plain connection.
//
// TlsContext: what a listener (or, later, a server connection) is configured with: its
// certificate, key, CAs, versions and ciphers; built from the config at start and by each
// reload (an unreadable file or a key that does not match its certificate is a reload error
// that changes nothing); sessions keep the context they started with.
// TlsStream: one connection's session.
#pragma once

#include <uv.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "conf/config.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace ringproxy::proxy {

class TlsContext {
 public:
  // A listener's context; nullptr with why in `error` (never a key's contents).
  static std::shared_ptr<TlsContext> for_listener(const conf::TlsListenConfig& config, std::string* error);
  // The context of connections to servers ([pool.tls] or a shard's own); likewise.
  static std::shared_ptr<TlsContext> for_servers(const conf::ServerTlsConfig& config, std::string* error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* ctx() const { return ctx_; }
  // When its certificate stops being valid (notAfter), in Unix seconds (0: it has none).
  int64_t certificate_expiry() const { return expiry_; }
  // Servers: the name every server's certificate is checked against ("": each its own host),
  // and whether it is checked at all.
  const std::string& server_name() const { return server_name_; }
  bool verify() const { return verify_; }

 private:
  TlsContext() = default;
  SSL_CTX* ctx_ = nullptr;
  int64_t expiry_ = 0;
  std::string server_name_;
  bool verify_ = false;
};

// The contexts of connections to servers, by shard name (nullptr: plain), built from
// [pool.tls] and the shards' own tables (shards with equal tables share one). "" is the
// pool's own.
struct ServerTlsContexts {
  std::map<std::string, std::shared_ptr<const TlsContext>> by_shard;
  // Shards a reload removed keep the context they had: their keys are still moved off them.
  std::map<std::string, std::shared_ptr<const TlsContext>> removed;
  // Each client certificate file presented to servers, and when it expires (Unix seconds).
  std::vector<std::pair<std::string, double>> expiries;
  // False, with why in `error` (naming the table and the file), when a file is unusable.
  static bool build(const conf::PoolConfig& pool, ServerTlsContexts* out, std::string* error);
  const std::shared_ptr<const TlsContext>& of(const std::string& shard) const;
  // Keeps what `previous` had for shards this config no longer has.
  void keep_removed(const ServerTlsContexts& previous);
};

class TlsStream {
 public:
  // A client's session, accepted by a listener.
  explicit TlsStream(std::shared_ptr<const TlsContext> context);
  // A session to a server at `host` (its configured host name or IP): the name sent (SNI) and
  // checked is the context's server_name, else `host`; an IP is checked against IP SANs.
  TlsStream(std::shared_ptr<const TlsContext> context, const std::string& host);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // Ciphertext from the socket.
  void feed(const char* data, size_t size);
  // Drives the handshake on (a connecting session starts it): 1 done, 0 it needs the peer's
  // next flight (send take_output's first), -1 failed (why: error()).
  int handshake();
  // Plaintext, up to `size` bytes: > 0 bytes read; 0: nothing until more ciphertext comes;
  // -1: the session failed or the peer closed it (why: error()).
  long read(char* out, size_t size);
  // Plaintext to send: its ciphertext is appended to `out`. False: the session failed.
  bool write(const uv_buf_t* bufs, size_t count, std::string& out);
  // Ciphertext the session sends on its own (its handshake, alerts), appended to `out`.
  void take_output(std::string& out);
  // A close_notify for the peer, appended to `out` (the session is done).
  void close_notify(std::string& out);

  bool handshake_done() const;
  const std::string& error() const { return error_; }
  std::string peer_subject() const;  // the client certificate's subject, "" without one

 private:
  std::string failure(std::string_view otherwise);

  std::shared_ptr<const TlsContext> context_;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;   // ciphertext from the socket (owned by ssl_)
  BIO* out_ = nullptr;  // ciphertext for the socket (owned by ssl_)
  std::string error_;
};

}  // namespace ringproxy::proxy
