// ringproxy's configuration: plain structs, filled and validated by loader.h.
// toml++ types never leave conf/.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "routing/hash.h"
#include "routing/ring.h"

namespace ringproxy::conf {

// A numeric IPv4/IPv6 address (or "localhost", stored as 127.0.0.1) and a port. A backend
// server's host may also be a name ("cache-a.internal"), resolved at run time (README "Names").
struct Address {
  std::string host;  // numeric, without brackets for IPv6; or a host name, lowercase
  uint16_t port = 0;

  std::string to_string() const;  // "127.0.0.1:7001", "[::1]:7001", "cache-a:6379"
  bool is_name() const;           // a host name, not a numeric address
  bool operator==(const Address&) const = default;
};

// How the proxy logs in to a backend server: AUTH [username] password, first on every
// connection it opens to it (data, probes, resyncs, repairs, key moves). The password is kept
// because it is sent; it never appears in a log, INFO, a metric or a reply.
struct BackendAuth {
  std::string username;  // "": the server's default user (AUTH <password>: requirepass)
  std::string password;  // "": no AUTH
  std::string password_file;  // where the password was read, if from a file (a rotated secret
                              // is read again: config_watcher.h)
  bool operator==(const BackendAuth&) const = default;
};

// Which command classes a user may run (README "Authentication"): read (reads and the proxy's
// own harmless commands), readwrite (and writes), admin (everything: FLUSHALL when allowed,
// PROXY RELOAD and REPAIR).
enum class Access : uint8_t { read, readwrite, admin };

// A client identity. Only the password's SHA-256 is kept (never the password itself).
struct UserConfig {
  std::string name;
  std::string password_sha256;       // 32 raw bytes
  Access access = Access::readwrite;
  std::vector<std::string> keys;     // glob patterns every key of a command must match; empty: any
  bool operator==(const UserConfig&) const = default;
};

enum class TlsVersion : uint8_t { tls1_2, tls1_3 };

// [proxy.tls]: a TLS listener beside the plain one (redis-server's tls-port). Files are PEM.
struct TlsListenConfig {
  Address listen;
  std::string cert_file, key_file;   // the certificate (and chain) clients see, and its key
  std::string ca_file;               // CAs whose client certificates are accepted ("": none)
  bool require_client_cert = false;  // mutual TLS: a client must present one ca_file signed
  TlsVersion min_version = TlsVersion::tls1_2;
  std::string ciphers;               // OpenSSL's names, TLS 1.2 ("": OpenSSL's defaults)
  std::string ciphersuites;          // TLS 1.3 ("": OpenSSL's defaults)
  bool operator==(const TlsListenConfig&) const = default;
};

// [pool.tls] (a shard's own `tls` table replaces it): TLS to the servers, on every connection
// the proxy opens to them (data, probes, resyncs, repairs, key moves). Files are PEM.
struct ServerTlsConfig {
  bool enabled = true;               // the table's presence turns it on; a shard may turn it off
  std::string ca_file;               // CAs that sign the servers' certificates (absent: the system's)
  std::string cert_file, key_file;   // a client certificate, for servers that require one
  std::string server_name;           // SNI and the name checked ("": each server's own host)
  bool verify = true;                // false: encrypted, the certificate unchecked
  TlsVersion min_version = TlsVersion::tls1_2;
  bool operator==(const ServerTlsConfig&) const = default;
};

// Who answers PING (README "Commands"): the proxy itself (it is alive), or every server on a
// side connection of its own (the client learns what its commands would meet: a server that
// is down, BUSY with a script, LOADING ...), at a connection to each server per PING.
enum class PingAnswer : uint8_t { proxy, servers };

struct ProxyConfig {
  Address listen{"127.0.0.1", 7000};
  bool plain_listener = true;                     // listen = "" turns it off (TLS only)
  std::optional<TlsListenConfig> tls;             // [proxy.tls]
  uint32_t max_clients = 10000;                   // more are answered -ERR and closed
  uint64_t max_request_bytes = 64ull << 20;       // one request, all of it
  uint32_t max_arguments = 1u << 20;              // arguments in one request
  uint32_t max_pending_per_client = 1024;         // pipelined requests in flight; then reads pause
  uint32_t client_idle_timeout_ms = 0;            // 0: never close idle clients
  bool allow_admin_commands = false;              // FLUSHALL / FLUSHDB
  PingAnswer ping = PingAnswer::proxy;
  // SIGTERM drains (README "Operating ringproxy"): no new connections, every request already
  // read answered and its copies settled, replay queues flushed where they can be; at most this
  // long, then the proxy exits whatever is left (logged).
  uint32_t shutdown_timeout_ms = 10000;
  // SO_REUSEPORT on the client listeners: a new ringproxy binds the same address while the old
  // one drains (a zero-downtime restart). Listen-time: a reload does not change it.
  bool reuse_port = false;
  // Who may connect: [proxy] password becomes the user "default" (admin access); every
  // [[proxy.users]] entry follows it. Empty: no authentication.
  std::vector<UserConfig> users;
  // Redis's rule: no users and a listener that is not loopback refuses to start.
  bool protected_mode = true;
};

struct MetricsConfig {
  std::optional<Address> listen = Address{"127.0.0.1", 9121};  // nullopt: no endpoint
};

// How a shard's servers are kept alike (see README "Replication").
enum class ReplicationStrategy : uint8_t { none, primary_replica, multi_primary };
enum class WriteAck : uint8_t { primary, one, quorum, all };
enum class ReadFrom : uint8_t { primary, prefer_replica, replica, any, quorum };
enum class PrimaryDown : uint8_t { fail, promote };

struct ReplicationConfig {
  ReplicationStrategy strategy = ReplicationStrategy::none;
  WriteAck write_ack = WriteAck::quorum;
  ReadFrom read_from = ReadFrom::primary;
  PrimaryDown on_primary_down = PrimaryDown::fail;  // primary-replica: refuse writes, or promote
  uint32_t replay_queue_max_writes = 100000;   // per server; beyond it the server is stale
  uint64_t replay_queue_max_bytes = 64ull << 20;
  uint32_t repair_interval_ms = 0;             // periodic anti-entropy repair; 0: only PROXY REPAIR
  uint32_t repair_keys_per_second = 2000;      // rate limit of a repair pass
};

struct ShardConfig {
  std::string name;  // the ring is built from this name (twemproxy's server "name")
  uint32_t weight = 1;
  std::vector<Address> servers;        // servers[0] is the primary (primary-replica)
  ReplicationConfig replication;       // [pool.replication], with this shard's overrides
  BackendAuth auth;                    // [pool]'s, unless the shard names its own
  std::optional<ServerTlsConfig> tls;  // [pool.tls], unless the shard has its own table
};

// What happens to keys whose shard changes when a reload changes the ring (README "Reload").
enum class Migration : uint8_t {
  none,  // they stay where they are (unreachable through the proxy until the ring changes back)
  warm,  // for warm_window_ms, a key is moved from its previous shard when a request touches it
  move,  // warm, plus a background pass that moves every such key, rate limited
};

struct PoolConfig {
  routing::HashFunction hash = routing::HashFunction::fnv1a_64;
  routing::Distribution distribution = routing::Distribution::ketama;
  std::string hash_tag;                 // "" (none) or two characters, e.g. "{}"
  uint32_t connect_timeout_ms = 1000;
  uint32_t request_timeout_ms = 2000;
  uint32_t failure_limit = 3;           // consecutive failures before a server is marked down
  uint32_t retry_interval_ms = 1000;    // how long a down server is left alone
  uint32_t backend_connections = 1;     // persistent connections per server
  uint32_t dedicated_connections = 64;  // per server, at most, held by watching clients (WATCH)
  Migration migration = Migration::none;
  uint32_t migration_keys_per_second = 5000;  // move: the background pass's rate limit
  uint32_t warm_window_ms = 600000;     // warm: how long after a reload keys are moved on touch
  uint32_t dns_refresh_ms = 30000;      // server host names are resolved again this often
  BackendAuth auth;                     // every shard's, unless it names its own
  std::optional<ServerTlsConfig> tls;   // [pool.tls]: every shard's, unless it has its own
  ReplicationConfig replication;        // the pool's default for every shard
  std::vector<ShardConfig> shards;
};

struct Config {
  ProxyConfig proxy;
  MetricsConfig metrics;
  PoolConfig pool;
};

std::string_view strategy_name(ReplicationStrategy s);
std::string_view write_ack_name(WriteAck a);
std::string_view read_from_name(ReadFrom r);
std::string_view ping_answer_name(PingAnswer p);
std::string_view primary_down_name(PrimaryDown p);
std::string_view migration_name(Migration m);
std::string_view access_name(Access a);
std::string_view tls_version_name(TlsVersion v);

// SHA-256 of a password, 32 raw bytes (what UserConfig keeps).
std::string password_digest(std::string_view password);
// A listener only this host can reach: 127.0.0.0/8, ::1.
bool is_loopback(const Address& address);

}  // namespace ringproxy::conf
