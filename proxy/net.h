// Socket addresses for libuv, from the config's numeric addresses.
#pragma once

#include <uv.h>

#include "conf/config.h"

namespace ringproxy::proxy {

// 0, or a libuv error code (the host is a numeric IPv4 or IPv6 address: conf/ checked it).
inline int to_sockaddr(const conf::Address& address, sockaddr_storage* out) {
  *out = sockaddr_storage{};
  return address.host.find(':') == std::string::npos
             ? uv_ip4_addr(address.host.c_str(), address.port, reinterpret_cast<sockaddr_in*>(out))
             : uv_ip6_addr(address.host.c_str(), address.port, reinterpret_cast<sockaddr_in6*>(out));
}

// Initializes `handle` and listens on `address`; 0 or a libuv error code. On an error the
// handle is initialized: the caller closes it.
inline int listen_on(uv_loop_t* loop, uv_tcp_t* handle, const conf::Address& address, int backlog,
                     uv_connection_cb on_connection) {
  sockaddr_storage addr;
  int rc = to_sockaddr(address, &addr);
  uv_tcp_init(loop, handle);
  if (rc == 0) rc = uv_tcp_bind(handle, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(handle), backlog, on_connection);
  return rc;
}

}  // namespace ringproxy::proxy
