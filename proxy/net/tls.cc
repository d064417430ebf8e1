#include "proxy/net/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <ctime>

namespace ringproxy::proxy {
namespace {

// OpenSSL's queued errors, oldest first, as one line (and the queue emptied).
std::string openssl_errors(std::string_view otherwise) {
  std::string text;
  while (unsigned long code = ERR_get_error()) {
    char line[256];
    ERR_error_string_n(code, line, sizeof line);
    if (!text.empty()) text += "; ";
    text += line;
  }
  return text.empty() ? std::string(otherwise) : text;
}

int64_t not_after(const X509* certificate) {
  if (certificate == nullptr) return 0;
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(certificate), &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace

std::shared_ptr<TlsContext> TlsContext::for_listener(const conf::TlsListenConfig& config, std::string* error) {
  ERR_clear_error();
  std::shared_ptr<TlsContext> context(new TlsContext);
  SSL_CTX* ctx = context->ctx_ = SSL_CTX_new(TLS_server_method());
  auto failed = [&](const std::string& what) {
    *error = what + ": " + openssl_errors("refused");
    return nullptr;
  };
  if (ctx == nullptr) return failed("cannot create a TLS context");
  // A key with a passphrase is an error, never a prompt on the terminal (it would block the loop).
  SSL_CTX_set_default_passwd_cb(ctx, [](char*, int, int, void*) { return 0; });
  SSL_CTX_set_min_proto_version(ctx, config.min_version == conf::TlsVersion::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // An idle client holds no read/write buffers: many connections stay cheap.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_use_certificate_chain_file(ctx, config.cert_file.c_str()) != 1) {
    return failed("cannot use cert_file '" + config.cert_file + "'");
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, config.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
      return failed("key_file '" + config.key_file + "' does not match cert_file '" + config.cert_file + "'");
    }
    return failed("cannot use key_file '" + config.key_file + "'");
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return failed("key_file '" + config.key_file + "' does not match cert_file '" + config.cert_file + "'");
  }
  if (!config.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, config.ca_file.c_str(), nullptr) != 1) {
      return failed("cannot use ca_file '" + config.ca_file + "'");
    }
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(config.ca_file.c_str())) {
      SSL_CTX_set_client_CA_list(ctx, names);  // what the handshake tells clients to present
    }
    // With a CA, a client certificate is checked when one is presented; required, it must be.
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (config.require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                       nullptr);
  }
  if (!config.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, config.ciphers.c_str()) != 1) {
    return failed("ciphers \"" + config.ciphers + "\" names no cipher OpenSSL has");
  }
  if (!config.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx, config.ciphersuites.c_str()) != 1) {
    return failed("ciphersuites \"" + config.ciphersuites + "\" names no TLS 1.3 suite OpenSSL has");
  }
  context->expiry_ = not_after(SSL_CTX_get0_certificate(ctx));
  return context;
}

std::shared_ptr<TlsContext> TlsContext::for_servers(const conf::ServerTlsConfig& config, std::string* error) {
  ERR_clear_error();
  std::shared_ptr<TlsContext> context(new TlsContext);
  SSL_CTX* ctx = context->ctx_ = SSL_CTX_new(TLS_client_method());
  auto failed = [&](const std::string& what) {
    *error = what + ": " + openssl_errors("refused");
    return nullptr;
  };
  if (ctx == nullptr) return failed("cannot create a TLS context");
  SSL_CTX_set_default_passwd_cb(ctx, [](char*, int, int, void*) { return 0; });  // (never a prompt)
  SSL_CTX_set_min_proto_version(ctx, config.min_version == conf::TlsVersion::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  // (Buffers are kept, unlike a listener's: a few busy connections, where releasing them after
  // every record would cost a malloc and a free each way.)
  if (!config.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, config.cert_file.c_str()) != 1) {
      return failed("cannot use cert_file '" + config.cert_file + "'");
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, config.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
        return failed("key_file '" + config.key_file + "' does not match cert_file '" + config.cert_file + "'");
      }
      return failed("cannot use key_file '" + config.key_file + "'");
    }
    context->expiry_ = not_after(SSL_CTX_get0_certificate(ctx));
  }
  if (!config.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, config.ca_file.c_str(), nullptr) != 1) {
      return failed("cannot use ca_file '" + config.ca_file + "'");
    }
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    return failed("cannot load the system's CA certificates");
  }
  SSL_CTX_set_verify(ctx, config.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  context->server_name_ = config.server_name;
  context->verify_ = config.verify;
  return context;
}

bool ServerTlsContexts::build(const conf::PoolConfig& pool, ServerTlsContexts* out, std::string* error) {
  std::vector<std::pair<conf::ServerTlsConfig, std::shared_ptr<const TlsContext>>> made;  // (few: a linear search)
  auto context_of = [&](const std::optional<conf::ServerTlsConfig>& config, const std::string& table,
                        std::shared_ptr<const TlsContext>* context) {
    if (!config || !config->enabled) return true;
    for (const auto& [seen, existing] : made) {
      if (seen == *config) return (*context = existing), true;
    }
    std::shared_ptr<TlsContext> built = TlsContext::for_servers(*config, error);
    if (built == nullptr) return (*error = table + ": " + *error), false;
    if (!config->cert_file.empty()) {
      out->expiries.emplace_back(config->cert_file, static_cast<double>(built->certificate_expiry()));
    }
    made.emplace_back(*config, built);
    *context = built;
    return true;
  };
  *out = ServerTlsContexts{};
  if (!context_of(pool.tls, "[pool.tls]", &out->by_shard[""])) return false;
  for (const conf::ShardConfig& shard : pool.shards) {
    if (!context_of(shard.tls, "shard '" + shard.name + "' tls", &out->by_shard[shard.name])) return false;
  }
  return true;
}

void ServerTlsContexts::keep_removed(const ServerTlsContexts& previous) {
  for (const auto* from : {&previous.removed, &previous.by_shard}) {
    for (const auto& [shard, context] : *from) {
      if (!shard.empty() && by_shard.count(shard) == 0) removed[shard] = context;
    }
  }
}

const std::shared_ptr<const TlsContext>& ServerTlsContexts::of(const std::string& shard) const {
  static const std::shared_ptr<const TlsContext> kPlain;
  for (const auto* in : {&by_shard, &removed}) {
    if (auto it = in->find(shard); it != in->end()) return it->second;
  }
  auto pool = by_shard.find("");
  return pool == by_shard.end() ? kPlain : pool->second;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

TlsStream::TlsStream(std::shared_ptr<const TlsContext> context) : context_(std::move(context)) {
  ssl_ = SSL_new(context_->ctx());
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(in_, -1);  // an empty input is "more to come", not end of file
  SSL_set_bio(ssl_, in_, out_);
  SSL_set_accept_state(ssl_);
}

TlsStream::TlsStream(std::shared_ptr<const TlsContext> context, const std::string& host)
    : TlsStream(std::move(context)) {
  SSL_set_connect_state(ssl_);
  const std::string& name = context_->server_name().empty() ? host : context_->server_name();
  in6_addr ip;
  const bool numeric = inet_pton(AF_INET, name.c_str(), &ip) == 1 || inet_pton(AF_INET6, name.c_str(), &ip) == 1;
  if (!numeric) SSL_set_tlsext_host_name(ssl_, name.c_str());  // (SNI never carries an IP: RFC 6066)
  if (!context_->verify()) return;
  if (numeric) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), name.c_str());
  } else {
    SSL_set1_host(ssl_, name.c_str());
  }
}

int TlsStream::handshake() {
  ERR_clear_error();
  const int rc = SSL_do_handshake(ssl_);
  if (rc == 1) return 1;
  const int code = SSL_get_error(ssl_, rc);
  if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) return 0;
  error_ = failure(code == SSL_ERROR_ZERO_RETURN ? "closed by the peer (close_notify)" : "TLS failure");
  return -1;
}

// What went wrong, in OpenSSL's words, with the certificate check's own reason when it failed.
std::string TlsStream::failure(std::string_view otherwise) {
  std::string why = openssl_errors(otherwise);
  const long verified = SSL_get_verify_result(ssl_);
  if (verified != X509_V_OK) why += " (certificate: " + std::string(X509_verify_cert_error_string(verified)) + ")";
  return why;
}

TlsStream::~TlsStream() { SSL_free(ssl_); }  // frees the BIOs too

void TlsStream::feed(const char* data, size_t size) { BIO_write(in_, data, static_cast<int>(size)); }

long TlsStream::read(char* out, size_t size) {
  ERR_clear_error();
  const int n = SSL_read(ssl_, out, static_cast<int>(size));
  if (n > 0) return n;
  switch (SSL_get_error(ssl_, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return 0;
    case SSL_ERROR_ZERO_RETURN:
      error_ = "closed by the peer (close_notify)";
      return -1;
    default:
      error_ = failure("TLS failure");
      return -1;
  }
}

bool TlsStream::write(const uv_buf_t* bufs, size_t count, std::string& out) {
  ERR_clear_error();
  // Small buffers (a reply, a command each) are gathered into full records: one record, one
  // seal and 29 bytes of framing per 16 KiB rather than per buffer (a pipeline of 16 GETs was
  // 16 records). Each record's ciphertext is taken out at once: the output BIO never holds
  // more than one record (it keeps its largest size for the session's life).
  constexpr size_t kRecord = 16 * 1024;
  static thread_local char gathered[kRecord];
  size_t held = 0;
  auto seal = [&](const char* data, size_t n) {
    if (SSL_write(ssl_, data, static_cast<int>(n)) <= 0) {
      error_ = openssl_errors("TLS write failed");
      return false;
    }
    take_output(out);
    return true;
  };
  for (size_t i = 0; i < count; ++i) {
    const char* data = bufs[i].base;
    size_t left = bufs[i].len;
    while (left > 0) {
      if (held == 0 && left >= kRecord) {  // a whole record straight from the buffer
        if (!seal(data, kRecord)) return false;
        data += kRecord;
        left -= kRecord;
        continue;
      }
      const size_t n = std::min(left, kRecord - held);
      std::memcpy(gathered + held, data, n);
      held += n;
      data += n;
      left -= n;
      if (held == kRecord) {
        if (!seal(gathered, held)) return false;
        held = 0;
      }
    }
  }
  return held == 0 || seal(gathered, held);
}

void TlsStream::close_notify(std::string& out) {
  ERR_clear_error();
  if (SSL_is_init_finished(ssl_) == 1) SSL_shutdown(ssl_);
  take_output(out);
  ERR_clear_error();
}

void TlsStream::take_output(std::string& out) {
  while (const size_t pending = BIO_ctrl_pending(out_)) {
    const size_t at = out.size();
    out.resize(at + pending);
    const int n = BIO_read(out_, out.data() + at, static_cast<int>(pending));
    out.resize(at + static_cast<size_t>(n > 0 ? n : 0));
    if (n <= 0) break;
  }
}

bool TlsStream::handshake_done() const { return SSL_is_init_finished(ssl_) == 1; }

std::string TlsStream::peer_subject() const {
  X509* peer = SSL_get1_peer_certificate(ssl_);
  if (peer == nullptr) return "";
  char name[256] = {};
  X509_NAME_oneline(X509_get_subject_name(peer), name, sizeof name);
  X509_free(peer);
  return name;
}

}  // namespace ringproxy::proxy
