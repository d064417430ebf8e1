// Loads and validates a TOML config. Strict: unknown keys, wrong types, out-of-range
// values, duplicate shard names or server addresses and bad addresses are errors that
// name file:line:column. Nothing is defaulted silently except documented defaults.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "conf/config.h"

namespace ringproxy::conf {

struct LoadResult {
  std::optional<Config> config;  // set on success
  std::string error;             // set on failure: "file:line:column: message"
};

// `source_name` is used in error messages (usually the path).
LoadResult parse_config(std::string_view toml_text, std::string_view source_name);
LoadResult load_config_file(const std::string& path);

// Parses "host:port" / "[v6]:port" / "localhost:port"; nullopt with `why` on failure.
std::optional<Address> parse_address(std::string_view text, std::string* why);

}  // namespace ringproxy::conf
