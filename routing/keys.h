// Which arguments of a request are keys, from the command's key specs.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "routing/command_table.h"

namespace ringproxy::routing {

// Appends to `positions` the argv indexes (args[0] is the command name) of every key of
// the request, in argument order. Returns an empty string_view on success, otherwise a
// static error text (e.g. "Number of keys can't be negative") meant for "-ERR <text>".
// `positions` is a caller-owned buffer, reused across calls (no allocation per request
// once it has grown). Assumes arity_ok(cmd, args.size()).
//
// Follows redis 7's key-spec algorithm (getKeysUsingKeySpecs), plus:
//  * positions are sorted and unique even when several specs contribute (GEORADIUS's
//    STORE and STOREDIST);
//  * KeysProc::sort / ::xread parse the options where the specs fall short;
//  * a command without kFlagNoMandatoryKeys (everything but EVAL*/FCALL*) yields at least
//    one key or an error, so a routed read/write always has a key to route by; EVAL with
//    0 keys yields none, and the planner decides;
//  * a key count that is not an integer, negative, 0 where keys are mandatory, or larger
//    than the arguments, and unbalanced key/value or stream/ID lists are errors, with
//    redis's wording where it has one;
//  * specs marked not_key (shard channels) are skipped. Unknown specs are skipped too: the
//    only supported commands that have them are SORT (whose STORE is parsed) and SORT_RO,
//    where they stand for BY/GET patterns, i.e. keys built from values (see
//    KEY_SPEC_GAPS in scripts/gen_command_table).
// On error, `positions` is left as it was.
std::string_view find_key_positions(const CommandInfo& cmd,
                                    std::span<const std::string_view> args,
                                    std::vector<uint32_t>& positions);

// An error of find_key_positions about a key count (not a number, negative, 0 where keys are
// mandatory, more than the arguments): redis refuses such a command too, in its own words.
bool is_key_count_error(std::string_view error);

// True when a command flagged kProxyBlockOption (XREAD, XREADGROUP) carries a BLOCK
// option, which the planner must reject; false for every other command. Options are parsed
// like redis does, so a group or consumer named "block" is not mistaken for the option.
bool has_block_option(const CommandInfo& cmd, std::span<const std::string_view> args);
// Where that BLOCK is (its value follows it); none without one, or when the options are wrong.
std::optional<size_t> block_option_position(const CommandInfo& cmd, std::span<const std::string_view> args);

}  // namespace ringproxy::routing
