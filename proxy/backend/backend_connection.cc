#include "proxy/backend/backend_connection.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "proxy/backend/backend_server.h"
#include "proxy/backend/servers.h"
#include "proxy/net/address.h"
#include "proxy/net/side_link.h"
#include "routing/resp/writer.h"

namespace ringproxy::proxy {

// One writev of queued fragments. Holds a reference to every block it points into until
// libuv is done with them (the requests may complete, and be freed, before that).
struct BackendConnection::WriteBatch {
  uv_write_t req;
  std::vector<uv_buf_t> bufs;
  std::vector<BlockRef> blocks;
};

BackendConnection::BackendConnection(BackendServer& server, uint32_t index, bool resp3)
    : server_(server), index_(index), resp3_(resp3) {}

BackendConnection::~BackendConnection() {
  server_.worker().forget(this);  // it may still be in this iteration's flush list
  close_handle();
  for (WriteBatch* batch : spare_batches_) delete batch;
}

inline void BackendConnection::push(Fragment* fragment) {
  fragment->sent_at_ms = server_.worker().now_ms();
  queue_.push_back(fragment);
  ++unsent_;
  if (state_ == State::disconnected) [[unlikely]] {
    used_ = true;
    connect();
  }
  if (state_ == State::connected && !dirty) server_.worker().flush_to_server(this);
}

// (One caller each, so that BackendServer::send keeps enqueue inlined.)
void BackendConnection::enqueue(Fragment* fragment) { push(fragment); }
void BackendConnection::enqueue_dedicated(Fragment* fragment) { push(fragment); }

void BackendConnection::connect() {
  if (state_ != State::disconnected) return;
  state_ = State::connecting;
  connect_started_ms_ = server_.worker().now_ms();
  if (server_.address().is_name()) {
    // Looked up again on every connection, but only waited for when no address is known: a
    // DNS server that does not answer must not hold up a server that does (a move the lookup
    // finds is followed: BackendServer::on_resolved).
    server_.resolve_name();
    if (server_.endpoint().host.empty()) return;  // on_name_resolved() goes on
  }
  open_socket();
}

void BackendConnection::on_name_resolved() {
  if (state_ != State::connecting || handle_ != nullptr) return;  // not waiting for the name
  if (server_.endpoint().host.empty()) return fail(server_.last_error(), Failure::not_counted);  // (counted once, by the server)
  open_socket();
}

void BackendConnection::open_socket() {
  Worker& worker = server_.worker();
  const conf::Address& address = server_.endpoint();
  sockaddr_storage addr;
  int rc = to_sockaddr(address, &addr);
  if (rc != 0) return fail(std::string("bad address: ") + uv_strerror(rc), Failure::counted);

  handle_ = new uv_tcp_t;
  uv_tcp_init(worker.loop(), handle_);
  handle_->data = this;
  uv_tcp_nodelay(handle_, 1);
  uv_tcp_keepalive(handle_, 1, 60);
  peer_ip_ = address.host;
  auto* req = new uv_connect_t;
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
  if (status != 0) {
    self->server_.try_next_address();  // (a name with several addresses: the next, next time)
    return self->fail(std::string("connect: ") + uv_strerror(status), Failure::counted);
  }
  self->local_address_ = proxy::local_address(self->handle_);
  if (self->server_.tls() != nullptr) return self->start_tls();
  self->after_connect();
}

// Connected (and, on a TLS shard, the handshake done): log in, or serve.
void BackendConnection::after_connect() {
  // Logging in reads with a callback of its own: the data path's reads never ask about it.
  if (!server_.auth().password.empty() || resp3_) return log_in();
  if (tls_ == nullptr) uv_read_start(reinterpret_cast<uv_stream_t*>(handle_), on_alloc, on_read<false>);
  ready();
}

// Bytes of our own to send (AUTH, TLS handshake records, sealed batches): uv_write keeps
// them in order with everything written before.
struct BackendConnection::OwnedWrite {
  uv_write_t req;
  std::string bytes;
};

void BackendConnection::write_owned(std::string bytes) {
  auto* write = new OwnedWrite;
  write->bytes = std::move(bytes);
  write->req.data = write;
  uv_buf_t buf = uv_buf_init(write->bytes.data(), static_cast<unsigned>(write->bytes.size()));
  int rc = uv_write(&write->req, reinterpret_cast<uv_stream_t*>(handle_), &buf, 1, [](uv_write_t* req, int status) {
    auto* self = static_cast<BackendConnection*>(req->handle->data);
    delete static_cast<OwnedWrite*>(req->data);
    if (status < 0 && status != UV_ECANCELED && self != nullptr) {
      self->fail(std::string("write: ") + uv_strerror(status), Failure::counted);
    }
  });
  if (rc != 0) {
    delete write;
    fail(std::string("write: ") + uv_strerror(rc), Failure::counted);
  }
}

// AUTH, alone: what is queued waits for its reply.
void BackendConnection::log_in() {
  state_ = State::logging_in;
  if (tls_ == nullptr) uv_read_start(reinterpret_cast<uv_stream_t*>(handle_), on_alloc, on_login_read);
  std::string command = resp3_ ? hello_command(server_.auth()) : auth_command(server_.auth());
  if (tls_ == nullptr) return write_owned(std::move(command));
  std::string sealed;
  const uv_buf_t buf = uv_buf_init(command.data(), static_cast<unsigned>(command.size()));
  if (!tls_->write(&buf, 1, sealed)) return fail("TLS: " + tls_->error(), Failure::counted);
  write_owned(std::move(sealed));
}

// ---------------------------------------------------------------------------- TLS --
// Cold: a plain connection never comes here.

[[gnu::cold]] void BackendConnection::start_tls() {
  state_ = State::handshaking;
  tls_ = std::make_unique<TlsStream>(server_.tls(), server_.address().host);
  cipher_in_.resize(64 * 1024);
  uv_read_start(reinterpret_cast<uv_stream_t*>(handle_), on_tls_alloc, on_tls_read);
  if (tls_->handshake() < 0) return fail("TLS handshake failed: " + tls_->error(), Failure::counted);
  std::string hello;
  tls_->take_output(hello);
  write_owned(std::move(hello));
}

void BackendConnection::on_tls_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* self = static_cast<BackendConnection*>(handle->data);
  *buf = uv_buf_init(self->cipher_in_.data(), static_cast<unsigned>(self->cipher_in_.size()));
}

void BackendConnection::on_tls_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<BackendConnection*>(stream->data);
  if (self == nullptr || nread == 0) return;
  if (nread < 0) {
    const char* step = self->state_ == State::handshaking ? "TLS handshake failed: the server closed the connection"
                       : self->state_ == State::logging_in ? "connection closed by the server during AUTH"
                                                            : "connection closed by the server";
    return self->fail(nread == UV_EOF ? step : uv_strerror(static_cast<int>(nread)), Failure::counted);
  }
  self->tls_read(buf->base, static_cast<size_t>(nread));
}

[[gnu::cold]] void BackendConnection::tls_read(const char* data, size_t size) {
  tls_->feed(data, size);
  metrics::Metrics& metrics = *server_.worker().metrics();
  if (state_ == State::handshaking) {
    const int done = tls_->handshake();
    const std::string why = done < 0 ? "TLS handshake failed: " + tls_->error() : "";
    std::string out;  // (an alert saying why, on a failure)
    tls_->take_output(out);
    if (!out.empty()) write_owned(std::move(out));
    if (done < 0 || tls_ == nullptr) return fail(why.empty() ? "write failed" : why, Failure::counted);  // (counted by fail)
    if (done == 0 || state_ != State::handshaking) return;
    metrics.tls_server_handshakes_ok->Increment();
    metrics.tls_server_connections->Increment();
    tls_counted_ = true;
    after_connect();
  }
  last_read_ms_ = server_.worker().now_ms();
  if (server_.worker().timing()) read_ns_ = server_.worker().loop_ns();
  // Decrypted into input_ a read's worth at a time, each handed on as a plain read is.
  while (state_ == State::logging_in || state_ == State::connected) {
    auto [into, room] = input_.prepare(scanner_.bytes_needed());
    const long n = tls_->read(into, room);
    if (n == 0) break;
    if (n < 0) return fail("TLS: " + tls_->error(), Failure::counted);
    input_.commit(static_cast<size_t>(n));
    if (state_ == State::logging_in) {
      if (finish_login() && input_.unconsumed_size() > 0) return fail("reply without a request", Failure::counted);
      continue;
    }
    if (resp3_) {
      handle_replies<true>();
    } else {
      handle_replies<false>();
    }
  }
  if (tls_ == nullptr) return;  // (failed meanwhile)
  std::string out;  // what the session says on its own (a key update)
  tls_->take_output(out);
  if (!out.empty()) write_owned(std::move(out));
}

// flush() for a TLS connection: the batch sealed into one buffer, written in order.
[[gnu::cold]] void BackendConnection::flush_tls() {
  const size_t first = queue_.size() - unsent_;
  unsent_ = 0;
  bufs_.clear();
  const uint64_t now_ns = server_.worker().timing() ? server_.worker().loop_ns() : 0;
  for (size_t i = first; i < queue_.size(); ++i) {
    Fragment* f = queue_[i];
    f->sent_ns = now_ns;
    bufs_.push_back(uv_buf_init(const_cast<char*>(f->bytes.data()), static_cast<unsigned>(f->bytes.size())));
  }
  std::string sealed;
  if (!tls_->write(bufs_.data(), bufs_.size(), sealed)) return fail("TLS: " + tls_->error(), Failure::counted);
  write_owned(std::move(sealed));
}

// The reply to AUTH: accepted, the connection is ready; refused, the server is down with its
// own words (nothing else was written, so nothing else is lost).
bool BackendConnection::finish_login() {
  resp::ParseStatus status = scanner_.scan(input_.unconsumed(), input_.unconsumed_size());
  if (status == resp::ParseStatus::incomplete) return false;
  if (status == resp::ParseStatus::error) {
    fail(std::string("protocol error in reply to AUTH: ") + std::string(scanner_.error()), Failure::counted);
    return false;
  }
  const std::string_view reply(input_.unconsumed(), scanner_.reply_bytes());
  // (AUTH says +OK; HELLO 3 a map of the server's details. The server's words never hold the
  // password.)
  if (reply.front() != '+' && !(resp3_ && reply.front() == '%')) {
    const std::string_view line = reply.substr(0, std::min<size_t>(reply.find('\r'), 200));
    const std::string why = line.front() == '-' ? std::string(line.substr(1)) : "unexpected reply " + std::string(line);
    // Only a refusal of the credentials is one; anything else (a full server's "max number of
    // clients reached" greets any connection) is an ordinary failure.
    if (resp::is_login_refusal(line)) {
      fail(std::string(kLoginRefused) + why, Failure::login_refused);
    } else {
      fail("reply to AUTH: " + why, Failure::counted);
    }
    return false;
  }
  input_.consume(scanner_.reply_bytes());
  scanner_.reset();
  auto* stream = reinterpret_cast<uv_stream_t*>(handle_);
  if (tls_ == nullptr) {
    uv_read_stop(stream);
    uv_read_start(stream, on_alloc, resp3_ ? on_read<true> : on_read<false>);
  }
  ready();
  return true;
}

void BackendConnection::on_login_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
  auto* self = static_cast<BackendConnection*>(stream->data);
  if (self == nullptr || nread == 0) return;
  if (nread < 0) {
    return self->fail(nread == UV_EOF ? "connection closed by the server during AUTH" : uv_strerror(static_cast<int>(nread)),
                      Failure::counted);
  }
  self->input_.commit(static_cast<size_t>(nread));
  self->last_read_ms_ = self->server_.worker().now_ms();
  // Nothing else was asked yet: more bytes are a reply without a request. (Not handed to
  // handle_replies, which stays inlined in on_read alone.)
  if (self->finish_login() && self->input_.unconsumed_size() > 0) self->fail("reply without a request", Failure::counted);
}

// Connections this server abandoned are killed before anything this one sends runs.
// (Cold and out of line: the compiler would otherwise share its tail with enqueue's, and
// enqueue, on the data path, would call it.)
[[gnu::cold, gnu::noinline]] void BackendConnection::ready() {
  state_ = State::connected;
  plain_connected_ = tls_ == nullptr;
  if (resp3_ && !resp3_counted_) {
    resp3_counted_ = true;
    server_.worker().metrics()->resp3_server_connections->Increment();
  }
  const std::vector<std::string>& fences = server_.servers().fences().pending(server_.address_key());
  for (auto it = fences.rbegin(); it != fences.rend(); ++it) push_fence(server_.fence_fragment(*it), true);
  if (unsent_ > 0 && !dirty) server_.worker().flush_to_server(this);
}

// A fence goes first on a new connection (nothing was written on it yet).
void BackendConnection::push_fence(Fragment* fence, bool front) {
  fence->sent_at_ms = server_.worker().now_ms();
  server_.servers().count_pending(server_.index(), 1);
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
  if (!dirty) server_.worker().flush_to_server(this);
}

// Writes queued fragments: directly when the socket takes them all (the common case, and
// no libuv write request or callback is needed), else the rest through uv_write. libuv's
// uv_try_write refuses while earlier writes are queued, so the order is kept.
void BackendConnection::flush() {
  dirty = false;
  if (!plain_connected_ || unsent_ == 0) [[unlikely]] {
    if (state_ == State::connected && unsent_ > 0) flush_tls();
    return;
  }
  const size_t first = queue_.size() - unsent_;
  unsent_ = 0;
  bufs_.clear();
  const uint64_t now_ns = server_.worker().timing() ? server_.worker().loop_ns() : 0;
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

template <bool kResp3>
void BackendConnection::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
  auto* self = static_cast<BackendConnection*>(stream->data);
  if (self == nullptr || nread == 0) return;  // 0: nothing to read now, not EOF
  if (nread < 0) {
    return self->fail(nread == UV_EOF ? "connection closed by the server" : uv_strerror(static_cast<int>(nread)),
                      Failure::counted);
  }
  self->input_.commit(static_cast<size_t>(nread));
  self->last_read_ms_ = self->server_.worker().now_ms();
  if (self->server_.worker().timing()) self->read_ns_ = self->server_.worker().loop_ns();
  self->handle_replies<kResp3>();
}

// (kResp3: a RESP3 connection, where a push message, out of band, is no reply.)
template <bool kResp3>
inline void BackendConnection::handle_replies() {
  while (true) {
    resp::ParseStatus status = scanner_.scan(input_.unconsumed(), input_.unconsumed_size());
    if (status == resp::ParseStatus::incomplete) return;
    if (status == resp::ParseStatus::error) {
      return fail(std::string("protocol error in reply: ") + std::string(scanner_.error()), Failure::counted);
    }
    if constexpr (kResp3) {
      if (input_.unconsumed()[0] == '>' && !scanning_more_) {
        drop_push();
        continue;
      }
    }
    if (queue_.size() == unsent_) return fail("reply without a request", Failure::counted);
    Fragment* fragment = queue_.front();
    const size_t n = scanner_.reply_bytes();
    if (fragment->unusual == 0) [[likely]] {
      fragment->reply = std::string_view(input_.unconsumed(), n);
    } else if (!unusual_reply(*fragment, n)) {
      continue;  // a transaction's: its other replies are scanned on (the same bytes, one reply)
    }
    queue_.pop_front();
    server_.servers().count_pending(server_.index(), -1);
    if (fragment->sent_ns != 0 && read_ns_ > fragment->sent_ns) server_.observe_latency(read_ns_ - fragment->sent_ns);
    fragment->reply_block = input_.block();
    input_.consume(n);
    scanner_.reset();
    server_.on_success();
    server_.servers().events().on_fragment_done(*fragment);
    if (lagging_since_ms_ != 0 && queue_.size() == unsent_) {  // every late reply is in
      lagging_since_ms_ = 0;
      server_.on_lag_over();
    }
  }
}

// A push message (CLIENT TRACKING's invalidations, which the proxy's connections never ask for,
// but a server can be told to send them anywhere): dropped, said once.
[[gnu::cold, gnu::noinline]] void BackendConnection::drop_push() {
  static bool said = false;
  if (!std::exchange(said, true)) {
    spdlog::warn("server {} (shard {}): a push message on the proxy's connection was dropped (CLIENT TRACKING "
                 "REDIRECT to it?)", server_.name(), server_.shard_name());
  }
  input_.consume(scanner_.reply_bytes());
  scanner_.reset();
}

// A settled fragment's reply is its late one. A transaction's first reply (MULTI's +OK) makes
// the scanner go on for the others, so that its reply is all of them, in one block; false
// until they are in.
[[gnu::cold, gnu::noinline]] bool BackendConnection::unusual_reply(Fragment& fragment, size_t n) {
  if ((fragment.unusual & Fragment::kSeveralReplies) != 0 && !scanning_more_) {
    scanning_more_ = true;
    scanner_.expect_more(fragment.more_replies);
    return false;
  }
  scanning_more_ = false;
  const std::string_view reply(input_.unconsumed(), n);
  if (fragment.settled()) {
    fragment.late_reply = reply;
  } else {
    fragment.reply = reply;
  }
  return true;
}

void BackendConnection::check_timeouts(uint64_t now_ms) {
  const conf::PoolConfig& pool = server_.worker().config().pool;
  if ((state_ == State::connecting || state_ == State::handshaking || state_ == State::logging_in) &&
      now_ms - connect_started_ms_ >= pool.connect_timeout_ms) {
    const std::string step = state_ == State::logging_in    ? "no reply to AUTH"
                             : state_ == State::handshaking ? "TLS handshake timed out"
                             : handle_ == nullptr        ? "'" + server_.address().host + "' not resolved"
                                                         : "connect timed out";
    if (state_ == State::connecting && handle_ != nullptr) server_.try_next_address();
    return fail(step + " after " + std::to_string(pool.connect_timeout_ms) + " ms", Failure::timeout);
  }
  // Timed from the later of the oldest request's send and the last bytes the server sent:
  // a server still streaming a large reply (or the replies before it) is not hung.
  if (state_ == State::connected && queue_.size() > unsent_ &&
      now_ms - std::max(queue_.front()->sent_at_ms, last_read_ms_) >= pool.request_timeout_ms + block_allowance_ms_) {
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
  const conf::PoolConfig& pool = server_.worker().config().pool;
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
    if (fragment->settled() || fragment->request == nullptr) continue;
    fragment->settle();
    fragment->failed = true;
    fragment->owned_reply = error;
    fragment->reply = fragment->owned_reply;
    server_.servers().events().on_fragment_settled(*fragment);
  }
}

void BackendConnection::fail(std::string_view why, Failure kind) {
  bool had_work = state_ != State::disconnected || !queue_.empty();
  if (lagging_since_ms_ != 0) {  // writes it took may or may not have been applied
    lagging_since_ms_ = 0;
    server_.mark_stale(std::string("connection lost while lagging: ") + std::string(why));
  }
  // Every handshake that did not finish failed: refused, cut off, timed out.
  if (state_ == State::handshaking) server_.worker().metrics()->tls_server_handshakes_failed->Increment();
  close_handle();
  state_ = State::disconnected;
  plain_connected_ = false;
  input_ = ReadBuffer();
  scanner_.reset();
  scanning_more_ = false;
  ++failures_;
  std::deque<Fragment*> failed;
  failed.swap(queue_);
  const size_t written = failed.size() - unsent_;
  unsent_ = 0;
  server_.servers().count_pending(server_.index(), -static_cast<int64_t>(failed.size()));
  // The server may still run what was written (a stopped server wakes up and reads it,
  // even though this end is closed): whoever writes to it next kills this client first.
  const bool wrote_commands = written > 0;
  std::string local = std::move(local_address_);
  local_address_.clear();
  if (!had_work) return;  // (also when mark_down below fails this connection again)
  if (kind == Failure::login_refused) {
    server_.on_login_refused(why);
  } else if (kind != Failure::not_counted) {
    server_.on_failure(why, kind == Failure::timeout);
  }
  if (wrote_commands) server_.fence(std::move(local));  // after on_failure: it may be down now

  std::string error = "-ERR shard '" + server_.shard_name() + "' server " + server_.name() + ": " +
                      std::string(why) + "\r\n";
  for (size_t i = 0; i < failed.size(); ++i) {
    Fragment* fragment = failed[i];
    if (fragment->settled()) {  // already answered for; only released now
      server_.servers().events().on_fragment_done(*fragment);
      continue;
    }
    fragment->failed = true;
    fragment->maybe_sent = i < written;  // written to the socket: it may have been applied
    fragment->owned_reply = error;
    fragment->reply = fragment->owned_reply;
    server_.servers().events().on_fragment_done(*fragment);
  }
}

void BackendConnection::close_handle() {
  if (tls_counted_) server_.worker().metrics()->tls_server_connections->Decrement();
  if (resp3_counted_) server_.worker().metrics()->resp3_server_connections->Decrement();
  resp3_counted_ = false;
  tls_counted_ = false;
  tls_.reset();
  if (handle_ == nullptr) return;
  handle_->data = nullptr;  // late callbacks (connect, write) see the connection is gone
  uv_close(reinterpret_cast<uv_handle_t*>(handle_), on_close);
  handle_ = nullptr;
}

void BackendConnection::on_close(uv_handle_t* handle) { delete reinterpret_cast<uv_tcp_t*>(handle); }

bool BackendConnection::settled_in_flight() const {
  return std::any_of(queue_.begin(), queue_.end(), [](const Fragment* f) { return f->settled() && f->request; });
}

bool BackendConnection::late_copies_pending() const {
  return std::any_of(queue_.begin(), queue_.end(), [](const Fragment* f) {
    if (!f->settled() || f->request == nullptr || !f->request->replicated_write || f->slot != 0) return false;
    const Request& request = *f->request;
    const GroupState& group = request.groups[f->group];
    return std::any_of(request.fragments.begin() + group.first, request.fragments.begin() + group.first + group.count,
                       [](const Fragment& copy) { return copy.stage == 1; });
  });
}

}  // namespace ringproxy::proxy
