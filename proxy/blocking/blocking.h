// Blocking commands through the proxy (the rules: routing/blocking.h).
//
//   on the server   the command goes on a dedicated connection (BackendServer's bounded pool,
//                   [pool] dedicated_connections) to its shard's server, once the client's
//                   earlier requests are answered; the client's next requests wait for its
//                   reply (as on redis, where a blocked connection runs nothing else). Its
//                   connection's request timeout is lengthened by the command's own timeout.
//                   The connection goes back once the reply is written; a client that leaves
//                   while blocked closes it, so the server cancels the block and pops nothing
//                   for a client that is gone.
//   in the proxy    a pop on a replicated shard: its non-blocking form runs as a replicated
//                   write (an internal request, DataPath::internal_request); found nothing,
//                   the client waits here and it runs again when a write to one of its keys
//                   is acknowledged through this proxy, or after a backoff (10 ms doubling to
//                   250 ms) for writes through other proxies; its timeout answers nil. What a
//                   pop took for a client that had left meanwhile is put back.
//
// Ownership: owned by the Proxy. A blocked client's state lives until its reply is written or
// it closes; its dedicated connection stays its server's.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "proxy/backend/servers.h"
#include "proxy/clients/client_session.h"
#include "proxy/datapath/data_path.h"
#include "proxy/requests/request.h"
#include "proxy/requests/stats.h"
#include "routing/blocking.h"

namespace ringproxy::proxy {

class Blocking final : public RequestHandler, public BlockingCommands {
 public:
  Blocking(Worker& worker, Servers& servers, DataPath& data_path, ProxyStats& stats);
  ~Blocking();
  void start_timer();
  void stop();  // closes its timer

  // BlockingCommands (the data path's calls).
  void start(ClientSession& client, Request& request) override;
  void on_pop_answered(Request& attempt, std::string_view reply) override;
  void on_write_acknowledged(const Request& write, uint32_t shard) override;

  // CLIENT UNBLOCK: the client `id`'s blocking command ends now, with nil (`error`: redis's
  // -UNBLOCKED error). False: it is not blocked.
  bool unblock(uint64_t id, bool error);
  // SIGTERM's drain: clients waiting in the proxy get their timeout reply now (a pop in flight
  // is undone when it comes back), and so does a pop that starts during the drain (read before
  // it) and finds nothing. Those blocked on a server keep waiting for its reply.
  void end_waits_in_proxy();
  // ... and clients blocked on a server are unblocked there (CLIENT UNBLOCK ... TIMEOUT, its id
  // found in CLIENT LIST by the dedicated connection's address, on a side connection): the
  // server answers their command as its timeout would, so nothing it pops is lost. A server
  // that refuses (its user may not run CLIENT) leaves them to their own timeout.
  void end_blocks_on_servers();

  // RequestHandler: a blocked client's (its requests wait; its reply written; it closed).
  void dispatch(ClientSession& client, Request& request) override;
  void on_replies_written(ClientSession& client, Request* waited) override;
  void on_client_closed(ClientSession& client) override;


 private:
  struct Blocked {
    Request* request = nullptr;
    RequestHandler* previous = nullptr;  // the client's handler before (the data path, its
                                         // RESP3 entry, or the transactions while it watches)
    int protocol = 2;
    // On the server: its dedicated connection.
    BackendServer* server = nullptr;
    BackendConnection* connection = nullptr;
    uint64_t connection_failures = 0;
    // In the proxy: the pop it runs, and when.
    bool in_proxy = false;
    uint32_t shard = 0;
    std::vector<std::string> keys, pop;
    routing::PopShape shape = routing::PopShape::same;
    uint64_t deadline_ms = 0;           // 0: none
    uint64_t next_try_ms = 0;
    uint64_t backoff_ms = 0;
    Request* attempt = nullptr;         // its pop in flight
    bool again = false;                 // a write came while it was in flight: run it once more
    bool answered = false;
  };

  static void on_tick(uv_timer_t* timer);
  void tick();
  void on_server(ClientSession& client, Request& request, const routing::BlockingDecision& decision);
  void in_proxy(ClientSession& client, Request& request, routing::BlockingDecision decision);
  void try_pop(Blocked& blocked);
  void answer(Blocked& blocked, std::string_view reply);
  // The client goes back to its handler; the dedicated connection to its pool (`clean`: its
  // server holds nothing for it).
  void end(ClientSession& client, bool clean);

  Worker& worker_;
  Servers& servers_;
  DataPath& data_path_;
  ProxyStats& stats_;
  std::unordered_map<const ClientSession*, Blocked> blocked_;
  std::unordered_map<const Request*, const ClientSession*> attempts_;  // pops in flight, by whom
  std::vector<uint32_t> positions_;  // scratch
  uv_timer_t timer_{};
  bool timer_running_ = false;
  bool draining_ = false;  // end_waits_in_proxy(): SIGTERM's drain, no client waits here any more
};

}  // namespace ringproxy::proxy
