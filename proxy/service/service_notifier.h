// Tells the service manager how the process is doing: systemd's notify protocol (sd_notify(3)
// from libsystemd: a datagram to $NOTIFY_SOCKET), which a unit with Type=notify waits for.
// READY=1 once the listeners are bound and the servers asked; RELOADING=1 ... READY=1 around a
// reload; STOPPING=1 when a drain starts; STATUS= a line `systemctl status` shows.
// Without $NOTIFY_SOCKET (not started by systemd) every call does nothing.
#pragma once

#include <string>

namespace ringproxy::proxy {

class ServiceNotifier {
 public:
  void ready(const std::string& status) const;
  void reloading() const;
  void stopping(const std::string& status) const;
  void status(const std::string& status) const;
};

}  // namespace ringproxy::proxy
