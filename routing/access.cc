#include "routing/access.h"

#include <openssl/crypto.h>

#include <cstring>
#include <utility>

#include "routing/keys.h"

namespace ringproxy::routing {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// What a command needs: reads and the proxy's harmless local commands need `read`; writes
// need `readwrite`; admin commands and PROXY RELOAD / REPAIR need `admin`.
bool is_script(std::string_view name) {
  return name == "eval" || name == "evalsha" || name == "fcall" || name == "eval_ro" || name == "evalsha_ro" ||
         name == "fcall_ro";
}

conf::Access needed(const CommandInfo& cmd, std::span<const std::string_view> args) {
  // A script runs with the server's full rights (it may call FLUSHALL, SWAPDB…), which the
  // proxy cannot check inside it: the writing forms need admin; the _RO forms are read-only
  // by the server's own rule.
  if (is_script(cmd.name)) return cmd.cls == CommandClass::write ? conf::Access::admin : conf::Access::read;
  // Libraries run like scripts (FCALL needs admin), and flushing or replacing what every
  // server runs is everyone's business.
  if (cmd.name == "script|flush" || (cmd.name.starts_with("function|") && cmd.cls == CommandClass::write)) {
    return conf::Access::admin;
  }
  switch (cmd.cls) {
    case CommandClass::write: return conf::Access::readwrite;
    case CommandClass::admin: return conf::Access::admin;
    case CommandClass::local:
      if (cmd.name == "proxy" && args.size() > 1 && (iequals(args[1], "reload") || iequals(args[1], "repair"))) {
        return conf::Access::admin;
      }
      // Other clients' addresses and names, and closing them: redis's @admin too.
      if (cmd.name == "client|list" || cmd.name == "client|kill") return conf::Access::admin;
      // Stopping a script someone else runs.
      if (cmd.name == "script|kill" || cmd.name == "function|kill") return conf::Access::readwrite;
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
    const bool same_digest = user.password_sha256.size() == digest.size() &&
                             CRYPTO_memcmp(user.password_sha256.data(), digest.data(), digest.size()) == 0;
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
  // Keys named inside a script, or by SORT's GET / BY patterns, are out of the proxy's sight.
  if (is_script(cmd.name)) {
    return "NOPERM this user has no permissions to run scripts: they can reach keys outside its key patterns";
  }
  // KEYS, SCAN and RANDOMKEY show key names, its own and everyone's.
  if (cmd.name == "scan" || cmd.name == "keys" || cmd.name == "randomkey") {
    return "NOPERM this user has no permissions to list keys: the keyspace holds keys outside its key patterns";
  }
  if (cmd.name == "sort" || cmd.name == "sort_ro") {
    for (size_t i = 2; i + 1 < args.size(); ++i) {
      const bool by = iequals(args[i], "by"), get = iequals(args[i], "get");
      if ((by && args[i + 1].find('*') != std::string_view::npos) || (get && args[i + 1] != "#")) {
        return "NOPERM this user has no permissions to use SORT's " + std::string(by ? "BY" : "GET") +
               " option with a pattern: it names keys outside its key patterns";
      }
      if (by || get || iequals(args[i], "store")) ++i;
      else if (iequals(args[i], "limit")) i += 2;
    }
  }
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
  for (const std::string& pattern : patterns) {
    if (pattern == "*" || glob_match(pattern, key)) return true;  // "*": every key, "" too (ACL's allkeys)
  }
  return false;
}

// Redis's stringmatchlen (util.c, redis 7.0), case-sensitive: binary-safe, bounded nesting,
// and a '*' that failed from every later position stops longer tries (no exponential time).
namespace {

bool glob_impl(const char* pattern, size_t pattern_len, const char* string, size_t string_len, bool* skip_longer,
               int nesting) {
  if (nesting > 1000) return false;  // abusive patterns
  while (pattern_len > 0 && string_len > 0) {
    switch (pattern[0]) {
      case '*':
        while (pattern_len > 1 && pattern[1] == '*') {
          ++pattern;
          --pattern_len;
        }
        if (pattern_len == 1) return true;
        while (string_len > 0) {
          if (glob_impl(pattern + 1, pattern_len - 1, string, string_len, skip_longer, nesting + 1)) return true;
          if (*skip_longer) return false;
          ++string;
          --string_len;
        }
        *skip_longer = true;
        return false;
      case '?':
        ++string;
        --string_len;
        break;
      case '[': {
        ++pattern;
        --pattern_len;
        const bool negate = pattern_len > 0 && pattern[0] == '^';
        if (negate) {
          ++pattern;
          --pattern_len;
        }
        bool match = false;
        while (true) {
          if (pattern_len >= 2 && pattern[0] == '\\') {
            ++pattern;
            --pattern_len;
            if (pattern[0] == string[0]) match = true;
          } else if (pattern_len == 0) {
            --pattern;  // an unterminated class: step back onto its last character
            ++pattern_len;
            break;
          } else if (pattern[0] == ']') {
            break;
          } else if (pattern_len >= 3 && pattern[1] == '-') {
            int start = pattern[0], end = pattern[2];
            const int c = string[0];
            if (start > end) std::swap(start, end);
            pattern += 2;
            pattern_len -= 2;
            if (c >= start && c <= end) match = true;
          } else if (pattern[0] == string[0]) {
            match = true;
          }
          ++pattern;
          --pattern_len;
        }
        if (negate) match = !match;
        if (!match) return false;
        ++string;
        --string_len;
        break;
      }
      case '\\':
        if (pattern_len >= 2) {
          ++pattern;
          --pattern_len;
        }
        [[fallthrough]];
      default:
        if (pattern[0] != string[0]) return false;
        ++string;
        --string_len;
        break;
    }
    ++pattern;
    --pattern_len;
    if (string_len == 0) {
      while (pattern_len > 0 && pattern[0] == '*') {
        ++pattern;
        --pattern_len;
      }
      break;
    }
  }
  return pattern_len == 0 && string_len == 0;
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view string) {
  bool skip_longer = false;
  return glob_impl(pattern.data(), pattern.size(), string.data(), string.size(), &skip_longer, 0);
}

}  // namespace ringproxy::routing
