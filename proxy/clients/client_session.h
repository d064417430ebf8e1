// One client connection: reads and parses requests, hands each to the data path (a
// RequestHandler), and writes replies strictly in request order (the completed prefix of its
// queue), once per loop iteration.
//
// TLS ([proxy.tls]): a session accepted on the TLS listener reads through on_tls_alloc /
// on_tls_read (ciphertext into the session, plaintext into the same parser buffer) and seals
// each write batch before it goes out; a plain session never asks (its reads have their own
// callbacks, its flush one test).
//
// Ownership: created by Clients on accept; deletes itself from its handle's close callback.
// Requests still waiting for a server when it closes are orphaned, not freed.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "conf/config.h"
#include "proxy/net/buffer.h"
#include "proxy/net/tls.h"
#include "proxy/net/worker.h"
#include "proxy/requests/request.h"
#include "routing/resp/request_parser.h"

namespace ringproxy::proxy {

class Clients;
class ClientSession;

// Where a session's parsed requests go: the data path (datapath/data_path.h).
class RequestHandler {
 public:
  // `request` is queued in `client`'s reply order; its reply comes through on_request_done().
  virtual void dispatch(ClientSession& client, Request& request) = 0;
  // A wait_for_replies() is over: `waited` (null: none) is the oldest request not written yet.
  virtual void on_replies_written(ClientSession&, Request* /*waited*/) {}
  virtual void on_client_closed(ClientSession&) {}
  // A transaction or a WATCH holds the client's server state (no blocking, no protocol change).
  virtual bool holds_transaction(const ClientSession&) const { return false; }

 protected:
  ~RequestHandler() = default;
};

class ClientSession final : public Flushable {
 public:
  // `tls`: accepted on the TLS listener, with that context.
  ClientSession(Clients& clients, uint64_t id, std::shared_ptr<const TlsContext> tls = nullptr);
  uv_tcp_t* handle() { return &handle_; }
  void start();  // after uv_accept
  void close();
  // Answers what it has already read, then closes (like QUIT): safe from inside its own
  // request's handling, where close() would free that request.
  void close_after_replies();
  // SIGTERM's drain: reads no more from its socket, but answers every request it has read
  // (those buffered behind max_pending_per_client too). A client blocked on a server is still
  // read, unparsed, until its block ends (so that its leaving is noticed).
  void drain();
  // Drained: nothing read is left unanswered or unwritten.
  bool drained() const { return pending_ == 0 && writes_in_flight_ == 0; }
  // The drain's end for a drained session: its side of the connection ends (FIN, after a TLS
  // close_notify) and what the client still sends is read and dropped until it closes too.
  // (Closing with unread input would send a reset, which can cost the client replies it has
  // not read yet.) Clients closes what is left when the drain stops.
  void linger();
  // Lingering, with nothing unread on its socket and everything it sent acknowledged: a close
  // now is a clean one.
  bool lingering_quietly() const;

  // Something the proxy sends on its own (a pub/sub message): written after the replies
  // before it. `marker` is its Request::cmd (routing::push_marker(): not a command, not counted).
  void push(std::string_view bytes, const routing::CommandInfo* marker);
  // A request of this client completed (its reply is set).
  void on_request_done(Request& request);

  // Where its requests go: the data path, or the transactions while it is in one.
  RequestHandler& handler() const { return *handler_; }
  void set_handler(RequestHandler* handler) { handler_ = handler; }
  // Hands no request on (and reads nothing) until every request before `waited` (null: every
  // request so far) has been answered and written; then calls the handler's
  // on_replies_written(). False: there is nothing to wait for.
  bool wait_for_replies(Request* waited);
  // While it waits (a blocking command): reads on, without parsing, so that a client that
  // leaves is noticed at once (what it sends meanwhile is kept, up to 1 MiB, then reading
  // pauses).
  void keep_reading_while_waiting();
  // Writes the completed prefix of the queue (called by the Worker's flush).
  void flush() override;

  // Authentication ([proxy] password, [[proxy.users]]; routing/access.h). The user it
  // authenticated as (its permissions), or null: none yet, or none are configured.
  const conf::UserConfig* user() const { return user_; }
  void set_user(const conf::UserConfig* user);
  // Whether its commands are checked: users are configured and it is not an admin user with
  // every key (so that the common case costs one test per request).
  bool checked() const { return checked_; }
  // A reload replaced the users (the config's storage too): false when its user was removed
  // or its password changed (the session must close); else it now points at the new entry.
  bool rebind_user(std::span<const conf::UserConfig> users);

  uint64_t id() const { return id_; }
  // RESP2, or RESP3 after HELLO 3: its requests then go over the servers' RESP3 connections
  // (backend_slot(): which of a server's connections it uses, BackendServer::send).
  int protocol() const { return protocol_; }
  void set_protocol(int protocol);
  uint32_t backend_slot() const { return backend_slot_; }
  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }
  std::string peer() const;
  std::string local() const;  // the proxy's end, "ip:port"
  // CLIENT SETINFO: the client library's name and version, for CLIENT LIST.
  std::string lib_name, lib_ver;
  uint64_t last_active_ms() const { return last_active_ms_; }
  bool tls() const { return tls_ != nullptr; }
  // A TLS session whose handshake has not finished: its deadline is the Clients' sweep's.
  bool tls_handshaking() const { return tls_ != nullptr && !tls_counted_; }
  uint64_t accepted_ms() const { return accepted_ms_; }
  void fail_tls(std::string_view why);  // counted, logged, closed
  size_t pending() const { return pending_; }
  // Bytes handed to the socket that it has not taken yet (a client that stopped reading).
  size_t unwritten_bytes() const { return handle_.write_queue_size; }

 private:
  ~ClientSession();  // only from on_close
  struct WriteBatch;

  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_read_while_waiting(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_tls_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_tls_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_close(uv_handle_t* handle);
  static void on_linger_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_linger_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_shutdown(uv_shutdown_t* req, int status);

  void parse_requests();
  void apply_limits();  // the parser's limits: tighter before it authenticates
  void written_out(WriteBatch* batch, int status);
  void write_batch(WriteBatch* batch);
  bool seal(WriteBatch& batch);   // TLS: the batch's replies become ciphertext
  void send_tls_output();         // TLS: what the session sends on its own (handshake, alerts)
  void enqueue_protocol_error(std::string_view why);
  void pause_reading();
  void resume_reading();
  void check_wait();

  Clients& clients_;
  Worker& worker_;
  uint64_t id_;
  uv_tcp_t handle_{};
  ReadBuffer input_;
  resp::RequestParser parser_;
  std::string name_;
  const conf::UserConfig* user_ = nullptr;
  std::string user_name_, user_digest_;  // to find its user again after a reload
  bool checked_ = false;
  uint64_t last_active_ms_ = 0;
  uint64_t read_ns_ = 0;     // when the last read came in (metrics on): its requests' start

  Request* head_ = nullptr;  // oldest request without a written reply
  Request* tail_ = nullptr;
  size_t pending_ = 0;       // requests queued or being written
  bool reading_ = false;
  bool closing_ = false;
  // Why requests are not parsed now (0: they are): after QUIT or a protocol error for good;
  // while wait_for_replies() waits, for a while.
  static constexpr uint8_t kStopForGood = 1, kStopWaiting = 2;
  uint8_t stop_parsing_ = 0;
  bool close_when_written_ = false;  // close_after_replies() with nothing queued but writes out
  uint32_t writes_in_flight_ = 0;
  std::vector<WriteBatch*> spare_batches_;  // at most one per write in flight
  std::unique_ptr<TlsStream> tls_;          // null: a plain session
  bool tls_counted_ = false;                // its handshake finished (counted, in the gauge)
  bool tls_heard_ = false;                  // it sent something (else a close is a TCP probe's)
  uint64_t accepted_ms_ = 0;
  // (Last: the fields above keep the layout the hot path was measured with.)
  RequestHandler* handler_;
  Request* waited_ = nullptr;
  uint32_t backend_slot_ = 0;
  int protocol_ = 2;
  bool reading_while_waiting_ = false;
  bool draining_ = false;  // drain(): the socket is not read again
  bool lingering_ = false;  // linger(): its FIN is sent, input is dropped
  bool bye_sent_ = false;   // TLS: its close_notify went out
  uv_shutdown_t shutdown_req_{};
};

}  // namespace ringproxy::proxy
