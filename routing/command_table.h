// The one command table: every command redis-server 7.0 knows, with its metadata taken
// from redis-server's own COMMAND INFO (arity, flags, key specs; generated into
// command_table_data.cc by scripts/gen_command_table), plus how ringproxy treats it:
// class, fan-out and merge (the policy table in that generator). Unknown names are rejected
// by the caller. Regenerate after a redis upgrade: /usr/bin/python3 scripts/gen_command_table
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ringproxy::routing {

// What the proxy does with a command.
enum class CommandClass : uint8_t {
  read,         // routed by key, does not modify data
  write,        // routed by key, modifies data (replicated by the replication layer)
  admin,        // fanned out to all shards only when [proxy] allow_admin_commands = true
  local,        // answered by the proxy itself (PING, ECHO, HELLO, INFO, PROXY ...)
  unsupported,  // rejected with CommandInfo::reason
};

// How a keyed command is spread over shards.
enum class Fanout : uint8_t {
  single_shard,  // all keys must map to one shard (or the command has no key at all)
  split_keys,    // one sub-command per shard with that shard's keys: MGET DEL UNLINK EXISTS TOUCH
  split_pairs,   // MSET: key/value pairs split by key
  // (Those without keys from here on: the planner tests `>= all_shards` once.)
  all_shards,    // sent unchanged to every shard: DBSIZE, FLUSHALL, FLUSHDB, KEYS
  all_servers,   // every live server of every shard, replicas too: SCRIPT LOAD, FUNCTION LOAD ...
  scan,          // SCAN: one shard at a time, the cursor saying which (planner.h ScanCursor)
  random_shard,  // no key, any shard will do: RANDOMKEY
  transaction,   // the proxy's EXEC: MULTI ... EXEC on the shard its arguments name (transaction.h)
};

// How the replies of a fanned-out command become one reply.
enum class Merge : uint8_t {
  forward,            // the one reply, unchanged
  array_by_position,  // MGET: elements put back in the order of the client's keys
  sum_integers,       // DEL UNLINK EXISTS TOUCH DBSIZE
  all_ok,             // MSET FLUSHALL FLUSHDB: +OK when every part said +OK
  concat_arrays,      // KEYS: every shard's elements, one array
  same_reply,         // SCRIPT LOAD, FUNCTION LOAD: every server's reply, which must be one
  all_of_arrays,      // SCRIPT EXISTS: 1 where every server says 1
  any_key,            // RANDOMKEY: a shard's key, from a different shard first each time; nil if none has one
  scan_cursor,        // SCAN: the server's cursor made the proxy's (shard, server, cursor)
  transaction,        // EXEC: the last of the server's replies to MULTI ... EXEC (transaction.h)
  config_get,         // CONFIG GET: the first server's, its secrets (passwords) hidden
};

// Redis command flags (the strings of COMMAND INFO's flags field).
enum RedisFlag : uint32_t {
  kFlagWrite = 1u << 0,
  kFlagReadonly = 1u << 1,
  kFlagDenyoom = 1u << 2,
  kFlagModule = 1u << 3,
  kFlagAdmin = 1u << 4,
  kFlagPubsub = 1u << 5,
  kFlagNoscript = 1u << 6,
  kFlagBlocking = 1u << 7,
  kFlagLoading = 1u << 8,
  kFlagStale = 1u << 9,
  kFlagSkipMonitor = 1u << 10,
  kFlagSkipSlowlog = 1u << 11,
  kFlagFast = 1u << 12,
  kFlagNoAuth = 1u << 13,
  kFlagMayReplicate = 1u << 14,
  kFlagNoMandatoryKeys = 1u << 15,
  kFlagNoAsyncLoading = 1u << 16,
  kFlagNoMulti = 1u << 17,
  kFlagMovableKeys = 1u << 18,
  kFlagAllowBusy = 1u << 19,
  kFlagAsking = 1u << 20,  // RESTORE-ASKING: accepted during a cluster slot migration
};

// ringproxy's own notes on a command, for what neither the class nor the key specs say.
enum ProxyFlag : uint8_t {
  // XREAD, XREADGROUP: they block when they carry the BLOCK option (has_block_option in
  // keys.h): then the blocking commands' way (routing/blocking.h), not a shared connection.
  kProxyBlockOption = 1u << 0,
  // EVAL, EVAL_RO, SCRIPT LOAD: the argument after the name is a script body, which the proxy
  // remembers (routing/scripts.h; SCRIPT LOAD's once every server took it).
  kProxyScriptBody = 1u << 1,
  // SCRIPT FLUSH: the proxy forgets every script body too (once the servers did).
  kProxyFlushesScripts = 1u << 2,
  // EVALSHA, EVALSHA_RO: sent as EVAL with the body when the proxy has it (data_path.cc).
  kProxyScriptCall = 1u << 3,
  // SCAN, KEYS: every shard's keyspace, which a key migration changes under them (refused then).
  kProxyWholeKeyspace = 1u << 4,
  // MULTI EXEC DISCARD WATCH UNWATCH: local, answered by the transactions (transaction.h).
  kProxyTransaction = 1u << 5,
  // XADD (and the proxy's EXEC of a transaction that holds one): on a replicated shard one
  // server runs it first, and the others get what it did: the stream ID it chose for '*'.
  kProxyLeads = 1u << 6,
  // BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP BZPOPMIN BZPOPMAX BZMPOP: they block (routing/blocking.h).
  kProxyBlocking = 1u << 7,
};

// Where the key specs fall short, find_key_positions parses the command's options by hand,
// as redis-server does with a "getkeys_proc" for the same commands.
enum class KeysProc : uint8_t {
  specs,  // the key specs find every key
  sort,   // SORT: the STORE destination (redis's spec for it is "unknown": it may be anywhere)
  xread,  // XREAD, XREADGROUP: the keys after STREAMS; parsing the options like redis does
          // keeps a group or consumer named "streams" from fooling the keyword search
};

// One key specification, as redis-server 7 describes it (see "Command key specifications"
// in the Redis docs). begin_search finds the first key; find_keys finds the rest.
struct KeySpec {
  enum class Begin : uint8_t { index, keyword, unknown };
  enum class Find : uint8_t { range, keynum, unknown };

  Begin begin = Begin::unknown;
  int16_t begin_index = 0;        // Begin::index: argv position of the first key
  std::string_view keyword = {};  // Begin::keyword: the token that precedes the keys
  int16_t keyword_startfrom = 0;  // Begin::keyword: where to start looking (negative: from the end)

  Find find = Find::unknown;
  int16_t lastkey = 0;   // Find::range: last key relative to the first (-1: last argument)
  int16_t keystep = 1;   // both: step between keys
  int16_t limit = 0;     // Find::range: with lastkey -1, 0 = all, N = 1/N of the remaining
  int16_t keynumidx = 0; // Find::keynum: position of the key count, relative to begin
  int16_t firstkey = 0;  // Find::keynum: first key, relative to begin

  bool write = false;       // RW/OW/RM key spec flags: the key is modified
  bool not_key = false;     // not_key: a shard channel, not a key (SPUBLISH ...); skipped
  bool incomplete = false;  // incomplete: the spec may miss some keys (MIGRATE's KEYS)
};

// (Every member has a default initializer, so GCC's -Wmissing-field-initializers accepts
// the designated initializers of the generated table, which name only non-defaults.)
//
// Containers (CLIENT, OBJECT, XGROUP ...): classify a request by its subcommand's entry
// (find_subcommand on args[1]); subcommands carry their own arity, flags and key specs,
// with argv positions counted from the container's name (OBJECT ENCODING k: key at 2).
// A container's own entry has no key specs; its class is the class of its supported
// subcommands (so a check made on the container never rejects them), or the common
// unsupported reason when none is supported. Alone it only applies to a bare COMMAND.
struct CommandInfo {
  std::string_view name = {};  // lower case; subcommands as "container|sub" e.g. "object|encoding"
  int16_t arity = 0;      // Redis semantics: N exact argc, -N at least N
  uint32_t redis_flags = 0;
  int16_t first_key = 0, last_key = 0, key_step = 0;  // legacy COMMAND fields
  std::span<const KeySpec> key_specs = {};
  std::span<const CommandInfo> subcommands = {};      // for containers (CLIENT, OBJECT, ...)

  CommandClass cls = CommandClass::unsupported;
  Fanout fanout = Fanout::single_shard;
  Merge merge = Merge::forward;
  std::string_view reason = {};  // unsupported: why a sharding proxy cannot do it, for the error
  uint8_t proxy_flags = 0;  // ProxyFlag bits
  KeysProc keys_proc = KeysProc::specs;

  bool has_flag(RedisFlag f) const { return (redis_flags & f) != 0; }
  bool has_proxy_flag(ProxyFlag f) const { return (proxy_flags & f) != 0; }
  bool is_container() const { return !subcommands.empty(); }
};

// Case-insensitive lookup of a top-level command; nullptr when unknown.
const CommandInfo* find_command(std::string_view name);
// Case-insensitive lookup of a subcommand of a container; nullptr when unknown.
const CommandInfo* find_subcommand(const CommandInfo& container, std::string_view sub);

// Every top-level command, in table order.
std::span<const CommandInfo> all_commands();

// Arity check with Redis semantics.
inline bool arity_ok(const CommandInfo& c, size_t argc) {
  return c.arity >= 0 ? argc == static_cast<size_t>(c.arity)
                      : argc >= static_cast<size_t>(-c.arity);
}

std::string_view command_class_name(CommandClass c);
// A command's name as redis writes it in errors: upper case, "CLIENT KILL" for "client|kill".
std::string display_name(std::string_view name);

namespace detail {
// Defined in the generated command_table_data.cc. Sorted by name (bytewise, lower case),
// as are the subcommands of each container, so lookups can binary-search.
extern const std::span<const CommandInfo> kCommands;
// The longest top-level name, and the longest subcommand name (the part after '|').
extern const size_t kMaxCommandNameLength;
extern const size_t kMaxSubcommandNameLength;
// The redis-server the table was generated from.
extern const std::string_view kRedisVersion;
}  // namespace detail

// The redis version whose commands the proxy knows (INFO's redis_version: what clients such
// as RQ check features against).
inline std::string_view redis_version() { return detail::kRedisVersion; }

}  // namespace ringproxy::routing
