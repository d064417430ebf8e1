// The command table: lookups, and that every entry is classified the way ringproxy means it
// (a proxy that replicates writes must never treat a write as a read).
#include "routing/command_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

namespace ringproxy::routing {
namespace {

using C = CommandClass;

const CommandInfo& cmd(std::string_view name) {
  const CommandInfo* c = find_command(name);
  if (c == nullptr) ADD_FAILURE() << "unknown command " << name;
  static const CommandInfo kNone;
  return c ? *c : kNone;
}

const CommandInfo& sub(std::string_view container, std::string_view name) {
  const CommandInfo* c = find_subcommand(cmd(container), name);
  if (c == nullptr) ADD_FAILURE() << "unknown subcommand " << container << " " << name;
  static const CommandInfo kNone;
  return c ? *c : kNone;
}

// Every entry, subcommands included.
std::vector<const CommandInfo*> every_entry() {
  std::vector<const CommandInfo*> out;
  for (const CommandInfo& c : all_commands()) {
    out.push_back(&c);
    for (const CommandInfo& s : c.subcommands) out.push_back(&s);
  }
  return out;
}

bool has_keys(const CommandInfo& c) {
  for (const KeySpec& s : c.key_specs) {
    if (!s.not_key) return true;
  }
  return false;
}

bool writes_a_key(const CommandInfo& c) {
  for (const KeySpec& s : c.key_specs) {
    if (s.write) return true;
  }
  return false;
}

TEST(CommandTable, SortedLowerCaseAndUnique) {
  const auto all = all_commands();
  ASSERT_GT(all.size(), 200u);
  for (size_t i = 0; i < all.size(); ++i) {
    for (char ch : all[i].name) EXPECT_FALSE(ch >= 'A' && ch <= 'Z') << all[i].name;
    if (i > 0) {
      EXPECT_LT(all[i - 1].name, all[i].name);
    }
    const std::string prefix = std::string(all[i].name) + "|";
    for (size_t j = 0; j < all[i].subcommands.size(); ++j) {
      const std::string_view s = all[i].subcommands[j].name;
      EXPECT_EQ(s.substr(0, prefix.size()), prefix);
      if (j > 0) {
        EXPECT_LT(all[i].subcommands[j - 1].name, s);
      }
    }
  }
}

TEST(CommandTable, NameLengthBoundsMatchTheTable) {
  size_t longest = 0, longest_sub = 0;
  for (const CommandInfo& c : all_commands()) {
    longest = std::max(longest, c.name.size());
    for (const CommandInfo& s : c.subcommands) {
      longest_sub = std::max(longest_sub, s.name.size() - c.name.size() - 1);
    }
  }
  EXPECT_EQ(detail::kMaxCommandNameLength, longest);
  EXPECT_EQ(detail::kMaxSubcommandNameLength, longest_sub);
  EXPECT_LE(longest, 64u);  // command_table.cc's lower-casing buffer
  EXPECT_LE(longest_sub, 64u);
}

TEST(CommandTable, FindCommandIsCaseInsensitive) {
  const CommandInfo* get = find_command("get");
  ASSERT_NE(get, nullptr);
  EXPECT_EQ(get->name, "get");
  EXPECT_EQ(find_command("GET"), get);
  EXPECT_EQ(find_command("gEt"), get);
  EXPECT_EQ(find_command("GEORADIUSBYMEMBER_RO")->name, "georadiusbymember_ro");
  EXPECT_EQ(find_command("Restore-Asking")->name, "restore-asking");
  EXPECT_EQ(find_command("RESTORE")->name, "restore");
}

TEST(CommandTable, FindCommandRejectsUnknownNames) {
  EXPECT_EQ(find_command(""), nullptr);
  EXPECT_EQ(find_command("ge"), nullptr);
  EXPECT_EQ(find_command("gets"), nullptr);
  EXPECT_EQ(find_command("nosuchcommand"), nullptr);
  EXPECT_EQ(find_command("object|encoding"), nullptr);  // subcommands are not top-level
  EXPECT_EQ(find_command(std::string(1000, 'g')), nullptr);
  EXPECT_EQ(find_command(std::string_view("get\0", 4)), nullptr);
  EXPECT_EQ(find_command("g\xc3\xa9t"), nullptr);
  EXPECT_EQ(find_command("aaaa"), nullptr);  // before the first entry
  EXPECT_EQ(find_command("zzzz"), nullptr);  // after the last
}

TEST(CommandTable, FindSubcommand) {
  const CommandInfo& object = cmd("OBJECT");
  ASSERT_TRUE(object.is_container());
  const CommandInfo* enc = find_subcommand(object, "encoding");
  ASSERT_NE(enc, nullptr);
  EXPECT_EQ(enc->name, "object|encoding");
  EXPECT_EQ(find_subcommand(object, "ENCODING"), enc);
  EXPECT_EQ(find_subcommand(object, "EnCoDiNg"), enc);
  EXPECT_EQ(find_subcommand(object, "nosuch"), nullptr);
  EXPECT_EQ(find_subcommand(object, ""), nullptr);
  EXPECT_EQ(find_subcommand(object, "object|encoding"), nullptr);
  EXPECT_EQ(find_subcommand(object, std::string(100, 'e')), nullptr);
  EXPECT_EQ(find_subcommand(cmd("get"), "encoding"), nullptr);  // not a container
  EXPECT_EQ(sub("CLUSTER", "count-failure-reports").name, "cluster|count-failure-reports");
  EXPECT_EQ(sub("client", "NO-EVICT").name, "client|no-evict");
}

TEST(CommandTable, ArityOk) {
  EXPECT_TRUE(arity_ok(cmd("get"), 2));
  EXPECT_FALSE(arity_ok(cmd("get"), 1));
  EXPECT_FALSE(arity_ok(cmd("get"), 3));
  EXPECT_TRUE(arity_ok(cmd("set"), 3));
  EXPECT_TRUE(arity_ok(cmd("set"), 7));
  EXPECT_FALSE(arity_ok(cmd("set"), 2));
  EXPECT_TRUE(arity_ok(cmd("ping"), 1));
  EXPECT_TRUE(arity_ok(cmd("ping"), 2));
  EXPECT_TRUE(arity_ok(sub("object", "encoding"), 3));
  EXPECT_FALSE(arity_ok(sub("object", "encoding"), 4));
  EXPECT_TRUE(arity_ok(cmd("proxy"), 2));
  EXPECT_FALSE(arity_ok(cmd("proxy"), 1));
}

TEST(CommandTable, EveryEntryIsDeliberatelyClassified) {
  for (const CommandInfo* c : every_entry()) {
    SCOPED_TRACE(std::string(c->name));
    EXPECT_NE(c->arity, 0);
    switch (c->cls) {
      case C::unsupported:
        // The default class: only deliberate when it says why.
        EXPECT_FALSE(c->reason.empty());
        EXPECT_EQ(c->fanout, Fanout::single_shard);
        break;
      case C::read:
      case C::write:
      case C::admin:
      case C::local:
        EXPECT_TRUE(c->reason.empty());
        break;
      default:
        ADD_FAILURE() << "class out of range";
    }
    EXPECT_EQ(c->fanout == Fanout::single_shard || c->fanout == Fanout::random_shard, c->merge == Merge::forward);
  }
}

// Envoy's redis proxy once counted GETSET as a read; here a command redis flags `write`
// can never be a read, and a routed command that redis flags `write`, or whose key spec
// says it writes a key, is a write. (Unsupported ones, BLPOP, MOVE ..., are never routed.)
TEST(CommandTable, RedisWriteFlagMeansClassWrite) {
  size_t checked = 0;
  for (const CommandInfo* c : every_entry()) {
    SCOPED_TRACE(std::string(c->name));
    if (c->has_flag(kFlagWrite)) {
      EXPECT_NE(c->cls, C::read);
      EXPECT_NE(c->cls, C::local);
      if (has_keys(*c)) {
        EXPECT_TRUE(c->cls == C::write || c->cls == C::unsupported) << command_class_name(c->cls);
        ++checked;
      }
    }
    // PFCOUNT: flagged readonly, but its spec says RW (it may rewrite the cached cardinality).
    if (writes_a_key(*c) && c->name != "pfcount" && c->cls != C::unsupported) {
      EXPECT_EQ(c->cls, C::write);
    }
  }
  EXPECT_GT(checked, 100u);
}

TEST(CommandTable, RoutedCommandsHaveKeysToRouteBy) {
  for (const CommandInfo* c : every_entry()) {
    SCOPED_TRACE(std::string(c->name));
    if (c->is_container()) {
      EXPECT_TRUE(c->key_specs.empty());
      continue;
    }
    const bool routed = c->cls == C::read || c->cls == C::write;
    // (The keyspace's own commands: every shard, one at a time, or any.)
    const bool keyless_fanout = c->fanout == Fanout::all_shards || c->fanout == Fanout::all_servers ||
                                c->fanout == Fanout::scan || c->fanout == Fanout::random_shard;
    if (routed && !keyless_fanout) {
      EXPECT_TRUE(has_keys(*c));
    }
    // (WATCH is local, answered by the transactions, and names keys: they choose its shard.)
    if ((c->cls == C::local && !c->has_proxy_flag(routing::kProxyTransaction)) || keyless_fanout) {
      EXPECT_FALSE(has_keys(*c));
    }
  }
}

TEST(CommandTable, NamedClassifications) {
  const std::vector<std::pair<std::string_view, C>> want = {
      {"get", C::read},          {"set", C::write},          {"getset", C::write},
      {"getex", C::write},       {"getdel", C::write},       {"bitfield", C::write},
      {"bitfield_ro", C::read},  {"pfcount", C::read},       {"pfadd", C::write},
      {"pfmerge", C::write},     {"georadius", C::write},    {"georadiusbymember", C::write},
      {"georadius_ro", C::read}, {"georadiusbymember_ro", C::read},
      {"sort", C::write},        {"sort_ro", C::read},       {"eval", C::write},
      {"evalsha", C::write},     {"fcall", C::write},        {"eval_ro", C::read},
      {"evalsha_ro", C::read},   {"fcall_ro", C::read},      {"expire", C::write},
      {"ttl", C::read},          {"type", C::read},          {"persist", C::write},
      {"rename", C::write},      {"copy", C::write},         {"dump", C::read},
      {"restore", C::write},     {"xread", C::read},         {"xreadgroup", C::write},
      {"sinter", C::read},       {"sunionstore", C::write},  {"smove", C::write},
      {"msetnx", C::write},      {"lmove", C::write},        {"zunionstore", C::write},
      {"bitop", C::write},       {"mget", C::read},          {"mset", C::write},
      {"del", C::write},         {"unlink", C::write},       {"exists", C::read},
      {"touch", C::read},        {"dbsize", C::read},        {"flushall", C::admin},
      {"flushdb", C::admin},     {"ping", C::local},         {"echo", C::local},
      {"quit", C::local},        {"select", C::local},       {"hello", C::local},
      {"info", C::local},        {"client", C::local},       {"command", C::local},
      {"proxy", C::local},       {"time", C::read},   {"keys", C::read},
      {"scan", C::read},         {"randomkey", C::read},
  };
  for (const auto& [name, cls] : want) {
    EXPECT_EQ(command_class_name(cmd(name).cls), command_class_name(cls)) << name;
  }
  const std::vector<std::tuple<std::string_view, std::string_view, C>> subs = {
      {"object", "encoding", C::read},  {"object", "freq", C::read},
      {"object", "idletime", C::read},  {"object", "refcount", C::read},
      {"object", "help", C::unsupported}, {"memory", "usage", C::read},
      {"memory", "stats", C::unsupported}, {"memory", "doctor", C::unsupported},
      {"xinfo", "stream", C::read},     {"xinfo", "groups", C::read},
      {"xinfo", "consumers", C::read},  {"xgroup", "create", C::write},
      {"xgroup", "destroy", C::write},  {"xgroup", "setid", C::write},
      {"xgroup", "createconsumer", C::write}, {"xgroup", "delconsumer", C::write},
      {"client", "setname", C::local},  {"client", "getname", C::local},
      {"client", "id", C::local},       {"client", "list", C::local},
      {"client", "kill", C::local},     {"client", "info", C::local},
      {"client", "setinfo", C::local},  {"client", "no-evict", C::local},
      {"client", "pause", C::unsupported}, {"client", "tracking", C::unsupported},
      {"command", "count", C::local},   {"command", "info", C::local},
      {"command", "docs", C::local},    {"command", "list", C::local},
      {"command", "getkeys", C::local}, {"config", "get", C::admin},
      {"script", "load", C::write},     {"function", "load", C::write},
      {"script", "exists", C::read},    {"script", "flush", C::write},
      {"script", "kill", C::local}, {"function", "list", C::read},
      {"function", "dump", C::read},    {"function", "stats", C::local},
  };
  for (const auto& [container, name, cls] : subs) {
    EXPECT_EQ(command_class_name(sub(container, name).cls), command_class_name(cls))
        << container << " " << name;
  }
}

// One reason per family: every member of a family carries the same text.
TEST(CommandTable, UnsupportedFamiliesShareAReason) {
  const std::vector<std::vector<std::string_view>> families = {
      {"debug", "shutdown", "save", "bgsave", "bgrewriteaof", "lastsave",
       "replicaof", "slaveof", "sync", "psync", "monitor", "cluster", "readonly", "readwrite",
       "module", "slowlog", "latency", "failover", "swapdb", "move", "migrate",
       "lolwut", "role"},
  };
  std::vector<std::string_view> seen;
  for (const auto& family : families) {
    const std::string_view reason = cmd(family[0]).reason;
    EXPECT_FALSE(reason.empty()) << family[0];
    for (std::string_view name : family) {
      EXPECT_EQ(cmd(name).cls, C::unsupported) << name;
      EXPECT_EQ(cmd(name).reason, reason) << name;
    }
    for (std::string_view other : seen) EXPECT_NE(reason, other);
    seen.push_back(reason);
  }
  // Blocking commands (routing/blocking.h) and pub/sub (proxy/pubsub/).
  for (std::string_view name : {"blpop", "brpop", "blmove", "bzpopmin", "bzpopmax", "blmpop", "bzmpop", "brpoplpush"}) {
    EXPECT_EQ(cmd(name).cls, C::write) << name;
    EXPECT_TRUE(cmd(name).has_proxy_flag(routing::kProxyBlocking)) << name;
  }
  for (std::string_view name : {"subscribe", "unsubscribe", "publish", "psubscribe", "punsubscribe", "ssubscribe",
                                "sunsubscribe", "spublish", "wait"}) {
    EXPECT_EQ(cmd(name).cls, C::local) << name;
  }
  for (std::string_view name : {"channels", "numsub", "numpat", "shardchannels", "shardnumsub"}) {
    EXPECT_EQ(sub("pubsub", name).cls, C::local) << name;
  }
  for (std::string_view name : {"multi", "exec", "discard", "watch", "unwatch"}) {
    EXPECT_EQ(cmd(name).cls, C::local) << name;
    EXPECT_TRUE(cmd(name).has_proxy_flag(routing::kProxyTransaction)) << name;
  }
  EXPECT_EQ(cmd("auth").cls, C::local);  // the proxy's own users (issue 11)
  EXPECT_EQ(sub("acl", "whoami").cls, C::local);
  EXPECT_EQ(sub("acl", "setuser").reason, cmd("debug").reason);
  EXPECT_EQ(sub("memory", "stats").reason, cmd("debug").reason);
  for (const CommandInfo& s : cmd("cluster").subcommands) EXPECT_EQ(s.reason, cmd("debug").reason);
  // CONFIG: on every server, only with allow_admin_commands and an admin user (planner.cc).
  for (std::string_view name : {"get", "set", "resetstat", "rewrite"}) EXPECT_EQ(sub("config", name).cls, C::admin);
}

TEST(CommandTable, FanoutAndMerge) {
  struct Want {
    std::string_view name;
    Fanout fanout;
    Merge merge;
  };
  const std::vector<Want> want = {
      {"mget", Fanout::split_keys, Merge::array_by_position},
      {"keys", Fanout::all_shards, Merge::concat_arrays},
      {"script|load", Fanout::all_servers, Merge::same_reply},
      {"script|exists", Fanout::all_servers, Merge::all_of_arrays},
      {"script|flush", Fanout::all_servers, Merge::all_ok},
      {"function|load", Fanout::all_servers, Merge::same_reply},
      {"function|delete", Fanout::all_servers, Merge::all_ok},
      {"function|list", Fanout::random_shard, Merge::forward},
      {"function|dump", Fanout::random_shard, Merge::forward},
      {"function|flush", Fanout::all_servers, Merge::all_ok},
      {"function|restore", Fanout::all_servers, Merge::all_ok},
      {"script", Fanout::all_servers, Merge::all_ok},    // (bare containers: arity refuses them)
      {"function", Fanout::all_servers, Merge::all_ok},
      {"scan", Fanout::scan, Merge::scan_cursor},
      {"randomkey", Fanout::all_shards, Merge::any_key},
      {"mset", Fanout::split_pairs, Merge::all_ok},
      {"del", Fanout::split_keys, Merge::sum_integers},
      {"unlink", Fanout::split_keys, Merge::sum_integers},
      {"exists", Fanout::split_keys, Merge::sum_integers},
      {"touch", Fanout::split_keys, Merge::sum_integers},
      {"dbsize", Fanout::all_shards, Merge::sum_integers},
      {"flushall", Fanout::all_shards, Merge::all_ok},
      {"flushdb", Fanout::all_shards, Merge::all_ok},
      {"config", Fanout::all_servers, Merge::all_ok},
      {"config|get", Fanout::all_servers, Merge::config_get},
      {"config|set", Fanout::all_servers, Merge::all_ok},
      {"config|resetstat", Fanout::all_servers, Merge::all_ok},
      {"config|rewrite", Fanout::all_servers, Merge::all_ok},
      {"time", Fanout::random_shard, Merge::forward},
  };
  size_t fanned_out = 0;
  for (const CommandInfo* c : every_entry()) {
    if (c->fanout != Fanout::single_shard) ++fanned_out;
  }
  EXPECT_EQ(fanned_out, want.size());  // every other command is single_shard / forward
  for (const Want& w : want) {
    const size_t bar = w.name.find('|');
    const CommandInfo& c = bar == std::string_view::npos ? cmd(w.name) : sub(w.name.substr(0, bar), w.name.substr(bar + 1));
    EXPECT_EQ(c.fanout, w.fanout) << w.name;
    EXPECT_EQ(c.merge, w.merge) << w.name;
  }
  for (std::string_view name : {"msetnx", "sinter", "sunionstore", "rename", "smove", "eval",
                                "pfmerge", "bitop", "copy", "lmove", "zunionstore", "get"}) {
    EXPECT_EQ(cmd(name).fanout, Fanout::single_shard) << name;
    EXPECT_EQ(cmd(name).merge, Merge::forward) << name;
  }
}

TEST(CommandTable, ContainersCarryTheClassOfTheirSupportedSubcommands) {
  for (const CommandInfo& c : all_commands()) {
    if (!c.is_container()) continue;
    SCOPED_TRACE(std::string(c.name));
    bool any_supported = false;
    for (const CommandInfo& s : c.subcommands) {
      if (s.cls == C::unsupported) continue;
      any_supported = true;
      // (Reads and writes together, SCRIPT EXISTS and LOAD: the container is the stricter;
      // SCRIPT KILL is the proxy's own, on side connections.)
      if (!(s.cls == C::read && c.cls == C::write) && !(s.cls == C::local && c.cls == C::write)) {
        EXPECT_EQ(s.cls, c.cls) << s.name;
      }
    }
    if (!any_supported) {
      EXPECT_EQ(c.cls, C::unsupported);
    }
  }
  for (std::string_view name : {"client", "object", "memory", "xinfo", "xgroup", "command",
                                "config", "cluster", "acl", "script", "function", "pubsub"}) {
    EXPECT_TRUE(cmd(name).is_container()) << name;
  }
}

TEST(CommandTable, RedisMetadata) {
  const CommandInfo& get = cmd("get");
  EXPECT_EQ(get.arity, 2);
  EXPECT_TRUE(get.has_flag(kFlagReadonly));
  EXPECT_TRUE(get.has_flag(kFlagFast));
  EXPECT_FALSE(get.has_flag(kFlagWrite));
  EXPECT_EQ(get.first_key, 1);
  EXPECT_EQ(get.last_key, 1);
  EXPECT_EQ(get.key_step, 1);
  ASSERT_EQ(get.key_specs.size(), 1u);
  EXPECT_EQ(get.key_specs[0].begin, KeySpec::Begin::index);
  EXPECT_EQ(get.key_specs[0].begin_index, 1);
  EXPECT_FALSE(get.key_specs[0].write);

  const CommandInfo& mset = cmd("mset");
  EXPECT_EQ(mset.arity, -3);
  EXPECT_EQ(mset.key_step, 2);
  EXPECT_EQ(mset.key_specs[0].keystep, 2);
  EXPECT_EQ(mset.key_specs[0].lastkey, -1);
  EXPECT_TRUE(mset.key_specs[0].write);

  const CommandInfo& xread = cmd("xread");
  EXPECT_TRUE(xread.has_flag(kFlagBlocking));
  EXPECT_EQ(xread.key_specs[0].begin, KeySpec::Begin::keyword);
  EXPECT_EQ(xread.key_specs[0].keyword, "STREAMS");
  EXPECT_EQ(xread.key_specs[0].limit, 2);

  EXPECT_EQ(cmd("eval").key_specs[0].find, KeySpec::Find::keynum);
  EXPECT_TRUE(cmd("eval").has_flag(kFlagNoMandatoryKeys));
  EXPECT_TRUE(cmd("restore-asking").has_flag(kFlagAsking));
  EXPECT_TRUE(cmd("spublish").key_specs[0].not_key);
  EXPECT_TRUE(cmd("migrate").key_specs[1].incomplete);
  EXPECT_EQ(cmd("proxy").arity, -2);
  EXPECT_EQ(cmd("proxy").redis_flags, 0u);
}

TEST(CommandTable, ProxyNotes) {
  for (const CommandInfo* c : every_entry()) {
    const bool xread = c->name == "xread" || c->name == "xreadgroup";
    EXPECT_EQ(c->has_proxy_flag(kProxyBlockOption), xread) << c->name;
    const KeysProc want = xread ? KeysProc::xread
                          : c->name == "sort" ? KeysProc::sort : KeysProc::specs;
    EXPECT_EQ(c->keys_proc, want) << c->name;
  }
}

TEST(CommandTable, CommandClassNames) {
  EXPECT_EQ(command_class_name(C::read), "read");
  EXPECT_EQ(command_class_name(C::write), "write");
  EXPECT_EQ(command_class_name(C::admin), "admin");
  EXPECT_EQ(command_class_name(C::local), "local");
  EXPECT_EQ(command_class_name(C::unsupported), "unsupported");
}

}  // namespace
}  // namespace ringproxy::routing
