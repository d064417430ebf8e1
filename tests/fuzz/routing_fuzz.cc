// libFuzzer target: classify -> plan -> reduce, as DataPath::dispatch and send_plan drive them,
// for arbitrary commands, server health and replies.
//
// Input: one mode byte, then
//   even mode: a client request in RESP (multibulk or inline), then the control bytes;
//   odd mode:  the control bytes only; the command is picked from the command table and
//              its arguments from a dictionary of the tokens key specs look for.
// The control bytes (read with FuzzedDataProvider) choose the replication of the two
// replicated shards of a fixed 3-shard config (loaded with conf::parse_config), each
// server's health, and then the servers' outcomes and replies, in an order they choose.
//
// Checked: lookups are case-insensitive and exact; key positions lie inside the request;
// the plan's fragment/group/key indices are in range and consistent with the table and
// the health; each group's WriteTracker answers exactly once, only from a server that
// replied; the Reducer completes exactly when the last group answers; the client gets
// one well-formed RESP reply; a rewritten relative expiry keeps the same keys.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "conf/loader.h"
#include "routing/resp/reply_scanner.h"
#include "routing/resp/request_parser.h"
#include "routing/command_table.h"
#include "routing/keys.h"
#include "routing/planner.h"
#include "routing/transaction.h"
#include "routing/reducer.h"
#include "routing/replication.h"
#include "routing/routing_table.h"

namespace {

using namespace ringproxy;
using namespace ringproxy::routing;


constexpr uint32_t kServers = 6;  // shard1: 1 server, shard2: 2, shard3: 3

// The config: shard1 alone; shard2 and shard3 replicated, as the fuzzer chooses.
struct Replication {
  uint8_t strategy, write_ack, read_from, on_primary_down;  // indexes into the name lists
  uint32_t key() const { return strategy | write_ack << 2 | read_from << 4 | on_primary_down << 8; }
};

const char* const kStrategies[] = {"primary-replica", "multi-primary"};
const char* const kWriteAcks[] = {"primary", "one", "quorum", "all"};
const char* const kReadFroms[] = {"primary", "prefer-replica", "replica", "any", "quorum"};
const char* const kPrimaryDowns[] = {"fail", "promote"};

Replication pick_replication(FuzzedDataProvider& in) {
  return {in.ConsumeIntegralInRange<uint8_t>(0, 1), in.ConsumeIntegralInRange<uint8_t>(0, 3),
          in.ConsumeIntegralInRange<uint8_t>(0, 4), in.ConsumeIntegralInRange<uint8_t>(0, 1)};
}

std::string replication_table(const Replication& r) {
  return std::string("replication = { strategy = \"") + kStrategies[r.strategy] + "\", write_ack = \"" +
         kWriteAcks[r.write_ack] + "\", read_from = \"" + kReadFroms[r.read_from] + "\", on_primary_down = \"" +
         kPrimaryDowns[r.on_primary_down] + "\" }\n";
}

// Through the real loader, so that only configs it accepts are planned over. Cached: a
// ketama table costs more to build than a plan.
std::shared_ptr<const RoutingTable> table_for(const Replication& a, const Replication& b) {
  static std::map<uint32_t, std::shared_ptr<const RoutingTable>> cache;
  const uint32_t key = a.key() << 12 | b.key();
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  const std::string text = "[pool]\nhash_tag = \"{}\"\n"
                           "[[pool.shards]]\nname = \"shard1\"\nservers = [\"127.0.0.1:7001\"]\n"
                           "[[pool.shards]]\nname = \"shard2\"\nservers = [\"127.0.0.1:7002\", \"127.0.0.1:7003\"]\n" +
                           replication_table(a) +
                           "[[pool.shards]]\nname = \"shard3\"\n"
                           "servers = [\"127.0.0.1:7004\", \"127.0.0.1:7005\", \"127.0.0.1:7006\"]\n" +
                           replication_table(b);
  conf::LoadResult loaded = conf::parse_config(text, "routing_fuzz.toml");
  std::shared_ptr<const RoutingTable> table;
  if (loaded.config) {
    table = RoutingTable::build(loaded.config->pool);
    CHECK(table->servers().size() == kServers);
  }
  if (cache.size() > 512) cache.clear();
  cache.emplace(key, table);
  return table;
}

// Tokens that the key specs and option parsers look for, and keys on each shard.
const std::vector<std::string>& dictionary() {
  static const std::vector<std::string> words = [] {
    std::set<std::string> set = {"STREAMS", "BLOCK", "COUNT", "GROUP", "NOACK", "STORE", "BY", "GET", "LIMIT",
                                 "EX", "PX", "EXAT", "PXAT", "KEEPTTL", "PERSIST", "ABSTTL", "NX", "XX", "GT",
                                 "LT", "0", "1", "2", "3", "-1", "-2", "01", "+1", "10", "100",
                                 "9223372036854775807", "-9223372036854775808", "99999999999999999999", "$",
                                 ">", "*", "", "{a}1", "{a}2", "{b}1", "{b}2", "{c}1", "k1", "k2", "k3", "k4",
                                 "v", "x"};
    auto add_keywords = [&set](const CommandInfo& c) {
      for (const KeySpec& s : c.key_specs) {
        if (!s.keyword.empty()) set.emplace(s.keyword);
      }
    };
    for (const CommandInfo& c : all_commands()) {
      add_keywords(c);
      for (const CommandInfo& sub : c.subcommands) add_keywords(sub);
    }
    return std::vector<std::string>(set.begin(), set.end());
  }();
  return words;
}

std::string random_case(FuzzedDataProvider& in, std::string_view word) {
  std::string out(word);
  const uint8_t mask = in.ConsumeIntegral<uint8_t>();
  for (size_t i = 0; i < out.size(); ++i) {
    if (mask & (1u << (i % 8))) out[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[i])));
  }
  return out;
}

// Odd mode: a command from the table (or not), its subcommand, and arguments.
void pick_command(FuzzedDataProvider& in, std::vector<std::string>& words) {
  const std::span<const CommandInfo> commands = all_commands();
  const uint8_t how = in.ConsumeIntegral<uint8_t>();
  const CommandInfo* cmd = nullptr;
  if (how % 8 != 0) {
    cmd = &commands[in.ConsumeIntegralInRange<size_t>(0, commands.size() - 1)];
    words.push_back(random_case(in, cmd->name));
  } else {
    words.push_back(in.ConsumeRandomLengthString(20));
  }
  if (cmd != nullptr && cmd->is_container() && how % 16 != 1) {
    const CommandInfo& sub = cmd->subcommands[in.ConsumeIntegralInRange<size_t>(0, cmd->subcommands.size() - 1)];
    words.push_back(random_case(in, sub.name.substr(sub.name.find('|') + 1)));
  }
  const size_t extra = in.ConsumeIntegralInRange<size_t>(0, 10);
  for (size_t i = 0; i < extra && in.remaining_bytes() > 0; ++i) {
    if (in.ConsumeBool()) {
      words.push_back(in.ConsumeRandomLengthString(12));
    } else {
      const std::vector<std::string>& dict = dictionary();
      words.push_back(random_case(in, dict[in.ConsumeIntegralInRange<size_t>(0, dict.size() - 1)]));
    }
  }
}

// The text of a status or error reply: no CR or LF.
std::string line(std::string text) {
  std::replace_if(text.begin(), text.end(), [](char c) { return c == '\r' || c == '\n'; }, ' ');
  return text;
}

// A reply a server might send: usual shapes, numbers at the edges, or raw bytes that frame.
std::string pick_reply(FuzzedDataProvider& in, size_t keys) {
  switch (in.ConsumeIntegralInRange<int>(0, 9)) {
    case 0: return "+OK\r\n";
    case 1: return "-ERR " + line(in.ConsumeRandomLengthString(8)) + "\r\n";
    case 2: return ":" + std::to_string(in.ConsumeIntegral<int64_t>()) + "\r\n";
    case 3: return ":" + std::to_string(in.ConsumeIntegralInRange<int64_t>(-2, 5)) + "\r\n";
    case 4: return "$-1\r\n";
    case 5: return "*-1\r\n";
    case 6:
    case 7: {  // an array, usually of the size an MGET fragment expects
      size_t n = in.ConsumeBool() ? keys : in.ConsumeIntegralInRange<size_t>(0, 4);
      std::string out = "*" + std::to_string(n) + "\r\n";
      for (size_t i = 0; i < n; ++i) {
        std::string v = in.ConsumeRandomLengthString(6);
        out += in.ConsumeBool() ? "$-1\r\n" : "$" + std::to_string(v.size()) + "\r\n" + v + "\r\n";
      }
      return out;
    }
    case 8: {
      std::string v = in.ConsumeRandomLengthString(8);
      return "$" + std::to_string(v.size()) + "\r\n" + v + "\r\n";
    }
    default: {  // raw bytes, when they frame as one reply (the proxy only passes on whole replies)
      std::string raw = in.ConsumeRandomLengthString(32);
      resp::ReplyScanner scanner;
      if (scanner.scan(raw.data(), raw.size()) != resp::ParseStatus::complete) return "$0\r\n\r\n";
      return raw.substr(0, scanner.reply_bytes());
    }
  }
}

bool one_reply(std::string_view reply) {
  resp::ReplyScanner scanner;
  return scanner.scan(reply.data(), reply.size()) == resp::ParseStatus::complete &&
         scanner.reply_bytes() == reply.size();
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// classify, as DataPath::dispatch does: nullptr when the proxy answers by itself.
const CommandInfo* classify(std::span<const std::string_view> args) {
  const CommandInfo* cmd = find_command(args[0]);
  if (cmd == nullptr) return nullptr;
  CHECK(cmd->name == lower(args[0]));
  if (cmd->is_container() && args.size() >= 2) {
    const CommandInfo* sub = find_subcommand(*cmd, args[1]);
    if (sub == nullptr) return nullptr;
    CHECK(sub->name == std::string(cmd->name) + "|" + lower(args[1]));
    cmd = sub;
  }
  if (!arity_ok(*cmd, args.size())) return nullptr;
  if (cmd->cls == CommandClass::local) return nullptr;
  if (has_block_option(*cmd, args)) return nullptr;
  return cmd;
}

void check_keys(const CommandInfo& cmd, std::span<const std::string_view> args) {
  std::vector<uint32_t> positions = {99};  // appended to, never disturbed
  std::string_view error = find_key_positions(cmd, args, positions);
  CHECK(positions[0] == 99);
  if (!error.empty()) {
    CHECK(positions.size() == 1);
    return;
  }
  for (size_t i = 1; i < positions.size(); ++i) {
    CHECK(positions[i] >= 1 && positions[i] < args.size());
    if (i > 1) CHECK(positions[i] > positions[i - 1]);  // in argument order, unique
  }
}

void check_plan(const CommandInfo& cmd, std::span<const std::string_view> args, const RoutingTable& table,
                std::span<const uint8_t> mode, const Plan& plan) {
  if (plan.kind == PlanKind::reject) {
    CHECK(!plan.error.empty());
    return;
  }
  CHECK(plan.error.empty());
  CHECK(!plan.groups.empty());
  const bool write = cmd.cls == CommandClass::write || cmd.cls == CommandClass::admin;
  // A key count redis refuses too goes to one live server, which refuses it (planner.cc).
  std::vector<uint32_t> positions;
  const bool refused_count = is_key_count_error(find_key_positions(cmd, args, positions));
  if (refused_count) CHECK(plan.kind == PlanKind::forward && plan.groups.size() == 1 && plan.fragments.size() == 1);
  uint32_t next = 0;
  bool any_replicated = false;
  for (uint32_t g = 0; g < plan.groups.size(); ++g) {
    const PlannedGroup& group = plan.groups[g];
    CHECK(group.shard < table.shards().size());
    CHECK(group.first == next && group.count >= 1);
    next += group.count;
    CHECK(next <= plan.fragments.size());
    CHECK(group.rule.needed >= 1 && group.rule.needed <= group.count);
    any_replicated = any_replicated || group.count > 1;
    const ShardEntry& shard = table.shards()[group.shard];
    // (SCRIPT LOAD and the like go to each server on its own: not replicated writes.)
    if (write && shard.replication.strategy != conf::ReplicationStrategy::none && cmd.fanout != Fanout::all_servers &&
        !refused_count) {
      CHECK(group.count == shard.servers.size());
    } else if (!group.read_quorum) {
      CHECK(group.count == 1);
    }
    for (uint32_t i = group.first; i < group.first + group.count; ++i) {
      const PlannedFragment& f = plan.fragments[i];
      CHECK(f.group == g && f.shard == group.shard);
      CHECK(f.server < table.servers().size() && table.servers()[f.server].shard == f.shard);
      CHECK(f.slot == i - group.first);
      CHECK(f.stage == 0 || (group.rule.primary_first && f.slot > 0));
      CHECK(f.keys_begin == plan.fragments[group.first].keys_begin);
      CHECK(f.keys_end == plan.fragments[group.first].keys_end);
      const uint8_t m = mode[f.server];
      switch (f.delivery) {
        case Delivery::send: CHECK(m == kServerLive); break;
        case Delivery::replay: CHECK(m == kServerQueue); break;
        case Delivery::skip: CHECK(m == kServerSkip); break;
      }
      if (group.count == 1 || group.read_quorum || (group.rule.primary_first && f.slot == 0)) {
        CHECK(f.delivery == Delivery::send);  // reads and leaders go to live servers only
      }
    }
    // A server appears once per group.
    std::set<uint32_t> servers;
    for (uint32_t i = group.first; i < group.first + group.count; ++i) servers.insert(plan.fragments[i].server);
    CHECK(servers.size() == group.count);
  }
  CHECK(next == plan.fragments.size());
  CHECK(plan.replicated == any_replicated);

  // A shard appears once, but for the all-servers plans (SCRIPT LOAD...): one group per server.
  std::set<uint32_t> shards;
  if (cmd.fanout != Fanout::all_servers) {
    for (const PlannedGroup& group : plan.groups) CHECK(shards.insert(group.shard).second);
  }
  switch (plan.kind) {
    case PlanKind::forward:
      CHECK(plan.groups.size() == 1 && plan.key_args.empty());
      break;
    case PlanKind::broadcast:
      if (cmd.fanout == Fanout::all_servers) {
        for (const PlannedGroup& group : plan.groups) CHECK(group.count == 1);
        CHECK(!plan.groups.empty() && plan.key_args.empty());
      } else {
        CHECK(plan.groups.size() == table.shards().size() && plan.key_args.empty());
      }
      break;
    case PlanKind::rewrite:  // SCAN: one server, one argument replaced
      CHECK(plan.groups.size() == 1 && plan.fragments.size() == 1);
      CHECK(plan.rewritten_position >= 1 && plan.rewritten_position < args.size());
      CHECK(plan.scan.shard == plan.groups[0].shard && plan.scan.shards == table.shards().size());
      break;
    case PlanKind::split: {
      CHECK(plan.groups.size() >= 2);
      CHECK(plan.key_args.size() == plan.key_slots.size());
      std::vector<uint32_t> slots = plan.key_slots;
      std::sort(slots.begin(), slots.end());
      for (uint32_t i = 0; i < slots.size(); ++i) CHECK(slots[i] == i);  // a permutation
      uint32_t key_next = 0;
      for (const PlannedGroup& group : plan.groups) {
        const PlannedFragment& f = plan.fragments[group.first];
        CHECK(f.keys_begin == key_next && f.keys_end > f.keys_begin && f.keys_end <= plan.key_args.size());
        key_next = f.keys_end;
        for (uint32_t k = f.keys_begin; k < f.keys_end; ++k) {
          const uint32_t position = plan.key_args[k];
          CHECK(position >= 1 && position < args.size());
          if (cmd.fanout == Fanout::split_pairs) CHECK(position + 1 < args.size());
          CHECK(table.shard_of(args[position]) == group.shard);
          if (k > f.keys_begin) CHECK(plan.key_slots[k] > plan.key_slots[k - 1]);  // client order
        }
      }
      CHECK(key_next == plan.key_args.size());
      break;
    }
    case PlanKind::transaction:  // EXEC: one group, on the shard its arguments name
      CHECK(plan.groups.size() == 1 && plan.merge == Merge::transaction && plan.key_args.empty());
      CHECK(args.size() == 4 && std::to_string(plan.groups[0].shard) == args[1]);
      CHECK(table.shards()[plan.groups[0].shard].name == args[2]);
      break;
    case PlanKind::reject:
      break;
  }
}

// send -> outcomes -> reduce, as DataPath::send_plan, on_group_outcome and answer_group do.
void run_plan(FuzzedDataProvider& in, const RoutingTable& table, const Plan& plan) {
  const size_t n = plan.fragments.size();
  enum class State : uint8_t { planned, sent, done, cancelled };
  std::vector<State> state(n, State::planned);
  std::vector<std::string> replies(n);
  std::vector<WriteTracker::Outcome> outcomes(n);
  std::vector<WriteTracker> trackers;
  std::vector<bool> answered(plan.groups.size(), false);
  std::vector<std::string> group_replies(plan.groups.size());
  for (const PlannedGroup& g : plan.groups) trackers.emplace_back(g.rule, g.count);

  std::unique_ptr<Reducer> reducer;
  if (plan.kind != PlanKind::forward) {
    std::vector<std::vector<uint32_t>> slots(plan.groups.size());
    if (plan.kind == PlanKind::split) {
      for (size_t g = 0; g < plan.groups.size(); ++g) {
        const PlannedFragment& f = plan.fragments[plan.groups[g].first];
        slots[g].assign(plan.key_slots.begin() + f.keys_begin, plan.key_slots.begin() + f.keys_end);
      }
    }
    reducer = std::make_unique<Reducer>(plan.merge, std::move(slots), plan.key_args.size());
  }
  int client_replies = 0;
  std::string final_reply;
  auto deliver = [&](uint32_t g, std::string_view reply) {
    CHECK(!answered[g]);
    answered[g] = true;
    group_replies[g] = std::string(reply);
    if (!reducer) {
      ++client_replies;
      final_reply = group_replies[g];
      return;
    }
    const size_t before = std::count(answered.begin(), answered.end(), true);
    const bool last = reducer->add(g, group_replies[g]);
    CHECK(last == (before == answered.size()));
    CHECK(reducer->complete() == last);
    if (last) {
      ++client_replies;
      reducer->finish(final_reply);
    }
  };

  auto outcome = [&](uint32_t i) {
    const PlannedFragment& f = plan.fragments[i];
    const PlannedGroup& group = plan.groups[f.group];
    WriteTracker& tracker = trackers[f.group];
    state[i] = State::done;
    const WriteTracker::Decision d = tracker.on_outcome(f.slot, outcomes[i]);
    CHECK(tracker.acks() <= group.count);
    CHECK(!d.send_to_replicas || (group.rule.primary_first && f.slot == 0 && outcomes[i] == WriteTracker::Outcome::ack));
    CHECK(!d.cancel_replicas || (group.rule.primary_first && f.slot == 0));
    if (d.send_to_replicas) {
      for (uint32_t k = group.first; k < group.first + group.count; ++k) {
        if (state[k] == State::planned) state[k] = State::sent;
      }
    }
    if (d.cancel_replicas) {
      for (uint32_t k = group.first; k < group.first + group.count; ++k) {
        if (state[k] == State::planned) state[k] = State::cancelled;
      }
    }
    if (!d.answer) return;
    CHECK(!answered[f.group]);
    CHECK(tracker.answered());
    CHECK(d.reply_from >= -1 && d.reply_from < static_cast<int>(group.count));
    std::string reply;
    const bool all_done = std::all_of(state.begin() + group.first, state.begin() + group.first + group.count,
                                      [](State s) { return s == State::done; });
    if (group.read_quorum && d.reply_from >= 0 && all_done) {
      // DataPath::answer_quorum_read: equal replies, or the authoritative copy (and a repair).
      std::vector<std::optional<std::string_view>> copies;
      for (uint32_t k = group.first; k < group.first + group.count; ++k) copies.emplace_back(replies[k]);
      const size_t winner = repair_winner(table.shards()[group.shard].replication.strategy, copies);
      CHECK(winner < group.count);
      reply = replies[group.first + winner];
    } else if (d.reply_from >= 0) {
      // (A read-quorum group answered by an early error lands here: its other servers may
      // still be in flight, and DataPath::answer_quorum_read answers with the reply that decided
      // it. It used to compare them all and answer with a reply not yet received: an empty
      // one, found by this model; e2e test_fuzz_findings.)
      const uint32_t from = group.first + d.reply_from;
      CHECK(state[from] == State::done && outcomes[from] != WriteTracker::Outcome::missed);
      if (tracker.acks() >= tracker.needed()) CHECK(outcomes[from] == WriteTracker::Outcome::ack);
      reply = replies[from];
    } else if (group.count == 1) {
      reply = replies[i];
    } else {
      CHECK(tracker.acks() < tracker.needed());
      reply = tracker.shortfall_error(table.shards()[group.shard].name);
    }
    CHECK(one_reply(reply));
    deliver(f.group, reply);
  };

  // Copies for servers that are down or stale are settled first (send_plan).
  for (uint32_t i = 0; i < n; ++i) {
    if (plan.fragments[i].delivery == Delivery::send) continue;
    replies[i] = "-ERR server down\r\n";
    outcomes[i] = WriteTracker::Outcome::missed;
    outcome(i);
  }
  for (uint32_t i = 0; i < n; ++i) {
    if (state[i] == State::planned && plan.fragments[i].stage == 0) state[i] = State::sent;
  }
  // Then the servers answer, in the order the fuzzer picks.
  std::vector<uint32_t> in_flight;
  for (int rounds = 0; rounds < 64; ++rounds) {
    in_flight.clear();
    for (uint32_t i = 0; i < n; ++i) {
      if (state[i] == State::sent) in_flight.push_back(i);
    }
    if (in_flight.empty()) break;
    const uint32_t i = in_flight[in.ConsumeIntegralInRange<size_t>(0, in_flight.size() - 1)];
    const PlannedFragment& f = plan.fragments[i];
    const uint32_t keys = f.keys_end - f.keys_begin;
    if (in.ConsumeIntegralInRange<int>(0, 5) == 0) {  // timed out or disconnected
      replies[i] = "-ERR server timed out\r\n";
      outcomes[i] = WriteTracker::Outcome::missed;
    } else {
      replies[i] = pick_reply(in, keys);
      outcomes[i] = resp::is_error_reply(replies[i]) ? WriteTracker::Outcome::error_reply : WriteTracker::Outcome::ack;
    }
    outcome(i);
  }
  // Every server has answered (or its copy was cancelled): the client has its one reply.
  if (std::none_of(state.begin(), state.end(), [](State s) { return s == State::sent || s == State::planned; })) {
    for (size_t g = 0; g < answered.size(); ++g) CHECK(answered[g]);
    CHECK(client_replies == 1);
  }
  CHECK(client_replies <= 1);
  if (client_replies == 1) {
    CHECK(one_reply(final_reply));
    if (reducer && plan.merge == Merge::array_by_position && final_reply[0] == '*') {
      std::vector<std::string_view> elements;
      CHECK(resp::split_array_reply(final_reply, elements) && elements.size() == plan.key_args.size());
    }
  }
}

// A replicated write's relative expiry made absolute must touch the same keys.
void check_rewrite(FuzzedDataProvider& in, const CommandInfo& cmd, std::span<const std::string_view> args) {
  std::vector<std::string> rewritten;
  const uint64_t now_ms = in.ConsumeIntegralInRange<uint64_t>(0, uint64_t{1} << 43);
  if (!rewrite_relative_expiry(args, now_ms, rewritten)) return;
  CHECK(!rewritten.empty());
  std::vector<std::string_view> views(rewritten.begin(), rewritten.end());
  const CommandInfo* again = find_command(views[0]);
  CHECK(again != nullptr && again->cls == CommandClass::write && arity_ok(*again, views.size()));
  std::vector<uint32_t> before, after;
  if (!find_key_positions(cmd, args, before).empty()) return;
  CHECK(find_key_positions(*again, views, after).empty());
  CHECK(before.size() == after.size());
  for (size_t i = 0; i < before.size(); ++i) CHECK(args[before[i]] == views[after[i]]);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::vector<std::string> words;
  std::string request;
  size_t used = 1;
  if (data[0] % 2 == 0) {
    // A client request, parsed by the real parser (the data path's first box).
    request.assign(reinterpret_cast<const char*>(data) + 1, size - 1);
    resp::RequestParser parser;
    if (parser.parse(request.data(), request.size()) != resp::ParseStatus::complete) return 0;
    for (resp::ArgRef a : parser.args()) words.emplace_back(request.data() + a.offset, a.length);
    used += parser.request_bytes();
  }
  FuzzedDataProvider in(data + used, size - used);
  if (data[0] % 2 == 1) pick_command(in, words);
  if (words.empty() || words.size() > 64) return 0;
  std::vector<std::string_view> args(words.begin(), words.end());

  const CommandInfo* cmd = classify(args);
  if (cmd == nullptr) return 0;
  check_keys(*cmd, args);

  const Replication r2 = pick_replication(in), r3 = pick_replication(in);
  std::shared_ptr<const RoutingTable> table = table_for(r2, r3);
  if (!table) return 0;  // a combination the loader refuses
  uint8_t mode[kServers];
  uint32_t pending[kServers];
  for (uint32_t s = 0; s < kServers; ++s) {
    const uint8_t m = in.ConsumeIntegralInRange<uint8_t>(0, 7);
    mode[s] = m < 5 ? kServerLive : m == 5 ? kServerQueue : kServerSkip;  // mostly live
    pending[s] = in.ConsumeIntegralInRange<uint32_t>(0, 3);
  }
  const Health health{mode, pending, in.ConsumeIntegral<uint64_t>()};
  const PlanSettings settings{in.ConsumeBool()};

  // The proxy's EXEC of a queued transaction (transaction.h): its shard's number and name, or
  // a number past the last (a reload renumbered the shards meanwhile).
  if (cmd->has_proxy_flag(kProxyTransaction) && cmd->name == "exec") {
    const auto shard = in.ConsumeIntegralInRange<uint32_t>(0, static_cast<uint32_t>(table->shards().size()));
    words = {"EXEC", std::to_string(shard), shard < table->shards().size() ? table->shards()[shard].name : "gone",
             std::to_string(in.ConsumeIntegralInRange<uint32_t>(2, 64))};
    args.assign(words.begin(), words.end());
    cmd = &transaction_command(in.ConsumeBool());
  }
  static PlanScratch scratch;  // reused across requests, as the proxy does
  static Plan planned;
  plan(*cmd, args, *table, health, settings, scratch, planned);
  check_plan(*cmd, args, *table, mode, planned);
  if (planned.kind == PlanKind::reject) return 0;
  if (planned.replicated && (cmd->cls == CommandClass::write || cmd->cls == CommandClass::admin)) {
    check_rewrite(in, *cmd, args);
  }
  run_plan(in, *table, planned);
  return 0;
}
