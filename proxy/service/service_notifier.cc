#include "proxy/service/service_notifier.h"

#include <systemd/sd-daemon.h>

namespace ringproxy::proxy {

namespace {

// A STATUS line carries no newline (it would end the assignment).
std::string one_line(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

}  // namespace

void ServiceNotifier::ready(const std::string& status) const {
  sd_notify(0, ("READY=1\nSTATUS=" + one_line(status)).c_str());
}

void ServiceNotifier::reloading() const { sd_notify(0, "RELOADING=1\nSTATUS=reloading the config"); }

void ServiceNotifier::stopping(const std::string& status) const {
  sd_notify(0, ("STOPPING=1\nSTATUS=" + one_line(status)).c_str());
}

void ServiceNotifier::status(const std::string& status) const {
  sd_notify(0, ("STATUS=" + one_line(status)).c_str());
}

}  // namespace ringproxy::proxy
