#include "proxy/backend.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "proxy/fence.h"
#include "proxy/net.h"
#include "proxy/probe.h"
#include "proxy/proxy.h"
#include "proxy/resync.h"

namespace ringproxy::proxy {

std::string_view server_state_name(ServerState state) {
  switch (state) {
    case ServerState::up: return "up";
    case ServerState::down: return "down";
    case ServerState::recovering: return "recovering";
    case ServerState::stale: return "stale";
  }
  return "unknown";
}

// ---------------------------------------------------------------- BackendConnection --

// One writev of queued fragments. Holds a reference to every block it points into until
// libuv is done with them (the requests may complete, and be freed, before that).
struct BackendConnection::WriteBatch {
  uv_write_t req;
  std::vector<uv_buf_t> bufs;
  std::vector<BlockRef> blocks;
};

BackendConnection::BackendConnection(BackendServer& server, uint32_t index) : server_(server), index_(index) {}

BackendConnection::~BackendConnection() {
  close_handle();
  for (WriteBatch* batch : spare_batches_) delete batch;
}

void BackendConnection::enqueue(Fragment* fragment) {
  fragment->sent_at_ms = server_.proxy().now_ms();
  queue_.push_back(fragment);
  ++unsent_;
  if (state_ == State::disconnected) connect();
  if (state_ == State::connected && !dirty) server_.proxy().mark_dirty(this);
}

void BackendConnection::connect() {
  if (state_ != State::disconnected) return;
  Proxy& proxy = server_.proxy();
  const conf::Address& address = server_.address();
  sockaddr_storage addr;
  int rc = to_sockaddr(address, &addr);
  if (rc != 0) return fail(std::string("bad address: ") + uv_strerror(rc), Failure::counted);

  handle_ = new uv_tcp_t;
  uv_tcp_init(proxy.loop(), handle_);
  handle_->data = this;
  uv_tcp_nodelay(handle_, 1);
  uv_tcp_keepalive(handle_, 1, 60);
  auto* req = new uv_connect_t;
  state_ = State::connecting;
  connect_started_ms_ = proxy.now_ms();
  rc = uv_tcp_connect(req, handle_, reinterpret_cast<const sockaddr*>(&addr), on_connect);
  if (rc != 0) {
    delete req;
    fail(std::string("connect: ") + uv_strerror(rc), Failure::counted);
  }
}

void BackendConnection::on_connect(uv_connect_t* req, int status) {
  auto* self = static_cast<BackendConnection*>(req->handle->data);
  delete req;
  if (self == nullptr) return;  // closed meanwhile
  if (status != 0) return self->fail(std::string("connect: ") + uv_strerror(status), Failure::counted);
  self->state_ = State::connected;
  self->local_address_ = local_address(self->handle_);
  // Connections this server abandoned are killed before anything this one sends runs.
  const std::vector<std::string>& fences = self->server_.proxy().fences().pending(self->server_.address_key());
  for (auto it = fences.rbegin(); it != fences.rend(); ++it) self->push_fence(self->server_.fence_fragment(*it), true);
  uv_read_start(reinterpret_cast<uv_stream_t*>(self->handle_), on_alloc, on_read);
  if (self->unsent_ > 0 && !self->dirty) self->server_.proxy().mark_dirty(self);
}

// A fence goes first on a new connection (nothing was written on it yet).
void BackendConnection::push_fence(Fragment* fence, bool front) {
  fence->sent_at_ms = server_.proxy().now_ms();
  server_.proxy().count_pending(server_.index(), 1);
  if (front) {
    queue_.push_front(fence);
  } else {
    queue_.push_back(fence);
  }
  ++unsent_;
}

void BackendConnection::send_fence(const std::string& target) {
  if (state_ != State::connected) return;  // a connection that connects later sends every pending fence first
  push_fence(server_.fence_fragment(target), false);
  if (!dirty) server_.proxy().mark_dirty(this);
}

// Writes queued fragments: directly when the socket takes them all (the common case, and
// no libuv write request or callback is needed), else the rest through uv_write. libuv's
// uv_try_write refuses while earlier writes are queued, so the order is kept.
void BackendConnection::flush() {
  dirty = false;
  if (state_ != State::connected || unsent_ == 0) return;
  const size_t first = queue_.size() - unsent_;
  unsent_ = 0;
  bufs_.clear();
  const uint64_t now_ns = server_.proxy().timing() ? server_.proxy().loop_ns() : 0;
  for (size_t i = first; i < queue_.size(); ++i) {
    Fragment* f = queue_[i];
    f->sent_ns = now_ns;
    bufs_.push_back(uv_buf_init(const_cast<char*>(f->bytes.data()), static_cast<unsigned>(f->bytes.size())));
  }
  auto* stream = reinterpret_cast<uv_stream_t*>(handle_);
  int written = uv_try_write(stream, bufs_.data(), static_cast<unsigned>(bufs_.size()));
  if (written < 0 && written != UV_EAGAIN) return fail(std::string("write: ") + uv_strerror(written), Failure::counted);
  if (written > 0 && static_cast<size_t>(written) == total_bytes(bufs_)) return;
  if (written > 0) advance_bufs(bufs_, static_cast<size_t>(written));

  WriteBatch* batch = take_spare(spare_batches_);
  batch->bufs.swap(bufs_);
  for (size_t i = first; i < queue_.size(); ++i) batch->blocks.push_back(queue_[i]->bytes_block);
  batch->req.data = batch;
  int rc = uv_write(&batch->req, stream, batch->bufs.data(), static_cast<unsigned>(batch->bufs.size()), on_write);
  if (rc != 0) {
    delete batch;
    fail(std::string("write: ") + uv_strerror(rc), Failure::counted);
  }
}

void BackendConnection::on_write(uv_write_t* req, int status) {
  auto* batch = static_cast<WriteBatch*>(req->data);
  auto* self = static_cast<BackendConnection*>(req->handle->data);
  if (self != nullptr && self->spare_batches_.size() < 8) {
    batch->bufs.clear();
    batch->blocks.clear();  // releases the blocks now
    self->spare_batches_.push_back(batch);  // reused: no malloc per flush
  } else {
    delete batch;  // the connection closed (or has spares enough)
  }
  if (status < 0 && status != UV_ECANCELED && self != nullptr) {
    self->fail(std::string("write: ") + uv_strerror(status), Failure::counted);
  }
}

void BackendConnection::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* self = static_cast<BackendConnection*>(handle->data);
  auto [data, size] = self->input_.prepare(self->scanner_.bytes_needed());
  *buf = uv_buf_init(data, static_cast<unsigned>(size));
}

void BackendConnection::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
  auto* self = static_cast<BackendConnection*>(stream->data);
  if (self == nullptr || nread == 0) return;  // 0: nothing to read now, not EOF
  if (nread < 0) {
    return self->fail(nread == UV_EOF ? "connection closed by the server" : uv_strerror(static_cast<int>(nread)),
                      Failure::counted);
  }
  self->input_.commit(static_cast<size_t>(nread));
  self->last_read_ms_ = self->server_.proxy().now_ms();
  if (self->server_.proxy().timing()) self->read_ns_ = self->server_.proxy().loop_ns();
  self->handle_replies();
}

void BackendConnection::handle_replies() {
  while (true) {
    resp::ParseStatus status = scanner_.scan(input_.unconsumed(), input_.unconsumed_size());
    if (status == resp::ParseStatus::incomplete) return;
    if (status == resp::ParseStatus::error) {
      return fail(std::string("protocol error in reply: ") + std::string(scanner_.error()), Failure::counted);
    }
    if (queue_.size() == unsent_) return fail("reply without a request", Failure::counted);
    Fragment* fragment = queue_.front();
    queue_.pop_front();
    server_.proxy().count_pending(server_.index(), -1);
    if (fragment->sent_ns != 0 && read_ns_ > fragment->sent_ns) server_.observe_latency(read_ns_ - fragment->sent_ns);
    size_t n = scanner_.reply_bytes();
    if (!fragment->settled) {
      fragment->reply = std::string_view(input_.unconsumed(), n);
    } else {
      fragment->late_reply = std::string_view(input_.unconsumed(), n);
    }
    fragment->reply_block = input_.block();
    input_.consume(n);
    scanner_.reset();
    server_.on_success();
    server_.proxy().on_fragment_done(*fragment);
    if (lagging_since_ms_ != 0 && queue_.size() == unsent_) {  // every late reply is in
      lagging_since_ms_ = 0;
      server_.on_lag_over();
    }
  }
}

void BackendConnection::check_timeouts(uint64_t now_ms) {
  const conf::PoolConfig& pool = server_.proxy().config().pool;
  if (state_ == State::connecting && now_ms - connect_started_ms_ >= pool.connect_timeout_ms) {
    return fail("connect timed out after " + std::to_string(pool.connect_timeout_ms) + " ms", Failure::timeout);
  }
  // Timed from the later of the oldest request's send and the last bytes the server sent:
  // a server still streaming a large reply (or the replies before it) is not hung.
  if (state_ == State::connected && queue_.size() > unsent_ &&
      now_ms - std::max(queue_.front()->sent_at_ms, last_read_ms_) >= pool.request_timeout_ms) {
    if (server_.replicated()) return lag(now_ms);
    fail("timed out after " + std::to_string(pool.request_timeout_ms) + " ms", Failure::timeout);
  }
}

// A replicated server that stopped answering keeps its connection: closing it would leave
// the writes in flight neither known applied nor known lost (a full resync). Instead every
// request in flight is settled now (its client is answered without this server), the late
// replies are matched and dropped, and the server takes new writes through its replay
// queue until they have all come back. Only if it stays silent far longer is the
// connection given up (and the server then needs a resync).
void BackendConnection::lag(uint64_t now_ms) {
  const conf::PoolConfig& pool = server_.proxy().config().pool;
  if (lagging_since_ms_ == 0) {
    lagging_since_ms_ = now_ms;
    server_.on_lagging("timed out after " + std::to_string(pool.request_timeout_ms) + " ms");
  }
  const uint64_t give_up_ms = std::max<uint64_t>(30000, 10ull * pool.request_timeout_ms);
  if (now_ms - lagging_since_ms_ >= give_up_ms) {
    return fail("no reply for " + std::to_string(now_ms - lagging_since_ms_) + " ms", Failure::timeout);
  }
  std::string error = "-ERR shard '" + server_.shard_name() + "' server " + server_.name() + ": timed out after " +
                      std::to_string(pool.request_timeout_ms) + " ms\r\n";
  for (size_t i = 0; i + unsent_ < queue_.size(); ++i) {
    Fragment* fragment = queue_[i];
    if (fragment->settled || fragment->request == nullptr) continue;
    fragment->settled = true;
    fragment->failed = true;
    fragment->owned_reply = error;
    fragment->reply = fragment->owned_reply;
    server_.proxy().on_fragment_settled(*fragment);
  }
}

void BackendConnection::fail(std::string_view why, Failure kind) {
  bool had_work = state_ != State::disconnected || !queue_.empty();
  if (lagging_since_ms_ != 0) {  // writes it took may or may not have been applied
    lagging_since_ms_ = 0;
    server_.mark_stale(std::string("connection lost while lagging: ") + std::string(why));
  }
  close_handle();
  state_ = State::disconnected;
  input_ = ReadBuffer();
  scanner_.reset();
  std::deque<Fragment*> failed;
  failed.swap(queue_);
  const size_t written = failed.size() - unsent_;
  unsent_ = 0;
  server_.proxy().count_pending(server_.index(), -static_cast<int64_t>(failed.size()));
  // The server may still run what was written (a stopped server wakes up and reads it,
  // even though this end is closed): whoever writes to it next kills this client first.
  const bool wrote_commands = written > 0;
  std::string local = std::move(local_address_);
  local_address_.clear();
  if (!had_work) return;  // (also when mark_down below fails this connection again)
  if (kind != Failure::not_counted) server_.on_failure(why, kind == Failure::timeout);
  if (wrote_commands) server_.fence(std::move(local));  // after on_failure: it may be down now

  std::string error = "-ERR shard '" + server_.shard_name() + "' server " + server_.name() + ": " +
                      std::string(why) + "\r\n";
  for (size_t i = 0; i < failed.size(); ++i) {
    Fragment* fragment = failed[i];
    if (fragment->settled) {  // already answered for; only released now
      server_.proxy().on_fragment_done(*fragment);
      continue;
    }
    fragment->failed = true;
    fragment->maybe_sent = i < written;  // written to the socket: it may have been applied
    fragment->owned_reply = error;
    fragment->reply = fragment->owned_reply;
    server_.proxy().on_fragment_done(*fragment);
  }
}

void BackendConnection::close_handle() {
  if (handle_ == nullptr) return;
  handle_->data = nullptr;  // late callbacks (connect, write) see the connection is gone
  uv_close(reinterpret_cast<uv_handle_t*>(handle_), on_close);
  handle_ = nullptr;
}

void BackendConnection::on_close(uv_handle_t* handle) { delete reinterpret_cast<uv_tcp_t*>(handle); }

// -------------------------------------------------------------------- BackendServer --

BackendServer::BackendServer(Proxy& proxy, uint32_t index, const routing::ServerEntry& entry, std::string shard_name,
                             const conf::ReplicationConfig& replication)
    : proxy_(proxy),
      index_(index),
      name_(entry.name),
      shard_name_(std::move(shard_name)),
      address_(entry.address),
      address_key_(entry.address.to_string()),
      metrics_(proxy.metrics()->server(entry.name, shard_name_)),
      replicated_(replication.strategy != conf::ReplicationStrategy::none),
      replication_(replication),
      shard_index_(entry.shard) {
  uint32_t count = proxy.config().pool.backend_connections;
  for (uint32_t i = 0; i < count; ++i) connections_.push_back(std::make_unique<BackendConnection>(*this, i));
  metrics_.up->Set(1);
  set_state(ServerState::up);
}

BackendServer::~BackendServer() { stop(); }

void BackendServer::start() {
  for (auto& connection : connections_) connection->connect();
  if (replicated_ && run_id_.empty()) start_probe();  // learn its run_id, to notice restarts
}

void BackendServer::start_probe() {
  if (probe_ != nullptr) return;
  const conf::PoolConfig& pool = proxy_.config().pool;
  probe_ = new ServerProbe(*this, pool.connect_timeout_ms + pool.request_timeout_ms);
  probe_->start();
}

void BackendServer::stop() {
  if (probe_ != nullptr) std::exchange(probe_, nullptr)->cancel();
  if (resync_ != nullptr) std::exchange(resync_, nullptr)->cancel();
  for (auto& connection : connections_) connection->fail("proxy is shutting down", BackendConnection::Failure::not_counted);
}

bool BackendConnection::settled_in_flight() const {
  return std::any_of(queue_.begin(), queue_.end(), [](const Fragment* f) { return f->settled && f->request; });
}

bool BackendServer::settled_in_flight() const {
  return std::any_of(connections_.begin(), connections_.end(),
                     [](const auto& connection) { return connection->settled_in_flight(); });
}

size_t BackendServer::pending() const {
  size_t total = 0;
  for (const auto& connection : connections_) total += connection->pending();
  return total;
}

void BackendServer::send(Fragment& fragment, uint64_t client_id) {
  fragment.server = this;
  ++requests_;
  proxy_.count_pending(index_, 1);
  connections_[client_id % connections_.size()]->enqueue(&fragment);
}

void BackendServer::on_success() { consecutive_failures_ = 0; }

void BackendServer::set_mode(routing::ServerMode mode) {
  mode_ = mode;
  proxy_.set_server_mode(index_, mode);
}

void BackendServer::rebind(uint32_t index, uint32_t shard_index, const conf::ReplicationConfig& replication) {
  index_ = index;
  shard_index_ = shard_index;
  const bool was_replicated = replicated_;
  replication_ = replication;
  replicated_ = replication.strategy != conf::ReplicationStrategy::none;
  if (was_replicated && !replicated_) {  // nothing to catch up with any more
    replay_.clear();
    replay_bytes_ = 0;
    metrics_.replay_queue->Set(0);
    if (state_ == ServerState::recovering || state_ == ServerState::stale) {
      lagging_ = false;
      set_state(ServerState::up);
      set_mode(routing::kServerLive);
    }
  }
  if (replicated_ && run_id_.empty()) start_probe();
}

void BackendServer::forget_metrics() { proxy_.metrics()->forget_server(metrics_); }

void BackendServer::detach() {
  index_ = kDetached;
  if (probe_ != nullptr) std::exchange(probe_, nullptr)->cancel();
  if (resync_ != nullptr) std::exchange(resync_, nullptr)->cancel();
  if (!replay_.empty()) {
    spdlog::warn("server {} (shard {}) was removed with {} writes in its replay queue: they are dropped", name_,
                 shard_name_, replay_.size());
  }
  replay_.clear();
  replay_bytes_ = 0;
  metrics_.replay_queue->Set(0);
}

void BackendServer::abandon() {
  for (auto& connection : connections_) {
    connection->fail("replaced by a server at the same address", BackendConnection::Failure::not_counted);
  }
}

void BackendServer::publish_metrics() {
  latency_.publish(*metrics_.latency);
  if (!detached()) {  // a drained server's gauges may be shared with its successor's
    metrics_.connections->Set(static_cast<double>(connected_count()));
    metrics_.pending->Set(static_cast<double>(pending()));
  }
  if (requests_ == published_requests_) return;
  metrics_.requests->Increment(static_cast<double>(requests_ - published_requests_));
  published_requests_ = requests_;
}

size_t BackendServer::connected_count() const {
  size_t n = 0;
  for (const auto& connection : connections_) n += connection->connected();
  return n;
}

void BackendServer::set_state(ServerState state) {
  state_ = state;
  for (size_t i = 0; i < 4; ++i) metrics_.state[i]->Set(static_cast<size_t>(state) == i ? 1 : 0);
}

void BackendServer::on_failure(std::string_view why, bool timeout) {
  ++failures_;
  metrics_.errors->Increment();
  if (timeout) metrics_.timeouts->Increment();
  last_error_ = std::string(why);
  ++consecutive_failures_;
  const conf::PoolConfig& pool = proxy_.config().pool;
  uint64_t backoff = std::min<uint64_t>(pool.retry_interval_ms, 50ull << std::min(consecutive_failures_, 10u));
  reconnect_after_ms_ = proxy_.now_ms() + backoff;
  spdlog::warn("server {} (shard {}): {} (failure {} of {})", name_, shard_name_, why, consecutive_failures_,
               pool.failure_limit);
  // A replicated server that lost a connection is not trusted again until a probe has seen
  // the same run_id (a restart without persistence lost its data): it is down at once.
  // (recovering included: it might come back empty, and must not be replayed onto.)
  const bool trusted = state_ == ServerState::up || (replicated_ && state_ == ServerState::recovering);
  if (trusted && (consecutive_failures_ >= pool.failure_limit || replicated_)) mark_down(why);
}

void BackendServer::mark_down(std::string_view why) {
  const bool stale = state_ == ServerState::stale;
  set_state(stale ? ServerState::stale : ServerState::down);
  down_until_ms_ = proxy_.now_ms() + proxy_.config().pool.retry_interval_ms;
  if (!stale) set_mode(routing::kServerQueue);
  metrics_.up->Set(0);
  spdlog::error("server {} (shard {}) is down: {}; requests for its keys fail until it answers again", name_,
                shard_name_, why);
  for (auto& connection : connections_) connection->fail("server is down", BackendConnection::Failure::not_counted);
}

void BackendServer::mark_up() {
  consecutive_failures_ = 0;
  metrics_.up->Set(1);
  for (auto& connection : connections_) connection->connect();
  if (state_ == ServerState::stale) {
    spdlog::warn("server {} (shard {}) answers again but is stale: {}", name_, shard_name_, last_error_);
    return;
  }
  if (replicated_ && (!replay_.empty() || fenced() || awaiting_copies_ > 0)) {
    set_state(ServerState::recovering);
    spdlog::info("server {} (shard {}) is back; replaying {} missed writes", name_, shard_name_, replay_.size());
    return replay_more();
  }
  set_state(ServerState::up);
  set_mode(routing::kServerLive);
  spdlog::info("server {} (shard {}) is up again", name_, shard_name_);
}

void BackendServer::on_probe_result(bool ok, std::string_view why, std::string_view run_id) {
  probe_ = nullptr;
  if (ok && !run_id.empty()) {
    if (run_id_.empty()) {
      run_id_ = std::string(run_id);
    } else if (run_id != run_id_) {
      run_id_ = std::string(run_id);
      if (replicated_) mark_stale("it restarted (new run_id): the data it had is gone");
    }
  }
  if (state_ != ServerState::down && state_ != ServerState::stale) return;  // the start-up probe
  if (ok) return mark_up();
  last_error_ = std::string(why);
  down_until_ms_ = proxy_.now_ms() + proxy_.config().pool.retry_interval_ms;
}

// Replay queue: bounded in writes and bytes. A write that does not fit makes the server
// stale (a resync replaces the replay); nothing is dropped silently.
void BackendServer::queue_for_replay(std::string_view bytes) {
  if (state_ == ServerState::stale || !replicated_ || detached()) return;
  if (replay_.size() >= replication_.replay_queue_max_writes ||
      replay_bytes_ + bytes.size() > replication_.replay_queue_max_bytes) {
    replay_dropped_ += replay_.size() + 1;
    metrics_.replay_dropped->Increment(static_cast<double>(replay_.size() + 1));
    return mark_stale("its replay queue overflowed (" + std::to_string(replay_.size()) + " writes, " +
                      std::to_string(replay_bytes_) + " bytes)");
  }
  Block* block = Block::create(bytes.size());
  std::memcpy(block->data(), bytes.data(), bytes.size());
  replay_.push_back({BlockRef::adopt(block), std::string_view(block->data(), bytes.size())});
  replay_bytes_ += bytes.size();
  metrics_.replay_queue->Set(static_cast<double>(replay_.size()));
  if (state_ == ServerState::up) {
    // A live server missed this write (its connection failed before sending it): it is
    // behind until the write is replayed, so it serves nothing meanwhile.
    set_state(ServerState::recovering);
    set_mode(routing::kServerQueue);
    spdlog::warn("server {} (shard {}) missed a write; replaying it", name_, shard_name_);
  }
  if (state_ == ServerState::recovering && !lagging_ && replaying_.empty()) replay_more();
}

void BackendServer::copy_resolved() {
  if (awaiting_copies_ > 0 && --awaiting_copies_ == 0 && state_ == ServerState::recovering) replay_more();
}

bool BackendServer::fenced() const { return proxy_.fences().any(address_key_); }

void BackendServer::fence(std::string local) {
  if (local.empty()) return;
  const std::string target = local;
  proxy_.fences().add(address_key_, std::move(local));
  if (!replicated_ || detached()) return;  // the next connection kills it before it sends
  if (state_ == ServerState::up) {
    set_state(ServerState::recovering);
    set_mode(routing::kServerQueue);
    spdlog::warn("server {} (shard {}): a connection was abandoned with commands outstanding; it serves nothing "
                 "until that connection is killed",
                 name_, shard_name_);
  }
  // A stale server is fenced by its resync; a down one by its next connection.
  if (state_ == ServerState::recovering) connections_.front()->send_fence(target);
}

Fragment* BackendServer::fence_fragment(const std::string& target) {
  Fence& fence = fencing_.emplace_back();
  fence.target = target;
  const std::string command = FenceBook::kill_command(target);
  Block* block = Block::create(command.size());
  std::memcpy(block->data(), command.data(), command.size());
  fence.fragment.server = this;
  fence.fragment.bytes = std::string_view(block->data(), command.size());
  fence.fragment.bytes_block = BlockRef::adopt(block);
  return &fence.fragment;
}

// A fence's reply, or its failure (then a later connection sends it again).
bool BackendServer::on_fence_done(Fragment& fragment) {
  auto it = std::find_if(fencing_.begin(), fencing_.end(), [&](const Fence& f) { return &f.fragment == &fragment; });
  if (it == fencing_.end()) return false;  // not a fence: a replayed write
  const std::string target = std::move(it->target);
  const bool failed = fragment.failed;
  const std::string reply(fragment.reply.substr(0, 256));
  fencing_.erase(it);
  if (!failed) on_fence_reply(target, reply);
  return true;
}

void BackendServer::on_fence_reply(std::string_view target, std::string_view reply) {
  if (!proxy_.fences().done(address_key_, target)) return;  // another connection's kill ran first
  ++fences_run_;
  metrics_.fences->Increment();
  if (resp::is_error_reply(reply)) {
    spdlog::warn("server {} (shard {}): cannot kill the abandoned connection {} ({}): commands it still holds may "
                 "run late",
                 name_, shard_name_, target, reply.substr(0, reply.find('\r')));
  } else {
    spdlog::info("server {} (shard {}): killed the abandoned connection {} (nothing it held will run)", name_,
                 shard_name_, target);
  }
  if (!fenced() && state_ == ServerState::recovering) replay_more();
}

void BackendServer::on_lagging(std::string_view why) {
  metrics_.timeouts->Increment();
  ++failures_;
  last_error_ = std::string(why);
  if (state_ != ServerState::up && state_ != ServerState::recovering) return;
  lagging_ = true;  // (recovering too: its replay must not overtake what this connection holds)
  if (state_ == ServerState::recovering) return;
  set_state(ServerState::recovering);
  set_mode(routing::kServerQueue);
  spdlog::warn("server {} (shard {}) lags ({}); writes queue for it until its late replies are in", name_,
               shard_name_, why);
}

void BackendServer::on_lag_over() {
  // Every connection's late replies must be in: a replay on connection 0 must not overtake
  // writes another connection still holds.
  for (const auto& connection : connections_) {
    if (connection->lagging()) return;
  }
  lagging_ = false;
  if (state_ != ServerState::recovering) return;
  spdlog::info("server {} (shard {}) answers again; replaying {} queued writes", name_, shard_name_, replay_.size());
  replay_more();
}

void BackendServer::mark_stale(std::string_view why) {
  if (state_ == ServerState::stale || !replicated_) return;
  set_state(ServerState::stale);
  lagging_ = false;
  last_error_ = std::string(why);
  replay_.clear();
  replay_bytes_ = 0;
  metrics_.replay_queue->Set(0);
  set_mode(routing::kServerSkip);
  spdlog::error("server {} (shard {}) is stale: {}; it serves nothing until resynced", name_, shard_name_, why);
}

// Sends what is queued, in order, on connection 0 (one FIFO: the replay keeps its order).
// New writes keep queueing behind while it drains; when nothing is left the server is live.
void BackendServer::replay_more() {
  if (state_ != ServerState::recovering || lagging_ || fenced()) return;
  if (replay_.empty()) {
    if (!replaying_.empty() || awaiting_copies_ > 0) return;
    set_state(ServerState::up);
    set_mode(routing::kServerLive);
    if (replayed_) {
      ++replays_;
      metrics_.replays->Increment();
    }
    replayed_ = false;
    spdlog::info("server {} (shard {}) caught up: it is live again", name_, shard_name_);
    return;
  }
  replayed_ = true;
  while (!replay_.empty()) {
    ReplayEntry entry = std::move(replay_.front());
    replay_.pop_front();
    replay_bytes_ -= entry.bytes.size();
    Fragment& fragment = replaying_.emplace_back();
    fragment.bytes = entry.bytes;
    fragment.bytes_block = std::move(entry.block);
    fragment.state = Fragment::State::sent;
    send(fragment, 0);
  }
  metrics_.replay_queue->Set(0);
}

void BackendServer::on_replay_done(Fragment& fragment) {
  if (!fencing_.empty() && on_fence_done(fragment)) return;
  if (fragment.failed) {
    mark_stale(fragment.maybe_sent ? "a replayed write was lost in flight" : "its replay was interrupted");
  } else if (resp::is_error_reply(fragment.reply)) {
    mark_stale("a replayed write was refused: " + std::string(fragment.reply.substr(0, fragment.reply.find('\r'))));
  }
  // Replies come back in order on connection 0, and a failure fails them all in order: each
  // pops its own entry (the others may still be queued on the connection: never clear them).
  if (!replaying_.empty() && &replaying_.front() == &fragment) replaying_.pop_front();
  if (state_ == ServerState::stale) return;
  replay_more();
}

// A stale server that answers is resynced from a live peer of its shard (the primary
// when it is live), one attempt at a time, retried every retry_interval.
void BackendServer::maybe_resync(uint64_t now_ms) {
  if (resync_ != nullptr || now_ms < next_resync_ms_ || detached()) return;
  // Only once nothing is outstanding on its connections: what they hold either runs before
  // the resync or, abandoned, is killed by it (fence.h).
  if (pending() > 0) return;
  const routing::ShardEntry& shard = proxy_.table()->shards()[shard_index_];
  BackendServer* peer = nullptr;
  for (uint32_t s : shard.servers) {
    if (s != index_ && proxy_.server_mode(s) == routing::kServerLive) {
      peer = proxy_.servers()[s].get();
      break;
    }
  }
  next_resync_ms_ = now_ms + proxy_.config().pool.retry_interval_ms;
  if (peer == nullptr) return;  // nobody in sync to copy from (yet)
  resync_ = new ResyncJob(*this, *peer);
  resync_->start();
}

void BackendServer::cancel_resync_from(const BackendServer& peer) {
  if (resync_ != nullptr && resync_->peer() == &peer) std::exchange(resync_, nullptr)->cancel();
}

void BackendServer::on_resync_result(bool ok, std::string_view why) {
  resync_ = nullptr;
  if (!ok) {
    spdlog::warn("resync of {} (shard {}) failed: {}; retrying in {} ms", name_, shard_name_, why,
                 proxy_.config().pool.retry_interval_ms);
    return;
  }
  ++resyncs_;
  metrics_.resyncs->Increment();
  set_state(ServerState::up);
  consecutive_failures_ = 0;
  lagging_ = false;
  replay_.clear();
  replay_bytes_ = 0;
  metrics_.up->Set(1);
  for (auto& connection : connections_) connection->connect();
  if (fenced() || awaiting_copies_ > 0) {  // a connection abandoned meanwhile is killed first
    set_state(ServerState::recovering);
    set_mode(routing::kServerQueue);  // its copy is complete: from now on writes queue for it
    spdlog::info("server {} (shard {}) resynced; live once its abandoned connections are killed", name_, shard_name_);
    return;
  }
  set_mode(routing::kServerLive);
  spdlog::info("server {} (shard {}) resynced: it is live again", name_, shard_name_);
}

void BackendServer::sweep(uint64_t now_ms) {
  if (detached()) {  // draining: only its requests in flight matter
    for (auto& connection : connections_) connection->check_timeouts(now_ms);
    return;
  }
  if (state_ == ServerState::stale) {
    // A lagging connection of a stale server is given up (and fenced): the resync replaces
    // whatever its late writes would have done.
    for (auto& connection : connections_) {
      if (connection->lagging()) {
        connection->fail("given up: the server is stale and will be resynced", BackendConnection::Failure::not_counted);
      }
    }
  }
  if (state_ == ServerState::stale && consecutive_failures_ < proxy_.config().pool.failure_limit) {
    maybe_resync(now_ms);
  }
  if (state_ == ServerState::down || (state_ == ServerState::stale && consecutive_failures_ >= proxy_.config().pool.failure_limit)) {
    if (probe_ == nullptr && now_ms >= down_until_ms_) start_probe();
    return;
  }
  for (auto& connection : connections_) {
    connection->check_timeouts(now_ms);
    // Keep idle connections warm after a failure, with backoff.
    // A recovering server with a fence pending needs a connection to run the kill on.
    if ((state_ == ServerState::up || (state_ == ServerState::recovering && fenced())) &&
        connection->disconnected() && now_ms >= reconnect_after_ms_) {
      connection->connect();
    }
  }
}

}  // namespace ringproxy::proxy
