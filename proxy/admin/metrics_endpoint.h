// GET /metrics over HTTP/1.x, served on the proxy's own event loop.
//
// Why not prometheus-cpp's pull exposer: it runs a web server thread, and once a process
// has a second thread, glibc's cancellable syscall wrappers (read, write, epoll_wait) take
// a slower path on every call of the data path: ~260 of the ~4,100 instructions of an
// unpipelined request (callgrind). Here a scrape serializes the registry on the loop
// (about a millisecond for a few hundred series, every scrape interval).
//
// Minimal on purpose: one request per connection (Connection: close), GET/HEAD of /metrics
// (anything else 404/405), requests bounded to 16 KiB, at most 16 connections at once (more
// are closed at accept), a connection open for 10 s closed: memory and loop time stay
// bounded whatever connects to it.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>
#include <vector>

#include "conf/config.h"
#include "metrics/metrics.h"

namespace ringproxy::proxy {

class MetricsEndpoint {
 public:
  MetricsEndpoint(uv_loop_t* loop, const metrics::Metrics& metrics) : loop_(loop), metrics_(metrics) {}
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  // `reuse_port`: [proxy] reuse_port's SO_REUSEPORT here too (two proxies overlap on a restart).
  bool listen(const conf::Address& address, std::string* error, bool reuse_port = false);
  void close();  // the listener, the timer, every connection (the loop runs their close callbacks)

 private:
  struct Exchange;

  static void on_connection(uv_stream_t* server, int status);
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_written(uv_write_t* req, int status);
  static void on_closed(uv_handle_t* handle);
  static void on_tick(uv_timer_t* timer);

  void answer(Exchange& exchange);
  void finish(Exchange* exchange);

  uv_loop_t* loop_;
  const metrics::Metrics& metrics_;
  uv_tcp_t listener_{};
  uv_timer_t timer_{};
  bool listening_ = false;
  std::vector<Exchange*> exchanges_;
};

}  // namespace ringproxy::proxy
