#include "routing/reducer.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>

#include "routing/resp/reply_scanner.h"
#include "routing/resp/writer.h"
#include "routing/transaction.h"

namespace ringproxy::routing {

Reducer::Reducer(Merge merge, std::vector<std::vector<uint32_t>> fragment_slots, size_t slot_count)
    : merge_(merge),
      fragment_slots_(std::move(fragment_slots)),
      slot_count_(slot_count),
      replies_(fragment_slots_.size()),
      have_(fragment_slots_.size(), false) {}

bool Reducer::add(uint32_t fragment, std::string_view reply) {
  if (fragment >= replies_.size() || have_[fragment]) return false;
  have_[fragment] = true;
  replies_[fragment] = reply;
  return ++received_ == replies_.size();
}

void Reducer::finish(std::string& out) const {
  for (std::string_view reply : replies_) {
    if (resp::is_error_reply(reply)) {
      out.append(reply);
      return;
    }
  }
  switch (merge_) {
    case Merge::forward:
      out.append(replies_.empty() ? std::string_view("+OK\r\n") : replies_.front());
      return;
    case Merge::all_ok:
      for (std::string_view reply : replies_) {
        if (!resp::is_ok_reply(reply)) {
          resp::append_error(out, "ERR unexpected reply from a shard: " +
                                      std::string(reply.substr(0, reply.find('\r'))));
          return;
        }
      }
      resp::append_simple(out, "OK");
      return;
    case Merge::sum_integers: {
      int64_t sum = 0;
      for (std::string_view reply : replies_) {
        std::optional<int64_t> value = resp::integer_reply(reply);
        if (!value) {
          resp::append_error(out, "ERR unexpected non-integer reply from a shard");
          return;
        }
        if (__builtin_add_overflow(sum, *value, &sum)) {  // no real count gets here, but a reply might
          resp::append_error(out, "ERR the shards' integer replies add up beyond 64 bits");
          return;
        }
      }
      resp::append_integer(out, sum);
      return;
    }
    case Merge::array_by_position: {
      std::vector<std::string_view> merged(slot_count_);
      std::vector<std::string_view> elements;
      for (size_t f = 0; f < replies_.size(); ++f) {
        if (!resp::split_array_reply(replies_[f], elements) || elements.size() != fragment_slots_[f].size()) {
          out.clear();
          resp::append_error(out, "ERR unexpected reply shape from a shard");
          return;
        }
        for (size_t i = 0; i < elements.size(); ++i) merged[fragment_slots_[f][i]] = elements[i];
      }
      resp::append_array_header(out, slot_count_);
      for (std::string_view element : merged) out.append(element);
      return;
    }
    case Merge::concat_arrays: {
      std::vector<std::string_view> all, elements;
      for (std::string_view reply : replies_) {
        if (!resp::split_array_reply(reply, elements)) {
          resp::append_error(out, "ERR unexpected reply shape from a shard");
          return;
        }
        all.insert(all.end(), elements.begin(), elements.end());
      }
      resp::append_array_header(out, all.size());
      for (std::string_view element : all) out.append(element);
      return;
    }
    case Merge::scan_cursor:
      finish_scan(out);
      return;
    case Merge::config_get:
      hide_secrets(replies_.empty() ? std::string_view() : replies_.front(), out);
      return;
    case Merge::transaction:
      exec_reply(replies_.empty() ? std::string_view() : replies_.front(), out);
      return;
    case Merge::same_reply:
      for (std::string_view reply : replies_) {
        if (reply != replies_.front()) {
          resp::append_error(out, "ERR the servers answered differently: " +
                                      std::string(replies_.front().substr(0, 60)) + " and " +
                                      std::string(reply.substr(0, 60)));
          return;
        }
      }
      out.append(replies_.empty() ? std::string_view("+OK\r\n") : replies_.front());
      return;
    case Merge::any_key:
      for (size_t i = 0; i < replies_.size(); ++i) {
        std::string_view reply = replies_[(first_choice_ + i) % replies_.size()];
        if (!resp::is_null_reply(reply)) {
          out.append(reply);
          return;
        }
      }
      out.append(replies_.empty() ? std::string_view("$-1\r\n") : replies_.front());  // (in the servers' protocol)
      return;
    case Merge::all_of_arrays: {
      std::vector<std::string_view> elements;
      std::vector<int64_t> all;
      for (size_t f = 0; f < replies_.size(); ++f) {
        if (!resp::split_array_reply(replies_[f], elements) || (f > 0 && elements.size() != all.size())) {
          resp::append_error(out, "ERR unexpected reply shape from a shard");
          return;
        }
        if (f == 0) all.assign(elements.size(), 1);
        for (size_t i = 0; i < elements.size(); ++i) {
          if (resp::integer_reply(elements[i]).value_or(0) == 0) all[i] = 0;
        }
      }
      resp::append_array_header(out, all.size());
      for (int64_t value : all) resp::append_integer(out, value);
      return;
    }
  }
}

// CONFIG GET's pairs (an array, or RESP3's map), with the values of passwords replaced: they
// are the servers' secrets, which the proxy keeps.
void Reducer::hide_secrets(std::string_view reply, std::string& out) {
  static constexpr std::string_view kSecrets[] = {"requirepass", "masterauth", "tls-key-file-pass",
                                                  "tls-client-key-file-pass"};
  std::vector<std::string_view> elements;
  const bool map = !reply.empty() && reply[0] == '%';
  std::string as_array(reply);
  int64_t pairs = 0;
  if (map) {
    std::from_chars(reply.data() + 1, reply.data() + reply.find('\r'), pairs);
    as_array = "*" + std::to_string(pairs * 2) + std::string(reply.substr(reply.find('\r')));
  }
  if (!resp::split_array_reply(as_array, elements) || elements.size() % 2 != 0) {
    out.append(reply);
    return;
  }
  if (map) {
    out.append("%").append(std::to_string(elements.size() / 2)).append("\r\n");
  } else {
    resp::append_array_header(out, elements.size());
  }
  for (size_t i = 0; i < elements.size(); i += 2) {
    const std::optional<std::string_view> name = resp::bulk_string_reply(elements[i]);
    out.append(elements[i]);
    // (redis echoes a name asked for without a pattern in the client's casing)
    const bool secret = name && std::any_of(std::begin(kSecrets), std::end(kSecrets), [&](std::string_view secret) {
                          return secret.size() == name->size() &&
                                 std::equal(secret.begin(), secret.end(), name->begin(), [](char a, char b) {
                                   return a == std::tolower(static_cast<unsigned char>(b));
                                 });
                        });
    if (secret && resp::bulk_string_reply(elements[i + 1]).value_or("").size() > 0) {
      resp::append_bulk(out, "(hidden by ringproxy)");
    } else {
      out.append(elements[i + 1]);
    }
  }
}

// [server cursor, keys]: the cursor becomes the proxy's. The server's 0 ends its shard: the
// next shard from 0, or 0 after the last.
void Reducer::finish_scan(std::string& out) const {
  std::vector<std::string_view> elements;
  std::optional<std::string_view> text;
  uint64_t cursor = 0;
  if (replies_.size() == 1 && resp::split_array_reply(replies_[0], elements) && elements.size() == 2) {
    text = resp::bulk_string_reply(elements[0]);
  }
  if (!text || std::from_chars(text->data(), text->data() + text->size(), cursor).ec != std::errc() ||
      cursor > ScanCursor::kMaxServerCursor) {
    resp::append_error(out, "ERR unexpected reply to SCAN from a shard");
    return;
  }
  uint64_t next = 0;
  if (cursor != 0) {
    next = ScanCursor{scan_.shard, scan_.slot, scan_.table_check, scan_.server_check, cursor}.encode();
  } else if (scan_.shard + 1 < scan_.shards) {
    next = ScanCursor{scan_.shard + 1, 0, scan_.table_check, 0, 0}.encode();
  }
  resp::append_array_header(out, 2);
  resp::append_bulk(out, std::to_string(next));
  out.append(elements[1]);
}

}  // namespace ringproxy::routing
