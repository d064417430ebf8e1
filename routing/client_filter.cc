#include "routing/client_filter.h"

#include <strings.h>

#include <charconv>

namespace ringproxy::routing {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::optional<uint64_t> to_u64(std::string_view text) {
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

// TYPE's names; none but "normal" fits a client of the proxy.
std::string read_type(std::string_view type, ClientFilter* out) {
  if (iequals(type, "normal")) return "";
  if (iequals(type, "master") || iequals(type, "replica") || iequals(type, "slave") || iequals(type, "pubsub")) {
    out->other_type = true;
    return "";
  }
  return "ERR Unknown client type '" + std::string(type.substr(0, 64)) + "'";
}

}  // namespace

std::string parse_client_kill(std::span<const std::string_view> args, ClientFilter* out) {
  *out = ClientFilter{};
  if (args.size() == 1) {  // the old form: CLIENT KILL ip:port
    out->old_form = true;
    out->addr = std::string(args[0]);
    out->skip_me = false;
    return "";
  }
  if (args.empty() || args.size() % 2 != 0) return "ERR syntax error";
  for (size_t i = 0; i < args.size(); i += 2) {
    const std::string_view option = args[i], value = args[i + 1];
    if (iequals(option, "id")) {
      std::optional<uint64_t> id = to_u64(value);
      if (!id || *id == 0) return "ERR client-id should be greater than 0";
      out->ids.push_back(*id);
    } else if (iequals(option, "type")) {
      if (std::string error = read_type(value, out); !error.empty()) return error;
    } else if (iequals(option, "addr")) {
      out->addr = std::string(value);
    } else if (iequals(option, "laddr")) {
      out->laddr = std::string(value);
    } else if (iequals(option, "user")) {
      out->user = std::string(value);
    } else if (iequals(option, "skipme")) {
      if (iequals(value, "yes")) {
        out->skip_me = true;
      } else if (iequals(value, "no")) {
        out->skip_me = false;
      } else {
        return "ERR syntax error";
      }
    } else if (iequals(option, "maxage")) {
      std::optional<uint64_t> age = to_u64(value);
      if (!age) return "ERR syntax error";
      out->max_age_s = *age;
    } else {
      return "ERR syntax error";
    }
  }
  return "";
}

std::string parse_client_list(std::span<const std::string_view> args, ClientFilter* out) {
  *out = ClientFilter{};
  out->skip_me = false;
  if (args.size() == 2 && iequals(args[0], "type")) return read_type(args[1], out);
  if (args.size() >= 2 && iequals(args[0], "id")) {
    for (size_t i = 1; i < args.size(); ++i) {
      std::optional<uint64_t> id = to_u64(args[i]);
      if (!id || *id == 0) return "ERR Invalid client ID";
      out->ids.push_back(*id);
    }
    return "";
  }
  return args.empty() ? "" : "ERR syntax error";
}

bool matches(const ClientFilter& filter, const ClientFacts& client) {
  if (filter.other_type) return false;
  if (!filter.ids.empty()) {
    bool named = false;
    for (uint64_t id : filter.ids) named = named || id == client.id;
    if (!named) return false;
  }
  if (filter.addr && *filter.addr != client.addr) return false;
  if (filter.laddr && *filter.laddr != client.laddr) return false;
  if (filter.user && *filter.user != client.user) return false;
  if (filter.max_age_s && client.age_s <= *filter.max_age_s) return false;  // (older than it: killed)
  if (filter.skip_me && client.is_me) return false;
  return true;
}

}  // namespace ringproxy::routing
