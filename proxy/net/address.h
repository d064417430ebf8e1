// Socket addresses for libuv, from the config's numeric addresses.
#pragma once

#include <arpa/inet.h>
#include <sys/socket.h>
#include <uv.h>

#include <cerrno>
#include <string>

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
// handle is initialized: the caller closes it. `reuse_port`: SO_REUSEPORT, so that another
// process (a new ringproxy taking over) may listen on the same address meanwhile; the kernel
// then spreads new connections over both. (libuv 1.44 has no flag for it: the socket is made
// first, set, then bound.)
inline int listen_on(uv_loop_t* loop, uv_tcp_t* handle, const conf::Address& address, int backlog,
                     uv_connection_cb on_connection, bool reuse_port = false) {
  sockaddr_storage addr;
  int rc = to_sockaddr(address, &addr);
  uv_tcp_init_ex(loop, handle, rc == 0 ? addr.ss_family : AF_UNSPEC);
  if (rc == 0 && reuse_port) {
    uv_os_fd_t fd = -1;
    int on = 1;
    rc = uv_fileno(reinterpret_cast<const uv_handle_t*>(handle), &fd);
    if (rc == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) rc = uv_translate_sys_error(errno);
  }
  if (rc == 0) rc = uv_tcp_bind(handle, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(handle), backlog, on_connection);
  return rc;
}

// The local end of a connected socket as redis prints a client's addr ("127.0.0.1:51234",
// "[::1]:51234"): what CLIENT KILL ADDR matches. "" when it cannot be read.
inline std::string local_address(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (fd < 0 || getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "";
  char ip[64] = {};
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    uv_ip4_name(in, ip, sizeof(ip));
    return std::string(ip) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    uv_ip6_name(in6, ip, sizeof(ip));
    return "[" + std::string(ip) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "";
}

inline std::string local_address(const uv_tcp_t* handle) {
  uv_os_fd_t fd = -1;
  if (uv_fileno(reinterpret_cast<const uv_handle_t*>(handle), &fd) != 0) return "";
  return local_address(fd);
}

}  // namespace ringproxy::proxy
