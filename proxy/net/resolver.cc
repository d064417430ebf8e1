#include "proxy/net/resolver.h"

#include <arpa/inet.h>
#include <netdb.h>

namespace ringproxy::proxy {

struct Resolver::Lookup {
  uv_getaddrinfo_t req{};
  Resolver* owner = nullptr;  // nullptr: the resolver is gone
  std::string name;
};

Resolver::~Resolver() {
  for (auto& [name, lookup] : running_) {
    lookup->owner = nullptr;
    uv_cancel(reinterpret_cast<uv_req_t*>(&lookup->req));  // on_done still runs (UV_EAI_CANCELED)
  }
}

void Resolver::resolve(const std::string& name) {
  if (running_.count(name) != 0) return;
  auto* lookup = new Lookup;
  lookup->owner = this;
  lookup->name = name;
  lookup->req.data = lookup;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  const int rc = uv_getaddrinfo(loop_, &lookup->req, on_done, name.c_str(), nullptr, &hints);
  if (rc != 0) {
    delete lookup;
    return finish(name, rc, nullptr);
  }
  running_[name] = lookup;
}

const Resolver::Answer* Resolver::last(const std::string& name) const {
  auto it = answers_.find(name);
  return it == answers_.end() ? nullptr : &it->second;
}

void Resolver::on_done(uv_getaddrinfo_t* req, int status, addrinfo* result) {
  auto* lookup = static_cast<Lookup*>(req->data);
  if (lookup->owner != nullptr) {
    lookup->owner->running_.erase(lookup->name);
    lookup->owner->finish(lookup->name, status, result);
  }
  uv_freeaddrinfo(result);
  delete lookup;
}

void Resolver::finish(const std::string& name, int status, const addrinfo* result) {
  Answer& answer = answers_[name];
  std::string ip;
  for (const addrinfo* a = status == 0 ? result : nullptr; a != nullptr && ip.empty(); a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (a->ai_family == AF_INET) {
      uv_ip4_name(reinterpret_cast<const sockaddr_in*>(a->ai_addr), text, sizeof text);
    } else if (a->ai_family == AF_INET6) {
      uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(a->ai_addr), text, sizeof text);
    }
    ip = text;
  }
  if (!ip.empty()) {
    answer = Answer{ip, ""};
  } else {
    const bool gone = status == 0 || status == UV_EAI_NONAME || status == UV_EAI_NODATA;
    answer.error = "cannot resolve '" + name + "': " + (status == 0 ? "no IPv4 or IPv6 address" : uv_strerror(status));
    if (gone) answer.ip.clear();  // a passing failure keeps the last address
  }
  const Answer copy = answer;  // the listener may resolve again (and touch answers_)
  listener_.on_resolved(name, copy);
}

}  // namespace ringproxy::proxy
