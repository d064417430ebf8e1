// Which arguments of a request are keys, from the command's key specs.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "routing/command_table.h"

namespace ringproxy::routing {

// Appends to `positions` the argv indexes (args[0] is the command name) of every key of
// the request, in argument order. Returns an empty string_view on success, otherwise a
// static error text (e.g. "numkeys is out of range") meant for "-ERR <text>".
// `positions` is a caller-owned buffer, reused across calls (no allocation per request
// once it has grown). Assumes arity_ok(cmd, args.size()).
std::string_view find_key_positions(const CommandInfo& cmd,
                                    std::span<const std::string_view> args,
                                    std::vector<uint32_t>& positions);

}  // namespace ringproxy::routing
