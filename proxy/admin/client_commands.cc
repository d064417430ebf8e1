#include "proxy/admin/client_commands.h"

#include <strings.h>
#include <uv.h>

#include <vector>

#include "proxy/clients/client_session.h"
#include "proxy/clients/clients.h"
#include "proxy/requests/request.h"
#include "routing/client_filter.h"
#include "routing/resp/writer.h"

namespace ringproxy::proxy {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view user_of(const ClientSession& c) { return c.user() != nullptr ? std::string_view(c.user()->name) : "default"; }

// One CLIENT LIST line, in redis 7's field order (what a proxy has no notion of is 0 or -1).
std::string describe(ClientSession& c, uint64_t now_ms) {
  uv_os_fd_t fd = -1;
  uv_fileno(reinterpret_cast<const uv_handle_t*>(c.handle()), &fd);
  const uint64_t age = (now_ms - c.accepted_ms()) / 1000, idle = (now_ms - c.last_active_ms()) / 1000;
  return "id=" + std::to_string(c.id()) + " addr=" + c.peer() + " laddr=" + c.local() + " fd=" + std::to_string(fd) +
         " name=" + c.name() + " age=" + std::to_string(age) + " idle=" + std::to_string(idle) +
         " flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 "
         "oll=" + std::to_string(c.pending()) + " omem=0 tot-mem=0 events=r cmd=NULL user=" + std::string(user_of(c)) +
         " redir=-1 resp=" + std::to_string(c.protocol()) + " lib-name=" + c.lib_name + " lib-ver=" + c.lib_ver + (c.tls() ? " tls=yes" : "") + "\n";
}

routing::ClientFacts facts(ClientSession& c, const std::string& addr, const std::string& laddr, ClientSession& me,
                           uint64_t now_ms) {
  return {c.id(), addr, laddr, user_of(c), (now_ms - c.accepted_ms()) / 1000, &c == &me};
}

// Redis's rule for SETINFO values and client names: printable, no spaces.
bool printable(std::string_view text) {
  for (char ch : text) {
    if (ch < '!' || ch > '~') return false;
  }
  return true;
}

}  // namespace

bool answer_client_command(std::string_view name, ClientSession& client, Request& request, Clients& clients,
                           uint64_t now_ms, std::string& out) {
  const std::vector<std::string_view>& args = request.args;
  const std::span<const std::string_view> options(args.begin() + 2, args.end());
  if (name == "client|info") {
    resp::append_bulk(out, describe(client, now_ms));
  } else if (name == "client|list") {
    routing::ClientFilter filter;
    if (std::string error = routing::parse_client_list(options, &filter); !error.empty()) {
      resp::append_error(out, error);
      return true;
    }
    std::string text;
    for (ClientSession* c : clients.sessions()) {
      if (routing::matches(filter, facts(*c, "", "", client, now_ms))) text += describe(*c, now_ms);
    }
    resp::append_bulk(out, text);
  } else if (name == "client|kill") {
    routing::ClientFilter filter;
    if (std::string error = routing::parse_client_kill(options, &filter); !error.empty()) {
      resp::append_error(out, error);
      return true;
    }
    std::vector<ClientSession*> killed;
    for (ClientSession* c : clients.sessions()) {
      const std::string addr = filter.addr ? c->peer() : "", laddr = filter.laddr ? c->local() : "";
      if (routing::matches(filter, facts(*c, addr, laddr, client, now_ms))) killed.push_back(c);
    }
    if (filter.old_form && killed.empty()) {
      resp::append_error(out, "ERR No such client");
      return true;
    }
    for (ClientSession* c : killed) {
      if (c == &client) {
        request.close_after_reply = true;  // this reply first, as redis does
      } else {
        c->close_after_replies();
      }
    }
    if (filter.old_form) {
      resp::append_simple(out, "OK");
    } else {
      resp::append_integer(out, static_cast<int64_t>(killed.size()));
    }
  } else if (name == "client|no-evict") {
    // The proxy evicts no client (max_request_bytes and max_pending_per_client bound each one).
    if (iequals(args[2], "on") || iequals(args[2], "off")) {
      resp::append_simple(out, "OK");
    } else {
      resp::append_error(out, "ERR syntax error");
    }
  } else if (name == "client|setinfo") {
    const bool lib_name = iequals(args[2], "lib-name"), lib_ver = iequals(args[2], "lib-ver");
    if (!lib_name && !lib_ver) {
      resp::append_error(out, "ERR Unrecognized option '" + std::string(args[2].substr(0, 64)) + "'");
    } else if (!printable(args[3])) {
      resp::append_error(out, std::string(lib_name ? "ERR lib-name" : "ERR lib-ver") +
                                  " cannot contain spaces, newlines or special characters.");
    } else {
      (lib_name ? client.lib_name : client.lib_ver) = std::string(args[3].substr(0, 128));
      resp::append_simple(out, "OK");
    }
  } else {
    return false;
  }
  return true;
}

}  // namespace ringproxy::proxy
