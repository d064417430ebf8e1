#include "conf/twemproxy_import.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <set>
#include <sstream>

#include "conf/config.h"
#include "conf/loader.h"
#include "routing/hash.h"
#include "routing/ring.h"

namespace ringproxy::conf {

namespace {

struct ImportError {
  std::string why;
};

// TOML's basic string, escaped.
std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {  // (TOML forbids them raw)
          char hex[8];
          std::snprintf(hex, sizeof(hex), "\\u%04x", c);
          out += hex;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// Text for a TOML comment: one line (a YAML value may hold a newline, which would end it).
std::string comment_text(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return out;
}

std::optional<int64_t> to_int(std::string_view text) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::string scalar(const YAML::Node& node, std::string_view key) {
  if (!node.IsScalar()) throw ImportError{"'" + std::string(key) + "' must be a single value"};
  return node.Scalar();
}

int64_t integer(const YAML::Node& node, std::string_view key, int64_t min, int64_t max) {
  std::optional<int64_t> value = to_int(scalar(node, key));
  if (!value || *value < min || *value > max) {
    throw ImportError{"'" + std::string(key) + "' must be an integer from " + std::to_string(min) + " to " +
                      std::to_string(max) + ", got '" + node.Scalar() + "'"};
  }
  return *value;
}

bool boolean(const YAML::Node& node, std::string_view key) {
  const std::string text = scalar(node, key);
  if (text == "true") return true;
  if (text == "false") return false;
  throw ImportError{"'" + std::string(key) + "' must be true or false, got '" + text + "'"};
}

// One "host:port:weight [name]" of `servers:`.
struct Server {
  std::string address;  // host:port
  uint32_t weight = 1;
  std::string name;     // what twemproxy's ketama hashes: the name, else host:port (host on 11211)
  std::string line;
};

// As twemproxy reads it, from the end: the name after the last space, then the weight and the
// port after the last two colons. Its ketama hashes the name, else "host:port" as written in
// the file ("01" stays "01"), or the host alone on port 11211.
Server parse_server(const std::string& line) {
  Server s;
  s.line = line;
  std::string spec = line;
  if (size_t space = line.rfind(' '); space != std::string::npos) {
    spec = line.substr(0, space);
    s.name = line.substr(space + 1);
    if (s.name.empty() || spec.find(' ') != std::string::npos) {
      throw ImportError{"server '" + comment_text(line) + "' is not host:port:weight [name] (one name, after one "
                        "space)"};
    }
  }
  if (spec.starts_with('/')) {
    throw ImportError{"server '" + comment_text(line) + "' is a Unix socket: ringproxy connects to servers over TCP"};
  }
  const size_t weight_at = spec.rfind(':');
  const size_t port_at = weight_at == std::string::npos ? std::string::npos : spec.rfind(':', weight_at - 1);
  if (port_at == std::string::npos) throw ImportError{"server '" + comment_text(line) + "' is not host:port:weight [name]"};
  std::optional<int64_t> weight = to_int(spec.substr(weight_at + 1));
  std::optional<int64_t> port = to_int(spec.substr(port_at + 1, weight_at - port_at - 1));
  if (!weight || *weight < 1 || !port || *port < 1 || *port > 65535) {
    throw ImportError{"server '" + comment_text(line) + "' is not host:port:weight [name]"};
  }
  if (*weight > 65535) {
    throw ImportError{"server '" + comment_text(line) + "' has weight " + std::to_string(*weight) +
                      ": ringproxy's weights go up to 65535 (ketama's points per server grow with the weight)"};
  }
  const std::string host = spec.substr(0, port_at);
  s.address = host + ":" + std::to_string(*port);
  s.weight = static_cast<uint32_t>(*weight);
  if (s.name.empty()) s.name = *port == 11211 ? host : spec.substr(0, weight_at);  // (twemproxy's rule)
  return s;
}

constexpr std::string_view kKnownKeys[] = {
    "listen", "hash", "hash_tag", "distribution", "timeout", "backlog", "preconnect", "redis", "redis_auth",
    "redis_db", "server_connections", "auto_eject_hosts", "server_retry_timeout", "server_failure_limit",
    "servers", "client_connections", "tcpkeepalive", "reuseport"};

std::string convert(const std::string& pool_name, const YAML::Node& pool, std::vector<std::string>& notes) {
  if (!pool.IsMap()) throw ImportError{"pool '" + pool_name + "' is not a map of settings"};
  for (const auto& entry : pool) {
    const std::string key = entry.first.Scalar();
    if (std::find(std::begin(kKnownKeys), std::end(kKnownKeys), key) == std::end(kKnownKeys)) {
      notes.push_back("'" + key + "' is not a twemproxy setting: ignored");
    }
  }
  if (!pool["redis"] || !boolean(pool["redis"], "redis")) {
    throw ImportError{"pool '" + pool_name + "' is a memcached pool (redis: true is not set): ringproxy speaks "
                      "only the Redis protocol"};
  }
  std::ostringstream proxy, pool_out, shards;
  // [proxy]
  if (!pool["listen"]) throw ImportError{"pool '" + pool_name + "' has no 'listen'"};
  const std::string listen = scalar(pool["listen"], "listen");
  std::string why;
  std::optional<Address> listen_address = listen.starts_with('/') ? std::nullopt : parse_address(listen, &why);
  if (!listen_address) {
    throw ImportError{"listen '" + listen + "': " +
                      (listen.starts_with('/') ? std::string("a Unix socket; ringproxy listens on TCP") : why)};
  }
  proxy << "[proxy]\nlisten = " << quoted(listen_address->to_string()) << "  # twemproxy: listen\n";
  std::string password;
  if (pool["redis_auth"]) {
    password = scalar(pool["redis_auth"], "redis_auth");
    proxy << "password = " << quoted(password) << "  # twemproxy: redis_auth (clients AUTH with it)\n";
    notes.push_back("redis_auth is both [proxy] password (what clients AUTH with) and [pool] password (what "
                    "ringproxy sends the servers), as twemproxy uses it: the TOML holds the password, keep it "
                    "private (or move it to password_file / password_env)");
  } else if (!is_loopback(*listen_address)) {
    proxy << "protected_mode = false  # twemproxy has no protected mode; ringproxy would refuse an open port\n";
    notes.push_back("listen " + listen_address->to_string() +
                    " is not loopback and the pool has no redis_auth: protected_mode = false keeps it open as "
                    "twemproxy had it; consider [proxy] password");
  }
  if (pool["client_connections"]) {
    const int64_t clients = integer(pool["client_connections"], "client_connections", 0, UINT32_MAX);
    if (clients > 0) {
      proxy << "max_clients = " << clients << "  # twemproxy: client_connections\n";
    } else {
      notes.push_back("client_connections: 0 (unlimited) has no equivalent: ringproxy's max_clients stays 10000");
    }
  }
  if (pool["reuseport"] && boolean(pool["reuseport"], "reuseport")) {
    proxy << "reuse_port = true  # twemproxy: reuseport\n";
  }
  // [pool]
  pool_out << "\n[pool]\n";
  const std::string hash = pool["hash"] ? scalar(pool["hash"], "hash") : "fnv1a_64";
  std::optional<routing::HashFunction> fn = routing::parse_hash_function(hash);
  if (!fn || hash == "murmur3" || hash == "xxh64" || hash == "xxh3") {
    throw ImportError{"hash '" + hash + "' has no equivalent in ringproxy (it has md5, crc32, crc32a, fnv1_32, "
                      "fnv1a_32, fnv1_64 and fnv1a_64 of twemproxy's): another hash would move the keys"};
  }
  pool_out << "hash = " << quoted(hash) << (pool["hash"] ? "  # twemproxy: hash\n" : "  # twemproxy's default\n");
  const std::string distribution = pool["distribution"] ? scalar(pool["distribution"], "distribution") : "ketama";
  if (distribution == "random") {
    throw ImportError{"distribution 'random' has no equivalent: it sends each request to any server, so a key "
                      "has no one place; ringproxy routes every key to one shard (ketama, modula)"};
  }
  if (!routing::parse_distribution(distribution) || distribution == "jump") {
    throw ImportError{"distribution '" + distribution + "' is not twemproxy's (ketama, modula, random)"};
  }
  pool_out << "distribution = " << quoted(distribution)
           << (pool["distribution"] ? "  # twemproxy: distribution\n" : "  # twemproxy's default\n");
  if (pool["hash_tag"]) {
    const std::string tag = scalar(pool["hash_tag"], "hash_tag");
    if (tag.size() != 2) throw ImportError{"hash_tag '" + tag + "' must be two characters, as in twemproxy"};
    pool_out << "hash_tag = " << quoted(tag) << "  # twemproxy: hash_tag\n";
  }
  if (pool["timeout"]) {
    const int64_t timeout = integer(pool["timeout"], "timeout", 1, UINT32_MAX);
    pool_out << "connect_timeout_ms = " << timeout << "  # twemproxy: timeout\nrequest_timeout_ms = " << timeout
             << "  # twemproxy: timeout\n";
  } else {
    notes.push_back("no timeout: twemproxy waits for a server for ever; ringproxy's defaults apply "
                    "(connect_timeout_ms = 1000, request_timeout_ms = 2000)");
  }
  const int64_t failure_limit =
      pool["server_failure_limit"] ? integer(pool["server_failure_limit"], "server_failure_limit", 1, UINT32_MAX) : 2;
  pool_out << "failure_limit = " << failure_limit
           << (pool["server_failure_limit"] ? "  # twemproxy: server_failure_limit\n" : "  # twemproxy's default\n");
  const int64_t retry = pool["server_retry_timeout"]
                            ? integer(pool["server_retry_timeout"], "server_retry_timeout", 1, UINT32_MAX)
                            : 30000;
  pool_out << "retry_interval_ms = " << retry
           << (pool["server_retry_timeout"] ? "  # twemproxy: server_retry_timeout\n" : "  # twemproxy's default\n");
  if (pool["server_connections"]) {
    const int64_t connections = integer(pool["server_connections"], "server_connections", 1, 64);
    pool_out << "backend_connections = " << connections << "  # twemproxy: server_connections\n";
  }
  if (!password.empty()) pool_out << "password = " << quoted(password) << "  # twemproxy: redis_auth\n";
  if (pool["redis_db"] && integer(pool["redis_db"], "redis_db", 0, INT32_MAX) != 0) {
    throw ImportError{"redis_db " + pool["redis_db"].Scalar() + ": ringproxy serves database 0 only (its keys "
                      "would not be found)"};
  }
  if (pool["auto_eject_hosts"] && boolean(pool["auto_eject_hosts"], "auto_eject_hosts")) {
    notes.push_back("auto_eject_hosts: true has no equivalent: twemproxy takes a failing server off the ring, "
                    "so its keys move to other servers (and back when it returns, where they are stale). "
                    "ringproxy keeps the ring: a down server's keys get errors, or its replicas serve them "
                    "(give the shard more servers and [pool.replication])");
  }
  if (pool["preconnect"]) notes.push_back("preconnect: ringproxy always connects to every server at start");
  notes.push_back("twemproxy's stats port (nutcracker -s, 22222 by default) has no equivalent: ringproxy's metrics "
                  "are Prometheus text on 127.0.0.1:9121 ([metrics] listen), and INFO answers on the proxy's port");
  if (pool["backlog"]) notes.push_back("backlog: ringproxy's listen backlog is 511");
  if (pool["tcpkeepalive"]) notes.push_back("tcpkeepalive: ringproxy leaves TCP keepalive to the system's defaults");
  // [[pool.shards]]
  if (!pool["servers"] || !pool["servers"].IsSequence() || pool["servers"].size() == 0) {
    throw ImportError{"pool '" + pool_name + "' has no 'servers' list"};
  }
  std::set<std::string> names, addresses;
  for (const auto& node : pool["servers"]) {
    const Server s = parse_server(scalar(node, "servers"));
    if (std::any_of(s.name.begin(), s.name.end(), [](unsigned char c) { return c <= ' ' || c == 0x7f; })) {
      throw ImportError{"server '" + comment_text(s.line) + "': its name has whitespace or control characters, "
                        "which ringproxy's shard names cannot have (and ketama hashes the name)"};
    }
    if (!names.insert(s.name).second) {
      throw ImportError{"two servers are named '" + s.name + "': ringproxy's shard names are unique"};
    }
    std::string why_not;
    std::optional<Address> address = parse_address(s.address, &why_not, true);
    if (!address) throw ImportError{"server '" + comment_text(s.line) + "': " + why_not};
    if (!addresses.insert(address->to_string()).second) {
      throw ImportError{"two servers are at " + address->to_string() + ": in ringproxy a server belongs to one "
                        "shard (twemproxy allows it under two names, which splits that server's keys in two)"};
    }
    shards << "\n[[pool.shards]]  # - " << comment_text(s.line) << "\nname = " << quoted(s.name) << "\nweight = " << s.weight
           << "\nservers = [" << quoted(s.address) << "]\n";
  }
  return "# From twemproxy's pool '" + comment_text(pool_name) + "' (ringproxy import-twemproxy): every key stays on its server.\n" +
         proxy.str() + pool_out.str() + shards.str();
}

}  // namespace

TwemproxyImport import_twemproxy(std::string_view yaml_text, const std::optional<std::string>& pool) {
  TwemproxyImport out;
  try {
    const YAML::Node root = YAML::Load(std::string(yaml_text));
    if (!root.IsMap() || root.size() == 0) throw ImportError{"not a nutcracker config: no pools"};
    std::vector<std::string> pools;
    for (const auto& entry : root) pools.push_back(entry.first.Scalar());
    std::string chosen;
    if (pool) {
      if (!root[*pool]) throw ImportError{"no pool '" + *pool + "' (the file has: " + [&] {
        std::string list;
        for (const std::string& p : pools) list += (list.empty() ? "" : ", ") + p;
        return list;
      }() + ")"};
      chosen = *pool;
    } else if (pools.size() == 1) {
      chosen = pools.front();
    } else {
      std::string list;
      for (const std::string& p : pools) list += (list.empty() ? "" : ", ") + p;
      throw ImportError{"the file has " + std::to_string(pools.size()) + " pools (" + list +
                        "); ringproxy serves one per process: name one with --pool, and run a ringproxy per pool"};
    }
    out.toml = convert(chosen, root[chosen], out.notes);
  } catch (const ImportError& e) {
    out.error = e.why;
    out.toml.clear();
  } catch (const YAML::Exception& e) {
    out.error = std::string("not valid YAML: ") + e.what();
    out.toml.clear();
  }
  return out;
}

}  // namespace ringproxy::conf
