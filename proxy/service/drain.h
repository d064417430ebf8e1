// SIGTERM's drain: the process stops taking work and ends what it has, then the loop runs out.
//
//   1. The listeners close (with [proxy] reuse_port a new ringproxy on the same address takes
//      the new connections from now on). Subscribers are closed once their output is written;
//      clients waiting in the proxy for a pop get their timeout reply.
//   2. Every client session reads no more and answers every request it has read.
//   3. Once all are answered, the drain waits until every copy of every write has settled on
//      every server that is up (not only the acknowledgement level) and every replay queue a
//      live server is taking is empty: a client that reconnects to the new process then
//      writes after its earlier writes are everywhere, so two proxies overlapping for a
//      moment do not reorder one client's writes on a replicated shard.
//   4. Each session ends its side (FIN) and drops what the client still sends until the client
//      closes, or until its close is clean (nothing unread, all it sent acknowledged), for at
//      most kLingerMs: closing a socket with unread input sends a reset, which can destroy
//      replies not yet delivered.
//   5. Then the proxy stops (exit 0). At [proxy] shutdown_timeout_ms it stops whatever is
//      left, and logs it: clients with unanswered requests, and per server the replay queue
//      that dies with the process (writes that server will miss: it needs a resync).
// A second SIGTERM stops at once (exit 1).
//
// Ownership: owned by the Proxy; its timer closes in stop().
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>

#include "proxy/backend/servers.h"
#include "proxy/blocking/blocking.h"
#include "proxy/clients/clients.h"
#include "proxy/pubsub/pubsub.h"
#include "proxy/service/service_notifier.h"

namespace ringproxy::proxy {

class Drain {
 public:
  Drain(Worker& worker, Clients& clients, Servers& servers, Blocking& blocking, PubSub& pubsub,
        const ServiceNotifier& notifier)
      : worker_(worker), clients_(clients), servers_(servers), blocking_(blocking), pubsub_(pubsub),
        notifier_(notifier) {}

  // `done` stops the proxy; it runs once, from the loop.
  void start(std::function<void()> done);
  void stop();  // closes its timer (the proxy stops)
  bool running() const { return running_; }

 private:
  static void on_tick(uv_timer_t* timer);
  void tick();
  // Every copy sent has its reply, and no live server has writes queued for replay.
  bool copies_settled() const;
  std::string leftovers() const;  // for the log, when the deadline ends it
  void finish(bool in_time);

  Worker& worker_;
  Clients& clients_;
  Servers& servers_;
  Blocking& blocking_;
  PubSub& pubsub_;
  const ServiceNotifier& notifier_;
  std::function<void()> done_;
  uv_timer_t timer_{};
  bool running_ = false;
  bool timer_open_ = false;
  uint64_t started_ms_ = 0;
  uint64_t deadline_ms_ = 0;
  uint64_t linger_until_ms_ = 0;  // 0: not lingering yet
};

}  // namespace ringproxy::proxy
