// Replication decisions, pure: who must acknowledge a write, when the client is answered,
// which server serves a read, and how a write is rewritten so that every server (and a
// replay later) applies the same effect.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "conf/config.h"

namespace ringproxy::routing {

// How many of a shard's `servers` must acknowledge a write.
struct AckRule {
  uint32_t needed = 1;
  bool primary_first = false;  // primary-replica: replicas get the write after the primary
};
AckRule ack_rule(const conf::ReplicationConfig& replication, size_t servers);

// One replicated write over the servers of a shard (slot 0 is the primary for
// primary-replica). Fed each server's outcome in any order; says when to answer the client
// and with which server's reply.
class WriteTracker {
 public:
  enum class Outcome : uint8_t {
    ack,          // the server replied, not with an error
    error_reply,  // the server replied with an error (WRONGTYPE...): not an acknowledgement
    missed,       // not applied now (server down: queued for replay, or failed)
  };
  struct Decision {
    bool answer = false;           // answer the client now
    int reply_from = -1;           // with this slot's reply; -1: with shortfall_error()
    bool send_to_replicas = false; // primary-replica: the primary acknowledged, go on
    bool cancel_replicas = false;  // primary-replica: the primary refused or missed it
  };

  WriteTracker(AckRule rule, uint32_t servers);
  Decision on_outcome(uint32_t slot, Outcome outcome);

  bool answered() const { return answered_; }
  uint32_t acks() const { return acks_; }
  uint32_t needed() const { return rule_.needed; }
  uint32_t servers() const { return servers_; }
  // "-ERR ... acknowledged by A of N servers, K needed" (the caller adds the shard name).
  std::string shortfall_error(std::string_view shard) const;

 private:
  Decision answer_with(int slot);

  AckRule rule_;
  uint32_t servers_;
  uint32_t acks_ = 0;
  uint32_t outcomes_ = 0;
  int first_ack_ = -1;
  int first_error_ = -1;
  bool answered_ = false;
  bool primary_done_ = false;
};

// The server that serves a read. `readable[i]`: server i is up and in sync;
// `pending[i]`: its requests in flight (for `any`); `rotation`: a counter the caller bumps
// (round-robin for prefer-replica / replica). nullopt: no server may serve it.
std::optional<uint32_t> pick_read_server(conf::ReadFrom read_from, std::span<const uint8_t> readable,
                                         std::span<const uint32_t> pending, uint64_t rotation);

// Anti-entropy repair: which server's copy of a key wins. `copies[i]`: server i's DUMP of
// the key (nullopt: it does not have it). primary-replica: the primary's (slot 0);
// multi-primary: the copy most servers hold, "absent" included, ties to the lowest slot.
size_t repair_winner(conf::ReplicationStrategy strategy, std::span<const std::optional<std::string_view>> copies);

// Rewrites relative expiry to absolute (EX/PX -> PXAT, SETEX/PSETEX -> SET .. PXAT,
// EXPIRE/PEXPIRE -> PEXPIREAT, GETEX EX/PX -> PXAT, RESTORE ttl -> ABSTTL), so that every
// server, and a replay minutes later, expires the key at the same moment. Returns false
// when the command needs no rewrite (then `out` is untouched).
bool rewrite_relative_expiry(std::span<const std::string_view> args, uint64_t now_ms,
                             std::vector<std::string>& out);

// XADD's ID argument when it is '*' (the server picks it: each server would pick its own), past
// NOMKSTREAM and MAXLEN/MINID [=|~] threshold [LIMIT count]; none otherwise.
std::optional<size_t> xadd_auto_id(std::span<const std::string_view> args);

}  // namespace ringproxy::routing
