// Lookups in the generated command table (command_table_data.cc). Every request does one,
// so they allocate nothing: the name is lower-cased into a stack buffer and binary-searched
// (about 8 short compares for redis 7.0's 241 commands).
#include "routing/command_table.h"

#include <algorithm>

namespace ringproxy::routing {
namespace {

// Longer than any redis command or subcommand name (the test checks it); longer names are
// unknown without looking.
constexpr size_t kNameBuffer = 64;

// Searches `table` (sorted by name) for the entry whose name, after its first `skip`
// characters (the "container|" of subcommands), equals `name` ignoring ASCII case.
const CommandInfo* search(std::span<const CommandInfo> table, size_t skip,
                          std::string_view name, size_t max_length) {
  if (name.empty() || name.size() > max_length || name.size() > kNameBuffer) return nullptr;
  char buf[kNameBuffer];
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    buf[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  const std::string_view lower(buf, name.size());
  const auto it = std::lower_bound(
      table.begin(), table.end(), lower,
      [skip](const CommandInfo& c, std::string_view n) { return c.name.substr(skip) < n; });
  if (it == table.end() || it->name.substr(skip) != lower) return nullptr;
  return &*it;
}

}  // namespace

const CommandInfo* find_command(std::string_view name) {
  return search(detail::kCommands, 0, name, detail::kMaxCommandNameLength);
}

const CommandInfo* find_subcommand(const CommandInfo& container, std::string_view sub) {
  return search(container.subcommands, container.name.size() + 1, sub,
                detail::kMaxSubcommandNameLength);
}

std::span<const CommandInfo> all_commands() { return detail::kCommands; }

std::string_view command_class_name(CommandClass c) {
  switch (c) {
    case CommandClass::read: return "read";
    case CommandClass::write: return "write";
    case CommandClass::admin: return "admin";
    case CommandClass::local: return "local";
    case CommandClass::unsupported: return "unsupported";
  }
  return "?";
}

}  // namespace ringproxy::routing
