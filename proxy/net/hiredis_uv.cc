#include "proxy/net/hiredis_uv.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstring>

#include "routing/resp/reply_scanner.h"

namespace ringproxy::proxy {
namespace {

// One per context; freed once libuv has closed the poll handle.
struct PollEvents {
  redisAsyncContext* context = nullptr;
  uv_poll_t handle{};
  int events = 0;
};

void on_poll(uv_poll_t* handle, int status, int events) {
  auto* p = static_cast<PollEvents*>(handle->data);
  // On an error status libuv has stopped the handle: deliver what hiredis waits for, so
  // that it reads or writes the socket, meets the error and disconnects.
  if (status != 0) events = p->events;
  if (p->context != nullptr && (events & UV_READABLE)) redisAsyncHandleRead(p->context);
  if (p->context != nullptr && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->context);
}

// hiredis asks for read and write readiness separately; uv_poll wants the union.
void watch(void* data, int event, bool on) {
  auto* p = static_cast<PollEvents*>(data);
  p->events = on ? (p->events | event) : (p->events & ~event);
  if (p->events != 0) {
    uv_poll_start(&p->handle, p->events, on_poll);
  } else {
    uv_poll_stop(&p->handle);
  }
}

void add_read(void* data) { watch(data, UV_READABLE, true); }
void del_read(void* data) { watch(data, UV_READABLE, false); }
void add_write(void* data) { watch(data, UV_WRITABLE, true); }
void del_write(void* data) { watch(data, UV_WRITABLE, false); }

void cleanup(void* data) {
  auto* p = static_cast<PollEvents*>(data);
  p->context = nullptr;  // hiredis is freeing it
  uv_close(reinterpret_cast<uv_handle_t*>(&p->handle),
           [](uv_handle_t* handle) { delete static_cast<PollEvents*>(handle->data); });
}

bool attach(redisAsyncContext* ac, uv_loop_t* loop) {
  auto* p = new PollEvents;
  if (uv_poll_init(loop, &p->handle, ac->c.fd) != 0) {
    delete p;
    return false;
  }
  p->context = ac;
  p->handle.data = p;
  ac->ev.data = p;
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  ac->ev.cleanup = cleanup;
  return true;
}

// The reply to the AUTH sent first. Refused: the connection is useless (every command would
// get NOAUTH), so it ends now, with the server's own words as its error.
void on_auth_reply(redisAsyncContext* ctx, void* raw, void*) {
  auto* reply = static_cast<redisReply*>(raw);
  if (reply == nullptr || reply->type != REDIS_REPLY_ERROR) return;
  // Only a refusal of the credentials is one (a full server's "max number of clients reached"
  // greets any connection: an ordinary failure, said as such).
  const std::string text(reply->str, reply->len);
  std::string why = (resp::is_login_refusal("-" + text) ? std::string(kLoginRefused) : "reply to AUTH: ") + text;
  why.resize(std::min(why.size(), sizeof(ctx->c.errstr) - 1));
  ctx->c.err = REDIS_ERR_OTHER;
  ctx->err = REDIS_ERR_OTHER;
  std::memcpy(ctx->c.errstr, why.c_str(), why.size() + 1);
  redisAsyncFree(ctx);  // right after this callback returns
}

}  // namespace

std::string side_error(const redisAsyncContext* ctx, std::string_view otherwise) {
  if (ctx != nullptr && ctx->err != 0 && ctx->errstr != nullptr && ctx->errstr[0] != '\0') return ctx->errstr;
  return std::string(otherwise);
}

redisAsyncContext* connect_async(const ServerLogin& login, uv_loop_t* loop, void* data,
                                 redisConnectCallback* on_connect, redisDisconnectCallback* on_disconnect,
                                 std::string* error) {
  const conf::Address& address = login.address;
  if (address.is_name()) {  // (callers pass resolved addresses; never block the loop on a lookup)
    if (error) *error = "'" + address.host + "' is not resolved yet";
    return nullptr;
  }
  redisAsyncContext* ctx = redisAsyncConnect(address.host.c_str(), address.port);
  if (ctx == nullptr) {
    if (error) *error = "out of memory";
    return nullptr;
  }
  if (ctx->err || !attach(ctx, loop)) {
    if (error) *error = ctx->err ? ctx->errstr : "cannot watch the socket";
    redisAsyncFree(ctx);
    return nullptr;
  }
  ctx->data = data;
  redisAsyncSetConnectCallback(ctx, on_connect);
  redisAsyncSetDisconnectCallback(ctx, on_disconnect);
  const conf::BackendAuth& auth = login.auth;
  if (!auth.password.empty() && auth.username.empty()) {
    redisAsyncCommand(ctx, on_auth_reply, nullptr, "AUTH %b", auth.password.data(), auth.password.size());
  } else if (!auth.password.empty()) {
    redisAsyncCommand(ctx, on_auth_reply, nullptr, "AUTH %b %b", auth.username.data(), auth.username.size(),
                      auth.password.data(), auth.password.size());
  }
  return ctx;
}

}  // namespace ringproxy::proxy
