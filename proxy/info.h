// INFO's text and PROXY's replies: the proxy describing itself.
#pragma once

#include <string>
#include <string_view>

namespace ringproxy::proxy {

class Proxy;
struct Request;

// Redis INFO format ("# Section\r\nkey:value\r\n..."). `section` empty or "all"/"everything"
// or "default" gives every section; otherwise the one named (case-insensitive).
std::string info_text(Proxy& proxy, std::string_view section);

void answer_proxy_command(Proxy& proxy, Request& request);

}  // namespace ringproxy::proxy
