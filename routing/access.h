// Who may run what: the checks behind AUTH, NOAUTH and NOPERM ([proxy] password and
// [[proxy.users]]; README "Authentication"). Pure functions over the config's users.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "conf/config.h"
#include "routing/command_table.h"

namespace ringproxy::routing {

// The user named `name` whose password is `password`, else nullptr. Every user's digest is
// compared in constant time, whether or not the name matched first.
const conf::UserConfig* authenticate(std::span<const conf::UserConfig> users, std::string_view name,
                                     std::string_view password);

// Whether a command needs no authentication (AUTH, HELLO, QUIT: redis's no_auth flag).
inline bool runs_unauthenticated(const CommandInfo& cmd) { return (cmd.redis_flags & kFlagNoAuth) != 0; }

// "" when `user` may run the command with these arguments; else the -NOPERM error (without
// the leading '-' and CRLF). `positions` is scratch.
std::string refusal(const conf::UserConfig& user, const CommandInfo& cmd, std::span<const std::string_view> args,
                    std::vector<uint32_t>& positions);

// Whether `key` matches one of the glob patterns (Redis's syntax: * ? [abc] [^a] [a-z] \x).
bool key_allowed(std::span<const std::string> patterns, std::string_view key);
// Redis's glob match (stringmatchlen, case-sensitive), binary-safe.
bool glob_match(std::string_view pattern, std::string_view string);

}  // namespace ringproxy::routing
