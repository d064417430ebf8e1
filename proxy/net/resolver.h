// Host names of backend servers, resolved off the event loop: uv_getaddrinfo runs the
// system's resolver (/etc/hosts, DNS, as nsswitch.conf says) on libuv's thread pool, so a
// slow DNS server never stalls a request. One lookup per name at a time; its answer goes to
// the listener (every server of that name) and is kept as the name's last answer, which side
// connections (repairs, key moves) use without waiting.
//
// A lookup that fails because the name does not exist ends the name's address. One that
// fails for a passing reason (DNS unreachable, a timeout) keeps the last address it had, if
// any: a DNS outage must not take down servers that still answer.
//
// Ownership: owned by Servers. A lookup still running when it is destroyed is dropped when
// the thread pool finishes it.
#pragma once

#include <uv.h>

#include <map>
#include <string>

namespace ringproxy::proxy {

class Resolver {
 public:
  struct Answer {
    std::string ip;     // numeric; "" when the name has no address
    std::string error;  // why the last lookup failed; "" when it did not
  };
  class Listener {
   public:
    virtual void on_resolved(const std::string& name, const Answer& answer) = 0;

   protected:
    ~Listener() = default;
  };

  Resolver(uv_loop_t* loop, Listener& listener) : loop_(loop), listener_(listener) {}
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Looks `name` up again, unless a lookup of it is already running; the answer comes later.
  void resolve(const std::string& name);
  // The last answer for `name`; nullptr before the first one.
  const Answer* last(const std::string& name) const;

 private:
  struct Lookup;
  static void on_done(uv_getaddrinfo_t* req, int status, addrinfo* result);
  void finish(const std::string& name, int status, const addrinfo* result);

  uv_loop_t* loop_;
  Listener& listener_;
  std::map<std::string, Answer> answers_;
  std::map<std::string, Lookup*> running_;
};

}  // namespace ringproxy::proxy
