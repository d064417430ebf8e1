#include "proxy/clients/client_session.h"

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <spdlog/spdlog.h>

#include "proxy/clients/clients.h"
#include "proxy/net/address.h"
#include "routing/resp/writer.h"

namespace ringproxy::proxy {
namespace {

// Before a client authenticates, what Redis allows (at most 10 arguments of 16 KiB): an
// anonymous client cannot make the proxy buffer, or hash as a password, megabytes.
constexpr resp::ParserLimits kUnauthenticatedLimits{10 * 16 * 1024 + 1024, 10};

}  // namespace

// One writev of completed replies; owns the requests until libuv is done with their bytes.
struct ClientSession::WriteBatch {
  uv_write_t req;
  ClientSession* session;
  std::vector<uv_buf_t> bufs;
  std::vector<Request*> requests;
  bool close_after = false;
  std::string sealed;  // TLS: the ciphertext bufs point into
};

ClientSession::ClientSession(Clients& clients, uint64_t id, std::shared_ptr<const TlsContext> tls)
    : clients_(clients),
      worker_(clients.worker()),
      id_(id),
      parser_({worker_.config().proxy.max_request_bytes, worker_.config().proxy.max_arguments}) {
  handler_ = &clients.handler();
  backend_slot_ = static_cast<uint32_t>(id % worker_.config().pool.backend_connections);
  uv_tcp_init(worker_.loop(), &handle_);
  handle_.data = this;
  checked_ = !worker_.config().proxy.users.empty();  // until it authenticates
  if (checked_) parser_.set_limits(kUnauthenticatedLimits);
  if (tls != nullptr) tls_ = std::make_unique<TlsStream>(std::move(tls));
  accepted_ms_ = worker_.now_ms();
}

// A server has backend_connections RESP2 connections, then as many RESP3 ones.
void ClientSession::set_protocol(int protocol) {
  if (protocol == protocol_) return;
  if (protocol == 3) worker_.metrics()->resp3_client_connections->Increment();
  if (protocol_ == 3) worker_.metrics()->resp3_client_connections->Decrement();
  protocol_ = protocol;
  const uint32_t per_protocol = worker_.config().pool.backend_connections;
  backend_slot_ = static_cast<uint32_t>(id_ % per_protocol) + (protocol == 3 ? per_protocol : 0);
}

void ClientSession::apply_limits() {
  const conf::ProxyConfig& proxy = worker_.config().proxy;
  const bool anonymous = user_ == nullptr && !proxy.users.empty();
  parser_.set_limits(anonymous ? kUnauthenticatedLimits : resp::ParserLimits{proxy.max_request_bytes, proxy.max_arguments});
}

void ClientSession::set_user(const conf::UserConfig* user) {
  user_ = user;
  user_name_ = user != nullptr ? user->name : std::string();
  user_digest_ = user != nullptr ? user->password_sha256 : std::string();
  checked_ = user != nullptr ? user->access != conf::Access::admin || !user->keys.empty()
                             : !worker_.config().proxy.users.empty();
  apply_limits();
}

bool ClientSession::rebind_user(std::span<const conf::UserConfig> users) {
  if (user_ == nullptr) {
    // Not authenticated: fine while users still need it; a session from before users were
    // configured was the (password-less) default user, whose password has now changed.
    const bool was_free = !checked_;
    checked_ = !users.empty();
    apply_limits();
    return !(was_free && checked_);
  }
  for (const conf::UserConfig& user : users) {
    if (user.name == user_name_ && user.password_sha256 == user_digest_) {
      set_user(&user);  // its access and key patterns may have changed: they apply now
      return true;
    }
  }
  user_ = nullptr;
  return false;
}

void ClientSession::start() {
  uv_tcp_nodelay(&handle_, 1);
  last_active_ms_ = worker_.now_ms();
  resume_reading();
}

std::string ClientSession::local() const { return local_address(&handle_); }

std::string ClientSession::peer() const {
  sockaddr_storage addr{};
  int len = sizeof(addr);
  if (uv_tcp_getpeername(&handle_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "?";
  char host[64] = "?";
  int port = 0;
  if (addr.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&addr);
    uv_ip4_name(in, host, sizeof(host));
    port = ntohs(in->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
    uv_ip6_name(in6, host, sizeof(host));
    port = ntohs(in6->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

[[gnu::always_inline]] inline void ClientSession::resume_reading() {
  if (reading_ || closing_ || stop_parsing_ || draining_) return;
  reading_ = true;
  if (tls_ != nullptr) {
    uv_read_start(reinterpret_cast<uv_stream_t*>(&handle_), on_tls_alloc, on_tls_read);
  } else {
    uv_read_start(reinterpret_cast<uv_stream_t*>(&handle_), on_alloc, on_read);
  }
}

void ClientSession::pause_reading() {
  if (!reading_) return;
  reading_ = false;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&handle_));
}

void ClientSession::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* self = static_cast<ClientSession*>(handle->data);
  auto [data, size] = self->input_.prepare(self->parser_.bytes_needed());
  *buf = uv_buf_init(data, static_cast<unsigned>(size));
}

void ClientSession::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
  auto* self = static_cast<ClientSession*>(stream->data);
  if (nread == 0) return;  // nothing to read now, not EOF
  if (nread < 0) return self->close();
  self->input_.commit(static_cast<size_t>(nread));
  self->last_active_ms_ = self->worker_.now_ms();
  self->clients_.stats().bytes_received += static_cast<uint64_t>(nread);
  if (self->worker_.timing()) self->read_ns_ = self->worker_.loop_ns();  // one clock read per loop iteration
  self->parse_requests();
}

[[gnu::cold, gnu::noinline]] void ClientSession::keep_reading_while_waiting() {
  if (reading_ || closing_ || (stop_parsing_ & kStopForGood) != 0) return;  // (draining too: see drain())
  reading_ = true;
  reading_while_waiting_ = true;
  if (tls_ != nullptr) {  // (its parse does nothing while it waits)
    uv_read_start(reinterpret_cast<uv_stream_t*>(&handle_), on_tls_alloc, on_tls_read);
  } else {
    uv_read_start(reinterpret_cast<uv_stream_t*>(&handle_), on_alloc, on_read_while_waiting);
  }
}

void ClientSession::on_read_while_waiting(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
  auto* self = static_cast<ClientSession*>(stream->data);
  if (nread == 0) return;
  if (nread < 0) return self->close();
  self->input_.commit(static_cast<size_t>(nread));
  self->last_active_ms_ = self->worker_.now_ms();
  self->clients_.stats().bytes_received += static_cast<uint64_t>(nread);
  if (self->input_.unconsumed_size() > (1u << 20)) self->pause_reading();
}

// TLS reads: ciphertext lands in the Clients' shared buffer, goes into the session, and its
// plaintext into the parser's buffer (as a plain read would have put it there).
void ClientSession::on_tls_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  std::vector<char>& cipher = static_cast<ClientSession*>(handle->data)->clients_.tls_read_buffer();
  *buf = uv_buf_init(cipher.data(), static_cast<unsigned>(cipher.size()));
}

void ClientSession::on_tls_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<ClientSession*>(stream->data);
  if (nread == 0) return;
  if (nread < 0) {
    // Closed before a byte: a TCP health check, not a failed handshake.
    if (!self->tls_counted_ && self->tls_heard_) return self->fail_tls("the connection closed during the TLS handshake");
    return self->close();
  }
  self->tls_heard_ = true;
  TlsStream& tls = *self->tls_;
  tls.feed(buf->base, static_cast<size_t>(nread));
  size_t plain = 0;
  bool ended = false;  // a close_notify or an error after the records read before it
  while (true) {
    auto [data, size] = self->input_.prepare(self->parser_.bytes_needed());
    const long n = tls.read(data, size);
    if (n == 0) break;
    if (n < 0) {
      ended = true;
      break;
    }
    self->input_.commit(static_cast<size_t>(n));
    plain += static_cast<size_t>(n);
  }
  if (!self->tls_counted_ && tls.handshake_done()) {
    self->tls_counted_ = true;
    self->worker_.metrics()->tls_client_handshakes_ok->Increment();
    self->worker_.metrics()->tls_client_connections->Increment();
  }
  if (ended && !self->tls_counted_) return self->fail_tls(tls.error());
  if (plain > 0) {
    self->last_active_ms_ = self->worker_.now_ms();
    self->clients_.stats().bytes_received += plain;
    if (self->worker_.timing()) self->read_ns_ = self->worker_.loop_ns();
  }
  // What the session says on its own (session tickets, a close_notify's answer) may fail to
  // go out and close the session: then nothing it read is handed on.
  self->send_tls_output();
  if (self->closing_) return;
  if (plain > 0) self->parse_requests();  // (what came before a close_notify is answered)
  if (ended && !self->closing_) self->close_after_replies();
}

// A TLS client that never finished its handshake (a plaintext client on the TLS port, a
// wrong certificate, one that went quiet): counted, logged at most once a second, closed.
void ClientSession::fail_tls(std::string_view why) {
  if (closing_) return;
  worker_.metrics()->tls_client_handshakes_failed->Increment();
  static uint64_t last_logged_ms = 0;
  const uint64_t now = worker_.now_ms();
  if (now - last_logged_ms >= 1000 || last_logged_ms == 0) {
    last_logged_ms = now;
    spdlog::info("client {} ({}): TLS handshake failed: {}; closing", id_, peer(), why);
  }
  send_tls_output();  // the alert saying why, if the session has one
  close();
}

void ClientSession::send_tls_output() {
  WriteBatch* batch = take_spare(spare_batches_);
  batch->session = this;
  batch->close_after = false;
  batch->sealed.clear();
  tls_->take_output(batch->sealed);
  if (batch->sealed.empty()) {
    spare_batches_.push_back(batch);
    return;
  }
  batch->bufs.assign(1, uv_buf_init(batch->sealed.data(), static_cast<unsigned>(batch->sealed.size())));
  write_batch(batch);
}

bool ClientSession::seal(WriteBatch& batch) {
  batch.sealed.clear();
  if (!tls_->write(batch.bufs.data(), batch.bufs.size(), batch.sealed)) return false;
  batch.bufs.assign(1, uv_buf_init(batch.sealed.data(), static_cast<unsigned>(batch.sealed.size())));
  return true;
}

// parse: every complete request in the buffer goes to the data path, until the client has
// max_pending_per_client requests in flight; then reading pauses (backpressure) until
// replies have been written.
void ClientSession::parse_requests() {
  const uint32_t max_pending = worker_.config().proxy.max_pending_per_client;
  while (!stop_parsing_ && pending_ < max_pending && input_.unconsumed_size() > 0) {
    char* start = input_.unconsumed();
    resp::ParseStatus status = parser_.parse(start, input_.unconsumed_size());
    if (status == resp::ParseStatus::incomplete) break;
    if (status == resp::ParseStatus::error) {
      const bool over_limit = parser_.error().find("(max_") != std::string_view::npos;
      return enqueue_protocol_error(checked_ && user_ == nullptr && over_limit
                                        ? "unauthenticated request too large (before AUTH: at most 10 arguments, "
                                          "161 KiB in all)"
                                        : parser_.error());
    }

    size_t size = parser_.request_bytes();
    if (parser_.args().empty()) {  // empty line or "*0": nothing to answer
      input_.consume(size);
      parser_.reset();
      continue;
    }
    Request* request = clients_.requests().take();
    request->client = this;
    request->started_ns = read_ns_;
    request->request_block = input_.block();
    request->raw = std::string_view(start, size);
    request->args.reserve(parser_.args().size());
    for (resp::ArgRef arg : parser_.args()) request->args.emplace_back(start + arg.offset, arg.length);
    bool inline_request = parser_.is_inline();
    input_.consume(size);
    parser_.reset();

    if (tail_ != nullptr) tail_->next = request; else head_ = request;
    tail_ = request;
    ++pending_;
    if (inline_request) {  // servers get a multibulk rebuilt from args
      request->raw = {};
      request->resp3_raw = {};
    }
    handler_->dispatch(*this, *request);
  }
  if (pending_ >= max_pending) pause_reading();
}

// (Cold and out of line: inlined into parse_requests, its logging call cost every request a
// frame pointer and spills, +15 instructions per GET.)
[[gnu::cold, gnu::noinline]] void ClientSession::enqueue_protocol_error(std::string_view why) {
  ++clients_.stats().protocol_errors;
  worker_.metrics()->protocol_errors->Increment();
  spdlog::info("client {} ({}): protocol error: {}; closing", id_, peer(), why);
  Request* request = clients_.requests().take();
  request->client = this;
  request->rejected = true;
  resp::append_error(request->owned_reply, "ERR Protocol error: " + std::string(why));
  request->reply = request->owned_reply;
  request->done = true;
  request->close_after_reply = true;
  if (tail_ != nullptr) tail_->next = request; else head_ = request;
  tail_ = request;
  ++pending_;
  stop_parsing_ |= kStopForGood;
  pause_reading();
  on_request_done(*request);
}

[[gnu::cold, gnu::noinline]] void ClientSession::push(std::string_view bytes, const routing::CommandInfo* marker) {
  if (closing_) return;
  Request* request = clients_.requests().take();
  request->client = this;
  request->cmd = marker;
  request->owned_reply.assign(bytes);
  request->reply = request->owned_reply;
  request->done = true;
  if (tail_ != nullptr) tail_->next = request; else head_ = request;
  tail_ = request;
  ++pending_;
  on_request_done(*request);
}

void ClientSession::on_request_done(Request& request) {
  if (request.close_after_reply) stop_parsing_ |= kStopForGood;
  if (&request == head_ && !dirty && !closing_) worker_.flush_to_client(this);
}

// reply: the completed prefix of the queue goes out in one writev.
void ClientSession::flush() {
  dirty = false;
  if (closing_ || head_ == nullptr || !head_->done) return;
  WriteBatch* batch = take_spare(spare_batches_);
  batch->session = this;
  batch->close_after = false;
  const uint64_t now_ns = worker_.timing() ? worker_.loop_ns() : 0;
  while (head_ != nullptr && head_->done) {
    Request* request = head_;
    head_ = request->next;
    if (head_ == nullptr) tail_ = nullptr;
    clients_.accounting().account(*request, now_ns);
    clients_.stats().bytes_sent += request->reply.size();
    batch->bufs.push_back(uv_buf_init(const_cast<char*>(request->reply.data()),
                                      static_cast<unsigned>(request->reply.size())));
    batch->requests.push_back(request);
    if (request->close_after_reply) {
      batch->close_after = true;
      break;
    }
  }
  if (tls_ != nullptr && !seal(*batch)) return written_out(batch, UV_EPROTO);
  write_batch(batch);
}

// Directly when the socket takes it all (no libuv request, no callback); else the rest
// through uv_write (uv_try_write refuses while earlier writes are queued: order is kept).
inline void ClientSession::write_batch(WriteBatch* batch) {
  auto* stream = reinterpret_cast<uv_stream_t*>(&handle_);
  int written = uv_try_write(stream, batch->bufs.data(), static_cast<unsigned>(batch->bufs.size()));
  if (written < 0 && written != UV_EAGAIN) return written_out(batch, written);
  if (written > 0 && static_cast<size_t>(written) == total_bytes(batch->bufs)) return written_out(batch, 0);
  if (written > 0) advance_bufs(batch->bufs, static_cast<size_t>(written));
  ++writes_in_flight_;
  batch->req.data = batch;
  int rc = uv_write(&batch->req, stream, batch->bufs.data(), static_cast<unsigned>(batch->bufs.size()), on_write);
  if (rc != 0) {
    --writes_in_flight_;
    written_out(batch, rc);
  }
}

void ClientSession::on_write(uv_write_t* req, int status) {
  auto* batch = static_cast<WriteBatch*>(req->data);
  --batch->session->writes_in_flight_;
  batch->session->written_out(batch, status);
}

// The batch's replies are out (or failed to go out): its requests are done with.
void ClientSession::written_out(WriteBatch* batch, int status) {
  ClientSession* self = this;
  self->pending_ -= batch->requests.size();
  for (Request* request : batch->requests) {
    // Answered at its ack level, a replicated write may still have copies in flight: the
    // last of them frees it.
    if (request->fragments_pending > 0) {
      request->client = nullptr;
    } else {
      self->clients_.requests().give_back(request);
    }
  }
  bool close_after = batch->close_after;
  batch->bufs.clear();
  batch->requests.clear();
  if (batch->sealed.capacity() > 64 * 1024) std::string().swap(batch->sealed);  // an idle session keeps no big reply
  self->spare_batches_.push_back(batch);  // write batches are reused: no malloc per flush
  if (self->closing_) return;
  if (status < 0 || close_after || (close_when_written_ && writes_in_flight_ == 0)) return self->close();
  // Backpressure released: take the requests already buffered, then read again.
  if (self->pending_ < self->worker_.config().proxy.max_pending_per_client / 2 + 1 && !self->stop_parsing_) {
    self->parse_requests();
    if (self->pending_ < self->worker_.config().proxy.max_pending_per_client) self->resume_reading();
  } else if ((self->stop_parsing_ & kStopWaiting) != 0) {
    self->check_wait();
    if (self->closing_) return;
  }
  if (self->head_ != nullptr && self->head_->done && !self->dirty) self->worker_.flush_to_client(self);
}

bool ClientSession::wait_for_replies(Request* waited) {
  if (head_ == waited) return false;
  waited_ = waited;
  stop_parsing_ |= kStopWaiting;
  pause_reading();
  return true;
}

// The wait is over once the oldest request not written is the one waited for.
void ClientSession::check_wait() {
  if (head_ != waited_ || closing_) return;
  Request* waited = std::exchange(waited_, nullptr);
  stop_parsing_ &= static_cast<uint8_t>(~kStopWaiting);
  if (std::exchange(reading_while_waiting_, false)) pause_reading();  // (reads again as usual below)
  handler_->on_replies_written(*this, waited);
  if (closing_ || stop_parsing_ != 0) return;
  parse_requests();
  if (pending_ < worker_.config().proxy.max_pending_per_client && stop_parsing_ == 0) resume_reading();
}

void ClientSession::close_after_replies() {
  if (closing_) return;
  stop_parsing_ |= kStopForGood;
  pause_reading();
  if (tail_ == nullptr && writes_in_flight_ == 0) return close();
  if (tail_ == nullptr) {  // its last replies are still being written: close once they are out
    close_when_written_ = true;
    return;
  }
  tail_->close_after_reply = true;
  if (head_ != nullptr && head_->done && !dirty) worker_.flush_to_client(this);
}

void ClientSession::drain() {
  draining_ = true;
  // A client blocked on a server is still read (without parsing): if it leaves, its connection
  // to the server must close at once, or the server pops an element for nobody.
  if (reading_while_waiting_) return;
  pause_reading();
}

void ClientSession::linger() {
  if (closing_ || lingering_ || !drained()) return;
  lingering_ = true;
  auto* stream = reinterpret_cast<uv_stream_t*>(&handle_);
  if (tls_counted_) {
    std::string bye;
    tls_->close_notify(bye);
    uv_buf_t buf = uv_buf_init(bye.data(), static_cast<unsigned>(bye.size()));
    if (!bye.empty()) uv_try_write(stream, &buf, 1);
    bye_sent_ = true;
  }
  shutdown_req_.data = this;
  if (uv_shutdown(&shutdown_req_, stream, on_shutdown) != 0) return close();
  if (reading_) uv_read_stop(stream);
  reading_ = true;
  uv_read_start(stream, on_linger_alloc, on_linger_read);
}

bool ClientSession::lingering_quietly() const {
  uv_os_fd_t fd = -1;
  if (!lingering_ || closing_ || uv_fileno(reinterpret_cast<const uv_handle_t*>(&handle_), &fd) != 0) return false;
  int unread = 0, unacknowledged = 0;
  if (ioctl(fd, SIOCINQ, &unread) != 0 || ioctl(fd, SIOCOUTQ, &unacknowledged) != 0) return false;
  return unread == 0 && unacknowledged <= 1;  // (1: its FIN, not acknowledged yet)
}

void ClientSession::on_shutdown(uv_shutdown_t* req, int status) {
  auto* self = static_cast<ClientSession*>(req->data);
  if (status < 0 && status != UV_ECANCELED && !self->closing_) self->close();
}

void ClientSession::on_linger_alloc(uv_handle_t*, size_t, uv_buf_t* buf) {
  static char discard[64 * 1024];  // (single-threaded: one buffer for every lingering session)
  *buf = uv_buf_init(discard, sizeof(discard));
}

void ClientSession::on_linger_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
  auto* self = static_cast<ClientSession*>(stream->data);
  if (nread < 0) self->close();  // the client closed (or reset) its side: done
}

void ClientSession::close() {
  if (closing_) return;
  closing_ = true;
  if (tls_counted_) {
    worker_.metrics()->tls_client_connections->Decrement();
  }
  if (tls_counted_ && !bye_sent_) {
    std::string bye;  // a close_notify, best effort: the client sees a clean end, not a cut
    tls_->close_notify(bye);
    uv_buf_t buf = uv_buf_init(bye.data(), static_cast<unsigned>(bye.size()));
    if (!bye.empty() && writes_in_flight_ == 0) uv_try_write(reinterpret_cast<uv_stream_t*>(&handle_), &buf, 1);
  }
  reading_ = false;
  worker_.forget(this);
  for (RequestHandler* owner : clients_.state_owners()) owner->on_client_closed(*this);
  if (protocol_ == 3) worker_.metrics()->resp3_client_connections->Decrement();
  // Requests still waiting for servers are orphaned; the others are freed now.
  for (Request* request = head_; request != nullptr;) {
    Request* next = request->next;
    request->next = nullptr;
    if (request->fragments_pending > 0) {
      request->client = nullptr;
    } else {
      clients_.requests().give_back(request);
    }
    request = next;
  }
  head_ = tail_ = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&handle_), on_close);
}

ClientSession::~ClientSession() {
  for (WriteBatch* batch : spare_batches_) delete batch;
}

void ClientSession::on_close(uv_handle_t* handle) {
  auto* self = static_cast<ClientSession*>(handle->data);
  self->clients_.on_closed(self);
  delete self;
}

}  // namespace ringproxy::proxy
