// CLIENT INFO | LIST | KILL | SETINFO | NO-EVICT, answered for the proxy's own clients (its
// connections to the servers are shared, so a server's CLIENT LIST says nothing about them).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ringproxy::proxy {

class ClientSession;
class Clients;
struct Request;

// `name` is the subcommand's table name ("client|list"); the reply is appended to `out`.
// False when it is not one of these.
bool answer_client_command(std::string_view name, ClientSession& client, Request& request, Clients& clients,
                           uint64_t now_ms, std::string& out);

}  // namespace ringproxy::proxy
