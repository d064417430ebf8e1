// Blocking commands through the proxy (BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP BZPOPMIN BZPOPMAX
// BZMPOP, XREAD and XREADGROUP with BLOCK): the pure decisions.
//
// A blocked server connection cannot be shared, so a blocking command never goes on the shared
// connections. Two ways (proxy/blocking/ carries them out):
//
//   on the server   a plain shard, and a blocking read (XREAD BLOCK) anywhere: the command
//                   goes unchanged on a dedicated connection (BackendServer's bounded pool) to
//                   the shard's server (a replicated shard's write leader); the server blocks
//                   and serves it, and its own timeout ends it.
//   in the proxy    a pop on a replicated shard: a pop is a write, and the moment a server
//                   serves a blocked client is not one the proxy can place among the shard's
//                   other writes (the copies could land before the push that fed it, or after
//                   another pop). So the proxy runs the pop's non-blocking form (LMPOP, LMOVE,
//                   ZMPOP, XREADGROUP without BLOCK) as an ordinary replicated write, which
//                   every server applies in the shard's write order; when it finds nothing,
//                   the client waits in the proxy, and the pop runs again when a write to one
//                   of its keys is acknowledged through this proxy, or after a short backoff
//                   (writes through other proxies), until the command's timeout.
//
// Every key of a blocking command must map to one shard (hash tags), as for any multi-key
// command.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "routing/command_table.h"
#include "routing/routing_table.h"

namespace ringproxy::routing {

// How the reply of the non-blocking form becomes the blocking command's.
enum class PopShape : uint8_t {
  same,         // LMOVE, RPOPLPUSH, LMPOP: the blocking one's reply already
  list_pop,     // BLPOP BRPOP from LMPOP: [key, [element]] -> [key, element]
  zset_pop,     // BZPOPMIN BZPOPMAX from ZMPOP: [key, [[member, score]]] -> [key, member, score]
  zset_mpop,    // BZMPOP from ZMPOP: the same, its scores RESP3 doubles for a RESP3 client
  stream_read,  // XREADGROUP: [[key, entries] ...], RESP3's map for a RESP3 client
};

struct BlockingDecision {
  std::string error;                    // refused: the error line (without "-" and CRLF)
  bool key_count_error = false;         // ... a key count redis refuses too (keys.h): a server
                                        // refuses it at once in its own words
  uint32_t shard = 0;                   // where its keys are
  std::optional<uint64_t> timeout_ms;   // none: it waits until served (a timeout of 0)
  bool pops = false;                    // a write: on a replicated shard the proxy waits itself
  std::vector<std::string> nonblocking; // pops: the command that does the same when there is
                                        // something to pop (LMPOP 2 a b LEFT COUNT 1 ...)
  PopShape shape = PopShape::same;
  std::vector<std::string> keys;
};

// Whether this request blocks: the blocking commands, and XREAD / XREADGROUP with BLOCK.
bool blocks(const CommandInfo& cmd, std::span<const std::string_view> args);

// Its shard, timeout and non-blocking form; `positions` is the caller's scratch. Errors use
// redis's wording for a bad timeout ("timeout is not a float or out of range", "timeout is
// negative").
BlockingDecision decide_blocking(const CommandInfo& cmd, std::span<const std::string_view> args,
                                 const RoutingTable& table, std::vector<uint32_t>& positions);

// The non-blocking form's reply as the blocking command's reply in `protocol` (2 or 3). None:
// it found nothing, the client waits on. An error reply is the client's answer as it is.
std::optional<std::string> blocked_reply(PopShape shape, std::string_view reply, int protocol);

// The mark (Request::top_cmd) of a write the proxy runs on its own for a waiting client: a
// pop, or the push that undoes one. It has no client, and is never dropped as abandoned.
const CommandInfo& proxy_pop_marker();

// What a blocking command answers when its timeout passes: redis's null array (RESP3: null).
std::string_view timed_out_reply(int protocol);

// What puts back an element a pop took for a client that had left before it was answered
// (LPUSH, RPUSH, ZADD; LMOVE back for BLMOVE): the non-blocking form's args and reply. None:
// nothing was popped, or there is no undo (an XREADGROUP's delivery stays pending, as on redis).
std::optional<std::vector<std::string>> undo_pop(std::span<const std::string> nonblocking, std::string_view reply);

// The id of the client at `addr` ("ip:port", as redis prints a client's addr) in a CLIENT LIST
// reply's text: what CLIENT UNBLOCK takes. nullopt: not listed.
std::optional<uint64_t> client_id_at(std::string_view client_list, std::string_view addr);

}  // namespace ringproxy::routing
