#include "proxy/admin/local_commands.h"

#include "proxy/admin/every_server.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <cstring>

#include "proxy/admin/client_commands.h"
#include "proxy/backend/backend_server.h"
#include "ringproxy_version.h"
#include "routing/access.h"
#include "routing/keys.h"
#include "routing/resp/writer.h"

namespace ringproxy::proxy {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::optional<int64_t> to_int(std::string_view text) {
  int64_t value;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

constexpr std::string_view kFlagNames[] = {
    "write", "readonly", "denyoom", "module", "admin", "pubsub", "noscript",
    "blocking", "loading", "stale", "skip_monitor", "skip_slowlog", "fast", "no_auth",
    "may_replicate", "no_mandatory_keys", "no_async_loading", "no_multi", "movablekeys", "allow_busy"};

bool listed(const routing::CommandInfo& c) { return c.cls != routing::CommandClass::unsupported; }

// COMMAND's reply entry, in Redis 7's RESP2 shape (10 fields). ACL categories, tips and
// key specs are left empty: clients use the first six.
void append_command_entry(std::string& out, const routing::CommandInfo& c) {
  resp::append_array_header(out, 10);
  resp::append_bulk(out, c.name);
  resp::append_integer(out, c.arity);
  size_t flags = 0;
  for (size_t i = 0; i < std::size(kFlagNames); ++i) flags += (c.redis_flags >> i) & 1u;
  resp::append_array_header(out, flags);
  for (size_t i = 0; i < std::size(kFlagNames); ++i) {
    if ((c.redis_flags >> i) & 1u) resp::append_simple(out, kFlagNames[i]);
  }
  resp::append_integer(out, c.first_key);
  resp::append_integer(out, c.last_key);
  resp::append_integer(out, c.key_step);
  resp::append_array_header(out, 0);
  resp::append_array_header(out, 0);
  resp::append_array_header(out, 0);
  size_t subs = 0;
  for (const routing::CommandInfo& s : c.subcommands) subs += listed(s);
  resp::append_array_header(out, subs);
  for (const routing::CommandInfo& s : c.subcommands) {
    if (listed(s)) append_command_entry(out, s);
  }
}

bool valid_client_name(std::string_view name) {
  for (char c : name) {
    if (c < '!' || c > '~') return false;  // Redis: no spaces, newlines or special characters
  }
  return true;
}

}  // namespace

void LocalCommands::answer(ClientSession& client, Request& request) {
  if (request.cmd->has_proxy_flag(routing::kProxyTransaction)) return transactions_.start(client, request);
  if (request.cmd->has_flag(routing::kFlagPubsub) && request.cmd->name != "ping" && request.cmd->name != "reset") {
    return pubsub_.command(client, request);
  }
  if (request.cmd->name == "script|kill" || request.cmd->name == "function|kill") {
    EveryServer::ask(servers_, data_path_, request,
                     {request.cmd->name == "script|kill" ? "SCRIPT" : "FUNCTION", "KILL"},
                     [](std::span<const routing::ServerAnswer> answers, const Request&) {
                       return routing::script_kill_reply(answers);
                     });
    return;
  }
  if (request.cmd->name == "function|stats") {
    EveryServer::ask(servers_, data_path_, request, {"FUNCTION", "STATS"},
                     [](std::span<const routing::ServerAnswer> answers, const Request& r) {
                       return routing::function_stats_reply(answers, r.client ? r.client->protocol() : 2);
                     });
    return;
  }
  std::string& out = request.owned_reply;
  const std::vector<std::string_view>& args = request.args;
  std::string_view name = request.cmd->name;

  if (name == "ping") {
    if (args.size() <= 2 && info_.worker.config().proxy.ping == conf::PingAnswer::servers) {
      // (PINGs meanwhile share the round; each echoes its own message.)
      return EveryServer::ask_shared(ping_round_, servers_, data_path_, request, {"PING"},
                              [](std::span<const routing::ServerAnswer> answers, const Request& r) {
                                return routing::ping_reply(answers, r.args.size() > 1
                                                                        ? std::optional<std::string_view>(r.args[1])
                                                                        : std::nullopt);
                              });
    }
    if (args.size() > 2) {
      resp::append_error(out, "ERR wrong number of arguments for 'ping' command");
    } else if (args.size() == 1) {
      resp::append_simple(out, "PONG");
    } else {
      resp::append_bulk(out, args[1]);
    }
  } else if (name == "echo") {
    resp::append_bulk(out, args[1]);
  } else if (name == "quit") {
    resp::append_simple(out, "OK");
    request.close_after_reply = true;
  } else if (name == "select") {
    std::optional<int64_t> db = to_int(args[1]);
    if (!db) resp::append_error(out, "ERR value is not an integer or out of range");
    else if (*db != 0) resp::append_error(out, "ERR DB index is out of range: ringproxy serves database 0 only");
    else resp::append_simple(out, "OK");
  } else if (name == "hello") {
    std::optional<int64_t> version = args.size() > 1 ? to_int(args[1]) : client.protocol();
    if (!version) {
      resp::append_error(out, "ERR Protocol version is not an integer or out of range");
    } else if (*version != 2 && *version != 3) {
      resp::append_error(out, "NOPROTO unsupported protocol version");
    } else if (*version != client.protocol() && client.handler().holds_transaction(client)) {
      resp::append_error(out, "ERR HELLO cannot change the protocol inside a transaction or a WATCH");
    } else if (*version != client.protocol() && client.wait_for_replies(&request)) {
      // A change of protocol changes the client's server connections: its earlier requests are
      // answered first (none may be overtaken; none is answered in the new protocol). The
      // data path hands this HELLO back then (DataPath::on_replies_written).
      return;
    } else {
      // Every option is checked before any is applied, as Redis does.
      std::optional<std::string_view> new_name;
      std::optional<std::pair<std::string_view, std::string_view>> credentials;
      for (size_t i = 2; i < args.size(); ++i) {
        if (iequals(args[i], "auth") && i + 2 < args.size()) {
          credentials.emplace(args[i + 1], args[i + 2]);
          i += 2;
        } else if (iequals(args[i], "setname") && i + 1 < args.size() && valid_client_name(args[i + 1])) {
          new_name = args[++i];
        } else if (iequals(args[i], "setname") && i + 1 < args.size()) {
          resp::append_error(out, "ERR Client names cannot contain spaces, newlines or special characters.");
          return data_path_.complete_local(request);
        } else {
          resp::append_error(out, "ERR Syntax error in HELLO option '" + std::string(args[i].substr(0, 64)) + "'");
          return data_path_.complete_local(request);
        }
      }
      if (!credentials && client.checked() && client.user() == nullptr) {
        resp::append_error(out, "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
                                "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
                                "select the RESP protocol version at the same time");
        return data_path_.complete_local(request);
      }
      if (credentials && !authenticate(client, credentials->first, credentials->second, out)) {
        return data_path_.complete_local(request);
      }
      if (new_name) client.set_name(std::string(*new_name));
      // RESP3: its requests go over the servers' RESP3 connections, and replies are RESP3's.
      if (*version != client.protocol()) {
        client.set_protocol(static_cast<int>(*version));
        if (data_path_.is_entry(client.handler())) client.set_handler(&data_path_.handler_for(client));
      }
      resp::append_map_header(out, 7, client.protocol());
      resp::append_bulk(out, "server");
      resp::append_bulk(out, "ringproxy");
      resp::append_bulk(out, "version");
      resp::append_bulk(out, RINGPROXY_VERSION);
      resp::append_bulk(out, "proto");
      resp::append_integer(out, client.protocol());
      resp::append_bulk(out, "id");
      resp::append_integer(out, static_cast<int64_t>(client.id()));
      resp::append_bulk(out, "mode");
      resp::append_bulk(out, "standalone");
      resp::append_bulk(out, "role");
      resp::append_bulk(out, "master");
      resp::append_bulk(out, "modules");
      resp::append_array_header(out, 0);
    }
  } else if (name == "reset") {
    // As a new connection: RESP2, no name, unauthenticated where users are configured (the
    // transaction and the watch were ended on the way here: transactions.cc). A change of
    // protocol waits for the earlier replies, as HELLO's does.
    if (client.protocol() != 2 && client.wait_for_replies(&request)) return;
    pubsub_.reset(client);  // (its subscriptions end, as redis's RESET ends them)
    client.set_protocol(2);
    client.set_handler(&data_path_.handler_for(client));
    client.set_name("");
    client.lib_name.clear();
    client.lib_ver.clear();
    if (client.checked() || client.user() != nullptr) client.set_user(nullptr);
    resp::append_simple(out, "RESET");
  } else if (name == "auth") {
    const std::vector<conf::UserConfig>& users = info_.worker.config().proxy.users;
    if (args.size() > 3) {
      resp::append_error(out, "ERR syntax error");
    } else if (args.size() == 2 && std::none_of(users.begin(), users.end(),
                                                [](const conf::UserConfig& u) { return u.name == "default"; })) {
      resp::append_error(out, "ERR AUTH <password> called without any password configured for the default user. "
                              "Are you sure your configuration is correct?");
    } else if (authenticate(client, args.size() == 2 ? std::string_view("default") : args[1], args.back(), out)) {
      resp::append_simple(out, "OK");
    }
  } else if (name == "acl|whoami") {
    resp::append_bulk(out, client.user() != nullptr ? std::string_view(client.user()->name) : "default");
  } else if (name == "client|setname") {
    if (!valid_client_name(args[2])) {
      resp::append_error(out, "ERR Client names cannot contain spaces, newlines or special characters.");
    } else {
      client.set_name(std::string(args[2]));
      resp::append_simple(out, "OK");
    }
  } else if (name == "client|getname") {
    if (client.name().empty()) resp::append_null(out, client.protocol()); else resp::append_bulk(out, client.name());
  } else if (name == "client|id") {
    resp::append_integer(out, static_cast<int64_t>(client.id()));
  } else if (answer_client_command(name, client, request, clients_, info_.worker.now_ms(), out)) {
    // CLIENT INFO | LIST | KILL | SETINFO | NO-EVICT (client_commands.cc)
  } else if (name == "command") {
    size_t count = 0;
    for (const routing::CommandInfo& c : routing::all_commands()) count += listed(c);
    resp::append_array_header(out, count);
    for (const routing::CommandInfo& c : routing::all_commands()) {
      if (listed(c)) append_command_entry(out, c);
    }
  } else if (name == "command|count") {
    size_t count = 0;
    for (const routing::CommandInfo& c : routing::all_commands()) count += listed(c);
    resp::append_integer(out, static_cast<int64_t>(count));
  } else if (name == "command|list") {
    std::vector<std::string_view> names;
    for (const routing::CommandInfo& c : routing::all_commands()) {
      if (listed(c)) names.push_back(c.name);
    }
    resp::append_array_header(out, names.size());
    for (std::string_view n : names) resp::append_bulk(out, n);
  } else if (name == "command|info") {
    resp::append_array_header(out, args.size() - 2);
    for (size_t i = 2; i < args.size(); ++i) {
      const routing::CommandInfo* c = routing::find_command(args[i]);
      if (c != nullptr && listed(*c)) append_command_entry(out, *c); else out.append(client.protocol() == 3 ? "_\r\n" : "*-1\r\n");
    }
  } else if (name == "command|docs") {
    resp::append_array_header(out, 0);  // redis-cli asks at start-up; docs are Redis's own
  } else if (name == "command|getkeys") {
    std::span<const std::string_view> target(args.begin() + 2, args.end());
    const routing::CommandInfo* c = routing::find_command(target[0]);
    if (c != nullptr && c->is_container() && target.size() >= 2) c = routing::find_subcommand(*c, target[1]);
    std::vector<uint32_t> positions;
    if (c == nullptr) {
      resp::append_error(out, "ERR Invalid command specified");
    } else if (!routing::arity_ok(*c, target.size())) {
      resp::append_error(out, "ERR Invalid number of arguments specified for command");
    } else if (std::string_view err = routing::find_key_positions(*c, target, positions); !err.empty()) {
      resp::append_error(out, "ERR " + std::string(err));
    } else {
      resp::append_array_header(out, positions.size());
      for (uint32_t p : positions) resp::append_bulk(out, target[p]);
    }
  } else if (name == "info") {
    resp::append_bulk(out, info_text(info_, args.size() > 1 ? args[1] : std::string_view()));
  } else if (name == "proxy") {
    answer_proxy_command(request);
  } else if (name == "client|unblock") {
    const std::optional<int64_t> id = to_int(args[2]);
    if (!id) {
      resp::append_error(out, "ERR value is not an integer or out of range");
    } else if (args.size() > 4 || (args.size() == 4 && !iequals(args[3], "timeout") && !iequals(args[3], "error"))) {
      resp::append_error(out, "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
    } else {
      resp::append_integer(out, blocking_.unblock(static_cast<uint64_t>(*id), args.size() == 4 && iequals(args[3], "error")));
    }
  } else if (name == "wait") {
    // The servers behind the proxy are not redis replicas of each other: the proxy copies
    // writes itself and answers a write once its shard's write_ack is met. No redis replica
    // acknowledges anything, as on a redis-server without replicas.
    if (!to_int(args[1]) || !to_int(args[2])) {
      resp::append_error(out, "ERR value is out of range, must be positive");
    } else if (*to_int(args[2]) < 0) {
      resp::append_error(out, "ERR timeout is negative");
    } else {
      resp::append_integer(out, 0);
    }
  } else {
    resp::append_error(out, "ERR " + std::string(name) + " is not answered by this version of ringproxy");
  }
  data_path_.complete_local(request);
}

void LocalCommands::answer_proxy_command(Request& request) {
  std::string& out = request.owned_reply;
  const std::vector<std::string_view>& args = request.args;
  if (iequals(args[1], "route") && args.size() == 3) {
    const routing::RoutingTable& table = *servers_.table();
    std::string_view key = args[2];
    std::string_view hashed = routing::apply_hash_tag(key, table.hash_tag());
    uint32_t hash = routing::shard_hash(table.hash(), table.hash_tag(), key);
    uint32_t shard = table.ring().locate(hash);
    const routing::ShardEntry& entry = table.shards()[shard];
    resp::append_array_header(out, 12);
    resp::append_bulk(out, "key");
    resp::append_bulk(out, key);
    resp::append_bulk(out, "hashed");
    resp::append_bulk(out, hashed);
    resp::append_bulk(out, "hash");
    resp::append_integer(out, hash);
    resp::append_bulk(out, "shard");
    resp::append_bulk(out, entry.name);
    resp::append_bulk(out, "servers");
    resp::append_array_header(out, entry.servers.size());
    for (uint32_t s : entry.servers) resp::append_bulk(out, table.servers()[s].name);
    resp::append_bulk(out, "states");
    resp::append_array_header(out, entry.servers.size());
    for (uint32_t s : entry.servers) resp::append_bulk(out, server_state_name(servers_.servers()[s]->state()));
  } else if (iequals(args[1], "repair") && args.size() == 3) {
    const routing::RoutingTable& table = *servers_.table();
    uint32_t shard = 0;
    while (shard < table.shards().size() && table.shards()[shard].name != args[2]) ++shard;
    if (shard == table.shards().size()) {
      resp::append_error(out, "ERR no shard named '" + std::string(args[2].substr(0, 64)) + "'");
    } else {
      out += servers_.start_repair(shard);
    }
  } else if (iequals(args[1], "reload") && args.size() == 2) {
    ReloadReport report = reloader_.reload("PROXY RELOAD");
    if (report.ok) {
      resp::append_simple(out, report.message);
    } else {
      resp::append_error(out, "ERR " + report.message);
    }
  } else if (iequals(args[1], "help")) {
    static const std::string_view kHelp[] = {
        "PROXY RELOAD: read the config file again and apply it (the error, with its line, if it is rejected)",
        "PROXY ROUTE <key>: the shard and servers <key> goes to, and its hash",
        "PROXY REPAIR <shard>: compare the shard's servers and make divergent keys equal (progress in INFO proxy)",
        "PROXY HELP: this text",
    };
    resp::append_array_header(out, std::size(kHelp));
    for (std::string_view line : kHelp) resp::append_simple(out, line);
  } else {
    resp::append_error(out, "ERR unknown PROXY subcommand or wrong number of arguments. Try PROXY HELP.");
  }
}

// AUTH and HELLO ... AUTH: on success the client runs as that user; on failure it keeps what
// it had (as redis does), the failure is counted and logged by user name (never the password).
bool LocalCommands::authenticate(ClientSession& client, std::string_view user, std::string_view password,
                                 std::string& out) {
  const std::vector<conf::UserConfig>& users = info_.worker.config().proxy.users;
  if (users.empty() && user == "default") return true;  // redis: the default user has no password
  const conf::UserConfig* found = routing::authenticate(users, user, password);
  if (found != nullptr) {
    client.set_user(found);
    return true;
  }
  info_.worker.metrics()->auth_failures->Increment();
  // At most one line a second, without the user name: swapped arguments would put a password
  // there. The metric counts every failure.
  ++auth_failures_unlogged_;
  const uint64_t now = info_.worker.now_ms();
  if (now - auth_failure_logged_ms_ >= 1000 || auth_failure_logged_ms_ == 0) {
    spdlog::warn("client {} ({}): authentication failed ({} failure{} since the last such line)", client.id(),
                 client.peer(), auth_failures_unlogged_, auth_failures_unlogged_ == 1 ? "" : "s");
    auth_failure_logged_ms_ = now;
    auth_failures_unlogged_ = 0;
  }
  resp::append_error(out, "WRONGPASS invalid username-password pair or user is disabled.");
  return false;
}

}  // namespace ringproxy::proxy
