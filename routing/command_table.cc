// Lookups in the generated command table (command_table_data.cc). Every request does a
// top-level lookup, so that one is a hash index built once (measured under callgrind: the
// binary search over 241 names cost ~550 instructions per request, this ~60). Subcommand
// lookups are rarer and binary-search their small tables.
#include "routing/command_table.h"

#include <algorithm>
#include <cctype>
#include <array>

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

char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// FNV-1a over the bytes with bit 5 set: equal for a name in any letter case (the compare
// below is exact), and cheap.
uint32_t name_hash(std::string_view name) {
  uint32_t h = 2166136261u;
  for (char c : name) h = (h ^ static_cast<uint8_t>(c | 0x20)) * 16777619u;
  return h;
}

// Open addressing over the top-level commands, at most 1/4 full.
class CommandIndex {
 public:
  static constexpr size_t kSlots = 1024;

  CommandIndex() {
    for (size_t i = 0; i < detail::kCommands.size(); ++i) {
      size_t at = name_hash(detail::kCommands[i].name) & (kSlots - 1);
      while (slots_[at] != 0) at = (at + 1) & (kSlots - 1);
      slots_[at] = static_cast<uint16_t>(i + 1);
    }
  }

  const CommandInfo* find(std::string_view name) const {
    for (size_t at = name_hash(name) & (kSlots - 1); slots_[at] != 0; at = (at + 1) & (kSlots - 1)) {
      const CommandInfo& c = detail::kCommands[slots_[at] - 1];
      if (c.name.size() == name.size() &&
          std::equal(name.begin(), name.end(), c.name.begin(), [](char a, char b) { return to_lower(a) == b; })) {
        return &c;
      }
    }
    return nullptr;
  }

 private:
  std::array<uint16_t, kSlots> slots_{};  // command index + 1; 0 = empty
};

}  // namespace

const CommandInfo* find_command(std::string_view name) {
  static const CommandIndex index;
  if (name.empty() || name.size() > detail::kMaxCommandNameLength) return nullptr;
  return index.find(name);
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

std::string display_name(std::string_view name) {
  std::string out(name);
  for (char& c : out) c = c == '|' ? ' ' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace ringproxy::routing
