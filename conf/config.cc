// Address text form, both directions. parse_address (declared in loader.h) lives here so
// that loader.cc deals only with TOML; the CLI can use it without a config file.
#include "conf/config.h"

#include <arpa/inet.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "conf/loader.h"

namespace ringproxy::conf {

std::string Address::to_string() const {
  const std::string port_text = std::to_string(port);
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + port_text;
  return host + ":" + port_text;
}

// Numeric hosts are digits and dots (IPv4) or contain ':' (IPv6); a name has a letter.
bool Address::is_name() const {
  return host.find(':') == std::string::npos &&
         std::any_of(host.begin(), host.end(), [](unsigned char c) { return std::isalpha(c); });
}

namespace {

bool fail(std::string* why, std::string message) {
  if (why) *why = std::move(message);
  return false;
}

// Port: decimal digits only, 1-65535 (0 is never a server port and "listen on any port"
// would leave the operator guessing where the proxy is).
bool parse_port(std::string_view text, uint16_t* port, std::string* why) {
  if (text.empty()) return fail(why, "missing port after ':'");
  if (!std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); })) {
    return fail(why, "port '" + std::string(text) + "' is not a number");
  }
  uint32_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535) {
    return fail(why, "port " + std::string(text) + " is out of range 1-65535");
  }
  *port = static_cast<uint16_t>(value);
  return true;
}

// Returns the canonical text of a numeric address (inet_ntop), so that "[0::1]" and "[::1]"
// compare equal when duplicates are checked.
bool canonical_ip(int family, const std::string& host, std::string* out) {
  unsigned char bytes[16];
  if (inet_pton(family, host.c_str(), bytes) != 1) return false;
  char text[INET6_ADDRSTRLEN];
  if (inet_ntop(family, bytes, text, sizeof text) == nullptr) return false;
  *out = text;
  return true;
}

bool looks_like_hostname(std::string_view host) {
  const bool allowed = std::all_of(host.begin(), host.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '.' || c == '-' || c == '_';
  });
  const bool has_letter =
      std::any_of(host.begin(), host.end(), [](unsigned char c) { return std::isalpha(c); });
  return allowed && has_letter;
}

// RFC 1123 names (and '_', which docker and Kubernetes names may hold): dot-separated labels
// of 1-63 letters, digits, '-' and '_', not starting or ending with '-'; 253 bytes at most;
// a trailing dot (fully qualified) allowed.
bool valid_hostname(std::string_view host, std::string* why) {
  if (host.size() > 253) return fail(why, "a host name has at most 253 characters");
  std::string_view rest = host;
  if (!rest.empty() && rest.back() == '.') rest.remove_suffix(1);
  while (true) {
    const size_t dot = rest.find('.');
    const std::string_view label = rest.substr(0, dot);
    if (label.empty() || label.size() > 63) {
      return fail(why, "'" + std::string(host) + "' is not a valid host name (each part between dots has 1 to 63 characters)");
    }
    if (label.front() == '-' || label.back() == '-') {
      return fail(why, "'" + std::string(host) + "' is not a valid host name (a part starts or ends with '-')");
    }
    if (dot == std::string_view::npos) return true;
    rest.remove_prefix(dot + 1);
  }
}

bool is_localhost(std::string_view host) {
  constexpr std::string_view kLocalhost = "localhost";
  return std::equal(host.begin(), host.end(), kLocalhost.begin(), kLocalhost.end(),
                    [](unsigned char a, char b) { return std::tolower(a) == b; });
}

}  // namespace

std::optional<Address> parse_address(std::string_view text, std::string* why, bool allow_names) {
  if (text.empty()) {
    fail(why, "empty address (expected host:port, e.g. 127.0.0.1:7001)");
    return std::nullopt;
  }
  std::string_view host;
  std::string_view port_text;
  const bool bracketed = text.front() == '[';
  if (bracketed) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) {
      fail(why, "missing ']' after an IPv6 address");
      return std::nullopt;
    }
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      fail(why, "expected ':<port>' after ']'");
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      fail(why, "missing ':<port>' (expected host:port, e.g. 127.0.0.1:7001)");
      return std::nullopt;
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      fail(why, "IPv6 addresses need brackets, e.g. [::1]:7001");
      return std::nullopt;
    }
  }
  if (host.empty()) {
    fail(why, "missing host before ':'");
    return std::nullopt;
  }
  Address address;
  if (!parse_port(port_text, &address.port, why)) return std::nullopt;

  const std::string host_text(host);
  if (bracketed) {
    if (!canonical_ip(AF_INET6, host_text, &address.host)) {
      fail(why, "'" + host_text + "' is not a valid IPv6 address");
      return std::nullopt;
    }
    return address;
  }
  if (is_localhost(host)) {
    address.host = "127.0.0.1";
    return address;
  }
  if (canonical_ip(AF_INET, host_text, &address.host)) return address;

  const bool dotted_digits = std::all_of(host.begin(), host.end(), [](unsigned char c) {
    return std::isdigit(c) || c == '.';
  });
  if (dotted_digits) {
    fail(why, "'" + host_text + "' is not a valid IPv4 address");
  } else if (looks_like_hostname(host) && allow_names) {
    if (!valid_hostname(host, why)) return std::nullopt;
    address.host = host_text;
    std::transform(address.host.begin(), address.host.end(), address.host.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return address;
  } else if (looks_like_hostname(host)) {
    fail(why, "'" + host_text + "' is a host name; use an IP address here (only servers' names are resolved)");
  } else {
    fail(why, "'" + host_text + "' is not an IP address");
  }
  return std::nullopt;
}

std::string_view tls_version_name(TlsVersion v) { return v == TlsVersion::tls1_3 ? "1.3" : "1.2"; }

std::string_view strategy_name(ReplicationStrategy s) {
  switch (s) {
    case ReplicationStrategy::none: return "none";
    case ReplicationStrategy::primary_replica: return "primary-replica";
    case ReplicationStrategy::multi_primary: return "multi-primary";
  }
  return "?";
}

std::string_view write_ack_name(WriteAck a) {
  switch (a) {
    case WriteAck::primary: return "primary";
    case WriteAck::one: return "one";
    case WriteAck::quorum: return "quorum";
    case WriteAck::all: return "all";
  }
  return "?";
}

std::string_view primary_down_name(PrimaryDown p) { return p == PrimaryDown::fail ? "fail" : "promote"; }

std::string_view migration_name(Migration m) {
  switch (m) {
    case Migration::none: return "none";
    case Migration::warm: return "warm";
    case Migration::move: return "move";
  }
  return "?";
}

std::string_view access_name(Access a) {
  switch (a) {
    case Access::read: return "read";
    case Access::readwrite: return "readwrite";
    case Access::admin: return "admin";
  }
  return "?";
}

std::string password_digest(std::string_view password) {
  unsigned char sha[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(password.data(), password.size(), sha, &length, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(sha), length);
}

bool is_loopback(const Address& address) {
  in_addr v4{};
  if (inet_pton(AF_INET, address.host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return inet_pton(AF_INET6, address.host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

std::string_view ping_answer_name(PingAnswer p) {
  switch (p) {
    case PingAnswer::proxy: return "proxy";
    case PingAnswer::servers: return "servers";
  }
  return "?";
}

std::string_view read_from_name(ReadFrom r) {
  switch (r) {
    case ReadFrom::primary: return "primary";
    case ReadFrom::prefer_replica: return "prefer-replica";
    case ReadFrom::replica: return "replica";
    case ReadFrom::any: return "any";
    case ReadFrom::quorum: return "quorum";
  }
  return "?";
}

}  // namespace ringproxy::conf
