#pragma once
// Side connections (probes, resyncs, repairs, key moves) use hiredis's async API on the
// proxy's libuv loop. hiredis 0.14's own adapter (hiredis/adapters/libuv.h) drops a poll
// error: after a server dies with a reset, libuv reports the socket with an error status,
// the adapter returns without telling hiredis, and the connection hangs forever with no
// reply and no disconnect. This adapter hands such an event to hiredis as the read/write it
// was waiting for, so hiredis reads the socket error and disconnects (as hiredis 1.x does).

#include <hiredis/async.h>
#include <uv.h>

#include <string>
#include <string_view>

#include "conf/config.h"

namespace ringproxy::proxy {

// How the reason for a refused AUTH starts, on side and data connections alike.
inline constexpr std::string_view kLoginRefused = "authentication failed: ";

// Where a side connection goes and how it logs in: a numeric address (a server's host name
// resolved already: hiredis would resolve it on the loop, blocking it) and its credentials.
struct ServerLogin {
  conf::Address address;
  conf::BackendAuth auth;
};

// Starts a connection to `login.address` on `loop`. `data` lands in ctx->data for the
// callbacks. With credentials, AUTH goes first; if the server refuses it, the context is
// freed at once (its commands get null replies, then on_disconnect runs) with the server's
// error in ctx->errstr ("authentication failed: WRONGPASS ..."): see side_error().
// Returns nullptr (and why, in `error`) when it cannot even start.
redisAsyncContext* connect_async(const ServerLogin& login, uv_loop_t* loop, void* data,
                                 redisConnectCallback* on_connect, redisDisconnectCallback* on_disconnect,
                                 std::string* error = nullptr);

// Why a side connection ended: hiredis's error (a refused AUTH, a reset), else `otherwise`.
std::string side_error(const redisAsyncContext* ctx, std::string_view otherwise);

}  // namespace ringproxy::proxy
