// CLIENT LIST and CLIENT KILL for the proxy's own clients (issue 13): which clients a request
// names, parsed and matched as redis-server 7 does (networking.c clientKillCommand and
// clientListCommand), without sockets. The proxy's clients are all "normal" ones.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ringproxy::routing {

struct ClientFilter {
  std::vector<uint64_t> ids;          // ID (CLIENT LIST: several; CLIENT KILL: one)
  std::optional<std::string> addr;    // ADDR ip:port, or the old form's only argument
  std::optional<std::string> laddr;   // LADDR ip:port
  std::optional<std::string> user;    // USER name
  std::optional<uint64_t> max_age_s;  // MAXAGE: clients older than this
  bool other_type = false;            // TYPE master|replica|slave|pubsub: none of ours are
  bool skip_me = true;                // SKIPME yes (the default) / no
  bool old_form = false;              // CLIENT KILL ip:port: +OK, or an error if no such client
};

// What a client is, for matching.
struct ClientFacts {
  uint64_t id = 0;
  std::string_view addr, laddr, user;
  uint64_t age_s = 0;
  bool is_me = false;
};

// The arguments after CLIENT KILL / CLIENT LIST; "" or the error reply's text (without "-").
std::string parse_client_kill(std::span<const std::string_view> args, ClientFilter* out);
std::string parse_client_list(std::span<const std::string_view> args, ClientFilter* out);
bool matches(const ClientFilter& filter, const ClientFacts& client);

}  // namespace ringproxy::routing
