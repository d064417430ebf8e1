// Side connections to a server (probes, resyncs, repairs, key moves): a few commands each,
// answered in order, off the data path. A SideLink is a libuv TCP stream, TLS when the server
// wants it (a TlsStream on memory BIOs, as data connections use), with hiredis's reader for
// the replies and its formatter for the commands (hiredis 0.14, Debian's, has no TLS, so its
// async context cannot be used for them).
//
// Its contract is hiredis's async one, which the jobs were written against:
// - open() starts the connection; commands may be sent at once (they wait for it).
// - on_connect(link, true) once connected (TLS: after the handshake), or (link, false) with
//   error() set, after which the link is gone: its pending commands get null replies.
// - Replies come to each command's callback in order, then are freed.
// - close() ends it: now, or right after the callback running returns. Pending commands get
//   null replies, then on_disconnect(link) runs if it had connected; the link is then gone.
//   A failure (reset, closed, refused AUTH, TLS) does the same with error() set.
// With credentials, AUTH goes first; a refusal ends the link with the server's words
// ("authentication failed: WRONGPASS ...").
#pragma once

#include <uv.h>

#include <cstdarg>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "conf/config.h"

struct redisReply;
struct redisReader;

namespace ringproxy::proxy {

class TlsContext;
class TlsStream;
class Worker;

// How the reason for a refused AUTH starts, on side and data connections alike.
inline constexpr std::string_view kLoginRefused = "authentication failed: ";

// Where a side connection goes and how: a numeric address (a server's host name resolved
// already: never a lookup on the loop), its credentials, and its TLS (nullptr: plain) with
// the host its certificate is checked against (the configured name, or the IP).
struct ServerLogin {
  conf::Address address;
  conf::BackendAuth auth;
  std::shared_ptr<const TlsContext> tls;
  std::string tls_host;
};

// AUTH [username] password as RESP, what every connection to a server sends first (data
// connections and side links alike).
std::string auth_command(const conf::BackendAuth& auth);
// HELLO 3, with AUTH when the server has a password (its user, or "default").
std::string hello_command(const conf::BackendAuth& auth);

class SideLink {
 public:
  using ConnectCallback = void(SideLink* link, bool ok);
  using DisconnectCallback = void(SideLink* link);
  using ReplyCallback = void(SideLink* link, redisReply* reply, void* privdata);

  // nullptr, with why in `error`, when it cannot even start.
  static SideLink* open(const ServerLogin& login, Worker& worker, void* data, ConnectCallback* on_connect,
                        DisconnectCallback* on_disconnect, std::string* error = nullptr);

  // A command in hiredis's printf-like format (%s, %d, %lld, %b for a pointer and a length).
  // False when the link is ending (as hiredis refuses one): its callback will not run.
  bool command(ReplyCallback* callback, void* privdata, const char* format, ...);
  bool vcommand(ReplyCallback* callback, void* privdata, const char* format, va_list args);
  void close();
  // A subscriber's link: replies that no command waits for (the confirmations and messages
  // of pub/sub) go to `on_push`; send_only() sends a command that waits for none.
  void set_push_handler(ReplyCallback* on_push) { on_push_ = on_push; }
  bool send_only(std::span<const std::string> args) { return send_args(nullptr, nullptr, args, false); }
  // A command given as its arguments (binary-safe).
  bool command_args(ReplyCallback* callback, void* privdata, std::span<const std::string> args) {
    return send_args(callback, privdata, args, true);
  }
  // Connected (and logged in): its owner's close() will be reported to on_disconnect.
  bool connected() const { return ready_; }

  void* data() const { return data_; }
  bool failed() const { return !error_.empty(); }
  // Why it ended (a reset, a refused AUTH, a TLS failure), else `otherwise`.
  std::string error_or(std::string_view otherwise) const;
  const std::string& local_address() const { return local_; }  // as redis names this client
  // Connected, its TLS handshake not done: what an owner's deadline should say ran out.
  bool handshaking() const { return tls_ != nullptr && !ready_; }

 private:
  struct Pending {
    ReplyCallback* callback;
    void* privdata;
  };
  struct Write;

  SideLink(const ServerLogin& login, Worker& worker, void* data, ConnectCallback* on_connect,
           DisconnectCallback* on_disconnect);
  ~SideLink();

  static void on_tcp_connect(uv_connect_t* req, int status);
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_auth_reply(SideLink* link, redisReply* reply, void*);

  bool send_args(ReplyCallback* callback, void* privdata, std::span<const std::string> args, bool wait_for_reply);
  void start_tls();
  void on_connected();
  void send(std::string plaintext);
  void send_tls_output();
  void write_raw(std::string bytes);
  void read(const char* data, ssize_t nread);
  void received(const char* data, size_t size);
  void fail(std::string why);
  void end_after_callbacks();
  void end_later();
  void tear_down();

  Worker& worker_;
  ServerLogin login_;
  void* data_;
  ConnectCallback* on_connect_;
  DisconnectCallback* on_disconnect_;
  ReplyCallback* on_push_ = nullptr;
  uv_tcp_t* handle_ = nullptr;  // heap: it outlives us until its close callback
  uv_timer_t* later_ = nullptr; // end_later()'s
  std::unique_ptr<TlsStream> tls_;
  bool tls_counted_ = false;    // in the open TLS connections gauge
  redisReader* reader_ = nullptr;
  std::deque<Pending> pending_;
  std::string unsent_;          // commands sent before the link is ready
  std::vector<char> input_;     // what each read lands in (ciphertext, with TLS)
  std::vector<char> plain_;     // TLS: what it decrypts to
  bool ready_ = false;          // connected: on_connect(true) ran
  bool ending_ = false;         // close() or a failure; torn down once no callback runs
  bool closed_by_owner_ = false;
  bool torn_down_ = false;
  int in_callback_ = 0;
  std::string error_;
  std::string local_;
};

}  // namespace ringproxy::proxy
