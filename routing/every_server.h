// Commands the proxy sends to every server on side connections of their own, off the shared
// connections a busy script holds: SCRIPT KILL, FUNCTION KILL, and PING when [proxy] ping =
// "servers". What each server answered becomes the client's one reply here.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace ringproxy::routing {

struct ServerAnswer {
  enum class Kind : uint8_t {
    status,       // +OK, +PONG
    bulk,         // PING's message
    error,        // the server's error
    other,        // any other reply: text is its RESP2 encoding
    unreachable,  // no connection (text: why)
    no_reply,     // still none when the deadline came
  };
  Kind kind = Kind::no_reply;
  std::string server;  // its name and address, for the client's error
  std::string text;
};

// +OK when a server killed a script, redis's -NOTBUSY when none ran one, else the first
// other error (-UNKILLABLE: the script wrote already).
std::string script_kill_reply(std::span<const ServerAnswer> answers);

// PONG (or the message echoed) when every server answered it; else the first server's error
// as it gave it (BUSY, LOADING ...), or why a server could not answer.
std::string ping_reply(std::span<const ServerAnswer> answers, std::optional<std::string_view> message);

// FUNCTION STATS: the reply of the server running a function or script (running_script not
// nil; a keyless call runs on one shard), else the first server's, in the client's protocol.
// (Libraries are loaded on every server, so `engines` counts the same everywhere.)
std::string function_stats_reply(std::span<const ServerAnswer> answers, int protocol);

}  // namespace ringproxy::routing
