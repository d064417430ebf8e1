#include "proxy/clients/clients.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "proxy/net/address.h"

namespace ringproxy::proxy {

bool Clients::listen(const conf::Address& address, std::string* error) {
  listener_.data = this;
  if (int rc = listen_on(worker_.loop(), &listener_, address, 511, on_connection); rc != 0) {
    *error = "cannot listen on " + address.to_string() + ": " + uv_strerror(rc);
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
    return false;
  }
  listening_ = true;
  return true;
}

void Clients::stop() {
  if (listening_) uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
  listening_ = false;
  std::vector<ClientSession*> sessions = sessions_;
  for (ClientSession* session : sessions) session->close();
}

void Clients::on_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<Clients*>(server->data);
  if (status < 0) {
    spdlog::warn("accept: {}", uv_strerror(status));
    return;
  }
  self->accept_client();
}

void Clients::accept_client() {
  auto* client = new ClientSession(*this, next_client_id_++);
  if (uv_accept(reinterpret_cast<uv_stream_t*>(&listener_), reinterpret_cast<uv_stream_t*>(client->handle())) != 0) {
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
    uv_try_write(reinterpret_cast<uv_stream_t*>(client->handle()), &buf, 1);
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
