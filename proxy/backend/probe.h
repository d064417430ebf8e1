// Asks a server whether it answers, and its run_id (which changes when it restarts):
// connect, INFO server, within a deadline. A user that may not run INFO gets PING instead:
// an answer without a run_id (reported with INFO's refusal as the reason).
// Uses a SideLink (TLS when its shard's servers want it); a uv_timer bounds the whole probe.
//
// Lifetime: created by BackendServer, reports once through on_probe_result(), then
// deletes itself from its timer's close callback. cancel() detaches it from the server
// (the server is going away) without a report.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>

struct redisReply;

namespace ringproxy::proxy {

class BackendServer;
class SideLink;

class ServerProbe {
 public:
  ServerProbe(BackendServer& server, uint64_t timeout_ms);
  void start();
  void cancel();

 private:
  ~ServerProbe() = default;  // only from on_timer_closed
  static void on_connect(SideLink* link, bool ok);
  static void on_disconnect(SideLink* link);
  static void on_reply(SideLink* link, redisReply* reply, void* privdata);
  static void on_ping_reply(SideLink* link, redisReply* reply, void* privdata);
  static void on_timeout(uv_timer_t* timer);
  static void on_timer_closed(uv_handle_t* handle);

  void finish(bool ok, const char* why);

  BackendServer* server_;
  uint64_t timeout_ms_;
  SideLink* link_ = nullptr;
  uv_timer_t timer_{};
  bool finished_ = false;
  std::string run_id_;
  std::string probed_;  // the address it asked (a named server's may change meanwhile)
  std::string info_refused_;  // INFO's NOPERM: it answered PING, but said no run_id
};

}  // namespace ringproxy::proxy
