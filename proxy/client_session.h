// One client connection: reads and parses requests, hands each to the proxy's data path,
// and writes replies strictly in request order (the completed prefix of its queue), once
// per loop iteration.
//
// Ownership: created by the Proxy on accept; deletes itself from its handle's close
// callback. Requests still waiting for a server when it closes are orphaned, not freed.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>
#include <vector>

#include "proxy/buffer.h"
#include "proxy/request.h"
#include "proxy/resp/request_parser.h"

namespace ringproxy::proxy {

class Proxy;

class ClientSession {
 public:
  ClientSession(Proxy& proxy, uint64_t id);
  uv_tcp_t* handle() { return &handle_; }
  void start();  // after uv_accept
  void close();

  // A request of this client completed (its reply is set).
  void on_request_done(Request& request);
  // Writes the completed prefix of the queue (called by the proxy's flusher).
  void flush();

  uint64_t id() const { return id_; }
  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }
  std::string peer() const;
  uint64_t last_active_ms() const { return last_active_ms_; }
  size_t pending() const { return pending_; }
  bool dirty = false;  // in the proxy's flush list

 private:
  ~ClientSession();  // only from on_close
  struct WriteBatch;

  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_close(uv_handle_t* handle);

  void parse_requests();
  void written_out(WriteBatch* batch, int status);
  void enqueue_protocol_error(std::string_view why);
  void pause_reading();
  void resume_reading();

  Proxy& proxy_;
  uint64_t id_;
  uv_tcp_t handle_{};
  ReadBuffer input_;
  resp::RequestParser parser_;
  std::string name_;
  uint64_t last_active_ms_ = 0;
  uint64_t read_ns_ = 0;     // when the last read came in (metrics on): its requests' start

  Request* head_ = nullptr;  // oldest request without a written reply
  Request* tail_ = nullptr;
  size_t pending_ = 0;       // requests queued or being written
  bool reading_ = false;
  bool closing_ = false;
  bool stop_parsing_ = false;  // after QUIT or a protocol error
  uint32_t writes_in_flight_ = 0;
  std::vector<WriteBatch*> spare_batches_;  // at most one per write in flight
};

}  // namespace ringproxy::proxy
