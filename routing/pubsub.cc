#include "routing/pubsub.h"

#include "routing/resp/writer.h"

namespace ringproxy::routing {

const CommandInfo& push_marker() {
  static const CommandInfo marker{.name = "pubsub-message", .cls = CommandClass::local};
  return marker;
}

std::optional<SubscriptionCommand> subscription_command(std::string_view name) {
  if (name == "subscribe") return SubscriptionCommand{PubSubFamily::channel, true, "subscribe"};
  if (name == "unsubscribe") return SubscriptionCommand{PubSubFamily::channel, false, "unsubscribe"};
  if (name == "psubscribe") return SubscriptionCommand{PubSubFamily::pattern, true, "psubscribe"};
  if (name == "punsubscribe") return SubscriptionCommand{PubSubFamily::pattern, false, "punsubscribe"};
  if (name == "ssubscribe") return SubscriptionCommand{PubSubFamily::shard_channel, true, "ssubscribe"};
  if (name == "sunsubscribe") return SubscriptionCommand{PubSubFamily::shard_channel, false, "sunsubscribe"};
  return std::nullopt;
}

std::optional<uint32_t> pubsub_server(const ShardEntry& shard, Health health) {
  if (shard.replication.strategy == conf::ReplicationStrategy::none) return shard.servers.front();
  return write_leader(shard, health);
}

std::string push_of(std::span<const std::string_view> parts, int protocol) {
  std::string out = (protocol == 3 ? ">" : "*") + std::to_string(parts.size()) + "\r\n";
  for (std::string_view part : parts) resp::append_bulk(out, part);
  return out;
}

std::string confirmation(std::string_view kind, std::optional<std::string_view> name, int64_t count, int protocol) {
  std::string out = protocol == 3 ? ">3\r\n" : "*3\r\n";
  resp::append_bulk(out, kind);
  if (name) {
    resp::append_bulk(out, *name);
  } else {
    resp::append_null(out, protocol);
  }
  resp::append_integer(out, count);
  return out;
}

std::string subscribed_pong(std::optional<std::string_view> message) {
  std::string out = "*2\r\n";
  resp::append_bulk(out, "pong");
  resp::append_bulk(out, message.value_or(""));
  return out;
}

bool allowed_when_subscribed(std::string_view name) {
  return subscription_command(name).has_value() || name == "ping" || name == "quit" || name == "reset";
}

std::string subscribed_mode_error(std::string_view name) {
  return "ERR Can't execute '" + std::string(name) +
         "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context";
}

}  // namespace ringproxy::routing
