// Pub/sub through the proxy: the pure parts (proxy/pubsub/ carries them out).
//
// A channel is placed on a shard by the same hash as a key, so that every client of every
// proxy with the same ring meets on the same server: the shard's pub/sub server, its only
// server, or a replicated shard's write leader (routing::write_leader), where PUBLISH goes too.
// A pattern listens on every shard's pub/sub server (a message is published on one of them).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "routing/command_table.h"
#include "routing/planner.h"
#include "routing/routing_table.h"

namespace ringproxy::routing {

// The mark (Request::cmd, without a top_cmd) of a push the proxy sends a client on its own.
const CommandInfo& push_marker();

// What a subscription command is about: channels (SUBSCRIBE), patterns (PSUBSCRIBE), shard
// channels (SSUBSCRIBE; counted apart, as redis counts them).
enum class PubSubFamily : uint8_t { channel = 0, pattern = 1, shard_channel = 2 };

struct SubscriptionCommand {
  PubSubFamily family = PubSubFamily::channel;
  bool subscribe = true;
  std::string_view kind;  // what its confirmations are called: "subscribe", "punsubscribe" ...
};
// (P|S)SUBSCRIBE and (P|S)UNSUBSCRIBE (lower-case names); none for any other command.
std::optional<SubscriptionCommand> subscription_command(std::string_view name);

// The server a shard's channels live on. None: a replicated shard without a live leader.
std::optional<uint32_t> pubsub_server(const ShardEntry& shard, Health health);

// A push to a subscribed client: an array (RESP2) or a push (RESP3) of bulk strings.
std::string push_of(std::span<const std::string_view> parts, int protocol);
// A (un)subscribe confirmation: [kind, name (null: an UNSUBSCRIBE with nothing to end), count].
std::string confirmation(std::string_view kind, std::optional<std::string_view> name, int64_t count, int protocol);
// PING in RESP2's subscribed mode: ["pong", message or ""].
std::string subscribed_pong(std::optional<std::string_view> message);
// What a RESP2 client in subscribed mode may send, and redis's error for the rest.
bool allowed_when_subscribed(std::string_view name);
std::string subscribed_mode_error(std::string_view name);

}  // namespace ringproxy::routing
