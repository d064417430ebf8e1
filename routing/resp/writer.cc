#include "routing/resp/writer.h"

#include <charconv>

namespace ringproxy::resp {
namespace {

void append_number_line(std::string& out, char type, int64_t value) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  (void)ec;  // 24 bytes always hold an int64
  out.push_back(type);
  out.append(buf, end);
  out.append("\r\n", 2);
}

}  // namespace

void append_simple(std::string& out, std::string_view text) {
  out.push_back('+');
  out.append(text);
  out.append("\r\n", 2);
}

void append_error(std::string& out, std::string_view message) {
  out.push_back('-');
  size_t start = out.size();
  out.append(message);
  // An error is one line: a CR or LF inside it would desynchronise the client.
  for (size_t i = start; i < out.size(); ++i) {
    if (out[i] == '\r' || out[i] == '\n') out[i] = ' ';
  }
  out.append("\r\n", 2);
}

void append_integer(std::string& out, int64_t value) { append_number_line(out, ':', value); }

void append_bulk(std::string& out, std::string_view value) {
  append_number_line(out, '$', static_cast<int64_t>(value.size()));
  out.append(value);
  out.append("\r\n", 2);
}

void append_null_bulk(std::string& out) { out.append("$-1\r\n", 5); }

void append_array_header(std::string& out, size_t count) {
  append_number_line(out, '*', static_cast<int64_t>(count));
}

void append_command(std::string& out, std::span<const std::string_view> args) {
  append_array_header(out, args.size());
  for (std::string_view arg : args) append_bulk(out, arg);
}

void append_null(std::string& out, int protocol) { out.append(protocol == 3 ? "_\r\n" : "$-1\r\n"); }

void append_map_header(std::string& out, size_t pairs, int protocol) {
  if (protocol != 3) return append_array_header(out, pairs * 2);
  out.push_back('%');
  out.append(std::to_string(pairs));
  out.append("\r\n");
}

}  // namespace ringproxy::resp
