// Anti-entropy repair of one replicated shard: finds keys whose copies differ between the
// shard's live servers and makes them equal (routing::repair_winner says whose copy wins).
//
//   1. SCAN every live server: the union of their keys
//   2. in batches, rate limited (repair_keys_per_second):
//      hold the shard's writes, wait for none in flight (no write can race the repair),
//      DUMP + PTTL every key on every server, pick the winner per key,
//      RESTORE ... REPLACE (or DEL) on the servers that differ, release the writes
//
// Started by PROXY REPAIR <shard> or every repair_interval_ms. Lifetime: owned by its shard's state (Servers)
// (cancel() at shutdown); reports once through Servers::on_repair_done(); deletes itself
// after its timer is closed.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "proxy/net/side_link.h"
#include "proxy/requests/topology.h"
#include "routing/routing_table.h"

struct redisReply;

namespace ringproxy::proxy {

class Servers;
class SideLink;

class RepairJob {
 public:
  RepairJob(Servers& servers, uint32_t shard);
  // Read repair: only these keys, no SCAN.
  RepairJob(Servers& servers, uint32_t shard, std::vector<std::string> keys);
  void start();
  void cancel();
  uint64_t keys_scanned() const { return keys_.size(); }
  uint64_t keys_fixed() const { return keys_fixed_; }

 private:
  struct Pending;  // one command in flight
  enum class Step : uint8_t { scanning, holding, comparing, fixing, waiting, done };

  ~RepairJob() = default;  // only from on_timer_closed
  static void on_reply(SideLink* link, redisReply* reply, void* privdata);
  static void on_connect(SideLink* link, bool ok);
  static void on_disconnect(SideLink* link);
  static void on_timer(uv_timer_t* timer);
  static void on_timer_closed(uv_handle_t* handle);

  void command(size_t server, int kind, size_t key, const char* format, ...);
  void handle(const Pending& pending, redisReply* reply);
  void scan(size_t server);
  void start_batch();
  void compare_batch();
  void fix_batch();
  void end_batch();
  void tick();
  void finish(bool ok, const std::string& why);

  Servers* backend_;  // its owner
  routing::ShardEntry shard_;             // as it was when the job started (a reload may change it)
  std::shared_ptr<ShardRuntime> state_;   // where its writes are held and its outcome counted
  Step step_ = Step::scanning;
  std::vector<conf::Address> servers_;         // live servers of the shard, in shard order
  std::vector<ServerLogin> logins_;            // how to reach each of them
  std::vector<SideLink*> links_;
  std::vector<std::string> cursors_;
  std::unordered_set<std::string> seen_;
  std::vector<std::string> keys_;
  size_t next_key_ = 0, batch_begin_ = 0, batch_end_ = 0;
  std::vector<std::vector<std::optional<std::string>>> dumps_;  // [server][key in batch]
  std::vector<std::vector<int64_t>> ttls_;
  size_t outstanding_ = 0;
  uint64_t keys_fixed_ = 0;
  uint64_t hold_started_ms_ = 0;
  uint64_t last_reply_ms_ = 0;            // the scan gives up when the servers go quiet
  std::vector<uint32_t> fixes_outstanding_;  // per server: fenced if the job fails with any
  bool holding_ = false;
  bool finished_ = false;
  bool cancelled_ = false;
  bool targeted_ = false;
  uv_timer_t timer_{};
};

}  // namespace ringproxy::proxy
