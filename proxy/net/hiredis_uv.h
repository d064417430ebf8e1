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

#include "conf/config.h"

namespace ringproxy::proxy {

// Starts a connection to `address` on `loop`. `data` lands in ctx->data for the callbacks.
// Returns nullptr (and why, in `error`) when it cannot even start.
redisAsyncContext* connect_async(const conf::Address& address, uv_loop_t* loop, void* data,
                                 redisConnectCallback* on_connect, redisDisconnectCallback* on_disconnect,
                                 std::string* error = nullptr);

}  // namespace ringproxy::proxy
