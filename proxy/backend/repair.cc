#include "proxy/backend/repair.h"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdarg>

#include "proxy/backend/backend_server.h"
#include "proxy/net/side_link.h"
#include "proxy/net/address.h"
#include "proxy/backend/servers.h"
#include "routing/replication.h"

namespace ringproxy::proxy {
namespace {

enum Kind : int { kScan, kDump, kTtl, kFix };
constexpr size_t kBatch = 100;
constexpr uint64_t kHoldDeadlineMs = 2000;

}  // namespace

struct RepairJob::Pending {
  RepairJob* job;
  size_t server;
  int kind;
  size_t key;
};

RepairJob::RepairJob(Servers& servers, uint32_t shard)
    : backend_(&servers), shard_(servers.table()->shards()[shard]), state_(servers.topology()->shards[shard]) {
  for (uint32_t s : shard_.servers) {
    if (servers.server_mode(s) != routing::kServerLive) continue;
    servers_.push_back(servers.table()->servers()[s].address);
    logins_.push_back(servers.servers()[s]->login());
  }
}

RepairJob::RepairJob(Servers& servers, uint32_t shard, std::vector<std::string> keys) : RepairJob(servers, shard) {
  keys_ = std::move(keys);
  targeted_ = true;
}

void RepairJob::start() {
  uv_timer_init(backend_->worker().loop(), &timer_);
  timer_.data = this;
  if (servers_.size() < 2) return finish(true, "fewer than 2 servers in sync: nothing to compare");
  for (size_t i = 0; i < servers_.size(); ++i) {
    std::string why;
    SideLink* link = SideLink::open(logins_[i], backend_->worker(), this, on_connect, on_disconnect, &why);
    if (link == nullptr) return finish(false, "cannot connect to " + servers_[i].to_string() + ": " + why);
    links_.push_back(link);
  }
  cursors_.assign(servers_.size(), "0");
  fixes_outstanding_.assign(servers_.size(), 0);
  dumps_.resize(servers_.size());
  ttls_.resize(servers_.size());
  if (targeted_) return start_batch();
  spdlog::info("repair of shard {} started ({} servers)", shard_.name, servers_.size());
  for (size_t i = 0; i < servers_.size(); ++i) scan(i);
  last_reply_ms_ = backend_->worker().now_ms();
  uv_timer_start(&timer_, on_timer, 100, 0);  // a server that stops answering fails the scan
}

void RepairJob::cancel() {
  cancelled_ = true;  // the proxy is shutting down: no report
  finish(false, "cancelled");
}

void RepairJob::command(size_t server, int kind, size_t key, const char* format, ...) {
  auto* pending = new Pending{this, server, kind, key};
  va_list ap;
  va_start(ap, format);
  const bool sent = links_[server] != nullptr && links_[server]->vcommand(on_reply, pending, format, ap);
  va_end(ap);
  if (!sent) {
    delete pending;
    return finish(false, "cannot send to a server");
  }
  ++outstanding_;
  if (kind == kFix) ++fixes_outstanding_[server];
}

void RepairJob::on_connect(SideLink* link, bool ok) {
  if (ok) return;
  auto* self = static_cast<RepairJob*>(link->data());
  for (SideLink*& l : self->links_) {
    if (l == link) l = nullptr;  // gone after this callback
  }
  self->finish(false, "cannot connect: " + link->error_or("refused"));
}

void RepairJob::on_disconnect(SideLink* link) {
  auto* self = static_cast<RepairJob*>(link->data());
  for (SideLink*& l : self->links_) {
    if (l == link) l = nullptr;
  }
  self->finish(false, link->error_or("connection lost"));
}

void RepairJob::on_reply(SideLink* link, redisReply* reply, void* privdata) {
  auto* pending = static_cast<Pending*>(privdata);
  RepairJob* self = pending->job;
  Pending copy = *pending;
  delete pending;
  if (self->finished_) return;
  --self->outstanding_;
  if (reply == nullptr) return self->finish(false, link->error_or("connection lost"));
  self->handle(copy, reply);
}

void RepairJob::scan(size_t server) { command(server, kScan, 0, "SCAN %s COUNT 500", cursors_[server].c_str()); }

void RepairJob::handle(const Pending& p, redisReply* reply) {
  if (p.kind == kFix) --fixes_outstanding_[p.server];
  last_reply_ms_ = backend_->worker().now_ms();
  if (reply->type == REDIS_REPLY_ERROR && p.kind != kFix) return finish(false, std::string("server said: ") + reply->str);
  switch (p.kind) {
    case kScan: {
      if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) return finish(false, "bad SCAN reply");
      cursors_[p.server].assign(reply->element[0]->str, reply->element[0]->len);
      const redisReply* keys = reply->element[1];
      for (size_t i = 0; i < keys->elements; ++i) {
        std::string key(keys->element[i]->str, keys->element[i]->len);
        if (seen_.insert(key).second) keys_.push_back(std::move(key));
      }
      if (cursors_[p.server] != "0") return scan(p.server);
      if (outstanding_ == 0 && std::all_of(cursors_.begin(), cursors_.end(), [](auto& c) { return c == "0"; })) {
        seen_.clear();
        start_batch();
      }
      return;
    }
    case kDump:
      if (reply->type == REDIS_REPLY_STRING) {
        dumps_[p.server][p.key].emplace(reply->str, reply->len);
      } else {
        dumps_[p.server][p.key].reset();
      }
      break;
    case kTtl:
      ttls_[p.server][p.key] = reply->type == REDIS_REPLY_INTEGER ? reply->integer : -2;
      break;
    case kFix:
      if (reply->type == REDIS_REPLY_ERROR) spdlog::warn("repair: a fix was refused: {}", reply->str);
      break;
  }
  if (outstanding_ > 0) return;
  if (step_ == Step::comparing) return fix_batch();
  if (step_ == Step::fixing) return end_batch();
}

// One batch at a time: the shard's writes are held so none can race the compare-and-fix.
void RepairJob::start_batch() {
  if (next_key_ >= keys_.size()) return finish(true, "");
  const uint32_t rate = shard_.replication.repair_keys_per_second;
  batch_begin_ = next_key_;
  batch_end_ = std::min(keys_.size(), next_key_ + std::min<size_t>(kBatch, rate));
  step_ = Step::holding;
  holding_ = true;
  hold_started_ms_ = backend_->worker().now_ms();
  backend_->hold_writes(*state_, true);
  tick();
}

void RepairJob::compare_batch() {
  step_ = Step::comparing;
  uv_timer_start(&timer_, on_timer, 100, 0);  // the hold's deadline covers the compare and the fix
  const size_t n = batch_end_ - batch_begin_;
  for (size_t s = 0; s < servers_.size(); ++s) {
    dumps_[s].assign(n, std::nullopt);
    ttls_[s].assign(n, -2);
    for (size_t i = 0; i < n; ++i) {
      const std::string& key = keys_[batch_begin_ + i];
      command(s, kDump, i, "DUMP %b", key.data(), key.size());
      command(s, kTtl, i, "PTTL %b", key.data(), key.size());
    }
  }
}

void RepairJob::fix_batch() {
  step_ = Step::fixing;
  const auto strategy = shard_.replication.strategy;
  std::vector<std::optional<std::string_view>> copies(servers_.size());
  std::vector<std::optional<std::string_view>> votes(servers_.size());
  std::vector<std::string> votes_storage(servers_.size());
  for (size_t i = 0; i < batch_end_ - batch_begin_; ++i) {
    for (size_t s = 0; s < servers_.size(); ++s) {
      copies[s] = dumps_[s][i] ? std::optional<std::string_view>(*dumps_[s][i]) : std::nullopt;
      // A copy is its value and whether it expires (DUMP carries no expiry).
      if (copies[s]) {
        votes_storage[s].assign(*copies[s]).push_back(ttls_[s][i] > 0 ? '\1' : '\0');
        votes[s] = votes_storage[s];
      } else {
        votes[s].reset();
      }
    }
    const size_t w = routing::repair_winner(strategy, votes);
    if (copies[w] && ttls_[w][i] == -2) continue;  // expired between DUMP and PTTL: next pass
    const std::string& key = keys_[batch_begin_ + i];
    bool fixed = false;
    for (size_t s = 0; s < servers_.size(); ++s) {
      if (s == w) continue;
      const bool same = copies[s] == copies[w] && (ttls_[s][i] > 0) == (ttls_[w][i] > 0);
      if (same) continue;
      fixed = true;
      if (!copies[w]) {
        command(s, kFix, 0, "DEL %b", key.data(), key.size());
      } else {
        long long ttl = ttls_[w][i] > 0 ? ttls_[w][i] : 0;
        command(s, kFix, 0, "RESTORE %b %lld %b REPLACE", key.data(), key.size(), ttl, copies[w]->data(),
                copies[w]->size());
      }
    }
    keys_fixed_ += fixed;
  }
  if (outstanding_ == 0) end_batch();
}

void RepairJob::end_batch() {
  holding_ = false;
  backend_->hold_writes(*state_, false);
  next_key_ = batch_end_;
  step_ = Step::waiting;
  const uint32_t rate = shard_.replication.repair_keys_per_second;
  uv_timer_start(&timer_, on_timer, (batch_end_ - batch_begin_) * 1000 / rate, 0);
}

void RepairJob::on_timer(uv_timer_t* timer) { static_cast<RepairJob*>(timer->data)->tick(); }

void RepairJob::tick() {
  if (finished_) return;
  if (step_ == Step::waiting) return start_batch();
  if (step_ == Step::scanning) {
    const uint64_t deadline = std::max<uint64_t>(kHoldDeadlineMs, 2ull * backend_->worker().config().pool.request_timeout_ms);
    if (backend_->worker().now_ms() - last_reply_ms_ > deadline) {
      return finish(false, "a server did not answer its SCAN within " + std::to_string(deadline) + " ms");
    }
    uv_timer_start(&timer_, on_timer, 100, 0);
    return;
  }
  if (step_ == Step::comparing || step_ == Step::fixing) {
    // A server that stops answering must not hold the shard's writes: the batch is given up
    // (and its connections fenced, should its fixes run late).
    if (backend_->worker().now_ms() - hold_started_ms_ > kHoldDeadlineMs) {
      return finish(false, "a server did not answer within " + std::to_string(kHoldDeadlineMs) + " ms");
    }
    uv_timer_start(&timer_, on_timer, 100, 0);
    return;
  }
  if (step_ != Step::holding) return;
  if (backend_->worker().now_ms() - hold_started_ms_ > kHoldDeadlineMs) return finish(false, "writes in flight did not drain");
  if (state_->inflight_writes > 0) {
    uv_timer_start(&timer_, on_timer, 1, 0);
    return;
  }
  compare_batch();
}

void RepairJob::finish(bool ok, const std::string& why) {
  if (finished_) return;
  finished_ = true;
  // Fixes still outstanding may run late on a stopped server, after newer writes: each
  // server's next writer kills this connection first (fence.h).
  if (!ok) {
    for (size_t s = 0; s < links_.size(); ++s) {
      if (links_[s] != nullptr && fixes_outstanding_[s] > 0) backend_->fence(servers_[s].to_string(), links_[s]->local_address());
    }
  }
  step_ = Step::done;
  if (holding_) backend_->hold_writes(*state_, false);
  holding_ = false;
  for (SideLink*& link : links_) {
    if (link != nullptr) std::exchange(link, nullptr)->close();  // now, or right after the link's callback we are in
  }
  if (!cancelled_) backend_->on_repair_done(*state_, ok, keys_.size(), keys_fixed_, why);
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_timer_closed);
}

void RepairJob::on_timer_closed(uv_handle_t* handle) { delete static_cast<RepairJob*>(handle->data); }

}  // namespace ringproxy::proxy
