// The client side: the listener and every client session.
//
// Accepts connections (refusing those beyond [proxy] max_clients with Redis's error), keeps
// the list of open sessions (INFO clients, the idle timeout, shutdown), and gives each
// session what it needs: the Worker, the request pool, the counters and the RequestHandler
// its requests go to.
//
// Ownership: owned by the Proxy. Sessions delete themselves once closed and report it
// through on_closed().
#pragma once

#include <uv.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "conf/config.h"
#include "proxy/clients/client_session.h"
#include "proxy/net/tls.h"
#include "proxy/net/worker.h"
#include "proxy/requests/request.h"
#include "proxy/requests/stats.h"

namespace ringproxy::proxy {

class Clients {
 public:
  static constexpr uint64_t kTlsHandshakeMs = 10000;
  Clients(Worker& worker, RequestPool& requests, ProxyStats& stats, RequestAccounting& accounting)
      : worker_(worker), requests_(requests), stats_(stats), accounting_(accounting) {}
  Clients(const Clients&) = delete;
  Clients& operator=(const Clients&) = delete;

  void set_handler(RequestHandler* handler) { handler_ = handler; }
  // Owners of per-client state (transactions, blocked clients, subscribers): each is told when
  // any session closes, whichever handler its requests go to then (a client may be in more than
  // one: a RESP3 subscriber that blocks, or runs a transaction).
  void add_state_owner(RequestHandler* owner) { state_owners_.push_back(owner); }
  const std::vector<RequestHandler*>& state_owners() const { return state_owners_; }
  // Binds the listener; false with `error` set (the handle is closed then).
  bool listen(const conf::Address& address, std::string* error);
  // The TLS listener ([proxy.tls]), whose sessions use `context`; likewise.
  bool listen_tls(const conf::Address& address, std::shared_ptr<const TlsContext> context, std::string* error);
  // A reload's new certificate: sessions accepted from now on use it (open ones keep theirs).
  void set_tls_context(std::shared_ptr<const TlsContext> context) { tls_context_ = std::move(context); }
  std::vector<char>& tls_read_buffer() { return tls_read_buffer_; }  // ciphertext, read and fed at once
  void stop();                              // closes the listener and every session
  // SIGTERM's drain (proxy/service/drain.h): the listeners close; every session reads no more
  // and answers what it has read; unanswered() counts those not done yet.
  void stop_listening();
  void drain();
  size_t unanswered() const;
  void linger();  // every drained session (ClientSession::linger)
  void close_quiet_lingerers();  // closes those whose close is clean now
  // [proxy] client_idle_timeout_ms; and TLS handshakes that did not finish in time.
  void close_idle(uint64_t now_ms);
  // A reload replaced the config's users: sessions whose user was removed or whose password
  // changed are closed (as redis does); the others keep going with their user's new rights.
  void rebind_users();

  const std::vector<ClientSession*>& sessions() const { return sessions_; }

  // --- for the sessions ---
  Worker& worker() const { return worker_; }
  RequestPool& requests() const { return requests_; }
  ProxyStats& stats() const { return stats_; }
  RequestAccounting& accounting() const { return accounting_; }
  RequestHandler& handler() const { return *handler_; }
  void on_closed(ClientSession* session);

 private:
  static void on_connection(uv_stream_t* server, int status);
  static void on_tls_connection(uv_stream_t* server, int status);
  void accept_client(uv_tcp_t& listener, std::shared_ptr<const TlsContext> tls);

  Worker& worker_;
  RequestPool& requests_;
  ProxyStats& stats_;
  RequestAccounting& accounting_;
  RequestHandler* handler_ = nullptr;
  std::vector<RequestHandler*> state_owners_;
  uv_tcp_t listener_{};
  bool listening_ = false;
  uv_tcp_t tls_listener_{};
  bool tls_listening_ = false;
  std::shared_ptr<const TlsContext> tls_context_;
  std::vector<char> tls_read_buffer_;
  uint64_t next_client_id_ = 1;
  std::vector<ClientSession*> sessions_;
};

}  // namespace ringproxy::proxy
