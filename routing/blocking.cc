#include "routing/blocking.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "routing/keys.h"
#include "routing/resp/reply_scanner.h"
#include "routing/resp/writer.h"

namespace ringproxy::routing {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

// Redis's getTimeoutFromObjectOrReply: seconds as a float (BLPOP ...), or whole milliseconds
// (XREAD's BLOCK). 0 waits for ever.
std::optional<uint64_t> parse_timeout(std::string_view text, bool milliseconds, std::string& error) {
  const std::string copy(text);
  char* end = nullptr;
  errno = 0;
  long double value = 0;
  if (milliseconds) {
    const long long ms = std::strtoll(copy.c_str(), &end, 10);
    if (copy.empty() || *end != '\0' || errno == ERANGE) {
      error = "ERR timeout is not an integer or out of range";
      return std::nullopt;
    }
    value = static_cast<long double>(ms);
  } else {
    value = std::strtold(copy.c_str(), &end);
    if (copy.empty() || *end != '\0' || errno == ERANGE || std::isnan(value) || std::isinf(value) ||
        std::isspace(static_cast<unsigned char>(copy.front()))) {
      error = "ERR timeout is not a float or out of range";
      return std::nullopt;
    }
    value *= 1000;
  }
  if (value < 0) {
    error = "ERR timeout is negative";
    return std::nullopt;
  }
  if (value > 9.2e15L) {  // (redis: the deadline would overflow)
    error = "ERR timeout is out of range";
    return std::nullopt;
  }
  return static_cast<uint64_t>(std::ceil(value));
}

std::optional<std::string_view> bulk(std::string_view reply) { return resp::bulk_string_reply(reply); }

// A bulk score as RESP3's double.
std::string as_double(std::string_view bulk_score) {
  const std::optional<std::string_view> text = bulk(bulk_score);
  if (!text) return std::string(bulk_score);
  return "," + std::string(*text) + "\r\n";
}

// ZMPOP's [key, [[member, score] ...]] with its scores as RESP3 doubles.
std::string zmpop_in_resp3(std::string_view reply) {
  std::vector<std::string_view> top, pairs, pair;
  if (!resp::split_array_reply(reply, top) || top.size() != 2 || !resp::split_array_reply(top[1], pairs)) {
    return std::string(reply);
  }
  std::string out = "*2\r\n" + std::string(top[0]);
  resp::append_array_header(out, pairs.size());
  for (std::string_view p : pairs) {
    if (!resp::split_array_reply(p, pair) || pair.size() != 2) return std::string(reply);
    out += "*2\r\n" + std::string(pair[0]) + as_double(pair[1]);
  }
  return out;
}

}  // namespace

bool blocks(const CommandInfo& cmd, std::span<const std::string_view> args) {
  return cmd.has_proxy_flag(kProxyBlocking) || has_block_option(cmd, args);
}

BlockingDecision decide_blocking(const CommandInfo& cmd, std::span<const std::string_view> args,
                                 const RoutingTable& table, std::vector<uint32_t>& positions) {
  BlockingDecision d;
  positions.clear();
  if (const std::string_view error = find_key_positions(cmd, args, positions); !error.empty()) {
    d.error = "ERR " + std::string(error);
    d.key_count_error = is_key_count_error(error);
    return d;
  }
  for (uint32_t position : positions) d.keys.emplace_back(args[position]);
  if (d.keys.empty()) {
    d.error = "ERR " + display_name(cmd.name) + " needs a key";
    return d;
  }
  d.shard = table.shard_of_cold(d.keys.front());
  for (const std::string& key : d.keys) {
    if (const uint32_t shard = table.shard_of_cold(key); shard != d.shard) {
      const std::string hint = table.hash_tag().empty()
                                   ? "set [pool] hash_tag = \"{}\" and use keys like {q}:a, {q}:b"
                                   : "keep them together with a hash tag, e.g. {q}:a and {q}:b";
      d.error = "ERR " + display_name(cmd.name) + " keys map to different shards ('" + table.shards()[d.shard].name +
                "', '" + table.shards()[shard].name + "'); a blocking command waits on one shard: " + hint;
      return d;
    }
  }

  const std::string_view name = cmd.name;
  std::string_view timeout;
  bool milliseconds = false;
  const size_t n = args.size();
  auto form = [&](std::initializer_list<std::string_view> head, size_t from, size_t to,
                  std::initializer_list<std::string_view> tail) {
    for (std::string_view word : head) d.nonblocking.emplace_back(word);
    for (size_t i = from; i < to; ++i) d.nonblocking.emplace_back(args[i]);
    for (std::string_view word : tail) d.nonblocking.emplace_back(word);
  };
  const std::string count = std::to_string(n - 2);
  if (name == "blpop" || name == "brpop") {
    timeout = args[n - 1];
    form({"LMPOP", count}, 1, n - 1, {name == "blpop" ? "LEFT" : "RIGHT"});
    d.shape = PopShape::list_pop;
  } else if (name == "bzpopmin" || name == "bzpopmax") {
    timeout = args[n - 1];
    form({"ZMPOP", count}, 1, n - 1, {name == "bzpopmin" ? "MIN" : "MAX"});
    d.shape = PopShape::zset_pop;
  } else if (name == "blmove") {
    timeout = args[5];
    form({"LMOVE"}, 1, 5, {});
  } else if (name == "brpoplpush") {
    timeout = args[3];
    form({"RPOPLPUSH"}, 1, 3, {});
  } else if (name == "blmpop" || name == "bzmpop") {
    timeout = args[1];
    form({name == "blmpop" ? "LMPOP" : "ZMPOP"}, 2, n, {});
    if (name == "bzmpop") d.shape = PopShape::zset_mpop;
  } else {  // XREAD, XREADGROUP with BLOCK
    const std::optional<size_t> at = block_option_position(cmd, args);
    if (!at) {
      d.error = "ERR syntax error";
      return d;
    }
    timeout = args[*at + 1];
    milliseconds = true;
    d.shape = PopShape::stream_read;
    for (size_t i = 0; i < n; ++i) {
      if (i != *at && i != *at + 1) d.nonblocking.emplace_back(args[i]);
    }
  }
  const std::optional<uint64_t> ms = parse_timeout(timeout, milliseconds, d.error);
  if (!ms) return d;
  if (*ms > 0) d.timeout_ms = *ms;
  d.pops = cmd.cls == CommandClass::write;
  return d;
}

std::optional<std::string> blocked_reply(PopShape shape, std::string_view reply, int protocol) {
  if (resp::is_error_reply(reply)) return std::string(reply);
  if (resp::is_null_reply(reply) || reply == "*0\r\n") return std::nullopt;
  std::vector<std::string_view> top, inner, pair;
  switch (shape) {
    case PopShape::same: return std::string(reply);
    case PopShape::zset_mpop: return protocol == 3 ? zmpop_in_resp3(reply) : std::string(reply);
    case PopShape::stream_read: {
      if (protocol != 3 || !resp::split_array_reply(reply, top)) return std::string(reply);
      std::string out;
      resp::append_map_header(out, top.size(), 3);
      for (std::string_view stream : top) {
        if (!resp::split_array_reply(stream, pair) || pair.size() != 2) return std::string(reply);
        out += std::string(pair[0]) + std::string(pair[1]);
      }
      return out;
    }
    case PopShape::list_pop:
      if (!resp::split_array_reply(reply, top) || top.size() != 2 || !resp::split_array_reply(top[1], inner) ||
          inner.size() != 1) {
        return std::string(reply);
      }
      return "*2\r\n" + std::string(top[0]) + std::string(inner[0]);
    case PopShape::zset_pop:
      if (!resp::split_array_reply(reply, top) || top.size() != 2 || !resp::split_array_reply(top[1], inner) ||
          inner.size() != 1 || !resp::split_array_reply(inner[0], pair) || pair.size() != 2) {
        return std::string(reply);
      }
      return "*3\r\n" + std::string(top[0]) + std::string(pair[0]) +
             (protocol == 3 ? as_double(pair[1]) : std::string(pair[1]));
  }
  return std::string(reply);
}

const CommandInfo& proxy_pop_marker() {
  static const CommandInfo marker{.name = "pop-for-a-waiting-client", .cls = CommandClass::write};
  return marker;
}

std::string_view timed_out_reply(int protocol) { return protocol == 3 ? "_\r\n" : "*-1\r\n"; }

std::optional<std::vector<std::string>> undo_pop(std::span<const std::string> nonblocking, std::string_view reply) {
  if (nonblocking.empty() || resp::is_error_reply(reply) || resp::is_null_reply(reply)) return std::nullopt;
  const std::string& name = nonblocking.front();
  std::vector<std::string> undo;
  if (iequals(name, "LMOVE") || iequals(name, "RPOPLPUSH")) {  // back from where it went
    if (nonblocking.size() < 3) return std::nullopt;
    const bool rpoplpush = iequals(name, "RPOPLPUSH");
    const std::string from = rpoplpush ? "RIGHT" : nonblocking.size() > 3 ? nonblocking[3] : "";
    const std::string to = rpoplpush ? "LEFT" : nonblocking.size() > 4 ? nonblocking[4] : "";
    return std::vector<std::string>{"LMOVE", nonblocking[2], nonblocking[1], to, from};
  }
  std::vector<std::string_view> top, items, pair;
  if (!resp::split_array_reply(reply, top) || top.size() != 2 || !resp::split_array_reply(top[1], items) ||
      items.empty()) {
    return std::nullopt;
  }
  const std::optional<std::string_view> key = bulk(top[0]);
  if (!key) return std::nullopt;
  if (iequals(name, "LMPOP")) {
    // LMPOP numkeys key... LEFT|RIGHT [COUNT n]: the direction follows the keys (a key may be
    // named "left").
    const size_t numkeys = nonblocking.size() > 1 ? std::strtoull(nonblocking[1].c_str(), nullptr, 10) : 0;
    if (2 + numkeys >= nonblocking.size()) return std::nullopt;
    const bool left = iequals(nonblocking[2 + numkeys], "LEFT");
    undo = {left ? "LPUSH" : "RPUSH", std::string(*key)};
    for (auto it = items.rbegin(); it != items.rend(); ++it) {  // the first popped ends where it was
      const std::optional<std::string_view> element = bulk(*it);
      if (!element) return std::nullopt;
      undo.emplace_back(*element);
    }
    return undo;
  }
  if (iequals(name, "ZMPOP")) {
    undo = {"ZADD", std::string(*key)};
    for (std::string_view item : items) {
      if (!resp::split_array_reply(item, pair) || pair.size() != 2) return std::nullopt;
      const std::optional<std::string_view> member = bulk(pair[0]), score = bulk(pair[1]);
      if (!member || !score) return std::nullopt;
      undo.emplace_back(*score);
      undo.emplace_back(*member);
    }
    return undo;
  }
  return std::nullopt;
}

std::optional<uint64_t> client_id_at(std::string_view client_list, std::string_view addr) {
  const std::string wanted = " addr=" + std::string(addr) + " ";
  while (!client_list.empty()) {
    const size_t end = client_list.find('\n');
    const std::string_view line = client_list.substr(0, end);
    client_list = end == std::string_view::npos ? std::string_view() : client_list.substr(end + 1);
    if (!line.starts_with("id=") || line.find(wanted) == std::string_view::npos) continue;
    uint64_t id = 0;
    const std::string_view digits = line.substr(3, line.find(' ') - 3);
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
    if (ec == std::errc() && ptr == digits.data() + digits.size()) return id;
  }
  return std::nullopt;
}

}  // namespace ringproxy::routing
