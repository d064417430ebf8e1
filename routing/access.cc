#include "routing/access.h"

#include <fnmatch.h>
#include <openssl/crypto.h>

#include <cstring>

#include "routing/keys.h"

namespace ringproxy::routing {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// What a command needs: reads and the proxy's harmless local commands need `read`; writes
// need `readwrite`; admin commands and PROXY RELOAD / REPAIR need `admin`.
conf::Access needed(const CommandInfo& cmd, std::span<const std::string_view> args) {
  switch (cmd.cls) {
    case CommandClass::write: return conf::Access::readwrite;
    case CommandClass::admin: return conf::Access::admin;
    case CommandClass::local:
      if (cmd.name == "proxy" && args.size() > 1 && (iequals(args[1], "reload") || iequals(args[1], "repair"))) {
        return conf::Access::admin;
      }
      return conf::Access::read;
    default: return conf::Access::read;
  }
}

}  // namespace

const conf::UserConfig* authenticate(std::span<const conf::UserConfig> users, std::string_view name,
                                     std::string_view password) {
  const std::string digest = conf::password_digest(password);
  const conf::UserConfig* found = nullptr;
  for (const conf::UserConfig& user : users) {
    const bool same_digest = CRYPTO_memcmp(user.password_sha256.data(), digest.data(), digest.size()) == 0 &&
                             user.password_sha256.size() == digest.size();
    if (user.name == name && same_digest) found = &user;
  }
  return found;
}

std::string refusal(const conf::UserConfig& user, const CommandInfo& cmd, std::span<const std::string_view> args,
                    std::vector<uint32_t>& positions) {
  if (static_cast<uint8_t>(user.access) < static_cast<uint8_t>(needed(cmd, args))) {
    std::string name(cmd.name);
    return "NOPERM this user has no permissions to run the '" + name + "' command";
  }
  if (user.keys.empty()) return "";
  positions.clear();
  if (!find_key_positions(cmd, args, positions).empty()) return "";  // the planner refuses it
  for (uint32_t p : positions) {
    if (!key_allowed(user.keys, args[p])) {
      return "NOPERM this user has no permissions to access one of the keys used as arguments";
    }
  }
  return "";
}

bool key_allowed(std::span<const std::string> patterns, std::string_view key) {
  if (key.find('\0') != std::string_view::npos) return false;  // fnmatch sees C strings
  const std::string text(key);
  for (const std::string& pattern : patterns) {
    if (fnmatch(pattern.c_str(), text.c_str(), 0) == 0) return true;
  }
  return false;
}

}  // namespace ringproxy::routing
