// Moving the keys whose shard changed when a reload changed the ring ([pool] migration).
//
// Invariant: a key lives in one place. A request for a key whose shard changed waits
// (parked) while the key is moved, then runs on the new shard:
//
//   1. DUMP + PTTL the key on each previous owner (routing::previous_owners)
//   2. found: RESTORE ... ABSTTL on every server of the new shard, without REPLACE (a value
//      written through the proxy since the reload is newer and wins: BUSYKEY leaves it)
//   3. DEL it on the previous owners' servers, then release the waiting requests
//
// Before the first move, the requests planned on the previous ring must have finished
// (a move must not race a write the previous ring sent). `warm`: keys move when a request
// touches them, for warm_window_ms. `move`: also a background pass SCANs the previous
// owners and moves every key that changed shard, rate limited; a pass with failures is
// retried. A later reload adds its previous ring as one more place to look.
//
// Lifetime: owned by the Reloader, which drops it once finished() (after sweep()).
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "conf/config.h"
#include "proxy/datapath/data_path.h"
#include "proxy/net/side_link.h"
#include "proxy/requests/topology.h"
#include "routing/resharding.h"
#include "routing/routing_table.h"

struct redisReply;

namespace ringproxy::proxy {

class Servers;
class DataPath;
struct Request;

struct MigrationProgress {
  conf::Migration mode = conf::Migration::none;
  bool scanning = false;         // move: the background pass is running
  size_t previous_rings = 0;     // rings whose shards may still hold moved keys
  uint64_t keys_to_move = 0;     // found by the passes so far (and touched by requests)
  uint64_t keys_moved = 0;       // copied to their new shard
  uint64_t keys_absent = 0;      // looked for, not found anywhere (never written, or expired)
  uint64_t keys_failed = 0;      // a server failed: the key stays where it was
  uint64_t passes = 0;           // completed background passes
};

class Migration final : public KeyMoves {
 public:
  Migration(Servers& servers, DataPath& data_path);
  ~Migration();
  Migration(const Migration&) = delete;
  Migration& operator=(const Migration&) = delete;

  // A reload: `previous` is the ring before it when the ring changed (else null);
  // `previous_topology` is what its requests in flight hold.
  void on_reload(std::shared_ptr<const routing::RoutingTable> previous,
                 std::weak_ptr<const Topology> previous_topology,
                 std::shared_ptr<const routing::RoutingTable> current, const conf::PoolConfig& pool);
  // migration = "none" in a reload: no new moves; keys not moved yet stay where they are.
  void abandon();

  // The data path: true if `request` waits for its keys to move (the migration then owns
  // it until DataPath::resume_parked).
  bool park_if_moving(Request& request) override;

  void sweep(uint64_t now_ms);   // barrier, deadlines, rate limit, the background pass
  void stop();                   // shutdown
  bool finished() const;
  bool keys_moving() const override { return !earlier_.empty(); }
  const MigrationProgress& progress() const { return progress_; }

 private:
  struct Source {                // a previous owner of a key: a shard of an earlier ring
    std::string shard;
    std::vector<conf::Address> servers;
  };
  struct KeyMove;
  struct Op;
  struct Link;
  struct ScanTarget {
    Source source;
    std::string cursor = "0";
    bool done = false;
    bool in_flight = false;
    uint64_t sent_ms = 0;
  };

  static void on_reply(SideLink* link, redisReply* reply, void* privdata);
  static void on_connect(SideLink* link, bool ok);
  static void on_disconnect(SideLink* link);

  bool ready() const;
  KeyMove& start_move(const std::string& key, bool from_scan);
  void begin(KeyMove& move);
  void handle(KeyMove& move, const Op& op, void* reply);
  void restore(KeyMove& move);
  void delete_sources(KeyMove& move);
  void finish(KeyMove& move, bool ok, const std::string& why);
  bool command(const conf::Address& server, Op op, const char* format, ...);
  ServerLogin login(const conf::Address& server);
  Link* link(const conf::Address& server);
  void drop_link(const std::string& name);  // frees it: its pending commands fail now
  // A server that did not answer is not asked again for retry_interval: moves that need it
  // fail at once (TRYAGAIN) instead of each waiting for the deadline.
  std::unordered_map<std::string, uint64_t> unreachable_until_;
  const conf::Address& readable_server(const Source& source) const;
  // `refused`: the connect failed, so the server is not asked again for retry_interval.
  void forget(const SideLink* link, bool refused);
  void scan_more();
  void scan_step();
  void start_pass();
  void on_scan_reply(size_t target, void* reply, const std::string& lost);  // lost: why a null reply
  Source source_of(const routing::RoutingTable& table, uint32_t shard) const;

  Servers& servers_;
  DataPath& data_path_;
  conf::Migration mode_ = conf::Migration::none;
  uint32_t keys_per_second_ = 5000;
  uint64_t warm_until_ms_ = 0;
  uint64_t retry_interval_ms_ = 1000;
  uint64_t move_deadline_ms_ = 5000;
  uint64_t connect_timeout_ms_ = 1000;
  std::vector<std::shared_ptr<const routing::RoutingTable>> earlier_;  // newest first
  std::shared_ptr<const routing::RoutingTable> current_;
  uint32_t warm_window_ms_ = 0;  // the running one (a reload that changes it opens a new window)
  std::weak_ptr<const Topology> barrier_;  // the previous snapshot: its requests must finish first
  uint64_t barrier_deadline_ms_ = 0;

  std::map<std::string, std::unique_ptr<Link>> links_;      // by "host:port"
  std::unordered_map<std::string, std::unique_ptr<KeyMove>> moving_;  // by key
  std::unordered_set<std::string> moved_;   // keys already moved (bounded): requests skip the look-up
  struct Parked {
    uint32_t waiting = 0;     // keys still moving
    uint64_t client = 0;      // its client's id: a client's parked requests leave in order
    uint64_t generation = 0;  // the ring its keys were checked against
    std::string error;
  };
  std::unordered_map<Request*, Parked> parked_;
  // Per client, its parked requests in arrival order: a request whose keys are in place
  // still waits for the ones before it (MSET a b, then SET a: the SET must run second).
  std::unordered_map<uint64_t, std::deque<Request*>> client_order_;
  void release_ready(uint64_t client);
  // Registers `request` as a waiter of each of its keys that must move first; returns how many.
  uint32_t wait_for_keys(Request& request, std::vector<KeyMove*>& started);
  uint64_t generation_ = 0;  // bumped by every reload that changes the ring
  uint64_t next_move_id_ = 1;

  std::vector<ScanTarget> scan_targets_;
  std::deque<std::string> scan_queue_;       // keys found by the pass, to move
  uint32_t scan_moves_in_flight_ = 0;
  uint64_t pass_id_ = 0;
  uint64_t pass_failures_ = 0;
  uint64_t next_pass_ms_ = 0;
  bool pass_running_ = false;
  double tokens_ = 0;                        // rate limit of the background pass
  uint64_t last_refill_ms_ = 0;
  bool closing_ = false;
  bool in_scan_more_ = false;

  std::vector<routing::PreviousOwner> owners_;  // scratch
  std::vector<uint32_t> positions_;             // scratch
  MigrationProgress progress_;
};

}  // namespace ringproxy::proxy
