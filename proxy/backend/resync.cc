#include "proxy/backend/resync.h"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <cstring>
#include <string_view>

#include "proxy/backend/backend_server.h"
#include "proxy/net/side_link.h"
#include "proxy/net/address.h"
#include "proxy/backend/servers.h"

namespace ringproxy::proxy {
namespace {

constexpr uint64_t kSyncDeadlineMs = 300'000;  // the full copy of a large server takes time
constexpr uint64_t kHoldDeadlineMs = 2'000;    // writes are held only for the cutover
constexpr uint64_t kUnreachableMs = 10'000;    // a replica retries its master every second

std::string_view info_field(std::string_view info, std::string_view name) {
  size_t at = 0;
  while ((at = info.find(name, at)) != std::string_view::npos) {
    if ((at == 0 || info[at - 1] == '\n') && at + name.size() < info.size() && info[at + name.size()] == ':') {
      std::string_view rest = info.substr(at + name.size() + 1);
      return rest.substr(0, rest.find_first_of("\r\n"));
    }
    at += name.size();
  }
  return {};
}

uint64_t to_u64(std::string_view text) {
  uint64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

}  // namespace

ResyncJob::ResyncJob(BackendServer& stale, BackendServer& peer)
    : servers_(&stale.servers()), stale_(&stale), peer_(&peer),
      shard_(stale.servers().topology()->shards[stale.shard_index()]), stale_key_(stale.address_key()) {}

SideLink* ResyncJob::connect(BackendServer& server) {
  return SideLink::open(server.login(), stale_->worker(), this, on_connect, on_disconnect);
}

void ResyncJob::configure(const char* name, std::string_view value) {
  stale_link_->command(on_reply, this, "CONFIG SET %s %b", name, value.data(), value.size());
  configs_.emplace_back(name);
}

void ResyncJob::start() {
  Servers& servers = stale_->servers();
  uv_timer_init(servers.worker().loop(), &timer_);
  timer_.data = this;
  started_ms_ = servers.worker().now_ms();
  spdlog::info("resync of {} (shard {}) from {} starting", stale_->name(), stale_->shard_name(), peer_->name());
  stale_link_ = connect(*stale_);
  peer_link_ = connect(*peer_);
  if (stale_link_ == nullptr || peer_link_ == nullptr) return finish(false, "cannot connect");
  waiting_ = true;
  // Pipelined: the kills run before REPLICAOF, so nothing an abandoned connection still
  // holds can run on the copy.
  fences_ = servers.fences().pending(stale_->address_key());
  for (const std::string& local : fences_) {
    stale_link_->command(on_reply, this, "CLIENT KILL ADDR %b SKIPME yes", local.data(), local.size());
  }
  // A peer that wants a password gets the one the proxy uses: Redis's masteruser/masterauth.
  const conf::BackendAuth& auth = peer_->auth();
  if (!auth.password.empty()) {
    if (!auth.username.empty()) configure("masteruser", auth.username);
    configure("masterauth", auth.password);
  }
  // A peer the proxy reaches over TLS is reached over TLS by its replica too (its own
  // tls-cert-file and CA: the server's config, not the proxy's).
  if (peer_->tls() != nullptr) configure("tls-replication", "yes");
  if (fences_.empty()) step_ = !configs_.empty() ? Step::configuring : Step::replicaof;
  // After CONFIG SET's replies, not with them: a REPLICAOF sent on must never run for a job
  // that ends there (a refusal is only a warning, but another failure ends the job).
  if (configs_.empty()) send_replicaof();
  poll_later(1000);  // the deadline checks run on the timer
}

void ResyncJob::send_replicaof() {
  const conf::Address& peer = peer_->endpoint();
  stale_link_->command(on_reply, this, "REPLICAOF %s %d", peer.host.c_str(), static_cast<int>(peer.port));
}

void ResyncJob::cancel() {
  stale_ = nullptr;
  finish(false, "cancelled");
}

void ResyncJob::poll_later(uint64_t ms) { uv_timer_start(&timer_, on_timer, ms, 0); }

void ResyncJob::on_timer(uv_timer_t* timer) { static_cast<ResyncJob*>(timer->data)->tick(); }

void ResyncJob::on_connect(SideLink* link, bool ok) {
  auto* self = static_cast<ResyncJob*>(link->data());
  if (ok) {
    if (link == self->stale_link_) self->stale_local_ = link->local_address();
    return;
  }
  if (link == self->stale_link_) self->stale_link_ = nullptr;  // gone after this callback
  if (link == self->peer_link_) self->peer_link_ = nullptr;
  self->finish(false, "cannot connect: " + link->error_or("refused"));
}

void ResyncJob::on_disconnect(SideLink* link) {
  auto* self = static_cast<ResyncJob*>(link->data());
  if (link == self->stale_link_) self->stale_link_ = nullptr;
  if (link == self->peer_link_) self->peer_link_ = nullptr;
  self->finish(false, link->error_or("connection lost"));
}

void ResyncJob::on_reply(SideLink* link, redisReply* reply, void* privdata) {
  auto* self = static_cast<ResyncJob*>(privdata);
  if (self->finished_) return;
  if (reply == nullptr) return self->finish(false, link->error_or("connection lost"));
  self->handle(link, reply);
}

// The replies drive the steps; the timer drives polling and deadlines.
void ResyncJob::handle(SideLink* link, redisReply* reply) {
  if (step_ == Step::fencing) {  // one reply per kill, then REPLICAOF's
    const std::string& local = fences_[fences_answered_];
    const std::string_view text = reply->type == REDIS_REPLY_ERROR ? std::string_view(reply->str, reply->len) : "";
    stale_->on_fence_reply(local, reply->type == REDIS_REPLY_ERROR ? "-" + std::string(text) : ":1");
    if (++fences_answered_ == fences_.size()) step_ = !configs_.empty() ? Step::configuring : Step::replicaof;
    return;
  }
  if (step_ == Step::configuring) {  // one reply per CONFIG SET, then REPLICAOF goes
    // Refused (a user without CONFIG rights, a managed server): it may have masterauth and
    // tls-replication in its own config already; if not, ROLE shows it cannot reach its peer
    // and the job ends then, saying which setting it could not make.
    const std::string name = std::move(configs_.front());
    configs_.pop_front();
    const std::string_view error = reply->type == REDIS_REPLY_ERROR ? std::string_view(reply->str, reply->len) : "";
    if (!error.empty() && name == "tls-replication") {
      tls_refused_ = std::string(error);
      spdlog::warn("resync of {} (shard {}): its peer is reached over TLS, and CONFIG SET tls-replication yes was "
                   "refused ({}); going on with its own tls-replication",
                   stale_->name(), stale_->shard_name(), error);
    } else if (!error.empty() && !config_refused_) {
      config_refused_ = true;
      spdlog::warn("resync of {} (shard {}): it cannot be given the password for its peer (CONFIG SET: {}); going on "
                   "with its own masterauth",
                   stale_->name(), stale_->shard_name(), error);
    }
    if (configs_.empty()) {
      step_ = Step::replicaof;
      send_replicaof();
    }
    return;
  }
  waiting_ = false;
  if (reply->type == REDIS_REPLY_ERROR) return finish(false, std::string("server said: ") + reply->str);
  std::string_view text = reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS
                              ? std::string_view(reply->str, reply->len)
                              : std::string_view();
  switch (step_) {
    case Step::replicaof:
      step_ = Step::syncing;
      return poll_later(20);
    case Step::syncing: {
      // ROLE: ["slave", host, port, state, offset]. "connect"/"connecting" is a replica that
      // has not reached its master; "handshake"/"sync" is one waiting for or loading the copy
      // (which can take long: the peer's diskless-sync delay, a big dataset).
      const std::string_view state = reply->type == REDIS_REPLY_ARRAY && reply->elements >= 4 &&
                                             reply->element[3]->type == REDIS_REPLY_STRING
                                         ? std::string_view(reply->element[3]->str, reply->element[3]->len)
                                         : std::string_view();
      if (state == "connect" || state == "connecting") {
        const uint64_t now = stale_->worker().now_ms();
        if (link_down_since_ms_ == 0) link_down_since_ms_ = now;
        if (now - link_down_since_ms_ > kUnreachableMs) {
          return finish(false, tls_refused_.empty() ? "it cannot reach its peer"
                                                    : "it cannot reach its peer, which wants TLS, and it could not be "
                                                      "given tls-replication yes (CONFIG SET: " + tls_refused_ + ")");
        }
      } else {
        link_down_since_ms_ = 0;
      }
      // A write settled early whose copies wait for its leader's late reply would reach the
      // peer after the cutover and never this server: the cutover waits until none is left
      // (a lagging leader answers, or is given up, within its lag deadline).
      if (state == "connected" && stale_->servers().late_copies_pending(stale_->shard_name())) {
        return poll_later(50);
      }
      if (state == "connected") {
        step_ = Step::draining;
        holding_ = true;
        hold_started_ms_ = stale_->worker().now_ms();
        stale_->servers().hold_writes(*shard_, true);
        return poll_later(0);
      }
      return poll_later(50);
    }
    case Step::catching_up:
      if (link == peer_link_) {
        // 0 is a real offset: a backlog created for this replica on an idle peer.
        peer_offset_ = to_u64(info_field(text, "master_repl_offset"));
        peer_offset_known_ = true;
        return poll_later(0);
      }
      if (peer_offset_known_ && to_u64(info_field(text, "slave_repl_offset")) >= peer_offset_) {
        step_ = Step::promoting;
        waiting_ = true;
        stale_link_->command(on_reply, this, "REPLICAOF NO ONE");
        return;
      }
      return poll_later(1);
    case Step::promoting:
      ++shard_->cutovers;
      return finish(true, "");
    case Step::fencing:  // handled above
    case Step::configuring:
    case Step::draining:
    case Step::done:
      return;
  }
}

void ResyncJob::tick() {
  if (finished_) return;
  Servers& servers = stale_->servers();
  const uint64_t now = servers.worker().now_ms();
  if (now - started_ms_ > kSyncDeadlineMs) return finish(false, "full sync took too long");
  // Only a peer in sync has everything; a dead one would leave the copy waiting forever.
  if (peer_->detached() || peer_->mode() != routing::kServerLive) {
    return finish(false, "its peer " + peer_->name() + " is no longer live");
  }
  if (holding_ && now - hold_started_ms_ > kHoldDeadlineMs) return finish(false, "cutover took too long");
  if (waiting_) return poll_later(holding_ ? 1 : 50);
  switch (step_) {
    case Step::syncing:
      waiting_ = true;
      stale_link_->command(on_reply, this, "ROLE");
      return;
    case Step::draining:
      if (shard_->inflight_writes > 0 || servers.late_copies_pending(stale_->shard_name())) return poll_later(1);
      step_ = Step::catching_up;
      waiting_ = true;
      peer_link_->command(on_reply, this, "INFO replication");
      return;
    case Step::catching_up:
      waiting_ = true;
      stale_link_->command(on_reply, this, "INFO replication");
      return;
    default:
      return poll_later(50);
  }
}

void ResyncJob::finish(bool ok, const std::string& why) {
  if (finished_) return;
  finished_ = true;
  step_ = Step::done;
  // A REPLICAOF (or a kill) that has not run yet must not run later: the next attempt kills
  // this connection first.
  // (Cancelled too: the server may be added back later.)
  if (!ok && !stale_local_.empty()) servers_->fence(stale_key_, stale_local_);
  // The server is live before the held writes go out, so they reach it too.
  if (stale_ != nullptr) stale_->on_resync_result(ok, why);
  if (holding_) servers_->hold_writes(*shard_, false);
  for (SideLink** link : {&stale_link_, &peer_link_}) {
    if (*link != nullptr) std::exchange(*link, nullptr)->close();  // now, or right after the link's callback we are in
  }
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_timer_closed);
}

void ResyncJob::on_timer_closed(uv_handle_t* handle) { delete static_cast<ResyncJob*>(handle->data); }

}  // namespace ringproxy::proxy
