// `ringproxy import-twemproxy nutcracker.yml`: a twemproxy (nutcracker) pool as ringproxy's TOML,
// keeping every key on the server it is on (same shard names, weights, hash, distribution and
// hash tag: routing/ring.h is twemproxy's ketama and modula). What has no equivalent is said,
// with why: as a note when the TOML still behaves the same for the keys (auto_eject_hosts,
// preconnect, backlog ...), as an error when it cannot (a memcached pool, a hash ringproxy does
// not have, a Unix socket, redis_db) and no TOML is printed.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringproxy::conf {

struct TwemproxyImport {
  std::string toml;                 // empty when `error` is set
  std::vector<std::string> notes;   // for stderr: what differs, and why
  std::string error;                // why it cannot be converted
};

// `yaml_text`: the nutcracker.yml; `pool`: which of its pools (ringproxy serves one per
// process); nullopt takes the only one.
TwemproxyImport import_twemproxy(std::string_view yaml_text, const std::optional<std::string>& pool);

}  // namespace ringproxy::conf
