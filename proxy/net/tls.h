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
#include <memory>
#include <string>

#include "conf/config.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace ringproxy::proxy {

class TlsContext {
 public:
  // A listener's context; nullptr with why in `error` (never a key's contents).
  static std::shared_ptr<TlsContext> for_listener(const conf::TlsListenConfig& config, std::string* error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* ctx() const { return ctx_; }
  // When its certificate stops being valid (notAfter), in Unix seconds.
  int64_t certificate_expiry() const { return expiry_; }

 private:
  TlsContext() = default;
  SSL_CTX* ctx_ = nullptr;
  int64_t expiry_ = 0;
};

class TlsStream {
 public:
  TlsStream(std::shared_ptr<const TlsContext> context, bool accepting);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // Ciphertext from the socket.
  void feed(const char* data, size_t size);
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
  std::shared_ptr<const TlsContext> context_;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;   // ciphertext from the socket (owned by ssl_)
  BIO* out_ = nullptr;  // ciphertext for the socket (owned by ssl_)
  std::string error_;
};

}  // namespace ringproxy::proxy
