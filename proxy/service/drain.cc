#include "proxy/service/drain.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "proxy/backend/backend_server.h"

namespace ringproxy::proxy {

namespace {
constexpr uint64_t kTickMs = 5;  // how often it looks: a drain ends within this of its work
constexpr uint64_t kLingerMs = 1000;
}  // namespace

void Drain::start(std::function<void()> done) {
  if (running_) return;
  running_ = true;
  done_ = std::move(done);
  started_ms_ = worker_.now_ms();
  const uint32_t timeout = worker_.config().proxy.shutdown_timeout_ms;
  deadline_ms_ = started_ms_ + timeout;
  spdlog::info("SIGTERM: draining (no new connections; answering what {} clients sent; at most {} ms; a second "
               "SIGTERM stops at once)",
               clients_.sessions().size(), timeout);
  notifier_.stopping("draining: answering what clients sent, then exiting");
  clients_.stop_listening();
  pubsub_.close_subscribers();
  blocking_.end_waits_in_proxy();
  blocking_.end_blocks_on_servers();
  clients_.drain();
  uv_timer_init(worker_.loop(), &timer_);
  timer_.data = this;
  timer_open_ = true;
  uv_timer_start(&timer_, on_tick, 0, kTickMs);
}

void Drain::stop() {
  if (!timer_open_) return;
  timer_open_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
}

void Drain::on_tick(uv_timer_t* timer) { static_cast<Drain*>(timer->data)->tick(); }

void Drain::tick() {
  const uint64_t now = worker_.now_ms();
  if (linger_until_ms_ != 0) {
    clients_.close_quiet_lingerers();
    if (clients_.sessions().empty() || now >= linger_until_ms_) finish(true);
    return;
  }
  if (clients_.unanswered() == 0 && copies_settled()) {
    linger_until_ms_ = std::min(deadline_ms_, now + kLingerMs);
    clients_.linger();
    return tick();
  }
  if (now >= deadline_ms_) finish(false);
}

bool Drain::copies_settled() const {
  for (const auto& server : servers_.servers()) {
    if (server->pending() > 0 || server->late_copies_pending()) return false;
    const bool live = server->state() == ServerState::up || server->state() == ServerState::recovering;
    if (live && server->replay_queue_length() > 0) return false;
  }
  return servers_.draining() == 0;  // (servers a reload removed, still answering)
}

std::string Drain::leftovers() const {
  std::string out;
  if (size_t clients = clients_.unanswered(); clients > 0) {
    out += std::to_string(clients) + " clients with requests unanswered (they are closed: their libraries see the "
           "connection end and retry)";
  }
  for (const auto& server : servers_.servers()) {
    std::string left;
    if (server->pending() > 0) left += std::to_string(server->pending()) + " requests in flight";
    if (server->replay_queue_length() > 0) {
      left += (left.empty() ? "" : ", ") + std::to_string(server->replay_queue_length()) +
              " writes queued for replay, lost with this process (it will need a resync)";
    }
    if (!left.empty()) {
      out += (out.empty() ? "" : "; ") + std::string("server ") + server->address().to_string() + " of shard '" +
             server->shard_name() + "': " + left;
    }
  }
  return out.empty() ? "nothing" : out;
}

void Drain::finish(bool in_time) {
  if (!done_) return;
  const uint64_t took = worker_.now_ms() - started_ms_;
  if (in_time) {
    spdlog::info("drained in {} ms: every request read was answered and every copy settled", took);
    // Servers that are down (or stale) keep their replay queues to the end: those writes die here.
    for (const auto& server : servers_.servers()) {
      if (server->replay_queue_length() == 0) continue;
      spdlog::warn("drain: server {} of shard '{}' ({}) has {} writes queued for replay, lost with this process "
                   "(it misses them: run PROXY REPAIR {} once it is back)",
                   server->address().to_string(), server->shard_name(), server_state_name(server->state()),
                   server->replay_queue_length(), server->shard_name());
    }
  } else {
    spdlog::warn("drain: shutdown_timeout_ms ({} ms) reached; stopping with {}", took, leftovers());
  }
  stop();
  std::exchange(done_, nullptr)();
}

}  // namespace ringproxy::proxy
