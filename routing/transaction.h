// Transactions (MULTI ... EXEC, WATCH) through the proxy: the pure decisions.
//
// The proxy queues a transaction's commands itself (each is checked and answered +QUEUED)
// and, at EXEC, sends MULTI, the commands and EXEC in one piece to the one shard they all
// map to. On a shard's shared connection nothing of another client can run between them, so
// a transaction without WATCH needs no connection of its own, and on a replicated shard it is
// one write like any other: the same bytes to every server (primary-replica: after the
// primary), in the order of the shard's other writes, replayed whole to a server that was
// down. A command that cannot be queued (a key on another shard, a command that runs on every
// shard, a random pop on a replicated shard) is refused as redis refuses a queuing error, and
// EXEC then answers -EXECABORT.
//
// WATCH lives in the server's connection: a watching client holds a dedicated connection
// (BackendServer's bounded pool) to its shard's server (a replicated shard's write leader)
// until EXEC, DISCARD or UNWATCH.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "routing/command_table.h"
#include "routing/planner.h"
#include "routing/routing_table.h"

namespace ringproxy::routing {

// What a command sent while a transaction is open (after MULTI) does.
enum class InTransaction : uint8_t {
  queue,        // queued: +QUEUED, run at EXEC
  refuse,       // a queuing error: the client gets it and EXEC will answer -EXECABORT
  error_only,   // an error that leaves the transaction as it is (MULTI nested, WATCH inside MULTI)
  exec,
  discard,
  run_now,      // QUIT, RESET: what they do outside a transaction (RESET ends it)
};

struct QueueDecision {
  InTransaction what = InTransaction::queue;
  std::string error;                // refuse / error_only: the error line, without "-" and CRLF
  std::optional<uint32_t> shard;    // queue: the shard of its keys (none: a command without keys)
};

// `tx_shard`: the shard the transaction's earlier commands (or its WATCH) fixed, if any.
// `positions` is the caller's scratch.
QueueDecision decide_queued(const CommandInfo& cmd, std::span<const std::string_view> args, const RoutingTable& table,
                            std::optional<uint32_t> tx_shard, std::vector<uint32_t>& positions);

// WATCH's keys: their one shard, or the error (keys on several shards, or on another shard
// than the transaction's).
struct WatchDecision {
  std::optional<uint32_t> shard;
  std::string error;
};
WatchDecision decide_watch(std::span<const std::string_view> args, const RoutingTable& table,
                           std::optional<uint32_t> watched_shard);

// The table entries a transaction is planned and replicated as: a write when any queued
// command writes, else a read (served by one server, like any read). The request's arguments
// are ["EXEC", shard index, shard name, replies, its keys...] (plan() sends it there; a
// migration parks it until its keys have moved); its bytes MULTI ... EXEC.
const CommandInfo& transaction_command(bool writes);
// A watched transaction on a replicated shard: its WATCH is on the shard's write leader
// (write_leader(), planner.h); EXEC runs there first, alone on the shard (its other writes wait),
// and the other servers get MULTI ... EXEC once it committed, nothing if the watch fired.
const CommandInfo& watched_transaction_command();
// A transaction with an XADD '*' on a replicated shard: led by one server like XADD itself.
const CommandInfo& led_transaction_command();

// The copies of a led transaction: its block (MULTI ... EXEC) with each XADD '*' given the ID
// the leader chose (from its replies, MULTI's to EXEC's). False: nothing to change.
bool copy_with_leader_ids(std::string_view block, std::string_view leader_replies, std::string& out);

// The client's reply to EXEC, from the server's replies to MULTI, the commands and EXEC (one
// after the other): EXEC's. An -EXECABORT (a server refused a queued command) says which
// error the server gave, since the client only saw the proxy's +QUEUED.
void exec_reply(std::string_view replies, std::string& out);

}  // namespace ringproxy::routing
