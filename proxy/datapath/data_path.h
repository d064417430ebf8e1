// The data path, top-down:
//
//   client bytes -> parse (clients/: resp::RequestParser, views into the read block)
//     -> classify (routing::find_command)            dispatch()
//     -> local command? answer it                     admin/ (a LocalCommandHandler)
//     -> keys moving after a reload? park it          reconfig/ (KeyMoves)
//     -> plan (routing::plan: shard, servers, split)  route()
//     -> send (BackendServer::send: queued, flushed once per loop iteration)   send_plan()
//     -> reduce (a fragment's reply settles its group, the groups the request:
//        routing::WriteTracker for replicated writes, routing::Reducer for split/broadcast)
//                                                    on_fragment_done()
//     -> reply (ClientSession: completed prefix of its in-order queue, flushed once per
//        loop iteration)                             finish_request()
//
// Replication at run time lives in the reduce step: the copies that wait for the primary
// (stage two), quorum reads and the read repair they start, late copies after a timeout,
// and the order of writes across a leader change or a resync cutover (held writes).
//
// Ownership: owned by the Proxy; single-threaded. Requests come from the Clients and go back
// to their sessions; fragments come back from the Servers (ServerEvents).
#pragma once

#include <uv.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/backend/backend_connection.h"
#include "proxy/backend/servers.h"
#include "proxy/clients/client_session.h"
#include "proxy/net/buffer.h"
#include "proxy/net/worker.h"
#include "proxy/requests/request.h"
#include "proxy/requests/stats.h"
#include "routing/planner.h"
#include "routing/scripts.h"

namespace ringproxy::proxy {

// Commands the proxy answers itself (admin/local_commands.h). The handler sets the
// request's owned_reply and calls DataPath::complete_local().
class LocalCommandHandler {
 public:
  virtual void answer(ClientSession& client, Request& request) = 0;

 protected:
  ~LocalCommandHandler() = default;
};

// After a reload that changed the ring, a request whose keys are being moved to their new
// shard waits (reconfig/migration.h); it comes back through DataPath::resume_parked().
class KeyMoves {
 public:
  // True: the request is parked (the migration owns it until it resumes it).
  virtual bool park_if_moving(Request& request) = 0;
  // Keys may still move between shards (an earlier ring is still consulted).
  virtual bool keys_moving() const = 0;

 protected:
  ~KeyMoves() = default;
};

// Blocking commands (blocking/): the data path hands them over, and tells it about the pops it
// runs for clients waiting in the proxy (routing/blocking.h) and the writes that may feed them.
class BlockingCommands {
 public:
  virtual void start(ClientSession& client, Request& request) = 0;
  // A pop the proxy ran (internal_request, marked routing::proxy_pop_marker()) was answered.
  virtual void on_pop_answered(Request& pop, std::string_view reply) = 0;
  // A replicated write to `shard` was acknowledged (called only while `waiting` > 0).
  virtual void on_write_acknowledged(const Request& write, uint32_t shard) = 0;
  uint32_t waiting = 0;  // clients waiting in the proxy

 protected:
  ~BlockingCommands() = default;
};

class DataPath final : public RequestHandler, public ServerEvents {
 public:
  // Where a client's requests go when it is in no transaction: here, or for a RESP3 client
  // (HELLO 3) through resp3_entry_, which takes its bytes off the fast path first.
  RequestHandler& handler_for(const ClientSession& client) {
    return client.protocol() == 3 ? static_cast<RequestHandler&>(resp3_entry_) : *this;
  }
  // One of the data path's own entries (a client in no transaction, block or subscription).
  bool is_entry(const RequestHandler& handler) const { return &handler == this || &handler == &resp3_entry_; }
  // A RESP3 client's request: its bytes move to resp3_raw (see Request).
  static void take_resp3_bytes(Request& request) {
    request.resp3_raw = request.raw;
    request.raw = {};
  }

  DataPath(Worker& worker, Servers& servers, RequestPool& requests, ProxyStats& stats);
  ~DataPath();
  DataPath(const DataPath&) = delete;
  DataPath& operator=(const DataPath&) = delete;

  void set_local_commands(LocalCommandHandler* handler) { local_ = handler; }
  void set_key_moves(KeyMoves* moves) { key_moves_ = moves; }  // null: no migration running
  void set_blocking(BlockingCommands* blocking) { blocking_ = blocking; }
  void start();
  void stop();  // closes its timer

  // RequestHandler: classify -> local answer, or plan -> send.
  void dispatch(ClientSession& client, Request& request) override;
  // ServerEvents: reduce.
  void on_fragment_done(Fragment& fragment) override;
  void on_fragment_settled(Fragment& fragment) override;
  void hold_writes(ShardRuntime& shard, bool hold) override;

  // A request that waited for the client's earlier replies (a HELLO changing the protocol)
  // goes on.
  void on_replies_written(ClientSession& client, Request* waited) override;

  // A local command's reply (owned_reply) is complete.
  void complete_local(Request& request);
  // ... answered later (it held a token in fragments_pending; its client may have left).
  void complete_async_local(Request& request);
  void reply_error(Request& request, std::string_view message);

  // For the transactions (transactions/): dispatch()'s two steps, out of its line; a queued
  // transaction's EXEC; a watching client's command on its dedicated connection.
  bool classify_request(ClientSession& client, Request& request);
  void carry_out_request(ClientSession& client, Request& request);
  // `watch`: a watched transaction on a replicated shard, with the connection holding its
  // WATCH (on the shard's write leader) and its failures then (transaction.h).
  struct Watch {
    BackendConnection* connection;
    uint64_t failures;
  };
  void run_transaction(Request& request, uint32_t shard, bool writes, std::string_view block, uint32_t replies,
                       std::span<const std::string> keys, std::optional<Watch> watch = std::nullopt,
                       bool leads = false);
  void send_dedicated(Request& request, BackendConnection& connection, uint32_t replies);
  // A request for one server, on its shared connections (PUBLISH: the channel's server).
  void send_to_server(Request& request, uint32_t server);
  // A command the proxy runs on its own (no client): `args` in a block of its own, marked
  // with `marker` (its top_cmd). Null: an unknown command. run_internal() routes it.
  Request* internal_request(std::span<const std::string> args, const routing::CommandInfo* marker);
  void run_internal(Request& request) { route(request); }  // (a client's too: planned, sent)
  // EVALSHA of a known script becomes EVAL (queued commands too); EVAL bodies are remembered.
  void prepare_scripts(Request& request) { note_scripts(request); }
  bool keys_moving() const { return key_moves_ != nullptr && key_moves_->keys_moving(); }
  // Re-enters a request the migration parked (its keys have moved) into the data path.
  void resume_parked(Request& request, std::string_view error);

 private:
  static void on_release(uv_timer_t* handle);
  // `keys_moved`: a request the migration parked and released (its keys are where the ring
  // says) is not looked at again.
  bool classify(ClientSession& client, Request& request);
  void carry_out(ClientSession& client, Request& request);
  bool carry_out_noted(ClientSession& client, Request& request);
  void route(Request& request, bool keys_moved = false);
  bool send_plan(Request& request, const routing::Plan& plan);
  void fragment_finished(Request& request, bool leaves_flight = true);
  void leave_flight(Request& request);
  bool leader_change_waits(const routing::Plan& plan);
  void release_held_soon();
  void release_held_requests();
  void drop_waiting_copies(Request& request, const Fragment& leader);
  void on_group_outcome(Request& request, Fragment& fragment);
  void send_second_stage(Request& request, GroupState& group, const Fragment& leader);
  void send_late_second_stage(Request& request, Fragment& leader);
  void answer_group(Request& request, uint32_t group_index, int reply_from, const Fragment& last);
  void answer_quorum_read(Request& request, uint32_t group_index, int reply_from);
  void finish_request(Request& request, std::string_view reply);
  void release_if_finished(Request& request);
  BlockRef bytes_block(std::string_view bytes, std::string_view* view);
  void note_scripts(Request& request);
  void send_fragment(Request& request, Fragment& fragment);
  Fragment& single_fragment(Request& request, bool rebuild_resp3);
  void send_watched_exec(Request& request, Fragment& leader);
  bool waits_for_writes_in_flight(const routing::Plan& plan);
  void note_merged(Request& request);
  void scripts_exist(Request& request);
  void merge(Request& request, uint32_t group_index, std::string_view reply);

  Worker& worker_;
  Servers& servers_;
  RequestPool& requests_;
  ProxyStats& stats_;
  LocalCommandHandler* local_ = nullptr;
  KeyMoves* key_moves_ = nullptr;
  BlockingCommands* blocking_ = nullptr;

  std::vector<Request*> held_requests_;  // waiting for a cutover, in arrival order
  uv_timer_t releaser_{};                // release_held_soon()
  routing::Plan plan_;                   // reused for every request
  routing::PlanScratch plan_scratch_;
  std::string scratch_;                  // rebuilt commands, before they get their own block
  std::vector<std::string> rewritten_;
  std::vector<std::string_view> rewritten_views_;
  std::vector<uint32_t> key_positions_;  // scratch of the permission check
  routing::ScriptBook scripts_;          // what EVAL and SCRIPT LOAD sent, for servers that lack it

  struct Resp3Entry final : RequestHandler {
    explicit Resp3Entry(DataPath& path) : path(path) {}
    void dispatch(ClientSession& client, Request& request) override {
      take_resp3_bytes(request);
      path.dispatch(client, request);
    }
    void on_replies_written(ClientSession& client, Request* waited) override {
      path.on_replies_written(client, waited);
    }
    DataPath& path;
  };
  Resp3Entry resp3_entry_{*this};
};

}  // namespace ringproxy::proxy
