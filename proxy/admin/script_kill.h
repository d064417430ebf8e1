// SCRIPT KILL and FUNCTION KILL: the busy script runs on the server's connections, so the
// kill goes on a side connection of its own to every server that takes requests, at once.
// The client gets +OK when a server killed one, redis's -NOTBUSY when none was running, else
// the first other error (-UNKILLABLE: the script wrote already).
//
// Ownership: deletes itself once answered (its timer's close callback). The request it
// answers stays alive meanwhile (a token in fragments_pending), even if its client leaves.
#pragma once

#include <uv.h>

#include <string>
#include <vector>

#include "proxy/backend/servers.h"
#include "proxy/datapath/data_path.h"
#include "proxy/net/side_link.h"

namespace ringproxy::proxy {

class ScriptKill {
 public:
  // `command`: "SCRIPT KILL" or "FUNCTION KILL".
  static void start(Servers& servers, DataPath& data_path, Request& request, const char* command);

 private:
  ScriptKill(DataPath& data_path, Request& request) : data_path_(data_path), request_(&request) {}
  static void on_connect(SideLink* link, bool ok);
  static void on_disconnect(SideLink* link);
  static void on_reply(SideLink* link, redisReply* reply, void* privdata);
  static void on_timeout(uv_timer_t* timer);
  static void on_timer_closed(uv_handle_t* handle);
  void link_done(SideLink* link, std::string_view error);
  void finish();

  DataPath& data_path_;
  Request* request_;
  uv_timer_t timer_{};
  std::vector<SideLink*> links_;  // open ones (null once done)
  size_t outstanding_ = 0;
  bool killed_ = false;
  bool finished_ = false;
  std::string first_error_;       // other than NOTBUSY
  bool answered_ = false;         // some server replied
  std::string unreachable_;       // why the last server that could not be reached could not
};

}  // namespace ringproxy::proxy
