// Merges the replies of a split or broadcast plan into the one reply the client gets.
// Pure: fed complete RESP replies (or the proxy's own error replies for fragments that
// failed), in any order; says when it has everything and what to answer.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "routing/command_table.h"
#include "routing/scan_cursor.h"

namespace ringproxy::routing {

class Reducer {
 public:
  // `fragment_slots[f]`: for array_by_position, the output positions of fragment f's
  // elements, in order; `slot_count`: the number of elements of the merged array.
  Reducer(Merge merge, std::vector<std::vector<uint32_t>> fragment_slots, size_t slot_count);
  // scan_cursor: where the one fragment read.
  void set_scan(ScanPosition at) { scan_ = at; }
  // any_key: the reply preferred (it moves on with each request).
  void set_first_choice(uint32_t fragment) { first_choice_ = fragment; }

  // Returns true when this was the last missing reply. A reply view must stay valid
  // until finish() (the caller keeps the buffers it points into).
  bool add(uint32_t fragment, std::string_view reply);
  bool complete() const { return received_ == replies_.size(); }

  // The merged reply. The first error reply (in fragment order) wins: a fanned-out
  // command either fully succeeds or reports why it did not.
  void finish(std::string& out) const;

 private:
  void finish_scan(std::string& out) const;
  static void hide_secrets(std::string_view reply, std::string& out);

  Merge merge_;
  std::vector<std::vector<uint32_t>> fragment_slots_;
  size_t slot_count_;
  ScanPosition scan_;
  uint32_t first_choice_ = 0;
  std::vector<std::string_view> replies_;
  std::vector<bool> have_;
  size_t received_ = 0;
};

}  // namespace ringproxy::routing
