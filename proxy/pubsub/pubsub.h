// Pub/sub through the proxy (the placement rules: routing/pubsub.h).
//
//   PUBLISH, SPUBLISH   to the channel's server, on its shared connections
//   (P|S)SUBSCRIBE      the client gets a link of its own to each server it listens on (a side
//                       link, counted among the server's dedicated connections), the command
//                       goes there, and the client is answered once every server confirmed,
//                       with the counts of its own subscriptions (as one redis would count them)
//   messages            forwarded as they come, after the replies before them; RESP2 clients
//                       in subscribed mode may only (un)subscribe, PING, QUIT and RESET; RESP3
//                       clients get pushes and may send anything
//   PUBSUB CHANNELS | NUMSUB | NUMPAT | SHARDCHANNELS | SHARDNUMSUB
//                       asked of every shard's pub/sub server (side links), merged
//
// When a link fails (its server died, a reload removed it, its shard's leader changed and the
// old one went down), the client is told with an error and closed, so that its library
// reconnects and subscribes again (on the shard's server now); so is one whose channels a reload
// moved to another server. A subscriber that stops reading while messages pile up (32 MiB not
// written, or 100,000 messages queued) is closed as well, as redis closes one past its pub/sub
// output limit.
//
// Ownership: owned by the Proxy. A subscriber's state and links live until it has no
// subscription left, or closes.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "proxy/backend/servers.h"
#include "proxy/clients/client_session.h"
#include "proxy/datapath/data_path.h"
#include "proxy/net/side_link.h"
#include "proxy/requests/request.h"
#include "proxy/requests/stats.h"
#include "routing/pubsub.h"

struct redisReply;

namespace ringproxy::proxy {

class PubSub final : public RequestHandler {
 public:
  PubSub(Worker& worker, Servers& servers, DataPath& data_path, ProxyStats& stats)
      : worker_(worker), servers_(servers), data_path_(data_path), stats_(stats) {}
  ~PubSub();
  void stop();  // closes every link

  // A pub/sub command (LocalCommands, or a subscribed client's).
  void command(ClientSession& client, Request& request);
  // RESET: every subscription of the client ends.
  void reset(ClientSession& client) { drop(client); }
  // Links whose server a reload removed, or whose channels another server now carries (the
  // ring changed), fail: their subscribers are told and closed, and subscribe again.
  void sweep();
  // SIGTERM's drain: every subscription ends (its links close, no message comes after); the
  // drain then ends the session like any other, once its queued output is written, with a FIN
  // (its library subscribes again, to the proxy that took over).
  void close_subscribers();

  // RequestHandler: a subscribed client's requests.
  void dispatch(ClientSession& client, Request& request) override;
  void on_replies_written(ClientSession& client, Request* waited) override;  // (a HELLO's wait)
  void on_client_closed(ClientSession& client) override;

 private:
  static constexpr size_t kFamilies = 3;
  struct Link {
    PubSub* owner = nullptr;
    ClientSession* client = nullptr;
    BackendServer* server = nullptr;
    SideLink* link = nullptr;
  };
  // One name of a (un)subscribe command, waiting for the confirmations of `remaining` links.
  struct Item {
    routing::SubscriptionCommand what;
    std::string name;
    uint32_t remaining = 0;
  };
  struct Awaited {
    Request* request = nullptr;
    std::vector<Item> items;
  };
  struct Subscriber {
    bool handles = false;  // its requests come here (RESP2's subscribed-mode rules)
    std::map<std::string, std::vector<Link*>> subscribed[kFamilies];  // name -> the links it is on
    std::vector<Link*> links;  // (owned: close_link() frees them)
    std::deque<Awaited> awaited;
  };

  static void on_connect(SideLink* link, bool ok);
  static void on_disconnect(SideLink* link);
  static void on_push(SideLink* link, redisReply* reply, void* privdata);

  void subscription(ClientSession& client, Request& request, const routing::SubscriptionCommand& what);
  void publish(Request& request);
  void query(ClientSession& client, Request& request);
  // The link of `client` to the server `index` (opened, its slot taken), or null with `error`.
  Link* link_to(ClientSession& client, Subscriber& subscriber, uint32_t index, std::string& error);
  void confirmed(Link& link, std::string_view kind, std::string_view name);
  void answer_confirmed(Subscriber& subscriber);
  // `gone`: its side link ended (this runs in its last callback); else it is closed here.
  void link_failed(Link& link, std::string_view why, bool gone = true);
  void forward(Link& link, const redisReply& reply);
  // No subscription left and nothing awaited: the client leaves subscribed mode.
  void leave_if_done(ClientSession& client);
  void drop(ClientSession& client);  // its links closed, its state gone
  // Closes a link and frees it, now or (a link that will report its end) in on_disconnect.
  static void close_link(Link* link);
  std::optional<uint32_t> server_of_shard(uint32_t shard) const;
  bool subscribed(const Subscriber& subscriber) const;  // any subscription (RESP2's subscribed mode)
  int64_t count(const Subscriber& subscriber, routing::PubSubFamily family) const;

  Worker& worker_;
  Servers& servers_;
  DataPath& data_path_;
  ProxyStats& stats_;
  std::unordered_map<ClientSession*, Subscriber> subscribers_;
  const Topology* checked_topology_ = nullptr;  // sweep(): the snapshot links were checked against
};

}  // namespace ringproxy::proxy
