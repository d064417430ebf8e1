#include "proxy/backend/fence.h"

#include <algorithm>

#include "routing/resp/writer.h"

namespace ringproxy::proxy {

void FenceBook::add(const std::string& server, std::string local) {
  if (local.empty()) return;  // never connected: it sent nothing
  std::vector<std::string>& list = pending_[server];
  if (std::find(list.begin(), list.end(), local) == list.end()) list.push_back(std::move(local));
}

const std::vector<std::string>& FenceBook::pending(const std::string& server) const {
  static const std::vector<std::string> kNone;
  auto it = pending_.find(server);
  return it == pending_.end() ? kNone : it->second;
}

bool FenceBook::done(const std::string& server, std::string_view local) {
  auto it = pending_.find(server);
  if (it == pending_.end()) return false;
  auto at = std::find(it->second.begin(), it->second.end(), local);
  if (at == it->second.end()) return false;
  it->second.erase(at);
  if (it->second.empty()) pending_.erase(it);
  return true;
}

std::string FenceBook::kill_command(std::string_view local) {
  std::string out;
  const std::string_view words[] = {"CLIENT", "KILL", "ADDR", local, "SKIPME", "yes"};
  resp::append_command(out, words);
  return out;
}

}  // namespace ringproxy::proxy
