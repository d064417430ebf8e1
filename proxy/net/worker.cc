#include "proxy/net/worker.h"

#include <algorithm>

namespace ringproxy::proxy {

void Worker::start() {
  uv_prepare_init(loop_, &flusher_);
  flusher_.data = this;
  uv_prepare_start(&flusher_, on_prepare);
}

void Worker::stop() { uv_close(reinterpret_cast<uv_handle_t*>(&flusher_), nullptr); }

void Worker::forget(Flushable* connection) {
  if (!connection->dirty) return;
  connection->dirty = false;
  std::replace(to_servers_.begin(), to_servers_.end(), connection, static_cast<Flushable*>(nullptr));
  std::replace(to_clients_.begin(), to_clients_.end(), connection, static_cast<Flushable*>(nullptr));
}

void Worker::on_prepare(uv_prepare_t* handle) { static_cast<Worker*>(handle->data)->flush_dirty(); }

void Worker::flush_dirty() {
  iteration_ns_ = 0;  // the flushes' time; and the reads of the next iteration take a new one
  // By index: a flush may append to a list (a failed write completes requests) or leave a
  // tombstone in it (a client closed).
  while (!to_servers_.empty() || !to_clients_.empty()) {
    for (size_t i = 0; i < to_servers_.size(); ++i) {
      if (Flushable* connection = to_servers_[i]) connection->flush();
    }
    to_servers_.clear();
    for (size_t i = 0; i < to_clients_.size(); ++i) {
      if (Flushable* client = to_clients_[i]) client->flush();
    }
    to_clients_.clear();
  }
  iteration_ns_ = 0;
}

}  // namespace ringproxy::proxy
