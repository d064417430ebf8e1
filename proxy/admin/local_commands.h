// Commands the proxy answers itself: PING ECHO QUIT SELECT HELLO AUTH ACL WHOAMI CLIENT COMMAND INFO
// PROXY; MULTI EXEC DISCARD WATCH UNWATCH start or refuse a transaction (transactions/).
// The data path hands them over (a LocalCommandHandler) after classifying them.
//
// Ownership: owned by the Proxy.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "proxy/admin/every_server.h"
#include "proxy/admin/info.h"
#include "proxy/datapath/data_path.h"
#include "proxy/blocking/blocking.h"
#include "proxy/pubsub/pubsub.h"
#include "proxy/transactions/transactions.h"

namespace ringproxy::proxy {

class LocalCommands final : public LocalCommandHandler {
 public:
  LocalCommands(DataPath& data_path, Transactions& transactions, PubSub& pubsub, Blocking& blocking,
                Servers& servers, Reloader& reloader, Clients& clients, InfoSources info)
      : data_path_(data_path),
        transactions_(transactions),
        pubsub_(pubsub),
        blocking_(blocking),
        servers_(servers),
        reloader_(reloader),
        clients_(clients),
        info_(info) {}

  void answer(ClientSession& client, Request& request) override;

 private:
  // PROXY ROUTE <key> | REPAIR <shard> | RELOAD | HELP
  void answer_proxy_command(Request& request);
  // False with the WRONGPASS error appended to `out`.
  bool authenticate(ClientSession& client, std::string_view user, std::string_view password, std::string& out);

  DataPath& data_path_;
  Transactions& transactions_;  // MULTI, WATCH ... of a client not in a transaction
  PubSub& pubsub_;              // SUBSCRIBE, PUBLISH, PUBSUB ... of a client not subscribed
  Blocking& blocking_;          // CLIENT UNBLOCK
  Servers& servers_;
  Reloader& reloader_;
  Clients& clients_;  // CLIENT LIST and KILL
  InfoSources info_;
  std::shared_ptr<EveryServer*> ping_round_ = std::make_shared<EveryServer*>(nullptr);  // ping = "servers"
  uint64_t auth_failure_logged_ms_ = 0;   // failures are logged at most once a second
  uint64_t auth_failures_unlogged_ = 0;
};

}  // namespace ringproxy::proxy
