// INFO's text: the proxy describing itself, in Redis INFO format.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/backend/servers.h"
#include "proxy/clients/clients.h"
#include "proxy/net/worker.h"
#include "proxy/reconfig/reloader.h"
#include "proxy/requests/stats.h"

namespace ringproxy::proxy {

// What INFO reads: every room, read-only.
struct InfoSources {
  const Worker& worker;
  const uint64_t& started_at_ms;  // set when the proxy starts
  const ProxyStats& stats;
  const Clients& clients;
  const Servers& servers;
  const Reloader& reloader;
};

// Redis INFO format ("# Section\r\nkey:value\r\n..."). `section` empty or "all"/"everything"
// or "default" gives every section; otherwise the one named (case-insensitive).
std::string info_text(const InfoSources& sources, std::string_view section);

}  // namespace ringproxy::proxy
