// Host names of backend servers, looked up off the event loop: each lookup runs the system's
// resolver (getaddrinfo: /etc/hosts, DNS, as nsswitch.conf says) on a thread of its own, and
// its answer wakes the loop (uv_async). A slow DNS server never stalls a request, and never
// holds up shutdown: a lookup still running when the resolver goes is left to finish alone
// (libuv's uv_getaddrinfo cannot be cancelled once running, and would keep the loop alive).
// One lookup per name at a time; its answer goes to the listener (every server of that name)
// and is kept as the name's last answer, which side connections use without waiting.
//
// A lookup that fails because the name does not exist ends the name's addresses. One that
// fails for a passing reason (DNS unreachable, a timeout) keeps the last addresses, if any:
// a DNS outage must not take down servers that still answer.
//
// Ownership: owned by Servers; lives and is called on the loop's thread.
#pragma once

#include <uv.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace ringproxy::proxy {

class Resolver {
 public:
  struct Answer {
    std::vector<std::string> ips;  // numeric, in getaddrinfo's order, no repeats; empty: no address
    std::string error;             // why the last lookup failed; "" when it did not
  };
  class Listener {
   public:
    virtual void on_resolved(const std::string& name, const Answer& answer) = 0;

   protected:
    ~Listener() = default;
  };

  Resolver(uv_loop_t* loop, Listener& listener);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Looks `name` up again, unless a lookup of it is already running; the answer comes later.
  void resolve(const std::string& name);
  // The last answer for `name`; nullptr before the first one.
  const Answer* last(const std::string& name) const;

 private:
  struct Shared;  // between the loop and the lookup threads
  struct Done;
  static void on_wakeup(uv_async_t* async);
  void finish(const Done& done);

  Listener& listener_;
  std::shared_ptr<Shared> shared_;
  uv_async_t* wakeup_;  // heap: closed (and freed) when the resolver goes
  std::map<std::string, Answer> answers_;
  std::set<std::string> running_;
};

}  // namespace ringproxy::proxy
