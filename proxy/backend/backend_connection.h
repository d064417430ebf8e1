// One persistent connection to a redis-server, shared by many clients: a FIFO of fragments
// pipelined onto it, replies matched in order, writes batched into one writev per loop
// iteration (the Worker's flush), request timeouts and lag (replicated shards: a timed-out
// write is settled and its late reply still awaited).
//
// TLS (a shard with [pool.tls]): a TlsStream sits between the socket and the same buffers.
// Ciphertext is read into a buffer of its own and decrypted into input_, so replies are
// scanned and handed on exactly as on a plain connection; flush_tls() seals the batch a
// record at a time. A plain connection never asks about TLS on its reads, and its flush
// only tests one pointer.
//
// A connection opens in steps: the server's host name is looked up (BackendServer::resolve_name,
// for a named server), the socket connects, the TLS handshake runs (a TLS shard), AUTH goes alone and its reply is awaited (for a
// server with credentials: nothing else is written before it is accepted, so a refusal
// leaves nothing half-run), then fences, then the queue.
//
// Ownership: owned by its BackendServer; its uv handle outlives it until the close callback.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/net/buffer.h"
#include "proxy/net/tls.h"
#include "proxy/net/worker.h"
#include "proxy/requests/request.h"
#include "routing/resp/reply_scanner.h"

namespace ringproxy::proxy {

class BackendServer;

class BackendConnection final : public Flushable {
 public:
  // `resp3`: it speaks RESP3 (HELLO 3 at login), for the requests of RESP3 clients; connected
  // when first used.
  BackendConnection(BackendServer& server, uint32_t index, bool resp3 = false);
  ~BackendConnection();

  void enqueue(Fragment* fragment);            // (BackendServer::send's, inlined there)
  void enqueue_dedicated(Fragment* fragment);  // the same, for a dedicated connection
  void connect();
  void on_name_resolved();                        // a connection waiting for the name goes on (or fails)
  void flush() override;                          // writes queued fragments (once per iteration)
  void check_timeouts(uint64_t now_ms);
  enum class Failure : uint8_t { counted, timeout, not_counted, login_refused };
  void fail(std::string_view why, Failure kind);  // closes; fails every queued fragment
  bool connected() const { return state_ == State::connected; }
  bool disconnected() const { return state_ == State::disconnected; }
  size_t pending() const { return queue_.size(); }
  // Written and not answered: the server may still run these commands.
  bool busy() const { return queue_.size() > unsent_; }
  bool lagging() const { return lagging_since_ms_ != 0; }
  // Connected, with nothing in flight, to an address other than `ip` (its name moved).
  bool idle_at_other_address(const std::string& ip) const {
    return state_ == State::connected && queue_.empty() && !ip.empty() && peer_ip_ != ip;
  }
  bool settled_in_flight() const;
  // A write it leads (its copies wait for its reply) was settled early and its late reply is
  // still to come: the copies may go out then.
  bool late_copies_pending() const;
  bool resp3() const { return resp3_; }
  uint32_t index() const { return index_; }
  // Reconnected after a failure without waiting for a request: RESP2 connections, and RESP3
  // ones once used.
  bool keep_warm() const { return !resp3_ || used_; }
  // Bumped whenever it fails: state the server kept for it (a WATCH) is gone.
  uint64_t failures() const { return failures_; }
  BackendServer& server() const { return server_; }
  // A dedicated connection's blocking command: its request timeout is lengthened by the
  // command's own (none: it may block for ever); 0 again when it goes back to the pool.
  void allow_blocking(std::optional<uint64_t> timeout_ms) {
    block_allowance_ms_ = timeout_ms ? *timeout_ms : UINT64_MAX / 4;
  }
  // Its address as the server lists it among its clients (CLIENT LIST's addr); "" unconnected.
  const std::string& local_address() const { return local_address_; }
  // Sends CLIENT KILL for `target`, an abandoned connection (see fence.h).
  void send_fence(const std::string& target);

 private:
  // connecting: the name is looked up (handle_ null) or the socket connects;
  // handshaking: TLS; logging_in: AUTH is out, nothing else is written until it is accepted.
  enum class State : uint8_t { disconnected, connecting, handshaking, logging_in, connected };
  struct WriteBatch;
  struct OwnedWrite;

  static void on_connect(uv_connect_t* req, int status);
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  template <bool kResp3>
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_login_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_tls_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_tls_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_close(uv_handle_t* handle);

  [[gnu::always_inline]] inline void push(Fragment* fragment);
  void open_socket();
  void after_connect();
  void start_tls();
  void tls_read(const char* data, size_t size);
  void flush_tls();
  void write_owned(std::string bytes);
  void log_in();
  bool finish_login();  // false: its reply is not all in yet, or it failed
  void ready();
  // Inlined into both readers (plain and TLS): a call from on_read costs every reply.
  template <bool kResp3>
  [[gnu::always_inline]] inline void handle_replies();
  void drop_push();
  bool unusual_reply(Fragment& fragment, size_t n);
  void close_handle();
  void push_fence(Fragment* fence, bool front);
  void lag(uint64_t now_ms);

  BackendServer& server_;
  uint32_t index_;
  State state_ = State::disconnected;
  // Connected and plain: flush()'s one test (a TLS connection takes the other branch, so a
  // plain one pays nothing for TLS).
  bool plain_connected_ = false;
  uv_tcp_t* handle_ = nullptr;       // heap: it outlives us until its close callback
  uint64_t connect_started_ms_ = 0;
  uint64_t lagging_since_ms_ = 0;    // replicated shards: timed out, waiting for late replies
  ReadBuffer input_;
  resp::ReplyScanner scanner_;
  std::deque<Fragment*> queue_;      // sent first, then `unsent_` not yet written
  size_t unsent_ = 0;
  uint64_t last_read_ms_ = 0;  // when the server last sent bytes (request timeouts count from it)
  std::vector<WriteBatch*> spare_batches_;
  std::vector<uv_buf_t> bufs_;       // reused for every flush
  uint64_t read_ns_ = 0;             // when the last read came in (metrics on)
  std::string local_address_;        // as redis names this client: what a fence kills
  std::string peer_ip_;              // the address it connected to (a named server's may change)
  std::unique_ptr<TlsStream> tls_;   // a TLS shard's session (nullptr: plain)
  std::vector<char> cipher_in_;      // TLS: what each read lands in before it is decrypted
  bool tls_counted_ = false;         // in ringproxy_tls_connections
  bool scanning_more_ = false;       // the front fragment's other replies are being scanned
  bool resp3_ = false;
  bool used_ = false;                // (RESP3: a request came for it)
  bool resp3_counted_ = false;       // in ringproxy_resp3_connections
  uint64_t failures_ = 0;            // how many times it failed (a lease's check, below)
  uint64_t block_allowance_ms_ = 0;  // allow_blocking()
};

}  // namespace ringproxy::proxy
