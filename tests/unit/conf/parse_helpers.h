// Loading a config text in a test: the result, the config (a failure is a test failure), or
// the error (a success is a test failure).
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "conf/loader.h"

namespace ringproxy::conf::testing {

inline LoadResult parse(const std::string& text) { return parse_config(text, "test.toml"); }

inline Config parse_ok(const std::string& text) {
  LoadResult result = parse(text);
  EXPECT_TRUE(result.config.has_value()) << result.error;
  return result.config.value_or(Config{});
}

inline std::string error_of(const std::string& text) {
  LoadResult result = parse(text);
  EXPECT_FALSE(result.config.has_value());
  return result.error;
}

}  // namespace ringproxy::conf::testing
