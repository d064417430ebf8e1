// Full resync of a stale server from an in-sync peer of its shard, with Redis's own
// replication: the stale server becomes a replica of the peer (REPLICAOF: full copy, then
// the peer's writes streamed as they happen), then is cut over:
//
//   0. stale: CLIENT KILL ADDR <...>     connections the proxy abandoned (fence.h): what
//                                        they still hold must not run on the copy
//      stale: CONFIG SET masteruser/masterauth   with credentials: how it logs in to the peer
//                                        (REPLICAOF waits for their replies)
//   1. stale: REPLICAOF <peer>           the proxy sends it nothing meanwhile
//   2. poll stale ROLE                   until it is "connected": the full sync is done
//   3. hold the shard's new writes       (ServerEvents::hold_writes), wait for none in flight
//   4. peer: master_repl_offset = X;     poll stale until slave_repl_offset >= X
//   5. stale: REPLICAOF NO ONE           it now holds exactly what the peer holds
//   6. the server is live; held writes go out (to it too)
//
// No write is lost (every write before the cutover reached the peer and was streamed;
// every write after it goes to the server directly) or applied twice. A step that fails
// or takes too long aborts the job; the server stays stale and is retried later. So does
// a peer that stops being live (it died, lags or was removed), and a stale server that cannot
// reach its peer for kUnreachableMs: the retry picks a live peer.
//
// Lifetime: owned by its BackendServer (cancel() when the server goes away); reports once
// through BackendServer::on_resync_result(); deletes itself after its handles are closed.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/requests/topology.h"

struct redisReply;

namespace ringproxy::proxy {

class BackendServer;
class Servers;
class SideLink;

class ResyncJob {
 public:
  ResyncJob(BackendServer& stale, BackendServer& peer);
  void start();
  void cancel();
  const BackendServer* peer() const { return peer_; }

 private:
  enum class Step : uint8_t { fencing, configuring, replicaof, syncing, draining, catching_up, promoting, done };

  ~ResyncJob() = default;  // only from on_timer_closed
  static void on_reply(SideLink* link, redisReply* reply, void* privdata);
  static void on_connect(SideLink* link, bool ok);
  static void on_disconnect(SideLink* link);
  static void on_timer(uv_timer_t* timer);
  static void on_timer_closed(uv_handle_t* handle);

  SideLink* connect(BackendServer& server);
  void handle(SideLink* link, redisReply* reply);
  void configure(const char* name, std::string_view value);
  void tick();
  void finish(bool ok, const std::string& why);
  void poll_later(uint64_t ms);
  void send_replicaof();

  Servers* servers_;
  BackendServer* stale_;
  BackendServer* peer_;
  std::shared_ptr<ShardRuntime> shard_;  // where its writes are held (kept across reloads)
  Step step_ = Step::fencing;
  std::vector<std::string> fences_;   // the kills sent before REPLICAOF, in order
  size_t fences_answered_ = 0;
  std::deque<std::string> configs_;   // the CONFIG SETs whose replies are still to come, in order
  bool config_refused_ = false;
  std::string tls_refused_;           // why CONFIG SET tls-replication yes was refused
  std::string stale_key_;             // the stale server's address (the fence book's key)
  std::string stale_local_;           // our connection to the stale server, as redis names it
  SideLink* stale_link_ = nullptr;
  SideLink* peer_link_ = nullptr;
  uv_timer_t timer_{};
  uint64_t started_ms_ = 0;
  uint64_t hold_started_ms_ = 0;
  uint64_t link_down_since_ms_ = 0;  // since when ROLE says it cannot reach the peer (0: it can)
  uint64_t peer_offset_ = 0;
  bool peer_offset_known_ = false;
  bool holding_ = false;
  bool waiting_ = false;   // a command is out; its reply drives the next step
  bool finished_ = false;
};

}  // namespace ringproxy::proxy
