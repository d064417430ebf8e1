// The TOML schema of config.h. Each table is a list of Fields (key + reader), so a key is
// declared once: the same list parses it, rejects unknown keys and suggests near misses.
//
// The first problem ends loading. Inside this file it is thrown as a ConfigError (toml++
// already reports syntax errors by throwing); both entry points catch everything, so no
// exception leaves the loader.
#include "conf/loader.h"

#include <openssl/evp.h>
#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace ringproxy::conf {
namespace {

constexpr uint32_t kU32Max = std::numeric_limits<uint32_t>::max();
constexpr uint64_t kI64Max = std::numeric_limits<int64_t>::max();  // toml++ integers are int64
// modula and jump build one slot per unit of weight: keep the ring small.
constexpr uint32_t kMaxWeight = 65535;
// Persistent connections per backend server; more only adds contention on the server.
constexpr uint32_t kMaxBackendConnections = 64;
// routing::Ring::build's limit on the sum of the weights.
constexpr uint64_t kMaxTotalWeight = (uint64_t{1} << 31) - 1;
// twemproxy hashes "<name>-<index>" for ketama points in an 86-byte buffer; 64 leaves room.
constexpr size_t kMaxShardNameBytes = 64;
// Servers of one shard: the planner's per-shard arrays hold 64 (routing/planner.cc).
constexpr size_t kMaxShardServers = 64;

struct ConfigError {
  std::string message;  // complete: "file:line:column: message"
};

std::string position(std::string_view source, const toml::source_region& region) {
  // Nodes built without a source (should not happen for parsed text) report 1:1.
  const auto line = region.begin.line ? region.begin.line : 1;
  const auto column = region.begin.column ? region.begin.column : 1;
  return std::string(source) + ":" + std::to_string(line) + ":" + std::to_string(column);
}

// Errors are one line, but they quote the user's text, which may hold any character.
std::string one_line(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : text) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

[[noreturn]] void fail_at(std::string_view source, const toml::source_region& region,
                          std::string_view message) {
  throw ConfigError{one_line(position(source, region) + ": " + std::string(message))};
}

std::string_view type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

// Optimal string alignment distance: Levenshtein plus adjacent transpositions, so that
// "wieght" is one edit from "weight".
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// The known name closest to `word`, if it is within two edits.
std::optional<std::string_view> closest(std::string_view word,
                                        std::span<const std::string_view> known) {
  std::optional<std::string_view> best;
  size_t best_distance = 3;
  for (std::string_view candidate : known) {
    const size_t distance = edit_distance(word, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::string join(std::span<const std::string_view> names) {
  std::string out;
  for (std::string_view name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

[[noreturn]] void unknown_key(std::string_view source, const toml::key& key,
                              std::string_view table_name,
                              std::span<const std::string_view> known);

// One key's value, with what its error messages need.
class Value {
 public:
  Value(std::string_view source, std::string_view key, const toml::node& node)
      : source_(source), key_(key), node_(node) {}

  std::string_view source() const { return source_; }
  std::string_view key() const { return key_; }
  const toml::node& node() const { return node_; }

  [[noreturn]] void fail(std::string_view message) const {
    fail_at(source_, node_.source(), message);
  }
  [[noreturn]] void expected(std::string_view what) const {
    fail("'" + std::string(key_) + "' must be " + std::string(what) + ", not " +
         std::string(type_name(node_)));
  }

  uint64_t integer(uint64_t min, uint64_t max) const {
    const auto* value = node_.as_integer();
    if (!value) expected("an integer");
    const int64_t v = value->get();
    const bool below = v < 0 || static_cast<uint64_t>(v) < min;
    if (below || static_cast<uint64_t>(v) > max) {
      // "at least 1" reads better than "between 1 and 4294967295" when the value is too low.
      const bool no_real_max = max == kU32Max || max == kI64Max;
      const std::string range = below && no_real_max ? "at least " + std::to_string(min)
                                                     : "between " + std::to_string(min) +
                                                           " and " + std::to_string(max);
      fail("'" + std::string(key_) + "' must be " + range + ", got " + std::to_string(v));
    }
    return static_cast<uint64_t>(v);
  }
  uint32_t u32(uint32_t min, uint32_t max = kU32Max) const {
    return static_cast<uint32_t>(integer(min, max));
  }

  bool boolean() const {
    const auto* value = node_.as_boolean();
    if (!value) expected("true or false");
    return value->get();
  }

  const std::string& string() const {
    const auto* value = node_.as_string();
    if (!value) expected("a string");
    return value->get();
  }

  Address address(bool allow_names = false) const {
    const std::string& text = string();
    std::string why;
    std::optional<Address> parsed = parse_address(text, &why, allow_names);
    if (!parsed) fail("bad address \"" + text + "\" in '" + std::string(key_) + "': " + why);
    return *parsed;
  }

  const toml::table& table() const {
    const auto* value = node_.as_table();
    if (!value) expected("a table");
    return *value;
  }

 private:
  std::string_view source_;
  std::string_view key_;
  const toml::node& node_;
};

template <class T>
struct Field {
  std::string_view key;
  void (*read)(const Value&, T&);
};

template <class T, size_t N>
constexpr std::array<std::string_view, N> keys_of(const Field<T> (&fields)[N]) {
  std::array<std::string_view, N> keys;
  for (size_t i = 0; i < N; ++i) keys[i] = fields[i].key;
  return keys;
}

// toml++ tables iterate in key order; visit them in document order so that the first
// error reported is the first one in the file.
std::vector<std::pair<const toml::key*, const toml::node*>> in_document_order(
    const toml::table& table) {
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (const auto& [key, node] : table) entries.emplace_back(&key, &node);
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    const auto& pa = a.first->source().begin;
    const auto& pb = b.first->source().begin;
    return std::pair(pa.line, pa.column) < std::pair(pb.line, pb.column);
  });
  return entries;
}

template <class T, size_t N>
void read_fields(std::string_view source, const toml::table& table, std::string_view table_name,
                 const Field<T> (&fields)[N], T& out) {
  for (const auto& [key, node] : in_document_order(table)) {
    // (A named copy: clang 14 cannot capture a structured binding in a lambda.)
    const std::string_view name = key->str();
    const auto* field = std::find_if(std::begin(fields), std::end(fields),
                                     [name](const Field<T>& f) { return f.key == name; });
    if (field == std::end(fields)) unknown_key(source, *key, table_name, keys_of(fields));
    field->read(Value(source, key->str(), *node), out);
  }
}

template <class Enum>
Enum read_name(const Value& v, std::optional<Enum> (*parse)(std::string_view),
               std::span<const Enum> all, std::string_view (*name_of)(Enum)) {
  const std::string& text = v.string();
  if (std::optional<Enum> parsed = parse(text)) return *parsed;
  std::vector<std::string_view> names;
  for (Enum e : all) names.push_back(name_of(e));
  std::string message = "'" + std::string(v.key()) + "' must be one of " + join(names) +
                        ", got \"" + text + "\"";
  if (auto guess = closest(text, names)) message += "; did you mean '" + std::string(*guess) + "'?";
  v.fail(message);
}

void check_shard_name(const Value& v, const std::string& name) {
  if (name.empty()) v.fail("shard 'name' must not be empty");
  const bool clean = std::none_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isspace(c) || std::iscntrl(c);
  });
  if (!clean) {
    v.fail("shard name \"" + name + "\" must not contain whitespace or control characters");
  }
  if (name.size() > kMaxShardNameBytes) {
    v.fail("shard name is " + std::to_string(name.size()) + " bytes; at most " +
           std::to_string(kMaxShardNameBytes) + " are allowed");
  }
}

std::vector<Address> read_servers(const Value& v) {
  const auto* array = v.node().as_array();
  if (!array) v.expected("an array of addresses, e.g. [\"127.0.0.1:7001\"]");
  if (array->empty()) v.fail("'servers' must list at least one address");
  std::vector<Address> servers;
  for (const toml::node& element : *array) {
    servers.push_back(Value(v.source(), v.key(), element).address(/*allow_names=*/true));
  }
  return servers;
}

std::optional<ReplicationStrategy> parse_strategy(std::string_view name) {
  for (auto s : {ReplicationStrategy::none, ReplicationStrategy::primary_replica, ReplicationStrategy::multi_primary}) {
    if (strategy_name(s) == name) return s;
  }
  return std::nullopt;
}
std::optional<WriteAck> parse_write_ack(std::string_view name) {
  for (auto a : {WriteAck::primary, WriteAck::one, WriteAck::quorum, WriteAck::all}) {
    if (write_ack_name(a) == name) return a;
  }
  return std::nullopt;
}
std::optional<ReadFrom> parse_read_from(std::string_view name) {
  for (auto r : {ReadFrom::primary, ReadFrom::prefer_replica, ReadFrom::replica, ReadFrom::any, ReadFrom::quorum}) {
    if (read_from_name(r) == name) return r;
  }
  return std::nullopt;
}
std::optional<PrimaryDown> parse_primary_down(std::string_view name) {
  for (auto p : {PrimaryDown::fail, PrimaryDown::promote}) {
    if (primary_down_name(p) == name) return p;
  }
  return std::nullopt;
}
std::optional<Migration> parse_migration(std::string_view name) {
  for (auto m : {Migration::none, Migration::warm, Migration::move}) {
    if (migration_name(m) == name) return m;
  }
  return std::nullopt;
}
std::optional<PingAnswer> parse_ping_answer(std::string_view name) {
  for (auto p : {PingAnswer::proxy, PingAnswer::servers}) {
    if (ping_answer_name(p) == name) return p;
  }
  return std::nullopt;
}
constexpr PingAnswer kPingAnswers[] = {PingAnswer::proxy, PingAnswer::servers};
constexpr Migration kMigrations[] = {Migration::none, Migration::warm, Migration::move};
constexpr PrimaryDown kPrimaryDowns[] = {PrimaryDown::fail, PrimaryDown::promote};
constexpr ReplicationStrategy kStrategies[] = {ReplicationStrategy::none, ReplicationStrategy::primary_replica,
                                               ReplicationStrategy::multi_primary};
constexpr WriteAck kWriteAcks[] = {WriteAck::primary, WriteAck::one, WriteAck::quorum, WriteAck::all};
constexpr ReadFrom kReadFroms[] = {ReadFrom::primary, ReadFrom::prefer_replica, ReadFrom::replica, ReadFrom::any,
                                   ReadFrom::quorum};

constexpr Field<ReplicationConfig> kReplicationFields[] = {
    {"strategy",
     [](const Value& v, ReplicationConfig& c) {
       c.strategy = read_name<ReplicationStrategy>(v, parse_strategy, kStrategies, strategy_name);
     }},
    {"write_ack",
     [](const Value& v, ReplicationConfig& c) {
       c.write_ack = read_name<WriteAck>(v, parse_write_ack, kWriteAcks, write_ack_name);
     }},
    {"read_from",
     [](const Value& v, ReplicationConfig& c) {
       c.read_from = read_name<ReadFrom>(v, parse_read_from, kReadFroms, read_from_name);
     }},
    {"on_primary_down",
     [](const Value& v, ReplicationConfig& c) {
       c.on_primary_down = read_name<PrimaryDown>(v, parse_primary_down, kPrimaryDowns, primary_down_name);
     }},
    {"replay_queue_max_writes",
     [](const Value& v, ReplicationConfig& c) { c.replay_queue_max_writes = v.u32(1); }},
    {"replay_queue_max_bytes",
     [](const Value& v, ReplicationConfig& c) { c.replay_queue_max_bytes = v.integer(1024, kI64Max); }},
    {"repair_interval_ms", [](const Value& v, ReplicationConfig& c) { c.repair_interval_ms = v.u32(0); }},
    {"repair_keys_per_second",
     [](const Value& v, ReplicationConfig& c) { c.repair_keys_per_second = v.u32(1); }},
};

void read_replication(const Value& v, std::string_view table_name, ReplicationConfig& out) {
  read_fields(v.source(), v.table(), table_name, kReplicationFields, out);
}

// What only makes sense once a shard's servers and its effective replication are known.
void check_replica_set(std::string_view source, const toml::table& table, const ShardConfig& shard) {
  const toml::node* at = table.get("replication");
  const toml::source_region& where = at ? at->source() : table.get("servers")->source();
  const size_t n = shard.servers.size();
  const ReplicationConfig& r = shard.replication;
  if (n > kMaxShardServers) {
    fail_at(source, table.get("servers")->source(),
            "shard '" + shard.name + "' lists " + std::to_string(n) + " servers; at most " +
                std::to_string(kMaxShardServers) + " are allowed");
  }
  if (r.strategy == ReplicationStrategy::none && n > 1) {
    fail_at(source, table.get("servers")->source(),
            "shard '" + shard.name + "' lists " + std::to_string(n) +
                " servers but replication strategy is \"none\"; set [pool.replication] strategy = "
                "\"primary-replica\" or \"multi-primary\" for a replica set");
  }
  if (r.strategy != ReplicationStrategy::none && n < 2) {
    fail_at(source, where,
            "shard '" + shard.name + "' uses strategy \"" + std::string(strategy_name(r.strategy)) +
                "\" but lists 1 server; a replica set needs at least 2");
  }
  if (r.strategy == ReplicationStrategy::multi_primary && r.write_ack == WriteAck::primary) {
    fail_at(source, where,
            "shard '" + shard.name +
                "': write_ack = \"primary\" needs strategy \"primary-replica\"; multi-primary has no "
                "primary (use one, quorum or all)");
  }
}

// A secret's text, checked (it must not be empty); its value never appears in an error.
const std::string& secret(const Value& v) {
  const std::string& text = v.string();
  if (text.empty()) v.fail("'" + std::string(v.key()) + "' must not be empty");
  return text;
}

// Backend credentials: [pool] and [[pool.shards]] username, and one of password,
// password_file (a secret mounted as a file: its text, without a final newline) and
// password_env (an environment variable). Read apart from the tables' other keys (a shard
// inherits [pool]'s, wherever [pool]'s are written), so those keys' readers do nothing.
constexpr std::string_view kCredentialKeys[] = {"username", "password", "password_file", "password_env"};

template <class T>
void read_elsewhere(const Value&, T&) {}

bool has_credentials(const toml::table& table) {
  return std::any_of(std::begin(kCredentialKeys), std::end(kCredentialKeys),
                     [&](std::string_view key) { return table.contains(key); });
}

std::string read_password_file(const Value& v) {
  const std::string& path = v.string();
  if (path.empty()) v.fail("'password_file' must not be empty");
  std::string password, error;
  if (!conf::read_password_file(path, &password, &error)) v.fail(error);
  return password;
}

std::string read_password_env(const Value& v) {
  const std::string& name = v.string();
  if (name.empty()) v.fail("'password_env' must not be empty");
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) v.fail("password_env names the environment variable '" + name + "', which is not set");
  if (*value == '\0') v.fail("password_env names the environment variable '" + name + "', which is empty");
  return value;
}

BackendAuth read_credentials(std::string_view source, const toml::table& table, std::string_view table_name) {
  BackendAuth auth;
  const toml::node* password_at = nullptr;
  int passwords = 0;
  for (const auto& [key, node] : in_document_order(table)) {
    const std::string_view name = key->str();
    const Value v(source, name, *node);
    if (name == "username") {
      auth.username = v.string();
      const bool clean = std::none_of(auth.username.begin(), auth.username.end(),
                                      [](unsigned char c) { return std::isspace(c) || std::iscntrl(c); });
      if (auth.username.empty() || !clean || auth.username.size() > 256) {
        v.fail("'username' must be 1 to 256 characters without whitespace or control characters");
      }
      continue;
    }
    if (name == "password") {
      auth.password = secret(v);
    } else if (name == "password_file") {
      auth.password = read_password_file(v);
      auth.password_file = v.string();
    } else if (name == "password_env") {
      auth.password = read_password_env(v);
    } else {
      continue;
    }
    ++passwords;
    if (password_at == nullptr) password_at = node;
    if (passwords > 1) {
      v.fail("give " + std::string(table_name) + " one of 'password', 'password_file' and 'password_env', not several");
    }
  }
  if (!auth.username.empty() && auth.password.empty()) {
    fail_at(source, table.get("username")->source(),
            "'username' needs a password ('password', 'password_file' or 'password_env') in " + std::string(table_name));
  }
  return auth;
}

std::optional<TlsVersion> parse_tls_version(std::string_view name) {
  for (auto t : {TlsVersion::tls1_2, TlsVersion::tls1_3}) {
    if (tls_version_name(t) == name) return t;
  }
  return std::nullopt;
}
constexpr TlsVersion kTlsVersions[] = {TlsVersion::tls1_2, TlsVersion::tls1_3};

// A file the proxy reads (a certificate, a key): named, and readable now.
std::string readable_file(const Value& v) {
  const std::string& path = v.string();
  if (path.empty()) v.fail("'" + std::string(v.key()) + "' must not be empty");
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!file) v.fail("cannot read " + std::string(v.key()) + " '" + path + "': " + std::strerror(errno));
  return path;
}

constexpr Field<ServerTlsConfig> kServerTlsFields[] = {
    {"enabled", [](const Value& v, ServerTlsConfig& c) { c.enabled = v.boolean(); }},
    {"ca_file", [](const Value& v, ServerTlsConfig& c) { c.ca_file = readable_file(v); }},
    {"cert_file", [](const Value& v, ServerTlsConfig& c) { c.cert_file = readable_file(v); }},
    {"key_file", [](const Value& v, ServerTlsConfig& c) { c.key_file = readable_file(v); }},
    {"server_name",
     [](const Value& v, ServerTlsConfig& c) {
       c.server_name = v.string();
       const bool clean = std::none_of(c.server_name.begin(), c.server_name.end(),
                                       [](unsigned char ch) { return std::isspace(ch) || std::iscntrl(ch); });
       if (c.server_name.empty() || !clean || c.server_name.size() > 253) {
         v.fail("'server_name' must be a host name (1 to 253 characters without whitespace)");
       }
     }},
    {"verify", [](const Value& v, ServerTlsConfig& c) { c.verify = v.boolean(); }},
    {"min_version",
     [](const Value& v, ServerTlsConfig& c) {
       c.min_version = read_name<TlsVersion>(v, parse_tls_version, kTlsVersions, tls_version_name);
     }},
};

// [pool.tls], or a shard's own `tls` table (which replaces the pool's whole table).
ServerTlsConfig read_server_tls(const Value& v, std::string_view table_name) {
  if (!v.node().is_table()) v.expected("a table (" + std::string(table_name) + ")");
  ServerTlsConfig tls;
  read_fields(v.source(), v.table(), table_name, kServerTlsFields, tls);
  const toml::table& table = v.table();
  if (table.contains("cert_file") != table.contains("key_file")) {
    fail_at(v.source(), table.source(),
            std::string(table_name) + " needs both cert_file and key_file (a client certificate and its key), or neither");
  }
  return tls;
}

constexpr Field<ShardConfig> kShardFields[] = {
    {"name", [](const Value& v, ShardConfig& c) { check_shard_name(v, c.name = v.string()); }},
    {"weight", [](const Value& v, ShardConfig& c) { c.weight = v.u32(1, kMaxWeight); }},
    {"servers", [](const Value& v, ShardConfig& c) { c.servers = read_servers(v); }},
    {"replication",
     [](const Value& v, ShardConfig& c) { read_replication(v, "the shard's replication", c.replication); }},
    {"username", read_elsewhere<ShardConfig>},
    {"password", read_elsewhere<ShardConfig>},
    {"password_file", read_elsewhere<ShardConfig>},
    {"password_env", read_elsewhere<ShardConfig>},
    {"tls", [](const Value& v, ShardConfig& c) { c.tls = read_server_tls(v, "a shard's tls"); }},
};

// Reads [[pool.shards]] and checks what spans shards: unique names and unique servers,
// each reported at its second occurrence.
std::vector<ShardConfig> read_shards(const Value& v, const ReplicationConfig& pool_replication,
                                     const BackendAuth& pool_auth, const std::optional<ServerTlsConfig>& pool_tls) {
  const auto* array = v.node().as_array();
  if (array && array->empty()) v.fail("'shards' must list at least one shard");
  if (!array || !array->is_array_of_tables()) {
    v.expected("an array of tables ([[pool.shards]])");
  }

  std::vector<ShardConfig> shards;
  std::map<std::string, std::string> name_seen;    // name -> where
  std::map<std::string, std::string> server_seen;  // address -> "shard 'x' at where"
  uint64_t total_weight = 0;
  for (const toml::node& element : *array) {
    const toml::table& table = *element.as_table();
    ShardConfig shard;
    shard.replication = pool_replication;  // the shard's own keys override it
    shard.tls = pool_tls;                  // its own table replaces it
    read_fields(v.source(), table, "[[pool.shards]]", kShardFields, shard);
    shard.auth = has_credentials(table) ? read_credentials(v.source(), table, "a shard") : pool_auth;

    const toml::node* name = table.get("name");
    if (!name) fail_at(v.source(), table.source(), "shard is missing 'name'");
    const std::string here = position(v.source(), name->source());
    if (auto [it, inserted] = name_seen.emplace(shard.name, here); !inserted) {
      fail_at(v.source(), name->source(),
              "duplicate shard name '" + shard.name + "' (first defined at " + it->second + ")");
    }

    const toml::node* servers = table.get("servers");
    if (!servers) {
      fail_at(v.source(), table.source(), "shard '" + shard.name + "' is missing 'servers'");
    }
    const toml::array& server_nodes = *servers->as_array();
    for (size_t i = 0; i < shard.servers.size(); ++i) {
      const std::string text = shard.servers[i].to_string();
      const toml::source_region& at = server_nodes[i].source();
      const std::string owner = "shard '" + shard.name + "' at " + position(v.source(), at);
      if (auto [it, inserted] = server_seen.emplace(text, owner); !inserted) {
        fail_at(v.source(), at,
                "duplicate server address " + text + " (also in " + it->second + ")");
      }
    }
    check_replica_set(v.source(), table, shard);
    total_weight += shard.weight;
    shards.push_back(std::move(shard));
  }
  if (total_weight > kMaxTotalWeight) {
    v.fail("the shards' weights add up to " + std::to_string(total_weight) + "; at most " +
           std::to_string(kMaxTotalWeight) + " are allowed");
  }
  return shards;
}

std::optional<Access> parse_access(std::string_view name) {
  for (auto a : {Access::read, Access::readwrite, Access::admin}) {
    if (access_name(a) == name) return a;
  }
  return std::nullopt;
}
constexpr Access kAccesses[] = {Access::read, Access::readwrite, Access::admin};

std::string hex_digest(const Value& v) {
  const std::string& text = v.string();
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string raw;
  for (size_t i = 0; text.size() == 64 && i < 64; i += 2) {
    const int hi = nibble(text[i]), lo = nibble(text[i + 1]);
    if (hi < 0 || lo < 0) break;
    raw.push_back(static_cast<char>(hi * 16 + lo));
  }
  if (raw.size() != 32) v.fail("'password_sha256' must be 64 hexadecimal digits (the SHA-256 of the password)");
  return raw;
}

struct UserEntry {
  UserConfig user;
  bool has_password = false, has_digest = false;
};

constexpr Field<UserEntry> kUserFields[] = {
    {"name",
     [](const Value& v, UserEntry& e) {
       e.user.name = v.string();
       const bool clean = std::none_of(e.user.name.begin(), e.user.name.end(), [](unsigned char c) {
         return std::isspace(c) || std::iscntrl(c);
       });
       if (e.user.name.empty() || !clean || e.user.name.size() > 256) {
         v.fail("user 'name' must be 1 to 256 characters without whitespace or control characters");
       }
     }},
    {"password",
     [](const Value& v, UserEntry& e) {
       e.user.password_sha256 = password_digest(secret(v));
       e.has_password = true;
     }},
    {"password_sha256",
     [](const Value& v, UserEntry& e) {
       e.user.password_sha256 = hex_digest(v);
       e.has_digest = true;
     }},
    {"access",
     [](const Value& v, UserEntry& e) { e.user.access = read_name<Access>(v, parse_access, kAccesses, access_name); }},
    {"keys",
     [](const Value& v, UserEntry& e) {
       const auto* array = v.node().as_array();
       if (!array) v.expected("an array of key patterns, e.g. [\"app:*\"]");
       if (array->empty()) v.fail("'keys' must list at least one pattern (leave it out for every key)");
       for (const toml::node& element : *array) {
         const std::string& pattern = Value(v.source(), v.key(), element).string();
         if (pattern.empty()) v.fail("a key pattern must not be empty");
         e.user.keys.push_back(pattern);
       }
     }},
};

// [[proxy.users]]: every user has a unique name and exactly one of password / password_sha256.
std::vector<UserConfig> read_users(const Value& v) {
  const auto* array = v.node().as_array();
  if (!array || !array->is_array_of_tables()) v.expected("an array of tables ([[proxy.users]])");
  std::vector<UserConfig> users;
  std::map<std::string, std::string> seen;  // name -> where
  for (const toml::node& element : *array) {
    const toml::table& table = *element.as_table();
    UserEntry entry;
    read_fields(v.source(), table, "[[proxy.users]]", kUserFields, entry);
    const toml::node* name = table.get("name");
    if (!name) fail_at(v.source(), table.source(), "user is missing 'name'");
    if (entry.has_password == entry.has_digest) {
      fail_at(v.source(), table.source(),
              "user '" + entry.user.name + "' needs exactly one of 'password' and 'password_sha256'");
    }
    if (auto [it, inserted] = seen.emplace(entry.user.name, position(v.source(), name->source())); !inserted) {
      fail_at(v.source(), name->source(),
              "duplicate user name '" + entry.user.name + "' (first defined at " + it->second + ")");
    }
    users.push_back(std::move(entry.user));
  }
  return users;
}

constexpr Field<TlsListenConfig> kProxyTlsFields[] = {
    {"listen", [](const Value& v, TlsListenConfig& c) { c.listen = v.address(); }},
    {"cert_file", [](const Value& v, TlsListenConfig& c) { c.cert_file = readable_file(v); }},
    {"key_file", [](const Value& v, TlsListenConfig& c) { c.key_file = readable_file(v); }},
    {"ca_file", [](const Value& v, TlsListenConfig& c) { c.ca_file = readable_file(v); }},
    {"require_client_cert", [](const Value& v, TlsListenConfig& c) { c.require_client_cert = v.boolean(); }},
    {"min_version",
     [](const Value& v, TlsListenConfig& c) {
       c.min_version = read_name<TlsVersion>(v, parse_tls_version, kTlsVersions, tls_version_name);
     }},
    {"ciphers", [](const Value& v, TlsListenConfig& c) { c.ciphers = v.string(); }},
    {"ciphersuites", [](const Value& v, TlsListenConfig& c) { c.ciphersuites = v.string(); }},
};

TlsListenConfig read_proxy_tls(const Value& v) {
  TlsListenConfig tls;
  read_fields(v.source(), v.table(), "[proxy.tls]", kProxyTlsFields, tls);
  const toml::table& table = v.table();
  for (std::string_view key : {"listen", "cert_file", "key_file"}) {
    if (!table.contains(key)) fail_at(v.source(), table.source(), "[proxy.tls] needs '" + std::string(key) + "'");
  }
  if (tls.require_client_cert && tls.ca_file.empty()) {
    fail_at(v.source(), table.get("require_client_cert")->source(),
            "require_client_cert = true needs ca_file: the CAs whose client certificates are accepted");
  }
  return tls;
}

constexpr Field<ProxyConfig> kProxyFields[] = {
    {"listen",
     [](const Value& v, ProxyConfig& c) {
       c.plain_listener = !v.string().empty();  // "": TLS only
       if (c.plain_listener) c.listen = v.address();
     }},
    {"tls", [](const Value& v, ProxyConfig& c) { c.tls = read_proxy_tls(v); }},
    {"max_clients", [](const Value& v, ProxyConfig& c) { c.max_clients = v.u32(1); }},
    {"max_request_bytes",
     [](const Value& v, ProxyConfig& c) { c.max_request_bytes = v.integer(1, kI64Max); }},
    {"max_arguments", [](const Value& v, ProxyConfig& c) { c.max_arguments = v.u32(1); }},
    {"max_pending_per_client",
     [](const Value& v, ProxyConfig& c) { c.max_pending_per_client = v.u32(1); }},
    {"client_idle_timeout_ms",
     [](const Value& v, ProxyConfig& c) { c.client_idle_timeout_ms = v.u32(0); }},
    {"allow_admin_commands",
     [](const Value& v, ProxyConfig& c) { c.allow_admin_commands = v.boolean(); }},
    {"shutdown_timeout_ms", [](const Value& v, ProxyConfig& c) { c.shutdown_timeout_ms = v.u32(0); }},
    {"reuse_port", [](const Value& v, ProxyConfig& c) { c.reuse_port = v.boolean(); }},
    {"ping",
     [](const Value& v, ProxyConfig& c) {
       c.ping = read_name<PingAnswer>(v, parse_ping_answer, kPingAnswers, ping_answer_name);
     }},
    // Redis's requirepass: the password of the user "default", who may run everything.
    {"password",
     [](const Value& v, ProxyConfig& c) {
       c.users.insert(c.users.begin(), UserConfig{"default", password_digest(secret(v)), Access::admin, {}});
     }},
    {"users",
     [](const Value& v, ProxyConfig& c) {
       std::vector<UserConfig> users = read_users(v);
       c.users.insert(c.users.end(), users.begin(), users.end());
     }},
    {"protected_mode", [](const Value& v, ProxyConfig& c) { c.protected_mode = v.boolean(); }},
};

// What spans [proxy]'s keys: one "default" user, and Redis's protected mode.
void check_proxy(std::string_view source, const toml::table& table, const ProxyConfig& proxy) {
  const auto defaults = std::count_if(proxy.users.begin(), proxy.users.end(),
                                      [](const UserConfig& u) { return u.name == "default"; });
  if (defaults > 1) {
    fail_at(source, table.get("password")->source(),
            "the user 'default' is defined twice: [proxy] password sets its password; remove one");
  }
  if (!proxy.plain_listener && !proxy.tls) {
    fail_at(source, table.get("listen")->source(),
            "listen = \"\" turns the plain listener off, and there is no [proxy.tls] listener: nothing to listen on");
  }
  if (proxy.tls && proxy.plain_listener && proxy.tls->listen == proxy.listen) {
    fail_at(source, table.get("tls")->source(), "[proxy.tls] listen is the plain listener's address too");
  }
  // Mutual TLS authenticates clients by their certificates: a public TLS listener may do without passwords.
  if (proxy.protected_mode && proxy.users.empty() && proxy.tls && !proxy.tls->require_client_cert &&
      !is_loopback(proxy.tls->listen)) {
    fail_at(source, table.get("tls")->source(),
            "protected mode: ringproxy would listen for TLS on " + proxy.tls->listen.to_string() +
                ", which is not a loopback address, with no password and no client certificates required. Set "
                "[proxy] password or [[proxy.users]], require_client_cert = true, listen on 127.0.0.1, or set "
                "[proxy] protected_mode = false");
  }
  if (proxy.protected_mode && proxy.users.empty() && proxy.plain_listener && !is_loopback(proxy.listen)) {
    const toml::node* listen = table.get("listen");
    fail_at(source, listen != nullptr ? listen->source() : table.source(),
            "protected mode: ringproxy would listen on " + proxy.listen.to_string() +
                ", which is not a loopback address, with no password: anyone who reaches it could run "
                "any command. Set [proxy] password or [[proxy.users]], listen on 127.0.0.1, or set "
                "[proxy] protected_mode = false");
  }
}

constexpr Field<MetricsConfig> kMetricsFields[] = {
    {"listen",
     [](const Value& v, MetricsConfig& c) {
       if (v.string().empty()) {
         c.listen.reset();  // "" turns the endpoint off
       } else {
         c.listen = v.address();
       }
     }},
};

constexpr Field<PoolConfig> kPoolFields[] = {
    {"hash",
     [](const Value& v, PoolConfig& c) {
       c.hash = read_name(v, routing::parse_hash_function, routing::all_hash_functions(),
                          routing::hash_function_name);
     }},
    {"distribution",
     [](const Value& v, PoolConfig& c) {
       c.distribution = read_name(v, routing::parse_distribution, routing::all_distributions(),
                                  routing::distribution_name);
     }},
    {"hash_tag",
     [](const Value& v, PoolConfig& c) {
       c.hash_tag = v.string();
       if (!c.hash_tag.empty() && c.hash_tag.size() != 2) {
         v.fail("'hash_tag' must be \"\" (none) or exactly 2 characters such as \"{}\", got \"" +
                c.hash_tag + "\"");
       }
     }},
    // A zero timeout, failure limit or retry interval would make every server look down.
    {"connect_timeout_ms", [](const Value& v, PoolConfig& c) { c.connect_timeout_ms = v.u32(1); }},
    {"request_timeout_ms", [](const Value& v, PoolConfig& c) { c.request_timeout_ms = v.u32(1); }},
    {"failure_limit", [](const Value& v, PoolConfig& c) { c.failure_limit = v.u32(1); }},
    {"retry_interval_ms", [](const Value& v, PoolConfig& c) { c.retry_interval_ms = v.u32(1); }},
    {"backend_connections",
     [](const Value& v, PoolConfig& c) {
       c.backend_connections = v.u32(1, kMaxBackendConnections);
     }},
    {"dedicated_connections", [](const Value& v, PoolConfig& c) { c.dedicated_connections = v.u32(1, 10000); }},
    {"migration",
     [](const Value& v, PoolConfig& c) {
       c.migration = read_name<Migration>(v, parse_migration, kMigrations, migration_name);
     }},
    {"migration_keys_per_second", [](const Value& v, PoolConfig& c) { c.migration_keys_per_second = v.u32(1); }},
    {"warm_window_ms", [](const Value& v, PoolConfig& c) { c.warm_window_ms = v.u32(1); }},
    {"dns_refresh_ms", [](const Value& v, PoolConfig& c) { c.dns_refresh_ms = v.u32(100); }},
    {"shards", [](const Value& v, PoolConfig& c) { c.shards = read_shards(v, c.replication, c.auth, c.tls); }},
    // Read first (see "pool" below): shards inherit it.
    {"tls", read_elsewhere<PoolConfig>},
    {"username", read_elsewhere<PoolConfig>},
    {"password", read_elsewhere<PoolConfig>},
    {"password_file", read_elsewhere<PoolConfig>},
    {"password_env", read_elsewhere<PoolConfig>},
    // Read again here (it was read first, see "pool" below): harmless, and keeps the key known.
    {"replication",
     [](const Value& v, PoolConfig& c) { read_replication(v, "[pool.replication]", c.replication); }},
};

constexpr Field<Config> kConfigFields[] = {
    {"proxy",
     [](const Value& v, Config& c) {
       read_fields(v.source(), v.table(), "[proxy]", kProxyFields, c.proxy);
       check_proxy(v.source(), v.table(), c.proxy);
     }},
    {"metrics",
     [](const Value& v, Config& c) {
       read_fields(v.source(), v.table(), "[metrics]", kMetricsFields, c.metrics);
     }},
    {"pool",
     [](const Value& v, Config& c) {
       // [pool.replication] first, wherever it is in the file: shards start from it.
       if (const toml::node* replication = v.table().get("replication")) {
         read_replication(Value(v.source(), "replication", *replication), "[pool.replication]",
                          c.pool.replication);
       }
       c.pool.auth = read_credentials(v.source(), v.table(), "[pool]");  // likewise: shards inherit it
       if (const toml::node* tls = v.table().get("tls")) c.pool.tls = read_server_tls(Value(v.source(), "tls", *tls), "[pool.tls]");
       read_fields(v.source(), v.table(), "[pool]", kPoolFields, c.pool);
       if (c.pool.shards.empty()) v.fail("[pool] needs at least one [[pool.shards]]");
     }},
};

// Every table's keys, to say where a misplaced key belongs (a key written after a
// [[pool.shards]] header belongs to that shard, a common TOML surprise).
struct TableKeys {
  std::string_view table;
  std::span<const std::string_view> keys;
};
constexpr auto kProxyKeys = keys_of(kProxyFields);
constexpr auto kMetricsKeys = keys_of(kMetricsFields);
constexpr auto kPoolKeys = keys_of(kPoolFields);
constexpr auto kShardKeys = keys_of(kShardFields);
constexpr auto kReplicationKeys = keys_of(kReplicationFields);
constexpr auto kUserKeys = keys_of(kUserFields);
constexpr auto kProxyTlsKeys = keys_of(kProxyTlsFields);
constexpr auto kServerTlsKeys = keys_of(kServerTlsFields);
constexpr TableKeys kAllTables[] = {
    {"[proxy]", kProxyKeys}, {"[metrics]", kMetricsKeys},
    {"[pool]", kPoolKeys},   {"[[pool.shards]]", kShardKeys},
    {"[pool.replication]", kReplicationKeys}, {"[[proxy.users]]", kUserKeys}, {"[proxy.tls]", kProxyTlsKeys},
    {"[pool.tls]", kServerTlsKeys},
};

void unknown_key(std::string_view source, const toml::key& key, std::string_view table_name,
                 std::span<const std::string_view> known) {
  const std::string name(key.str());
  const bool top_level = table_name.empty();
  std::string message = "unknown key '" + name + "' " +
                        (top_level ? "at the top level" : "in " + std::string(table_name));
  std::vector<std::string_view> homes;
  for (const TableKeys& t : kAllTables) {
    if (t.table != table_name && std::find(t.keys.begin(), t.keys.end(), name) != t.keys.end()) {
      homes.push_back(t.table);
    }
  }
  if (!homes.empty()) {
    std::string where;
    for (std::string_view home : homes) where += (where.empty() ? "" : " or ") + std::string(home);
    message += "; '" + name + "' belongs in " + where;
    if (!top_level) message += " (keys after a table header belong to that table)";
  } else if (auto guess = closest(name, known)) {
    message += "; did you mean '" + std::string(*guess) + "'?";
  } else {
    message += "; known keys: " + join(known);
  }
  fail_at(source, key.source(), message);
}

Config read_config(std::string_view source, const toml::table& root) {
  Config config;
  read_fields(source, root, "", kConfigFields, config);
  if (!root.contains("pool")) {
    fail_at(source, root.source(), "missing [pool] with at least one [[pool.shards]]");
  }
  return config;
}

}  // namespace

LoadResult parse_config(std::string_view toml_text, std::string_view source_name) {
  LoadResult result;
  try {
    const toml::table root = toml::parse(toml_text, std::string(source_name));
    result.config = read_config(source_name, root);
  } catch (const toml::parse_error& e) {
    result.error =
        one_line(position(source_name, e.source()) + ": " + std::string(e.description()));
  } catch (const ConfigError& e) {
    result.error = e.message;
  } catch (const std::exception& e) {  // e.g. std::bad_alloc
    result.error = one_line(std::string(source_name) + ":1:1: " + e.what());
  }
  return result;
}

LoadResult load_config_file(const std::string& path) {
  LoadResult result;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!file) {
    result.error = one_line("cannot read " + path + ": " + std::strerror(errno));
    return result;
  }
  std::string text;
  try {
    char buffer[4096];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) text.append(buffer, n);
  } catch (const std::exception& e) {  // std::bad_alloc: a huge file is not a config
    result.error = one_line("cannot read " + path + ": " + e.what());
    return result;
  }
  // fopen succeeds on a directory; fread then fails with EISDIR.
  if (std::ferror(file.get())) {
    result.error = one_line("cannot read " + path + ": " + std::strerror(errno));
    return result;
  }
  result = parse_config(text, path);
  result.digest = text_digest(text);
  return result;
}

std::string text_digest(std::string_view text) {
  unsigned char sha[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), sha, &length, EVP_sha256(), nullptr);
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < 8 && i < length; ++i) {
    hex.push_back(kHex[sha[i] >> 4]);
    hex.push_back(kHex[sha[i] & 15]);
  }
  return hex;
}

bool read_password_file(const std::string& path, std::string* password, std::string* error) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!file) {
    *error = one_line("cannot read password_file '" + path + "': " + std::strerror(errno));
    return false;
  }
  std::string text;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0 && text.size() <= 65536) text.append(buffer, n);
  if (std::ferror(file.get())) {
    *error = one_line("cannot read password_file '" + path + "': " + std::strerror(errno));
    return false;
  }
  if (text.size() > 65536) {
    *error = one_line("password_file '" + path + "' is larger than 64 KiB: not a password");
    return false;
  }
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  if (text.empty()) {
    *error = one_line("password_file '" + path + "' is empty");
    return false;
  }
  *password = std::move(text);
  return true;
}

}  // namespace ringproxy::conf
