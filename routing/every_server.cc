#include "routing/every_server.h"

#include <algorithm>
#include <vector>

#include "routing/resp/reply_scanner.h"
#include "routing/resp/writer.h"

namespace ringproxy::routing {

namespace {

std::string error_line(std::string_view error) { return "-" + std::string(error) + "\r\n"; }

// A RESP2 array of name/value pairs as a RESP3 map, each value through `value`.
template <typename Value>
bool pairs_as_map(std::string_view reply, std::string& out, Value value) {
  std::vector<std::string_view> elements;
  if (!resp::split_array_reply(reply, elements) || elements.size() % 2 != 0) return false;
  resp::append_map_header(out, elements.size() / 2, 3);
  for (size_t i = 0; i < elements.size(); i += 2) {
    out.append(elements[i]);
    if (!value(resp::bulk_string_reply(elements[i]).value_or(""), elements[i + 1], out)) return false;
  }
  return true;
}

// FUNCTION STATS as redis 7 answers a RESP3 client: maps for running_script, engines and each
// engine; running_script's nil as RESP3's null.
bool function_stats_resp3(std::string_view reply, std::string& out) {
  auto as_is = [](std::string_view, std::string_view v, std::string& o) { return o.append(v), true; };
  return pairs_as_map(reply, out, [&](std::string_view name, std::string_view v, std::string& o) {
    if (resp::is_null_reply(v)) return resp::append_null(o, 3), true;
    if (name == "running_script") return pairs_as_map(v, o, as_is);
    if (name == "engines") {
      return pairs_as_map(v, o, [&](std::string_view, std::string_view engine, std::string& e) {
        return pairs_as_map(engine, e, as_is);
      });
    }
    return o.append(v), true;
  });
}

}  // namespace

std::string script_kill_reply(std::span<const ServerAnswer> answers) {
  bool answered = false, timed_out = false;
  std::string_view first_error, unreachable;
  for (const ServerAnswer& a : answers) {
    switch (a.kind) {
      case ServerAnswer::Kind::status: return "+OK\r\n";  // a script was killed
      case ServerAnswer::Kind::bulk:
      case ServerAnswer::Kind::other: answered = true; break;
      case ServerAnswer::Kind::error:
        answered = true;
        if (!a.text.starts_with("NOTBUSY") && first_error.empty()) first_error = a.text;
        break;
      case ServerAnswer::Kind::unreachable: unreachable = a.text; break;  // runs no script to stop
      case ServerAnswer::Kind::no_reply: timed_out = true; break;
    }
  }
  if (!first_error.empty()) {
    // redis's own errors start with a code (UNKILLABLE, BUSY while a function runs ...).
    const std::string_view code = first_error.substr(0, first_error.find(' '));
    const bool coded = std::all_of(code.begin(), code.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
    return error_line(coded ? std::string(first_error) : "ERR " + std::string(first_error));
  }
  if (timed_out) return error_line("ERR no reply from every server in time");
  if (!answered) {
    return error_line("ERR no server could be reached: " +
                      (unreachable.empty() ? std::string("none is configured") : std::string(unreachable)));
  }
  return "-NOTBUSY No scripts in execution right now.\r\n";
}

std::string ping_reply(std::span<const ServerAnswer> answers, std::optional<std::string_view> message) {
  for (const ServerAnswer& a : answers) {
    switch (a.kind) {
      case ServerAnswer::Kind::status:
      case ServerAnswer::Kind::bulk: break;
      case ServerAnswer::Kind::other: return error_line("ERR server " + a.server + " answered PING unexpectedly");
      case ServerAnswer::Kind::error: return error_line(a.text);  // as the server said it: BUSY ...
      case ServerAnswer::Kind::unreachable:
        return error_line("ERR server " + a.server + " cannot be reached: " + a.text);
      case ServerAnswer::Kind::no_reply: return error_line("ERR server " + a.server + " did not answer PING in time");
    }
  }
  if (answers.empty()) return error_line("ERR no server is configured");
  std::string out;
  if (message) {
    resp::append_bulk(out, *message);
  } else {
    resp::append_simple(out, "PONG");
  }
  return out;
}

std::string function_stats_reply(std::span<const ServerAnswer> answers, int protocol) {
  const ServerAnswer* chosen = nullptr;
  for (const ServerAnswer& a : answers) {
    if (a.kind == ServerAnswer::Kind::error) return error_line(a.text);
    if (a.kind != ServerAnswer::Kind::other) continue;  // (unreachable: it runs no script)
    std::vector<std::string_view> fields;
    if (!resp::split_array_reply(a.text, fields) || fields.size() < 2) {
      return error_line("ERR server " + a.server + " answered FUNCTION STATS unexpectedly");
    }
    if (chosen == nullptr || !resp::is_null_reply(fields[1])) chosen = &a;
    if (!resp::is_null_reply(fields[1])) break;  // the one running a script
  }
  if (chosen == nullptr) return error_line("ERR no server answered FUNCTION STATS");
  if (protocol != 3) return chosen->text;
  std::string out;
  if (!function_stats_resp3(chosen->text, out)) {
    return error_line("ERR server " + chosen->server + " answered FUNCTION STATS unexpectedly");
  }
  return out;
}

}  // namespace ringproxy::routing
