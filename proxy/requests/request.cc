#include "proxy/requests/request.h"

namespace ringproxy::proxy {

void Request::recycle() {
  client = nullptr;
  next = nullptr;
  request_block.reset();
  raw = {};
  args.clear();
  cmd = nullptr;
  top_cmd = nullptr;
  started_ns = 0;
  rejected = false;
  topology.reset();
  fragments.clear();
  groups.clear();
  fragments_pending = 0;
  fragments_in_flight = 0;
  reducer.reset();
  replicated_write = false;
  reply = {};
  owned_reply.clear();
  done = false;
  close_after_reply = false;
}

RequestPool::~RequestPool() {
  for (Request* request : spares_) delete request;
}

Request* RequestPool::take() {
  if (spares_.empty()) return new Request;
  Request* request = spares_.back();
  spares_.pop_back();
  return request;
}

void RequestPool::give_back(Request* request) {
  request->recycle();
  if (spares_.size() < 4096) {
    spares_.push_back(request);
  } else {
    delete request;
  }
}

}  // namespace ringproxy::proxy
