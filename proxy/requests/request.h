// A client request in flight and the backend fragments it was planned into: the unit of
// work every room passes along (clients/ reads it, datapath/ plans and answers it, backend/
// sends its fragments).
//
// Ownership: a Request belongs to its ClientSession's in-order queue until its reply has
// been written to the client; if the client goes away first, the Request is orphaned and
// freed when its last fragment completes. Fragments live inside their Request; a backend
// connection's queue only points at them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/net/buffer.h"
#include "proxy/requests/topology.h"
#include "routing/command_table.h"
#include "routing/reducer.h"
#include "routing/replication.h"
#include "routing/routing_table.h"

namespace ringproxy::proxy {

class ClientSession;
class BackendServer;
class BackendConnection;
struct Request;

struct Fragment {
  enum class State : uint8_t { planned, sent, done, cancelled };

  Request* request = nullptr;       // null: the proxy's own write (a replay), owned by the server
  uint32_t index = 0;               // in Request::fragments
  uint32_t group = 0;               // in Request::groups
  uint8_t slot = 0;                 // in its group
  uint8_t stage = 0;
  State state = State::planned;
  bool failed = false;              // no reply: the connection failed or timed out
  bool maybe_sent = false;          // with `failed`: it may have reached the server
  bool queued_for_replay = false;
  bool replay_after_leader = false; // stage 1 for a server that is catching up: queued once
                                    // the leader has answered (with its effect), or dropped
  // What takes a reply off the plain path, tested once per reply: kSettled (its outcome was
  // given early, the server lagged: the late reply only releases it), kSeveralReplies (a
  // transaction's MULTI ... EXEC: its reply is all of theirs, one after the other).
  static constexpr uint8_t kSettled = 1, kSeveralReplies = 2;
  uint8_t unusual = 0;
  bool settled() const { return (unusual & kSettled) != 0; }
  void settle() { unusual |= kSettled; }
  void expect_replies(uint32_t count) {
    more_replies = count > 0 ? count - 1 : 0;
    unusual = static_cast<uint8_t>(more_replies > 0 ? unusual | kSeveralReplies : unusual & ~kSeveralReplies);
  }
  BackendServer* server = nullptr;
  std::string_view bytes;           // what is sent: the client's bytes, or a rebuilt
  BlockRef bytes_block;             //   sub-command of a split; this keeps them alive
  std::string_view reply;           // a complete RESP reply once done
  std::string_view late_reply;      // settled: the server's reply when it finally came
  BlockRef reply_block;             // keeps `reply` alive
  std::string owned_reply;          // the proxy's error reply when the server failed
  uint64_t sent_at_ms = 0;
  uint64_t sent_ns = 0;             // when it was written (metrics on), for the server's latency
  bool done = false;
  uint32_t more_replies = 0;        // kSeveralReplies: how many follow the first (here: in the
                                    // padding, so a Fragment is no larger than it was)
};

// A shard's part of a request (see routing::PlannedGroup).
struct GroupState {
  explicit GroupState(routing::AckRule rule, uint32_t first, uint32_t count, uint32_t shard)
      : tracker(rule, count), first(first), count(count), shard(shard) {}
  routing::WriteTracker tracker;
  uint32_t first, count, shard;
  std::string_view reply;           // once answered
  std::string owned_reply;          // the shortfall error, when the ack level was not met
  bool read_quorum = false;
  bool primary_asked = false;       // read quorum: its first server is the shard's primary (known
                                    // at plan time: a reload may remove that server meanwhile)
  uint64_t cutovers = 0;            // its shard's resync cutovers when it was planned
};

struct Request {
  ClientSession* client = nullptr;  // null once the client has gone (orphaned)
  Request* next = nullptr;          // the client's in-order queue
  BlockRef request_block;           // keeps `raw` and `args` alive
  std::string_view raw;             // the request exactly as the client sent it
  // A RESP3 client's request: its bytes are here and `raw` is empty, which keeps it off the
  // data path's fast path (its server may need HELLO 3 around it: DataPath::send_fragment).
  // Not reset by recycle(): set for every request whose `raw` is empty (an inline request's
  // is empty too), so that the hot path pays nothing for it.
  std::string_view resp3_raw;
  // A watched transaction on a replicated shard (cmd is routing::watched_transaction_command();
  // read only then, so not reset either): the dedicated connection holding its WATCH, on the
  // shard's write leader, and how many times it had failed when the WATCH was sent.
  BackendConnection* watch_connection;
  uint64_t watch_failures;
  std::vector<std::string_view> args;
  const routing::CommandInfo* cmd = nullptr;
  std::shared_ptr<const Topology> topology;  // the snapshot it was planned with
  const routing::CommandInfo* top_cmd = nullptr;  // the top-level command (metrics label)
  uint64_t started_ns = 0;          // when it was read (uv_hrtime), 0 when not timed
  bool rejected = false;            // refused by the proxy: nothing was sent

  std::vector<Fragment> fragments;  // sized once at dispatch; never reallocated after
  std::vector<GroupState> groups;   // empty on the fast path (one fragment, no replication)
  uint32_t fragments_pending = 0;   // not done yet; the request lives until 0, even if answered
  uint32_t fragments_in_flight = 0; // replicated writes: neither done nor settled (what a
                                    // repair or a resync cutover must wait for)
  std::unique_ptr<routing::Reducer> reducer;  // split and broadcast only
  bool replicated_write = false;

  // The reply: a view into one of its fragments' reply blocks, or the proxy's own bytes.
  std::string_view reply;
  std::string owned_reply;
  bool done = false;
  bool close_after_reply = false;   // QUIT, protocol errors

  // Back to a reusable state (keeps vector/string capacity for the next request).
  void recycle();
};

// Requests are pooled: their buffers keep their capacity between uses.
class RequestPool {
 public:
  RequestPool() = default;
  RequestPool(const RequestPool&) = delete;
  RequestPool& operator=(const RequestPool&) = delete;
  ~RequestPool();

  Request* take();
  void give_back(Request* request);  // recycles it

 private:
  std::vector<Request*> spares_;
};

}  // namespace ringproxy::proxy
