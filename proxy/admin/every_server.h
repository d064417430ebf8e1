// One command to every server, each on a side connection of its own, at once: SCRIPT KILL
// and FUNCTION KILL (the busy script holds the server's shared connections), and PING when
// [proxy] ping = "servers". routing/every_server.h turns the answers into the client's reply.
//
// Ownership: deletes itself once answered (its timer's close callback). The request it
// answers stays alive meanwhile (a token in fragments_pending), even if its client leaves.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "proxy/backend/servers.h"
#include "proxy/datapath/data_path.h"
#include "proxy/net/side_link.h"
#include "routing/every_server.h"

namespace ringproxy::proxy {

class EveryServer {
 public:
  using Reduce = std::string (*)(std::span<const routing::ServerAnswer> answers, const Request& request);
  // Every server, down ones too: a script that runs long enough makes its server look down
  // (it answers -BUSY), and a kill is what brings it back.
  static EveryServer* ask(Servers& servers, DataPath& data_path, Request& request,
                          std::vector<std::string> command, Reduce reduce);

  // Requests that take the same answers (PINGs while one is out): one round of connections
  // answers them all, so a client pipelining PINGs opens no more connections than one PING.
  // `round` points to the job while it runs and is cleared when it answers.
  static void ask_shared(std::shared_ptr<EveryServer*> round, Servers& servers, DataPath& data_path,
                         Request& request, std::vector<std::string> command, Reduce reduce);

 private:
  EveryServer(DataPath& data_path, Request& request, Reduce reduce)
      : data_path_(data_path), requests_{&request}, reduce_(reduce) {}
  static void on_connect(SideLink* link, bool ok);
  static void on_disconnect(SideLink* link);
  static void on_reply(SideLink* link, redisReply* reply, void* privdata);
  static void on_timeout(uv_timer_t* timer);
  static void on_timer_closed(uv_handle_t* handle);
  // Its server's answer is in (or its link ended without one): the link closes; the last answers.
  void done(SideLink* link);
  size_t index_of(SideLink* link) const;
  void finish();

  DataPath& data_path_;
  std::vector<Request*> requests_;  // answered together, in order
  Reduce reduce_;
  std::shared_ptr<EveryServer*> round_;  // (ask_shared)
  uv_timer_t timer_{};
  std::vector<SideLink*> links_;                 // by server (null once done)
  std::vector<routing::ServerAnswer> answers_;   // by server
  size_t outstanding_ = 0;
  bool finished_ = false;
};

}  // namespace ringproxy::proxy
