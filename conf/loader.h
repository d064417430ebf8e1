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
  std::string digest;            // the first 16 hex digits of the text's SHA-256 (as sha256sum)
};

// `source_name` is used in error messages (usually the path). Reports the first problem
// in document order. Never throws: every failure, TOML syntax included, is in `error`.
LoadResult parse_config(std::string_view toml_text, std::string_view source_name);
// Reads `path` ("cannot read <path>: <strerror>" if it cannot), then parse_config(text, path).
LoadResult load_config_file(const std::string& path);
// The first 16 hex digits of SHA-256(text): what `sha256sum FILE | cut -c1-16` prints.
std::string text_digest(std::string_view text);

// A password_file's password: its text without a final newline (CRLF too). False, with why in
// `error` (never the file's text), when it cannot be read, is empty or is larger than 64 KiB.
bool read_password_file(const std::string& path, std::string* password, std::string* error);

// Parses "host:port" / "[v6]:port" / "localhost:port"; nullopt with the reason in `why`
// (may be null) on failure. A numeric host is stored canonical (inet_ntop), so equal
// addresses compare equal. Host names other than localhost are refused unless `allow_names`
// (backend servers), then kept lowercase and never resolved here. Port 1-65535.
// Defined in config.cc, next to Address::to_string.
std::optional<Address> parse_address(std::string_view text, std::string* why, bool allow_names = false);

}  // namespace ringproxy::conf
