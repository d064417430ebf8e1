// SideLink, the side connections' transport (probes, resyncs, repairs, key moves), against
// real sockets: hiredis's async contract, which the jobs rely on. A reset or a refused connect
// must reach the owner (hiredis 0.14's own libuv adapter dropped a poll error: a resync or key
// move then hung forever), and a close from inside a callback must wait for it to return.
#include "proxy/net/side_link.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "metrics/metrics.h"
#include "proxy/net/worker.h"

namespace ringproxy::proxy {
namespace {

struct Outcome {
  int connects = 0;
  bool connected = false;
  int disconnects = 0;
  std::vector<std::string> replies;  // "(null)" for a null reply
  std::string error;
  SideLink* link = nullptr;
  bool close_on_first_reply = false;
};

// A real listening socket on a kernel-chosen loopback port.
int listen_on_loopback(uint16_t* port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 || listen(fd, 4) != 0) return -1;
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  *port = ntohs(address.sin_port);
  return fd;
}

void on_connect(SideLink* link, bool ok) {
  auto* o = static_cast<Outcome*>(link->data());
  ++o->connects;
  o->connected = ok;
  if (!ok) o->error = link->error_or("");
}

void on_disconnect(SideLink* link) {
  auto* o = static_cast<Outcome*>(link->data());
  ++o->disconnects;
  o->error = link->error_or("");
}

void on_reply(SideLink* link, redisReply* reply, void* data) {
  auto* o = static_cast<Outcome*>(data);
  o->replies.push_back(reply == nullptr ? "(null)" : std::string(reply->str, reply->len));
  if (o->close_on_first_reply && o->replies.size() == 1) link->close();  // ends after this returns
}

// Runs the loop until the "server" end has received every one of `needles`; what it received.
std::string receive_until(uv_loop_t* loop, int server, std::initializer_list<const char*> needles) {
  std::string received;
  auto all_in = [&] {
    for (const char* needle : needles) {
      if (received.find(needle) == std::string::npos) return false;
    }
    return true;
  };
  while (!all_in()) {
    uv_run(loop, UV_RUN_NOWAIT);
    char buffer[256];
    const ssize_t n = recv(server, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n > 0) received.append(buffer, static_cast<size_t>(n));
  }
  return received;
}

struct Loop {
  Loop() { uv_loop_init(&loop); }
  ~Loop() { EXPECT_EQ(uv_loop_close(&loop), 0); }
  uv_loop_t loop;
  conf::Config config;
  metrics::Metrics metrics;
  Worker worker{&loop, config, &metrics};
};

TEST(SideLink, ResetConnectionFailsTheCommandAndDisconnects) {
  uint16_t port = 0;
  const int listener = listen_on_loopback(&port);
  ASSERT_GE(listener, 0);
  Loop l;
  Outcome outcome;
  std::string error;
  SideLink* link = SideLink::open(ServerLogin{conf::Address{"127.0.0.1", port}, {}, nullptr, ""}, l.worker, &outcome,
                                  on_connect, on_disconnect, &error);
  ASSERT_NE(link, nullptr) << error;
  EXPECT_TRUE(link->command(on_reply, &outcome, "PING"));

  // The "server" takes the connection, lets the command arrive, then resets it.
  const int server = accept(listener, nullptr, nullptr);
  ASSERT_GE(server, 0);
  while (outcome.connects == 0) uv_run(&l.loop, UV_RUN_ONCE);  // connects and writes the PING
  char buffer[64];
  ASSERT_GT(read(server, buffer, sizeof(buffer)), 0);
  linger reset{1, 0};
  setsockopt(server, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
  close(server);  // linger 0: an RST

  uv_run(&l.loop, UV_RUN_DEFAULT);  // ends when the link is gone
  EXPECT_TRUE(outcome.connected);
  EXPECT_EQ(outcome.replies, std::vector<std::string>{"(null)"});
  EXPECT_EQ(outcome.disconnects, 1);
  EXPECT_FALSE(outcome.error.empty());
  close(listener);
}

TEST(SideLink, RefusedConnectionReportsAFailedConnect) {
  uint16_t port = 0;
  const int listener = listen_on_loopback(&port);
  ASSERT_GE(listener, 0);
  close(listener);  // nobody listens there any more
  Loop l;
  Outcome outcome;
  SideLink* link =
      SideLink::open(ServerLogin{conf::Address{"127.0.0.1", port}, {}, nullptr, ""}, l.worker, &outcome, on_connect, on_disconnect);
  ASSERT_NE(link, nullptr);
  link->command(on_reply, &outcome, "PING");
  uv_run(&l.loop, UV_RUN_DEFAULT);
  EXPECT_EQ(outcome.connects, 1);
  EXPECT_FALSE(outcome.connected);
  EXPECT_NE(outcome.error.find("connect"), std::string::npos) << outcome.error;
  EXPECT_EQ(outcome.replies, std::vector<std::string>{"(null)"});  // after the failed connect
  EXPECT_EQ(outcome.disconnects, 0);  // it never connected
}

// Replies in order; a close from inside a reply callback waits for it to return, then the
// rest get null replies and the owner hears the end once.
TEST(SideLink, RepliesInOrderAndACloseInsideACallbackIsDeferred) {
  uint16_t port = 0;
  const int listener = listen_on_loopback(&port);
  ASSERT_GE(listener, 0);
  Loop l;
  Outcome outcome;
  outcome.close_on_first_reply = true;
  SideLink* link =
      SideLink::open(ServerLogin{conf::Address{"127.0.0.1", port}, {}, nullptr, ""}, l.worker, &outcome, on_connect, on_disconnect);
  ASSERT_NE(link, nullptr);
  link->command(on_reply, &outcome, "GET %s", "a");
  link->command(on_reply, &outcome, "SET %b %b", "k", size_t{1}, "v", size_t{1});
  const int server = accept(listener, nullptr, nullptr);
  ASSERT_GE(server, 0);
  const std::string received = receive_until(&l.loop, server, {"$1\r\nv\r\n"});
  EXPECT_EQ(received, "*2\r\n$3\r\nGET\r\n$1\r\na\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
  const std::string replies = "+first\r\n+second\r\n";  // both in one read
  ASSERT_EQ(write(server, replies.data(), replies.size()), static_cast<ssize_t>(replies.size()));
  uv_run(&l.loop, UV_RUN_DEFAULT);
  EXPECT_EQ(outcome.replies, (std::vector<std::string>{"first", "(null)"}));
  EXPECT_EQ(outcome.disconnects, 1);
  EXPECT_TRUE(outcome.error.empty()) << outcome.error;  // closed by its owner: no error
  close(server);
  close(listener);
}

// With credentials AUTH goes first, and a refusal ends the link with the server's words.
TEST(SideLink, ARefusedAuthEndsTheLinkWithTheServersWords) {
  uint16_t port = 0;
  const int listener = listen_on_loopback(&port);
  ASSERT_GE(listener, 0);
  Loop l;
  Outcome outcome;
  SideLink* link = SideLink::open(ServerLogin{conf::Address{"127.0.0.1", port}, {"", "secret", ""}, nullptr, ""},
                                  l.worker, &outcome, on_connect, on_disconnect);
  ASSERT_NE(link, nullptr);
  link->command(on_reply, &outcome, "PING");
  const int server = accept(listener, nullptr, nullptr);
  ASSERT_GE(server, 0);
  const std::string received = receive_until(&l.loop, server, {"PING"});
  EXPECT_EQ(received.rfind("*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n", 0), 0u) << received;
  const std::string refusal = "-WRONGPASS invalid username-password pair or user is disabled.\r\n+PONG\r\n";
  ASSERT_EQ(write(server, refusal.data(), refusal.size()), static_cast<ssize_t>(refusal.size()));
  uv_run(&l.loop, UV_RUN_DEFAULT);
  EXPECT_EQ(outcome.replies, std::vector<std::string>{"(null)"});  // PING's never counts
  EXPECT_EQ(outcome.disconnects, 1);
  EXPECT_EQ(outcome.error.rfind("authentication failed: WRONGPASS", 0), 0u) << outcome.error;
  close(server);
  close(listener);
}

// What the owner sends from its on_connect goes after AUTH and what it sent before (hiredis's
// order): sent first, it would run unauthenticated and its reply would go to AUTH's callback.
void send_in_connect(SideLink* link, bool ok) {
  auto* o = static_cast<Outcome*>(link->data());
  ++o->connects;
  o->connected = ok;
  if (ok) link->command(on_reply, o, "PING");
}

TEST(SideLink, ACommandSentInOnConnectGoesAfterAuthAndEarlierCommands) {
  uint16_t port = 0;
  const int listener = listen_on_loopback(&port);
  ASSERT_GE(listener, 0);
  Loop l;
  Outcome outcome;
  SideLink* link = SideLink::open(ServerLogin{conf::Address{"127.0.0.1", port}, {"", "secret", ""}, nullptr, ""},
                                  l.worker, &outcome, send_in_connect, on_disconnect);
  ASSERT_NE(link, nullptr);
  link->command(on_reply, &outcome, "GET %s", "a");
  const int server = accept(listener, nullptr, nullptr);
  ASSERT_GE(server, 0);
  const std::string received = receive_until(&l.loop, server, {"PING", "GET"});
  EXPECT_EQ(received, "*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n*1\r\n$4\r\nPING\r\n");
  const std::string replies = "+OK\r\n$1\r\nv\r\n+PONG\r\n";
  ASSERT_EQ(write(server, replies.data(), replies.size()), static_cast<ssize_t>(replies.size()));
  while (outcome.replies.size() < 2) uv_run(&l.loop, UV_RUN_ONCE);
  EXPECT_EQ(outcome.replies, (std::vector<std::string>{"v", "PONG"}));
  link->close();
  uv_run(&l.loop, UV_RUN_DEFAULT);
  EXPECT_EQ(outcome.disconnects, 1);
  close(server);
  close(listener);
}

}  // namespace
}  // namespace ringproxy::proxy
