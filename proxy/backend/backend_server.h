// A backend redis-server: the few persistent connections the proxy keeps to it
// (backend_connection.h), its health, and its replication state.
//
// A client always uses the same connection of a server (client id modulo the connection
// count), so a client reads its own writes.
//
// Health: every refused/lost connection and every timeout is a failure. After
// `failure_limit` consecutive failures the server is down: the planner stops routing to
// it (requests for its shard fail fast), its connections close, and after
// `retry_interval` a probe (hiredis, PING) decides whether it is back.
//
// Login: with credentials (the shard's [pool] username/password), every connection to it
// sends AUTH first; a refusal marks it down at once with the server's own error (a wrong
// password is not a passing failure), and only the probe, every retry_interval, tries again.
//
// Names: a server whose address is a host name is looked up (Resolver) before every
// connection and every dns_refresh_ms; a name that stops resolving marks it down, and an
// address that changes moves its connections there (a replicated server is probed first: at
// a new address it may be a new, empty process).
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/metrics.h"
#include "proxy/net/buffer.h"
#include "proxy/net/side_link.h"
#include "proxy/net/tls.h"
#include "proxy/net/resolver.h"
#include "proxy/net/worker.h"
#include "proxy/requests/request.h"
#include "routing/planner.h"
#include "routing/routing_table.h"

namespace ringproxy::proxy {

class Servers;
class BackendConnection;
class ServerProbe;
class ResyncJob;

enum class ServerState : uint8_t {
  up,          // takes requests
  down,        // failed failure_limit times; probed every retry_interval
  recovering,  // back, replaying the writes it missed (replicated shards); no reads yet
  stale,       // missed writes it cannot replay (queue overflow, lost in-flight write,
               // restarted empty): it needs a resync before it serves again
};
std::string_view server_state_name(ServerState state);

class BackendServer {
 public:
  BackendServer(Servers& servers, uint32_t index, const routing::ServerEntry& entry, std::string shard_name,
                const conf::ReplicationConfig& replication, conf::BackendAuth auth,
                std::shared_ptr<const TlsContext> tls);
  ~BackendServer();

  void start();                                   // connects (preconnect)
  void stop();

  // Reloads. A server kept by a reload takes its place (index, shard, replication settings)
  // in the new snapshot; a removed one is detached: it finishes what it has in flight,
  // takes nothing new, and is closed once idle.
  static constexpr uint32_t kDetached = UINT32_MAX;
  void rebind(uint32_t index, uint32_t shard_index, const conf::ReplicationConfig& replication,
              conf::BackendAuth auth, std::shared_ptr<const TlsContext> tls);
  void detach();
  // Closes every connection now (their requests fail): a server at the same address is
  // taking over, and must find nothing of ours still queued on the server (fence.h).
  void abandon();
  bool detached() const { return index_ == kDetached; }
  // How many times it was seen restarted (a new run_id) or resynced: SCAN's server check.
  uint32_t incarnation() const { return incarnation_; }
  routing::ServerMode mode() const { return mode_; }
  size_t connection_count() const { return connections_.size(); }
  void forget_metrics();  // a drained server's series leave /metrics
  // `slot`: the client's (ClientSession::backend_slot): a RESP2 or a RESP3 connection.
  void send(Fragment& fragment, uint64_t slot);
  void send_in_resp3(Fragment& fragment, uint32_t slot);

  // Dedicated connections: one client's alone while it holds server state (a WATCH). At most
  // [pool] dedicated_connections are in use at once; given back clean, one is kept for the
  // next client. Null, with `error` set, when none is free or the server takes no requests.
  BackendConnection* take_dedicated(std::string& error, bool resp3);
  // `clean`: the server holds nothing for it any more (EXEC, DISCARD, UNWATCH ran); else it
  // is closed (the server forgets what it held).
  void give_back_dedicated(BackendConnection* connection, bool clean);
  void send_dedicated(Fragment& fragment, BackendConnection& connection);
  // A subscriber's link to this server (pubsub/: a side link, not a data connection) counts
  // among the dedicated connections and their limit.
  bool take_subscriber_slot(std::string& error);
  void give_back_subscriber_slot();
  size_t dedicated_in_use() const { return dedicated_in_use_; }
  uint64_t dedicated_exhausted() const { return dedicated_exhausted_; }
  void sweep(uint64_t now_ms);                    // timeouts, reconnects, probes
  void publish_metrics();

  void on_failure(std::string_view why, bool timeout);
  void on_success();
  // The server refused our AUTH: down now, with its words.
  void on_login_refused(std::string_view why);

  // Where connections go: the configured address, or what its host name resolved to ("" host
  // until then). A side connection's target: endpoint and credentials (login()).
  const conf::Address& endpoint() const { return endpoint_; }
  const conf::BackendAuth& auth() const { return auth_; }
  // Its shard's TLS (nullptr: plain); the certificate is checked against the configured host.
  const std::shared_ptr<const TlsContext>& tls() const { return tls_; }
  ServerLogin login() const { return ServerLogin{endpoint_, auth_, tls_, address_.host}; }
  // A host name is looked up again (a connection is about to open, or the refresh is due);
  // on_resolved() takes the answer.
  void resolve_name();
  void on_resolved(const Resolver::Answer& answer);
  // A connection to its current address was refused or timed out: a name with several
  // addresses (IPv6 and IPv4, say) tries the next one next time.
  void try_next_address();
  // `probed`: the address the probe asked; an answer from an address the server has since
  // left says nothing about it.
  void on_probe_result(bool ok, std::string_view why, std::string_view run_id, std::string_view probed);

  // Replicated shards: writes this server missed, replayed in order when it is back.
  // `replies`: how many replies the bytes get (a transaction's MULTI ... EXEC: several).
  void queue_for_replay(std::string_view bytes, uint32_t replies = 1);
  void on_replay_done(Fragment& fragment);
  void mark_stale(std::string_view why);
  void on_lagging(std::string_view why);
  void on_resync_result(bool ok, std::string_view why);
  // A reload removes `peer`: a resync copying from it stops (and is retried from another).
  void cancel_resync_from(const BackendServer& peer);
  uint32_t shard_index() const { return shard_index_; }
  uint64_t resyncs() const { return resyncs_; }
  void on_lag_over();

  // Fences (fence.h): an abandoned connection of this server is to be killed. While one is
  // pending a replicated server serves nothing: each new connection kills it first.
  void fence(std::string local);
  void on_fence_reply(std::string_view target, std::string_view reply);
  Fragment* fence_fragment(const std::string& target);  // a CLIENT KILL to send, owned here
  bool fenced() const;
  const std::string& address_key() const { return address_key_; }
  uint64_t fences_run() const { return fences_run_; }

  // A copy that waits for its leader's reply (primary-replica, SPOP) is on its way to this
  // catching-up server: it is not live before the copy is queued, or dropped.
  void expect_copy() { ++awaiting_copies_; }
  uint32_t awaiting_copies() const { return awaiting_copies_; }
  // A copy planned for this server waits for its leader's reply before it is sent (stage two):
  // a server a reload removed is not closed while one may still come.
  void plan_copy() { ++planned_copies_; }
  void unplan_copy() { --planned_copies_; }
  uint32_t planned_copies() const { return planned_copies_; }
  // Writes whose outcome was given early (it lagged): their late replies may still come.
  bool settled_in_flight() const;
  // It leads writes whose outcome was given early and whose copies wait for its late reply
  // (backend_connection.h): a server resynced before they come would miss them.
  bool late_copies_pending() const;
  void copy_resolved();
  uint64_t replays() const { return replays_; }
  size_t replay_queue_length() const { return replay_.size(); }
  uint64_t replay_dropped() const { return replay_dropped_; }
  bool replicated() const { return replicated_; }
  const std::string& run_id() const { return run_id_; }

  Servers& servers() const { return servers_; }
  Worker& worker() const { return worker_; }
  uint32_t index() const { return index_; }
  const std::string& name() const { return name_; }
  const std::string& shard_name() const { return shard_name_; }
  const conf::Address& address() const { return address_; }
  ServerState state() const { return state_; }
  const std::string& last_error() const { return last_error_; }
  size_t pending() const;
  const metrics::ServerMetrics& metrics() const { return metrics_; }
  void observe_latency(uint64_t ns) { latency_.observe_ns(ns); }
  size_t connected_count() const;
  uint64_t requests() const { return requests_; }
  uint64_t failures() const { return failures_; }

 private:
  void mark_down(std::string_view why);
  void mark_up();
  void set_state(ServerState state);
  void set_mode(routing::ServerMode mode);
  void start_probe();
  void launch_probe();
  void check_new_address(const std::string& previous);
  void finish_address_check();
  void maybe_resync(uint64_t now_ms);
  void replay_more();
  bool on_fence_done(Fragment& fragment);  // false: not one of ours
  bool on_switch_done(Fragment& fragment);  // likewise

  struct ReplayEntry {
    BlockRef block;
    std::string_view bytes;
    uint32_t replies = 1;
  };

  Servers& servers_;
  Worker& worker_;
  uint32_t index_;
  std::string name_;
  std::string shard_name_;
  conf::Address address_;
  conf::Address endpoint_;                       // numeric: address_, or what its name resolved to
  conf::BackendAuth auth_;
  std::shared_ptr<const TlsContext> tls_;
  uint32_t incarnation_ = 0;
  bool probe_waits_for_name_ = false;            // a probe starts once the name is looked up
  std::vector<std::string> addresses_;           // a named server's last lookup
  bool startup_probe_failed_ = false;            // said once
  bool stopped_ = false;                         // shutdown
  bool address_checked_ = false;                 // ...and the probe said it is the same process
  bool checking_address_ = false;                // replicated, moved: no replay until a probe of
                                                 // the new address has seen its run_id
  std::string address_key_;                      // address_.to_string(): the fence book's key
  ServerState state_ = ServerState::up;
  routing::ServerMode mode_ = routing::kServerLive;  // mirrored in the proxy's planner view
  uint32_t consecutive_failures_ = 0;
  uint64_t down_until_ms_ = 0;
  std::string last_error_;
  uint64_t requests_ = 0;
  uint64_t published_requests_ = 0;
  uint64_t failures_ = 0;
  uint64_t reconnect_after_ms_ = 0;              // backoff after a failure
  metrics::ServerMetrics metrics_;
  metrics::LatencyHistogram latency_;             // published by publish_metrics()
  std::vector<std::unique_ptr<BackendConnection>> connections_;
  struct Dedicated {
    std::unique_ptr<BackendConnection> connection;
    bool in_use = false;
  };
  std::vector<Dedicated> dedicated_;
  size_t dedicated_in_use_ = 0;
  uint64_t dedicated_exhausted_ = 0;
  size_t subscriber_slots_ = 0;
  bool replicated_ = false;
  conf::ReplicationConfig replication_;
  std::string run_id_;                           // redis's run_id: changes when it restarts
  std::deque<ReplayEntry> replay_;               // missed writes, oldest first
  size_t replay_bytes_ = 0;
  uint64_t replay_dropped_ = 0;
  std::deque<Fragment> replaying_;               // replayed writes in flight (connection 0)
  struct Fence {
    Fragment fragment;
    std::string target;
  };
  std::list<Fragment> switching_;                // send_in_resp3's HELLOs in flight
  bool switch_refusal_logged_ = false;
  std::list<Fence> fencing_;                     // CLIENT KILLs in flight, on any connection
                                                 // (a list: connections point into it)
  bool lagging_ = false;                         // timed out: late replies still to come
  ServerProbe* probe_ = nullptr;                 // owned: deleted by its own close callback
  ResyncJob* resync_ = nullptr;                  // likewise
  uint64_t next_resync_ms_ = 0;
  uint64_t resyncs_ = 0;
  uint64_t replays_ = 0;                         // catch-ups by replay that completed
  uint64_t fences_run_ = 0;
  uint32_t awaiting_copies_ = 0;                 // see expect_copy()
  uint32_t planned_copies_ = 0;                  // see plan_copy()
  bool replayed_ = false;                        // this catch-up replayed something
  uint32_t shard_index_ = 0;
};

}  // namespace ringproxy::proxy
