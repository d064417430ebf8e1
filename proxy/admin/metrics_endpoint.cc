#include "proxy/admin/metrics_endpoint.h"

#include <algorithm>
#include <string_view>

#include "proxy/net/address.h"

namespace ringproxy::proxy {
namespace {

constexpr size_t kMaxRequestBytes = 16 * 1024;
constexpr uint64_t kMaxAgeMs = 10000;
constexpr size_t kMaxConnections = 16;

}  // namespace

struct MetricsEndpoint::Exchange {
  MetricsEndpoint* endpoint = nullptr;
  uv_tcp_t handle{};
  uv_write_t write{};
  std::string request;
  std::string response;
  char buffer[4096];
  uint64_t started_ms = 0;
  bool closing = false;
};

bool MetricsEndpoint::listen(const conf::Address& address, std::string* error, bool reuse_port) {
  listener_.data = this;
  if (int rc = listen_on(loop_, &listener_, address, 64, on_connection, reuse_port); rc != 0) {
    *error = "cannot serve metrics on " + address.to_string() + ": " + uv_strerror(rc);
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
    return false;
  }
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
  uv_timer_start(&timer_, on_tick, 1000, 1000);
  listening_ = true;
  return true;
}

void MetricsEndpoint::close() {
  if (!listening_) return;
  listening_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
  std::vector<Exchange*> open = exchanges_;
  for (Exchange* exchange : open) finish(exchange);
}

void MetricsEndpoint::on_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<MetricsEndpoint*>(server->data);
  if (status < 0) return;
  auto* exchange = new Exchange;
  exchange->endpoint = self;
  exchange->started_ms = uv_now(self->loop_);
  uv_tcp_init(self->loop_, &exchange->handle);
  exchange->handle.data = exchange;
  self->exchanges_.push_back(exchange);
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&exchange->handle)) != 0 ||
      self->exchanges_.size() > kMaxConnections) {
    return self->finish(exchange);
  }
  uv_read_start(reinterpret_cast<uv_stream_t*>(&exchange->handle), on_alloc, on_read);
}

void MetricsEndpoint::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* exchange = static_cast<Exchange*>(handle->data);
  *buf = uv_buf_init(exchange->buffer, sizeof exchange->buffer);
}

void MetricsEndpoint::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* exchange = static_cast<Exchange*>(stream->data);
  MetricsEndpoint* self = exchange->endpoint;
  if (nread == 0) return;
  if (nread < 0) return self->finish(exchange);
  exchange->request.append(buf->base, static_cast<size_t>(nread));
  if (exchange->request.find("\r\n\r\n") == std::string::npos && exchange->request.find("\n\n") == std::string::npos) {
    if (exchange->request.size() > kMaxRequestBytes) return self->finish(exchange);
    return;
  }
  uv_read_stop(stream);
  self->answer(*exchange);
}

void MetricsEndpoint::answer(Exchange& exchange) {
  std::string_view line(exchange.request);
  line = line.substr(0, line.find_first_of("\r\n"));
  const size_t space = line.find(' ');
  const std::string_view method = line.substr(0, space);
  std::string_view path = space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
  path = path.substr(0, path.find(' '));
  path = path.substr(0, path.find('?'));
  std::string status = "200 OK", type = "text/plain; version=0.0.4; charset=utf-8", body;
  if (method != "GET" && method != "HEAD") {
    status = "405 Method Not Allowed";
    body = "only GET /metrics\n";
  } else if (path != "/metrics") {
    status = "404 Not Found";
    body = "ringproxy serves /metrics\n";
  } else {
    body = metrics_.render();
  }
  std::string& out = exchange.response;
  out = "HTTP/1.1 " + status + "\r\nContent-Type: " + type + "\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\nConnection: close\r\n\r\n";
  if (method != "HEAD") out += body;
  uv_buf_t buf = uv_buf_init(out.data(), static_cast<unsigned>(out.size()));
  exchange.write.data = &exchange;
  if (uv_write(&exchange.write, reinterpret_cast<uv_stream_t*>(&exchange.handle), &buf, 1, on_written) != 0) {
    finish(&exchange);
  }
}

void MetricsEndpoint::on_written(uv_write_t* req, int) {
  auto* exchange = static_cast<Exchange*>(req->data);
  exchange->endpoint->finish(exchange);
}

// Closes the connection; the Exchange is deleted by the close callback (after any pending
// write's callback, which libuv runs first with UV_ECANCELED).
void MetricsEndpoint::finish(Exchange* exchange) {
  if (exchange->closing) return;
  exchange->closing = true;
  exchanges_.erase(std::remove(exchanges_.begin(), exchanges_.end(), exchange), exchanges_.end());
  uv_close(reinterpret_cast<uv_handle_t*>(&exchange->handle), on_closed);
}

void MetricsEndpoint::on_closed(uv_handle_t* handle) { delete static_cast<Exchange*>(handle->data); }

void MetricsEndpoint::on_tick(uv_timer_t* timer) {
  auto* self = static_cast<MetricsEndpoint*>(timer->data);
  const uint64_t now = uv_now(self->loop_);
  std::vector<Exchange*> idle;
  for (Exchange* exchange : self->exchanges_) {
    if (now - exchange->started_ms > kMaxAgeMs) idle.push_back(exchange);
  }
  for (Exchange* exchange : idle) self->finish(exchange);
}

}  // namespace ringproxy::proxy
