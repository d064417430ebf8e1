#include "routing/replication.h"

#include <strings.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace ringproxy::routing {

AckRule ack_rule(const conf::ReplicationConfig& replication, size_t servers) {
  const uint32_t n = static_cast<uint32_t>(servers);
  const uint32_t majority = n / 2 + 1;
  switch (replication.strategy) {
    case conf::ReplicationStrategy::none:
      return {1, false};
    case conf::ReplicationStrategy::primary_replica:
      switch (replication.write_ack) {
        case conf::WriteAck::primary: return {1, true};
        case conf::WriteAck::one: return {n < 2 ? n : 2, true};  // the primary and one replica
        case conf::WriteAck::quorum: return {majority, true};
        case conf::WriteAck::all: return {n, true};
      }
      break;
    case conf::ReplicationStrategy::multi_primary:
      switch (replication.write_ack) {
        case conf::WriteAck::primary:  // refused by the config loader
        case conf::WriteAck::one: return {1, false};
        case conf::WriteAck::quorum: return {majority, false};
        case conf::WriteAck::all: return {n, false};
      }
      break;
  }
  return {n, false};
}

WriteTracker::WriteTracker(AckRule rule, uint32_t servers) : rule_(rule), servers_(servers) {}

WriteTracker::Decision WriteTracker::answer_with(int slot) {
  answered_ = true;
  Decision d;
  d.answer = true;
  d.reply_from = slot;
  return d;
}

WriteTracker::Decision WriteTracker::on_outcome(uint32_t slot, Outcome outcome) {
  ++outcomes_;
  Decision d;
  if (rule_.primary_first && slot == 0 && !primary_done_) {
    primary_done_ = true;
    if (outcome != Outcome::ack) {
      // The primary refused (its error goes to the client, not to the replicas) or could
      // not take the write: nothing is replicated.
      if (outcome == Outcome::error_reply) first_error_ = 0;
      Decision refused = answered_ ? Decision{} : answer_with(outcome == Outcome::error_reply ? 0 : -1);
      refused.cancel_replicas = true;
      return refused;
    }
    d.send_to_replicas = true;
  }
  if (outcome == Outcome::ack) {
    ++acks_;
    if (first_ack_ < 0 || (rule_.primary_first && slot == 0)) first_ack_ = static_cast<int>(slot);
  } else if (outcome == Outcome::error_reply && first_error_ < 0) {
    first_error_ = static_cast<int>(slot);
  }
  if (answered_) return d;

  if (acks_ >= rule_.needed) {
    Decision answer = answer_with(first_ack_);
    answer.send_to_replicas = d.send_to_replicas;
    return answer;
  }
  const uint32_t still_possible = servers_ - outcomes_;
  if (acks_ + still_possible < rule_.needed) {
    // Every server refused the same way (a WRONGTYPE on all of them): that error is the
    // answer, as a single server would give it. Otherwise say how far the write got.
    Decision answer = answer_with(acks_ == 0 && first_error_ >= 0 ? first_error_ : -1);
    answer.send_to_replicas = d.send_to_replicas;
    return answer;
  }
  return d;
}

std::string WriteTracker::shortfall_error(std::string_view shard) const {
  return "-ERR write to shard '" + std::string(shard) + "' acknowledged by " + std::to_string(acks_) + " of " +
         std::to_string(servers_) + " servers, " + std::to_string(rule_.needed) +
         " needed (it may be applied on the servers that acknowledged it, and on those that did not answer in "
         "time)\r\n";
}

std::optional<uint32_t> pick_read_server(conf::ReadFrom read_from, std::span<const uint8_t> readable,
                                         std::span<const uint32_t> pending, uint64_t rotation) {
  const size_t n = readable.size();
  if (n == 0) return std::nullopt;
  auto replica_round_robin = [&]() -> std::optional<uint32_t> {
    for (size_t i = 0; i + 1 < n; ++i) {
      uint32_t candidate = 1 + static_cast<uint32_t>((rotation + i) % (n - 1));
      if (readable[candidate]) return candidate;
    }
    return std::nullopt;
  };
  switch (read_from) {
    case conf::ReadFrom::primary:
      if (readable[0]) return 0u;
      return std::nullopt;
    case conf::ReadFrom::replica:
      return replica_round_robin();
    case conf::ReadFrom::prefer_replica:
      if (auto replica = replica_round_robin()) return replica;
      if (readable[0]) return 0u;
      return std::nullopt;
    case conf::ReadFrom::quorum:  // planned as a group of reads (planner.cc), not one server
    case conf::ReadFrom::any: {
      std::optional<uint32_t> best;
      for (size_t k = 0; k < n; ++k) {
        uint32_t i = static_cast<uint32_t>((rotation + k) % n);  // ties spread by rotation
        if (!readable[i]) continue;
        if (!best || pending[i] < pending[*best]) best = i;
      }
      return best;
    }
  }
  return std::nullopt;
}

size_t repair_winner(conf::ReplicationStrategy strategy, std::span<const std::optional<std::string_view>> copies) {
  if (strategy != conf::ReplicationStrategy::multi_primary || copies.empty()) return 0;
  size_t best = 0, best_votes = 0;
  for (size_t i = 0; i < copies.size(); ++i) {
    size_t votes = 0;
    for (const auto& other : copies) votes += other == copies[i];
    if (votes > best_votes) {  // strictly more: ties keep the lower slot
      best = i;
      best_votes = votes;
    }
  }
  return best;
}

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::optional<int64_t> to_int(std::string_view s) {
  int64_t v;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

void copy_args(std::span<const std::string_view> args, std::vector<std::string>& out) {
  out.assign(args.begin(), args.end());
}

}  // namespace

bool rewrite_relative_expiry(std::span<const std::string_view> args, uint64_t now_ms,
                             std::vector<std::string>& out) {
  if (args.empty()) return false;
  const std::string_view cmd = args[0];
  auto at = [now_ms](int64_t delta_ms) { return std::to_string(static_cast<int64_t>(now_ms) + delta_ms); };

  if (iequals(cmd, "set") || iequals(cmd, "getex")) {
    // SET key value [EX s|PX ms] ... / GETEX key [EX s|PX ms]
    for (size_t i = iequals(cmd, "set") ? 3 : 2; i + 1 < args.size(); ++i) {
      bool ex = iequals(args[i], "ex"), px = iequals(args[i], "px");
      if (!ex && !px) continue;
      std::optional<int64_t> n = to_int(args[i + 1]);
      if (!n || *n <= 0 || *n > (INT64_MAX / 1000 - static_cast<int64_t>(now_ms))) return false;  // the server says why
      copy_args(args, out);
      out[i] = "PXAT";
      out[i + 1] = at(ex ? *n * 1000 : *n);
      return true;
    }
    return false;
  }
  if ((iequals(cmd, "setex") || iequals(cmd, "psetex")) && args.size() == 4) {
    std::optional<int64_t> n = to_int(args[2]);
    if (!n || *n <= 0 || *n > (INT64_MAX / 1000 - static_cast<int64_t>(now_ms))) return false;
    out = {"SET", std::string(args[1]), std::string(args[3]), "PXAT", at(iequals(cmd, "setex") ? *n * 1000 : *n)};
    return true;
  }
  if ((iequals(cmd, "expire") || iequals(cmd, "pexpire")) && args.size() >= 3) {
    std::optional<int64_t> n = to_int(args[2]);
    if (!n || *n > INT64_MAX / 1000 - static_cast<int64_t>(now_ms) || *n < -(INT64_MAX / 1000) + static_cast<int64_t>(now_ms)) {
      return false;
    }
    copy_args(args, out);
    out[0] = "PEXPIREAT";
    out[2] = at(iequals(cmd, "expire") ? *n * 1000 : *n);
    return true;
  }
  if (iequals(cmd, "restore") && args.size() >= 4) {
    for (size_t i = 4; i < args.size(); ++i) {
      if (iequals(args[i], "absttl")) return false;
    }
    std::optional<int64_t> ttl = to_int(args[2]);
    if (!ttl || *ttl <= 0 || *ttl > INT64_MAX / 2) return false;  // 0: no expiry
    copy_args(args, out);
    out[2] = at(*ttl);
    out.push_back("ABSTTL");
    return true;
  }
  return false;
}

std::optional<size_t> xadd_auto_id(std::span<const std::string_view> args) {
  auto is = [](std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) == y;
           });
  };
  if (args.size() < 3 || !is(args[0], "xadd")) return std::nullopt;
  size_t i = 2;
  while (i < args.size()) {
    if (is(args[i], "nomkstream")) {
      ++i;
    } else if (is(args[i], "maxlen") || is(args[i], "minid")) {
      ++i;
      if (i < args.size() && (args[i] == "=" || args[i] == "~")) ++i;
      ++i;  // the threshold
      if (i + 1 < args.size() && is(args[i], "limit")) i += 2;
    } else {
      break;
    }
  }
  if (i < args.size() && args[i] == "*") return i;
  return std::nullopt;
}

}  // namespace ringproxy::routing
