// Key extraction, table-driven: real commands from the generated table, and hand-made key
// specs for the corners of redis's algorithm that no supported command reaches.
#include "routing/keys.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace ringproxy::routing {
namespace {

using Args = std::vector<std::string_view>;

// Resolves args[0] (and args[1] for containers) like the planner does.
const CommandInfo* resolve(const Args& args) {
  const CommandInfo* c = find_command(args.at(0));
  if (c != nullptr && c->is_container() && args.size() >= 2) c = find_subcommand(*c, args[1]);
  return c;
}

struct Case {
  Args args;
  std::vector<uint32_t> want;
  std::string_view error = {};
};

std::string join(const Args& args) {
  std::string s;
  for (std::string_view a : args) (s += a) += ' ';
  return s;
}

void run(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    SCOPED_TRACE(join(c.args));
    const CommandInfo* info = resolve(c.args);
    ASSERT_NE(info, nullptr);
    ASSERT_TRUE(arity_ok(*info, c.args.size()));
    std::vector<uint32_t> positions;
    const std::string_view err = find_key_positions(*info, c.args, positions);
    EXPECT_EQ(err, c.error);
    EXPECT_EQ(positions, c.want);
  }
}

TEST(Keys, SingleKey) {
  run({
      {{"GET", "k"}, {1}},
      {{"get", "k"}, {1}},
      {{"SET", "k", "v", "EX", "10"}, {1}},
      {{"HSET", "h", "f", "v", "f2", "v2"}, {1}},
      {{"INCR", "k"}, {1}},
      {{"EXPIRE", "k", "10"}, {1}},
      {{"TYPE", "k"}, {1}},
      {{"GETSET", "k", "v"}, {1}},
      {{"BITFIELD", "k", "GET", "u8", "0"}, {1}},
      {{"XADD", "s", "*", "f", "v"}, {1}},
      {{"SORT_RO", "k", "BY", "w_*", "GET", "o_*"}, {1}},
      {{"GEOSEARCH", "k", "FROMMEMBER", "m", "BYRADIUS", "1", "km"}, {1}},
  });
}

TEST(Keys, Subcommands) {
  run({
      {{"OBJECT", "ENCODING", "k"}, {2}},
      {{"object", "freq", "k"}, {2}},
      {{"MEMORY", "USAGE", "k"}, {2}},
      {{"MEMORY", "USAGE", "k", "SAMPLES", "5"}, {2}},
      {{"XINFO", "STREAM", "s"}, {2}},
      {{"XINFO", "STREAM", "s", "FULL"}, {2}},
      {{"XINFO", "CONSUMERS", "s", "g"}, {2}},
      {{"XGROUP", "CREATE", "s", "g", "$"}, {2}},
      {{"XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"}, {2}},
      {{"XGROUP", "DESTROY", "s", "g"}, {2}},
      {{"CLIENT", "SETNAME", "n"}, {}},
      {{"OBJECT", "HELP"}, {}},
  });
}

TEST(Keys, MultiKey) {
  run({
      {{"MSET", "k1", "v1", "k2", "v2"}, {1, 3}},
      {{"MSET", "k1", "v1"}, {1}},
      {{"MSETNX", "k1", "v1", "k2", "v2", "k3", "v3"}, {1, 3, 5}},
      {{"MGET", "a", "b", "c"}, {1, 2, 3}},
      {{"DEL", "a", "b"}, {1, 2}},
      {{"UNLINK", "a"}, {1}},
      {{"EXISTS", "a", "a", "b"}, {1, 2, 3}},
      {{"TOUCH", "a", "b"}, {1, 2}},
      {{"RENAME", "a", "b"}, {1, 2}},
      {{"RENAMENX", "a", "b"}, {1, 2}},
      {{"COPY", "a", "b", "REPLACE"}, {1, 2}},
      {{"SMOVE", "a", "b", "m"}, {1, 2}},
      {{"LMOVE", "a", "b", "LEFT", "RIGHT"}, {1, 2}},
      {{"RPOPLPUSH", "a", "b"}, {1, 2}},
      {{"SINTER", "a", "b", "c"}, {1, 2, 3}},
      {{"SUNIONSTORE", "d", "a", "b"}, {1, 2, 3}},
      {{"SDIFFSTORE", "d", "a"}, {1, 2}},
      {{"BITOP", "AND", "d", "a", "b"}, {2, 3, 4}},
      {{"PFMERGE", "d", "a", "b"}, {1, 2, 3}},
      {{"PFCOUNT", "a", "b"}, {1, 2}},
      {{"LCS", "a", "b"}, {1, 2}},
      {{"ZRANGESTORE", "d", "s", "0", "-1"}, {1, 2}},
      {{"GEOSEARCHSTORE", "d", "s", "FROMMEMBER", "m", "BYBOX", "1", "1", "km"}, {1, 2}},
  });
}

TEST(Keys, KeyCounts) {
  run({
      {{"EVAL", "return 1", "2", "k1", "k2", "a1"}, {3, 4}},
      {{"EVAL", "return 1", "0"}, {}},
      {{"EVAL", "return 1", "0", "a1", "a2"}, {}},
      {{"EVALSHA", "abc", "1", "k"}, {3}},
      {{"EVAL_RO", "s", "1", "k", "a"}, {3}},
      {{"FCALL", "f", "2", "k1", "k2"}, {3, 4}},
      {{"FCALL_RO", "f", "0"}, {}},
      {{"ZUNIONSTORE", "dst", "2", "a", "b", "WEIGHTS", "1", "2"}, {1, 3, 4}},
      {{"ZINTERSTORE", "dst", "1", "a"}, {1, 3}},
      {{"ZDIFFSTORE", "dst", "2", "a", "b"}, {1, 3, 4}},
      {{"ZUNIONSTORE", "a", "2", "a", "b"}, {1, 3, 4}},  // same key, different positions
      {{"ZUNION", "2", "a", "b"}, {2, 3}},
      {{"ZUNION", "2", "a", "b", "WITHSCORES"}, {2, 3}},
      {{"ZINTER", "1", "a"}, {2}},
      {{"ZDIFF", "3", "a", "b", "c"}, {2, 3, 4}},
      {{"ZINTERCARD", "2", "a", "b", "LIMIT", "1"}, {2, 3}},
      {{"SINTERCARD", "2", "a", "b", "LIMIT", "1"}, {2, 3}},
      {{"LMPOP", "2", "a", "b", "LEFT"}, {2, 3}},
      {{"LMPOP", "1", "a", "RIGHT", "COUNT", "2"}, {2}},
      {{"ZMPOP", "2", "a", "b", "MIN"}, {2, 3}},
  });
}

TEST(Keys, KeyCountErrors) {
  run({
      {{"EVAL", "s", "5", "a"}, {}, "Number of keys can't be greater than number of args"},
      {{"EVAL", "s", "2", "a"}, {}, "Number of keys can't be greater than number of args"},
      {{"EVAL", "s", "99999999999999999999", "a"}, {}, "value is not an integer or out of range"},
      {{"EVAL", "s", "9223372036854775807", "a"}, {},
       "Number of keys can't be greater than number of args"},
      {{"EVAL", "s", "-1", "a"}, {}, "Number of keys can't be negative"},
      {{"EVAL", "s", "x"}, {}, "value is not an integer or out of range"},
      {{"EVAL", "s", ""}, {}, "value is not an integer or out of range"},
      {{"EVAL", "s", "01", "k"}, {}, "value is not an integer or out of range"},
      {{"EVAL", "s", "+1", "k"}, {}, "value is not an integer or out of range"},
      {{"EVAL", "s", " 1", "k"}, {}, "value is not an integer or out of range"},
      {{"EVAL", "s", "1 ", "k"}, {}, "value is not an integer or out of range"},
      {{"EVAL", "s", "-0"}, {}, "value is not an integer or out of range"},
      {{"EVAL", "s", "-"}, {}, "value is not an integer or out of range"},
      {{"FCALL", "f", "1"}, {}, "Number of keys can't be greater than number of args"},
      {{"ZUNION", "0", "a"}, {}, "numkeys should be greater than 0"},
      {{"ZUNIONSTORE", "d", "0", "a"}, {}, "numkeys should be greater than 0"},
      {{"ZUNIONSTORE", "d", "3", "a", "b"}, {},
       "Number of keys can't be greater than number of args"},
      {{"SINTERCARD", "0", "a"}, {}, "numkeys should be greater than 0"},
      {{"LMPOP", "3", "a", "LEFT"}, {}, "Number of keys can't be greater than number of args"},
      {{"LMPOP", "x", "a", "LEFT"}, {}, "value is not an integer or out of range"},
      {{"ZDIFF", "-2", "a"}, {}, "Number of keys can't be negative"},
  });
}

TEST(Keys, KeywordsAndOptions) {
  run({
      {{"XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"}, {4, 5}},
      {{"XREAD", "STREAMS", "s", "$"}, {2}},
      {{"xread", "streams", "s", "$"}, {2}},
      {{"XREAD", "BLOCK", "0", "STREAMS", "s", "$"}, {4}},
      {{"XREAD", "STREAMS", "streams", "0"}, {2}},
      {{"XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "s", ">"}, {7}},
      {{"XREADGROUP", "GROUP", "g", "c", "NOACK", "STREAMS", "a", "b", ">", ">"}, {6, 7}},
      // A group named "streams" does not fool the option parser (it fools a keyword scan).
      {{"XREADGROUP", "GROUP", "streams", "c", "STREAMS", "s", ">"}, {5}},
      {{"XREAD", "STREAMS", "s1", "s2", "0"}, {},
       "Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."},
      {{"XREAD", "COUNT", "2", "s", "0"}, {}, "syntax error"},
      {{"XREAD", "COUNT", "1", "STREAMS"}, {}, "syntax error"},
      {{"GEORADIUS", "k", "0", "0", "1", "km"}, {1}},
      {{"GEORADIUS", "k", "0", "0", "1", "km", "STORE", "d"}, {1, 7}},
      {{"GEORADIUS", "k", "0", "0", "1", "km", "STOREDIST", "d"}, {1, 7}},
      {{"GEORADIUS", "k", "0", "0", "1", "km", "STOREDIST", "e", "STORE", "d"}, {1, 7, 9}},
      {{"GEORADIUS", "k", "0", "0", "1", "km", "store", "k"}, {1, 7}},
      {{"GEORADIUS", "k", "0", "0", "1", "km", "STORE"}, {1}},  // redis answers the error
      {{"GEORADIUSBYMEMBER", "k", "m", "1", "km", "STORE", "d"}, {1, 6}},
      {{"GEORADIUS_RO", "k", "0", "0", "1", "km"}, {1}},
      {{"SORT", "k"}, {1}},
      {{"SORT", "k", "STORE", "d"}, {1, 3}},
      {{"SORT", "k", "LIMIT", "0", "10", "ALPHA", "store", "d"}, {1, 7}},
      {{"SORT", "k", "BY", "store", "GET", "#", "STORE", "d"}, {1, 7}},
      {{"SORT", "k", "STORE", "d1", "STORE", "d2"}, {1, 5}},  // the last STORE wins
      {{"SORT", "k", "LIMIT", "STORE", "d", "DESC"}, {1}},    // STORE is LIMIT's argument
      {{"SORT", "k", "GET", "STORE"}, {1}},
      {{"SORT", "k", "STORE"}, {1}},
  });
}

TEST(Keys, Unbalanced) {
  run({
      {{"MSET", "k1", "v1", "k2"}, {}, "wrong number of arguments"},
      {{"MSETNX", "k1", "v1", "k2"}, {}, "wrong number of arguments"},
  });
}

TEST(Keys, Keyless) {
  run({
      {{"PING"}, {}},
      {{"ECHO", "x"}, {}},
      {{"DBSIZE"}, {}},
      {{"FLUSHALL", "ASYNC"}, {}},
      {{"PROXY", "STATUS"}, {}},
      {{"SPUBLISH", "ch", "m"}, {}},  // a shard channel is not a key
      {{"BLPOP", "a", "b", "0"}, {1, 2}},
  });
}

TEST(Keys, AppendsToTheCallersBufferAndLeavesItOnError) {
  std::vector<uint32_t> positions = {42};
  const Args mget = {"MGET", "a", "b"};
  EXPECT_EQ(find_key_positions(*find_command("mget"), mget, positions), "");
  EXPECT_EQ(positions, (std::vector<uint32_t>{42, 1, 2}));
  const Args get = {"GET", "a"};
  EXPECT_EQ(find_key_positions(*find_command("get"), get, positions), "");
  EXPECT_EQ(positions, (std::vector<uint32_t>{42, 1, 2, 1}));
  const Args bad = {"ZUNIONSTORE", "d", "5", "a"};
  EXPECT_NE(find_key_positions(*find_command("zunionstore"), bad, positions), "");
  EXPECT_EQ(positions, (std::vector<uint32_t>{42, 1, 2, 1}));
  // Several specs contribute: sorted within the appended part only.
  const Args geo = {"GEORADIUS", "k", "0", "0", "1", "km", "STOREDIST", "e", "STORE", "d"};
  EXPECT_EQ(find_key_positions(*find_command("georadius"), geo, positions), "");
  EXPECT_EQ(positions, (std::vector<uint32_t>{42, 1, 2, 1, 1, 7, 9}));
}

TEST(Keys, BlockOption) {
  const auto block = [](const Args& args) { return has_block_option(*resolve(args), args); };
  EXPECT_TRUE(block({"XREAD", "BLOCK", "0", "STREAMS", "s", "$"}));
  EXPECT_TRUE(block({"xread", "count", "1", "block", "100", "streams", "s", "$"}));
  EXPECT_TRUE(block({"XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">"}));
  EXPECT_FALSE(block({"XREAD", "STREAMS", "s", "$"}));
  EXPECT_FALSE(block({"XREAD", "COUNT", "1", "STREAMS", "block", "$"}));  // a stream "block"
  EXPECT_FALSE(block({"XREAD", "COUNT", "BLOCK", "STREAMS", "s", "$"}));  // COUNT's argument
  EXPECT_FALSE(block({"XREADGROUP", "GROUP", "block", "block", "STREAMS", "s", ">"}));
  EXPECT_FALSE(block({"GET", "BLOCK"}));       // only XREAD and XREADGROUP have the option
  EXPECT_FALSE(block({"BLPOP", "a", "0"}));    // unsupported by class, not by this check
}

// Corners of the key-spec algorithm that no supported command reaches, on made-up specs.
CommandInfo made_up(std::span<const KeySpec> specs, int16_t arity = -1, uint32_t flags = 0) {
  CommandInfo c;
  c.name = "madeup";
  c.arity = arity;
  c.redis_flags = flags;
  c.key_specs = specs;
  return c;
}

std::vector<uint32_t> positions_of(const CommandInfo& c, const Args& args,
                                   std::string_view want_error = {}) {
  std::vector<uint32_t> out;
  EXPECT_EQ(find_key_positions(c, args, out), want_error) << join(args);
  return out;
}

using V = std::vector<uint32_t>;

TEST(KeySpecs, KeywordFromTheEnd) {
  // MIGRATE's KEYS spec: searched backwards from argc-2.
  const KeySpec specs[] = {{.begin = KeySpec::Begin::keyword, .keyword = "KEYS",
                            .keyword_startfrom = -2, .find = KeySpec::Find::range,
                            .lastkey = -1, .keystep = 1}};
  const CommandInfo c = made_up(specs, -1, kFlagNoMandatoryKeys);
  EXPECT_EQ(positions_of(c, {"M", "h", "p", "", "0", "5", "KEYS", "a", "b"}), (V{7, 8}));
  EXPECT_EQ(positions_of(c, {"M", "KEYS", "a"}), (V{2}));
  EXPECT_EQ(positions_of(c, {"M", "a", "KEYS"}), V{});  // the last argument is no keyword
  EXPECT_EQ(positions_of(c, {"M", "KEYS", "keys", "KEYS", "x"}), (V{4}));  // the last one
}

TEST(KeySpecs, RangeWithLimitAndNegativeLastkey) {
  const KeySpec halves[] = {{.begin = KeySpec::Begin::index, .begin_index = 1,
                             .find = KeySpec::Find::range, .lastkey = -1, .keystep = 1,
                             .limit = 2}};
  const CommandInfo c = made_up(halves);
  EXPECT_EQ(positions_of(c, {"X", "a", "b", "1", "2"}), (V{1, 2}));
  EXPECT_EQ(positions_of(c, {"X", "a", "b", "1"}, "wrong number of arguments"), V{});

  const KeySpec but_last[] = {{.begin = KeySpec::Begin::index, .begin_index = 1,
                               .find = KeySpec::Find::range, .lastkey = -2, .keystep = 1}};
  EXPECT_EQ(positions_of(made_up(but_last), {"B", "a", "b", "0"}), (V{1, 2}));
}

TEST(KeySpecs, KeynumWithStepAndOffsets) {
  const KeySpec specs[] = {{.begin = KeySpec::Begin::index, .begin_index = 2,
                            .find = KeySpec::Find::keynum, .keystep = 2, .keynumidx = 1,
                            .firstkey = 2}};
  const CommandInfo c = made_up(specs);
  // argv: name x y numkeys k1 v1 k2 v2
  EXPECT_EQ(positions_of(c, {"N", "x", "y", "2", "k1", "v1", "k2", "v2"}), (V{4, 6}));
  EXPECT_EQ(positions_of(c, {"N", "x", "y", "3", "k1", "v1", "k2", "v2"},
                         "Number of keys can't be greater than number of args"),
            V{});
  EXPECT_EQ(positions_of(c, {"N", "x"}, "wrong number of arguments"), V{});
}

TEST(KeySpecs, SkipsNotKeyAndUnknownSpecs) {
  const KeySpec specs[] = {
      {.begin = KeySpec::Begin::index, .begin_index = 1, .find = KeySpec::Find::range,
       .not_key = true},
      {.begin = KeySpec::Begin::unknown, .find = KeySpec::Find::unknown},
      {.begin = KeySpec::Begin::index, .begin_index = 2, .find = KeySpec::Find::range},
  };
  EXPECT_EQ(positions_of(made_up(specs), {"S", "ch", "k"}), (V{2}));
  // Only the not_key spec: keyless, not an error.
  EXPECT_EQ(positions_of(made_up(std::span(specs, 1)), {"S", "ch"}), V{});
}

TEST(KeySpecs, OverlappingSpecsYieldEachPositionOnce) {
  const KeySpec specs[] = {
      {.begin = KeySpec::Begin::index, .begin_index = 1, .find = KeySpec::Find::range,
       .lastkey = 1},
      {.begin = KeySpec::Begin::index, .begin_index = 2, .find = KeySpec::Find::range,
       .lastkey = -1},
  };
  EXPECT_EQ(positions_of(made_up(specs), {"O", "a", "b", "c"}), (V{1, 2, 3}));
}

// Every command and subcommand, with arguments that look like numbers, keywords and
// nonsense: never a position out of range, always sorted and unique. (Run under ASan.)
TEST(KeySpecs, NeverOutOfRangeOnAnyCommand) {
  const std::vector<std::string_view> tokens = {"1", "0", "-1", "2", "STREAMS", "STORE",
                                                "KEYS", "LIMIT", "x", "99999999999"};
  std::vector<uint32_t> out;
  size_t calls = 0;
  for (const CommandInfo& top : all_commands()) {
    std::vector<const CommandInfo*> infos = {&top};
    for (const CommandInfo& s : top.subcommands) infos.push_back(&s);
    for (const CommandInfo* c : infos) {
      for (size_t argc = 1; argc <= 9; ++argc) {
        if (!arity_ok(*c, argc)) continue;
        for (size_t t = 0; t < tokens.size(); ++t) {
          Args args = {c->name};
          for (size_t i = 1; i < argc; ++i) args.push_back(tokens[(t + i * 3) % tokens.size()]);
          out.clear();
          const std::string_view err = find_key_positions(*c, args, out);
          ++calls;
          if (!err.empty()) {
            EXPECT_TRUE(out.empty());
            continue;
          }
          for (uint32_t p : out) EXPECT_TRUE(p >= 1 && p < argc) << c->name << " " << p;
          EXPECT_TRUE(std::is_sorted(out.begin(), out.end())) << c->name;
          EXPECT_EQ(std::adjacent_find(out.begin(), out.end()), out.end()) << c->name;
        }
      }
    }
  }
  EXPECT_GT(calls, 1000u);
}

}  // namespace
}  // namespace ringproxy::routing
