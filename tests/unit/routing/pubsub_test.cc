#include "routing/pubsub.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ringproxy::routing {
namespace {

TEST(PubSub, SubscriptionCommands) {
  EXPECT_EQ(subscription_command("psubscribe")->family, PubSubFamily::pattern);
  EXPECT_FALSE(subscription_command("sunsubscribe")->subscribe);
  EXPECT_EQ(subscription_command("sunsubscribe")->kind, "sunsubscribe");
  EXPECT_FALSE(subscription_command("publish").has_value());
}

TEST(PubSub, PushesAndConfirmationsInEitherProtocol) {
  const std::vector<std::string_view> message = {"message", "ch", "hi"};
  EXPECT_EQ(push_of(message, 2), "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
  EXPECT_EQ(push_of(message, 3), ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
  EXPECT_EQ(confirmation("subscribe", "ch", 2, 2), "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:2\r\n");
  EXPECT_EQ(confirmation("unsubscribe", std::nullopt, 0, 2), "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
  EXPECT_EQ(confirmation("unsubscribe", std::nullopt, 0, 3), ">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n");
  EXPECT_EQ(subscribed_pong(std::nullopt), "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
}

TEST(PubSub, SubscribedModeIsRedisS) {
  for (const char* name : {"subscribe", "punsubscribe", "ssubscribe", "ping", "quit", "reset"}) {
    EXPECT_TRUE(allowed_when_subscribed(name)) << name;
  }
  EXPECT_FALSE(allowed_when_subscribed("get"));
  EXPECT_EQ(subscribed_mode_error("get"),
            "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in "
            "this context");
}

TEST(PubSub, ChannelsLiveOnTheShardsServerOrItsLeader) {
  ShardEntry plain;
  plain.servers = {4};
  EXPECT_EQ(pubsub_server(plain, Health{}), 4u);  // (a plain shard's one server, up or not)
  ShardEntry replicated;
  replicated.servers = {0, 1, 2};
  replicated.replication.strategy = conf::ReplicationStrategy::primary_replica;
  replicated.replication.on_primary_down = conf::PrimaryDown::promote;
  const std::vector<uint8_t> all_live = {kServerLive, kServerLive, kServerLive};
  const std::vector<uint8_t> primary_down = {1, kServerLive, kServerLive};
  EXPECT_EQ(pubsub_server(replicated, Health{.mode = all_live, .pending = {}, .rotation = 0}), 0u);
  EXPECT_EQ(pubsub_server(replicated, Health{.mode = primary_down, .pending = {}, .rotation = 0}), 1u);  // the replica that leads
}

}  // namespace
}  // namespace ringproxy::routing
