#include "proxy/clients/clients.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "proxy/net/address.h"

namespace ringproxy::proxy {

bool Clients::listen(const conf::Address& address, std::string* error) {
  listener_.data = this;
  if (int rc = listen_on(worker_.loop(), &listener_, address, 511, on_connection,
                                worker_.config().proxy.reuse_port); rc != 0) {
    *error = "cannot listen on " + address.to_string() + ": " + uv_strerror(rc);
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
    return false;
  }
  listening_ = true;
  return true;
}

bool Clients::listen_tls(const conf::Address& address, std::shared_ptr<const TlsContext> context, std::string* error) {
  tls_listener_.data = this;
  tls_context_ = std::move(context);
  tls_read_buffer_.resize(64 * 1024);
  if (int rc = listen_on(worker_.loop(), &tls_listener_, address, 511, on_tls_connection,
                                worker_.config().proxy.reuse_port); rc != 0) {
    *error = "cannot listen for TLS on " + address.to_string() + ": " + uv_strerror(rc);
    uv_close(reinterpret_cast<uv_handle_t*>(&tls_listener_), nullptr);
    return false;
  }
  tls_listening_ = true;
  return true;
}

void Clients::stop() {
  stop_listening();
  std::vector<ClientSession*> sessions = sessions_;
  for (ClientSession* session : sessions) session->close();
}

void Clients::stop_listening() {
  if (listening_) uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
  listening_ = false;
  if (tls_listening_) uv_close(reinterpret_cast<uv_handle_t*>(&tls_listener_), nullptr);
  tls_listening_ = false;
}

void Clients::drain() {
  for (ClientSession* session : sessions_) session->drain();
}

void Clients::linger() {
  std::vector<ClientSession*> sessions = sessions_;  // (a failed shutdown closes at once)
  for (ClientSession* session : sessions) session->linger();
}

void Clients::close_quiet_lingerers() {
  std::vector<ClientSession*> sessions = sessions_;
  for (ClientSession* session : sessions) {
    if (session->lingering_quietly()) session->close();
  }
}

size_t Clients::unanswered() const {
  return static_cast<size_t>(
      std::count_if(sessions_.begin(), sessions_.end(), [](const ClientSession* s) { return !s->drained(); }));
}

void Clients::on_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<Clients*>(server->data);
  if (status < 0) {
    spdlog::warn("accept: {}", uv_strerror(status));
    return;
  }
  self->accept_client(self->listener_, nullptr);
}

void Clients::on_tls_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<Clients*>(server->data);
  if (status < 0) {
    spdlog::warn("accept (TLS): {}", uv_strerror(status));
    return;
  }
  self->accept_client(self->tls_listener_, self->tls_context_);
}

void Clients::accept_client(uv_tcp_t& listener, std::shared_ptr<const TlsContext> tls) {
  const bool is_tls = tls != nullptr;
  auto* client = new ClientSession(*this, next_client_id_++, std::move(tls));
  if (uv_accept(reinterpret_cast<uv_stream_t*>(&listener), reinterpret_cast<uv_stream_t*>(client->handle())) != 0) {
    client->close();
    return;
  }
  sessions_.push_back(client);
  metrics::Metrics& metrics = *worker_.metrics();
  if (sessions_.size() > worker_.config().proxy.max_clients) {
    ++stats_.clients_rejected;
    metrics.client_connections_rejected->Increment();
    static const char kRefused[] = "-ERR max number of clients reached\r\n";
    uv_buf_t buf = uv_buf_init(const_cast<char*>(kRefused), sizeof(kRefused) - 1);
    if (!is_tls) uv_try_write(reinterpret_cast<uv_stream_t*>(client->handle()), &buf, 1);  // (TLS: just closed)
    client->close();
    return;
  }
  ++stats_.clients_accepted;
  metrics.client_connections_accepted->Increment();
  metrics.client_connections->Set(static_cast<double>(sessions_.size()));
  client->start();
}

void Clients::on_closed(ClientSession* session) {
  auto it = std::find(sessions_.begin(), sessions_.end(), session);
  if (it == sessions_.end()) return;
  *it = sessions_.back();
  sessions_.pop_back();
  worker_.metrics()->client_connections->Set(static_cast<double>(sessions_.size()));
}

void Clients::close_idle(uint64_t now_ms) {
  if (tls_listening_) {  // a TLS client has kTlsHandshakeMs to finish its handshake
    std::vector<ClientSession*> slow;
    for (ClientSession* client : sessions_) {
      if (client->tls_handshaking() && now_ms - client->accepted_ms() >= kTlsHandshakeMs) slow.push_back(client);
    }
    for (ClientSession* client : slow) {
      client->fail_tls("no TLS handshake within " + std::to_string(kTlsHandshakeMs) + " ms");
    }
  }
  const uint32_t idle_ms = worker_.config().proxy.client_idle_timeout_ms;
  if (idle_ms == 0) return;
  std::vector<ClientSession*> idle;
  for (ClientSession* client : sessions_) {
    if (client->pending() == 0 && now_ms - client->last_active_ms() >= idle_ms) idle.push_back(client);
  }
  for (ClientSession* client : idle) client->close();
}

void Clients::rebind_users() {
  const std::vector<conf::UserConfig>& users = worker_.config().proxy.users;
  std::vector<ClientSession*> gone;
  for (ClientSession* client : sessions_) {
    if (!client->rebind_user(users)) gone.push_back(client);
  }
  for (ClientSession* client : gone) {
    spdlog::info("client {} ({}): closed by the reload: its user was removed or its password changed", client->id(),
                 client->peer());
    worker_.metrics()->clients_disconnected_by_reload->Increment();
    client->close_after_replies();  // it may be the client whose PROXY RELOAD runs right now
  }
}

}  // namespace ringproxy::proxy
