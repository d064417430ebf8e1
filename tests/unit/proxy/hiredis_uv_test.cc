// The hiredis-on-libuv adapter must tell hiredis about a socket error. A server that resets
// the connection makes epoll report EPOLLERR; libuv then calls the poll callback with an
// error status, which hiredis 0.14's own adapter ignored: the command never got a reply and
// the context never disconnected (a resync or key move hung forever).
#include "proxy/net/hiredis_uv.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <hiredis/async.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace ringproxy::proxy {
namespace {

struct Outcome {
  bool connected = false;
  bool reply_called = false;
  bool reply_was_null = false;
  bool disconnected = false;
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

TEST(HiredisUv, ResetConnectionFailsTheCommandAndDisconnects) {
  uint16_t port = 0;
  const int listener = listen_on_loopback(&port);
  ASSERT_GE(listener, 0);
  uv_loop_t loop;
  uv_loop_init(&loop);
  Outcome outcome;

  std::string error;
  redisAsyncContext* ctx = connect_async(
      ServerLogin{conf::Address{"127.0.0.1", port}, {}}, &loop, &outcome,
      [](const redisAsyncContext* c, int status) { static_cast<Outcome*>(c->data)->connected = status == REDIS_OK; },
      [](const redisAsyncContext* c, int) { static_cast<Outcome*>(c->data)->disconnected = true; }, &error);
  ASSERT_NE(ctx, nullptr) << error;
  redisAsyncCommand(
      ctx,
      [](redisAsyncContext*, void* reply, void* data) {
        auto* o = static_cast<Outcome*>(data);
        o->reply_called = true;
        o->reply_was_null = reply == nullptr;
      },
      &outcome, "PING");

  // The "server" takes the connection, lets the command arrive, then resets it.
  const int server = accept(listener, nullptr, nullptr);
  ASSERT_GE(server, 0);
  uv_run(&loop, UV_RUN_NOWAIT);  // connects and writes the PING; hiredis now waits to read
  char buffer[64];
  ASSERT_GT(read(server, buffer, sizeof(buffer)), 0);
  linger reset{1, 0};
  setsockopt(server, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
  close(server);  // linger 0: an RST, so the client's socket reports an error

  // The run ends when no handle is active: with the error dropped, that happens with the
  // command still waiting and the context never told.
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_TRUE(outcome.connected);
  EXPECT_TRUE(outcome.reply_called);
  EXPECT_TRUE(outcome.reply_was_null);
  EXPECT_TRUE(outcome.disconnected);

  close(listener);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

TEST(HiredisUv, RefusedConnectionReportsAFailedConnect) {
  uint16_t port = 0;
  const int listener = listen_on_loopback(&port);
  ASSERT_GE(listener, 0);
  close(listener);  // nobody listens there any more
  uv_loop_t loop;
  uv_loop_init(&loop);
  Outcome outcome;
  redisAsyncContext* ctx = connect_async(
      ServerLogin{conf::Address{"127.0.0.1", port}, {}}, &loop, &outcome,
      [](const redisAsyncContext* c, int status) {
        auto* o = static_cast<Outcome*>(c->data);
        o->connected = status == REDIS_OK;
        o->disconnected = status != REDIS_OK;
      },
      [](const redisAsyncContext* c, int) { static_cast<Outcome*>(c->data)->disconnected = true; });
  if (ctx != nullptr) {  // the refusal may also come straight from connect()
    redisAsyncCommand(ctx, nullptr, nullptr, "PING");
    uv_run(&loop, UV_RUN_DEFAULT);
    EXPECT_FALSE(outcome.connected);
    EXPECT_TRUE(outcome.disconnected);
  }
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

}  // namespace
}  // namespace ringproxy::proxy
