#include "proxy/net/resolver.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

namespace ringproxy::proxy {

struct Resolver::Done {
  std::string name;
  int status = 0;  // getaddrinfo's
  std::vector<std::string> ips;
};

struct Resolver::Shared {
  std::mutex mutex;
  bool alive = true;           // false once the resolver is gone: answers are dropped
  uv_async_t* wakeup = nullptr;
  std::vector<Done> done;
};

namespace {

Resolver::Answer no_answer() { return {}; }

// On a lookup thread: the blocking part.
std::vector<std::string> numeric_addresses(const addrinfo* result) {
  std::vector<std::string> ips;
  for (const addrinfo* a = result; a != nullptr; a = a->ai_next) {
    char text[NI_MAXHOST] = {};
    if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
        getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof text, nullptr, 0, NI_NUMERICHOST) != 0) {
      continue;
    }
    if (std::find(ips.begin(), ips.end(), text) == ips.end()) ips.emplace_back(text);
  }
  return ips;
}

}  // namespace

Resolver::Resolver(uv_loop_t* loop, Listener& listener)
    : listener_(listener), shared_(std::make_shared<Shared>()), wakeup_(new uv_async_t) {
  uv_async_init(loop, wakeup_, on_wakeup);
  wakeup_->data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(wakeup_));  // it alone does not keep the loop running
  shared_->wakeup = wakeup_;
}

Resolver::~Resolver() {
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    shared_->alive = false;  // from now on no thread touches wakeup_
  }
  uv_close(reinterpret_cast<uv_handle_t*>(wakeup_), [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
}

void Resolver::resolve(const std::string& name) {
  if (!running_.insert(name).second) return;
  auto lookup = [shared = shared_, name] {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* result = nullptr;
    Done done{name, getaddrinfo(name.c_str(), nullptr, &hints, &result), {}};
    if (done.status == 0) done.ips = numeric_addresses(result);
    if (result != nullptr) freeaddrinfo(result);
    std::lock_guard<std::mutex> lock(shared->mutex);
    if (!shared->alive) return;
    shared->done.push_back(std::move(done));
    uv_async_send(shared->wakeup);
  };
  try {
    std::thread(lookup).detach();
  } catch (const std::system_error&) {  // no thread to be had: a failure like any other
    running_.erase(name);
    finish(Done{name, EAI_AGAIN, {}});
  }
}

const Resolver::Answer* Resolver::last(const std::string& name) const {
  auto it = answers_.find(name);
  return it == answers_.end() ? nullptr : &it->second;
}

void Resolver::on_wakeup(uv_async_t* async) {
  auto* self = static_cast<Resolver*>(async->data);
  std::vector<Done> done;
  {
    std::lock_guard<std::mutex> lock(self->shared_->mutex);
    done.swap(self->shared_->done);
  }
  for (const Done& d : done) {
    self->running_.erase(d.name);
    self->finish(d);
  }
}

void Resolver::finish(const Done& done) {
  auto [it, fresh] = answers_.emplace(done.name, no_answer());
  Answer& answer = it->second;
  if (!done.ips.empty()) {
    answer = Answer{done.ips, ""};
  } else {
    // The name does not exist (or has no address): nowhere to go. Any other failure passes.
    const bool gone = done.status == 0 || done.status == EAI_NONAME || done.status == EAI_NODATA;
    answer.error = "cannot resolve '" + done.name + "': " +
                   (done.status == 0 ? "it has no IPv4 or IPv6 address" : gai_strerror(done.status));
    if (gone) answer.ips.clear();
  }
  const Answer copy = answer;  // the listener may look it up again (and touch answers_)
  listener_.on_resolved(done.name, copy);
}

}  // namespace ringproxy::proxy
