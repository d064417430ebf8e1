// Appends RESP2 values to a byte string: replies the proxy makes itself (errors, INFO,
// merged MGET...) and the per-shard fragments of split commands.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ringproxy::resp {

void append_simple(std::string& out, std::string_view text);        // +text
void append_error(std::string& out, std::string_view message);      // -message (CR/LF made spaces)
void append_integer(std::string& out, int64_t value);               // :value
void append_bulk(std::string& out, std::string_view value);         // $len value
void append_null_bulk(std::string& out);                            // $-1
void append_null(std::string& out, int protocol);                   // $-1, or RESP3's _
void append_map_header(std::string& out, size_t pairs, int protocol);  // %pairs, or *2·pairs
void append_array_header(std::string& out, size_t count);           // *count
void append_command(std::string& out, std::span<const std::string_view> args);  // *n $.. $..

}  // namespace ringproxy::resp
