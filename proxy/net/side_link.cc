#include "proxy/net/side_link.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstdarg>

#include "proxy/net/address.h"
#include "proxy/net/tls.h"
#include "proxy/net/worker.h"
#include "routing/resp/reply_scanner.h"
#include "routing/resp/writer.h"

namespace ringproxy::proxy {
namespace {

constexpr size_t kReadSize = 64 * 1024;

}  // namespace

struct SideLink::Write {
  uv_write_t req;
  std::string bytes;
};

SideLink* SideLink::open(const ServerLogin& login, Worker& worker, void* data, ConnectCallback* on_connect,
                         DisconnectCallback* on_disconnect, std::string* error) {
  const conf::Address& address = login.address;
  if (address.is_name()) {  // (callers pass resolved addresses; never block the loop on a lookup)
    if (error) *error = "'" + address.host + "' is not resolved yet";
    return nullptr;
  }
  sockaddr_storage addr;
  int rc = to_sockaddr(address, &addr);
  if (rc != 0) {
    if (error) *error = std::string("bad address: ") + uv_strerror(rc);
    return nullptr;
  }
  auto* link = new SideLink(login, worker, data, on_connect, on_disconnect);
  link->handle_ = new uv_tcp_t;
  uv_tcp_init(worker.loop(), link->handle_);
  link->handle_->data = link;
  uv_tcp_nodelay(link->handle_, 1);
  auto* req = new uv_connect_t;
  rc = uv_tcp_connect(req, link->handle_, reinterpret_cast<const sockaddr*>(&addr), on_tcp_connect);
  if (rc != 0) {
    delete req;
    if (error) *error = std::string("connect: ") + uv_strerror(rc);
    link->closed_by_owner_ = true;  // (nothing to tell: the caller hears it from the return)
    link->tear_down();
    return nullptr;
  }
  // AUTH first; nothing the jobs send runs before it is accepted (a refusal ends the link).
  if (!login.auth.password.empty()) {
    link->pending_.push_back({on_auth_reply, nullptr});
    link->send(auth_command(login.auth));
  }
  return link;
}

std::string auth_command(const conf::BackendAuth& auth) {
  std::string command;
  const std::string_view with_user[] = {"AUTH", auth.username, auth.password};
  const std::string_view without[] = {"AUTH", auth.password};
  if (auth.username.empty()) {
    resp::append_command(command, without);
  } else {
    resp::append_command(command, with_user);
  }
  return command;
}

std::string hello_command(const conf::BackendAuth& auth) {
  std::string command;
  const std::string_view user = auth.username.empty() ? std::string_view("default") : std::string_view(auth.username);
  const std::string_view with_auth[] = {"HELLO", "3", "AUTH", user, auth.password};
  const std::string_view without[] = {"HELLO", "3"};
  if (auth.password.empty()) {
    resp::append_command(command, without);
  } else {
    resp::append_command(command, with_auth);
  }
  return command;
}

SideLink::SideLink(const ServerLogin& login, Worker& worker, void* data, ConnectCallback* on_connect,
                   DisconnectCallback* on_disconnect)
    : worker_(worker), login_(login), data_(data), on_connect_(on_connect), on_disconnect_(on_disconnect),
      reader_(redisReaderCreate()) {}

SideLink::~SideLink() { redisReaderFree(reader_); }

bool SideLink::command(ReplyCallback* callback, void* privdata, const char* format, ...) {
  va_list args;
  va_start(args, format);
  const bool sent = vcommand(callback, privdata, format, args);
  va_end(args);
  return sent;
}

bool SideLink::vcommand(ReplyCallback* callback, void* privdata, const char* format, va_list args) {
  if (ending_) return false;
  char* formatted = nullptr;
  const int size = redisvFormatCommand(&formatted, format, args);
  if (size < 0) {  // (a bad format string: a bug of ours, said as one, later)
    error_ = "cannot format a command";
    ending_ = true;
    if (in_callback_ == 0) end_later();
    return false;
  }
  pending_.push_back({callback, privdata});
  ++in_callback_;  // a write that fails at once must not call the owner back from inside its own call
  send(std::string(formatted, static_cast<size_t>(size)));
  --in_callback_;
  redisFreeCommand(formatted);
  if (ending_ && in_callback_ == 0) end_later();
  return true;
}

bool SideLink::send_args(ReplyCallback* callback, void* privdata, std::span<const std::string> args,
                         bool wait_for_reply) {
  if (ending_) return false;
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const std::string& arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  char* formatted = nullptr;
  const int size = redisFormatCommandArgv(&formatted, static_cast<int>(argv.size()), argv.data(), lengths.data());
  if (size < 0) return false;
  if (wait_for_reply) pending_.push_back({callback, privdata});
  ++in_callback_;
  send(std::string(formatted, static_cast<size_t>(size)));
  --in_callback_;
  redisFreeCommand(formatted);
  if (ending_ && in_callback_ == 0) end_later();
  return true;
}

void SideLink::close() {
  // Its owner is done with it: nothing may call it back later (a failure already waiting for
  // the next loop turn ends now, as hiredis's free does).
  closed_by_owner_ = true;
  if (!torn_down_) end_after_callbacks();
}

std::string SideLink::error_or(std::string_view otherwise) const {
  return error_.empty() ? std::string(otherwise) : error_;
}

void SideLink::on_tcp_connect(uv_connect_t* req, int status) {
  auto* self = static_cast<SideLink*>(req->handle->data);
  delete req;
  if (self == nullptr) return;  // closed meanwhile
  if (status != 0) return self->fail(std::string("connect: ") + uv_strerror(status));
  self->local_ = proxy::local_address(self->handle_);
  self->input_.resize(kReadSize);
  uv_read_start(reinterpret_cast<uv_stream_t*>(self->handle_), on_alloc, on_read);
  if (self->login_.tls != nullptr) return self->start_tls();
  self->on_connected();
}

void SideLink::start_tls() {
  tls_ = std::make_unique<TlsStream>(login_.tls, login_.tls_host);
  plain_.resize(kReadSize);
  if (tls_->handshake() < 0) return fail("TLS handshake failed: " + tls_->error());
  send_tls_output();  // its first flight
}

// Ready: what was sent meanwhile (AUTH first) goes out, then the owner hears it (what it
// sends from its callback goes after, as with hiredis).
void SideLink::on_connected() {
  ready_ = true;
  ++in_callback_;
  if (!unsent_.empty()) send(std::exchange(unsent_, {}));
  if (!ending_ && on_connect_ != nullptr) on_connect_(this, true);
  --in_callback_;
  if (ending_) end_after_callbacks();  // (torn down now unless a read is running)
}

void SideLink::send(std::string plaintext) {
  if (!ready_) {
    unsent_ += plaintext;
    return;
  }
  if (tls_ == nullptr) return write_raw(std::move(plaintext));
  std::string sealed;
  const uv_buf_t buf = uv_buf_init(plaintext.data(), static_cast<unsigned>(plaintext.size()));
  if (!tls_->write(&buf, 1, sealed)) return fail("TLS: " + tls_->error());
  write_raw(std::move(sealed));
}

void SideLink::send_tls_output() {
  std::string out;
  tls_->take_output(out);
  if (!out.empty()) write_raw(std::move(out));
}

void SideLink::write_raw(std::string bytes) {
  auto* write = new Write;
  write->bytes = std::move(bytes);
  write->req.data = write;
  uv_buf_t buf = uv_buf_init(write->bytes.data(), static_cast<unsigned>(write->bytes.size()));
  const int rc = uv_write(&write->req, reinterpret_cast<uv_stream_t*>(handle_), &buf, 1, [](uv_write_t* req, int status) {
    auto* self = static_cast<SideLink*>(req->handle->data);
    delete static_cast<Write*>(req->data);
    if (status < 0 && status != UV_ECANCELED && self != nullptr) self->fail(std::string("write: ") + uv_strerror(status));
  });
  if (rc != 0) {
    delete write;
    fail(std::string("write: ") + uv_strerror(rc));
  }
}

void SideLink::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* self = static_cast<SideLink*>(handle->data);
  *buf = uv_buf_init(self->input_.data(), static_cast<unsigned>(self->input_.size()));
}

void SideLink::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<SideLink*>(stream->data);
  if (self == nullptr || nread == 0) return;
  ++self->in_callback_;  // the link outlives this read, whatever its callbacks do
  self->read(buf->base, nread);
  --self->in_callback_;
  if (self->ending_) self->end_after_callbacks();
}

void SideLink::read(const char* data, ssize_t nread) {
  if (nread < 0) {
    if (tls_ != nullptr && !ready_) return fail("TLS handshake failed: the server closed the connection");
    return fail(nread == UV_EOF ? "connection closed by the server" : uv_strerror(static_cast<int>(nread)));
  }
  if (tls_ == nullptr) return received(data, static_cast<size_t>(nread));
  tls_->feed(data, static_cast<size_t>(nread));
  if (!ready_) {
    const int done = tls_->handshake();
    send_tls_output();
    metrics::Metrics& metrics = *worker_.metrics();
    if (done < 0) return fail("TLS handshake failed: " + tls_->error());  // (counted by tear_down)
    if (done == 0) return;
    metrics.tls_server_handshakes_ok->Increment();
    metrics.tls_server_connections->Increment();
    tls_counted_ = true;
    on_connected();
  }
  while (!ending_) {
    const long n = tls_->read(plain_.data(), plain_.size());
    if (n == 0) break;
    if (n < 0) return fail("TLS: " + tls_->error());
    received(plain_.data(), static_cast<size_t>(n));
  }
  if (!ending_) send_tls_output();  // (a key update, a session ticket)
}

// Replies to the commands, in order.
void SideLink::received(const char* data, size_t size) {
  if (redisReaderFeed(reader_, data, size) != REDIS_OK) return fail("cannot read the reply");
  while (!ending_) {
    void* reply = nullptr;
    if (redisReaderGetReply(reader_, &reply) != REDIS_OK) return fail(std::string("protocol error: ") + reader_->errstr);
    if (reply == nullptr) return;
    if (pending_.empty() && on_push_ != nullptr) {
      ++in_callback_;
      on_push_(this, static_cast<redisReply*>(reply), nullptr);
      --in_callback_;
      freeReplyObject(reply);
      continue;
    }
    if (pending_.empty()) {
      freeReplyObject(reply);
      return fail("reply without a request");
    }
    const Pending next = pending_.front();
    pending_.pop_front();
    ++in_callback_;
    if (next.callback != nullptr) next.callback(this, static_cast<redisReply*>(reply), next.privdata);
    --in_callback_;
    freeReplyObject(reply);
  }
}

// The reply to the AUTH sent first. Refused: the link is useless (every command would get
// NOAUTH), so it ends now, with the server's own words as its error.
void SideLink::on_auth_reply(SideLink* link, redisReply* reply, void*) {
  if (reply == nullptr || reply->type != REDIS_REPLY_ERROR) return;
  // Only a refusal of the credentials is one (a full server's "max number of clients reached"
  // greets any connection: an ordinary failure, said as such).
  const std::string text(reply->str, reply->len);
  link->fail((resp::is_login_refusal("-" + text) ? std::string(kLoginRefused) : "reply to AUTH: ") + text);
}

void SideLink::fail(std::string why) {
  if (ending_) return;
  error_ = std::move(why);
  end_after_callbacks();
}

void SideLink::end_after_callbacks() {
  ending_ = true;
  if (in_callback_ == 0 && !torn_down_) tear_down();
}

// On the next loop turn (as hiredis reports a failed write: never from inside the call).
void SideLink::end_later() {
  if (later_ != nullptr) return;
  later_ = new uv_timer_t;
  uv_timer_init(worker_.loop(), later_);
  later_->data = this;
  uv_timer_start(later_, [](uv_timer_t* timer) {
    if (auto* self = static_cast<SideLink*>(timer->data)) self->end_after_callbacks();
  }, 0, 0);
}

void SideLink::tear_down() {
  torn_down_ = true;
  ending_ = true;
  ++in_callback_;  // whatever the callbacks below do, this runs once
  if (later_ != nullptr) {
    later_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(later_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    later_ = nullptr;
  }
  if (handle_ != nullptr) {
    handle_->data = nullptr;  // late callbacks (connect, write) see the link is gone
    uv_close(reinterpret_cast<uv_handle_t*>(handle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    handle_ = nullptr;
  }
  if (tls_counted_) worker_.metrics()->tls_server_connections->Decrement();
  // Every handshake that did not finish failed: refused, cut off, or given up by its owner's deadline.
  if (handshaking()) worker_.metrics()->tls_server_handshakes_failed->Increment();
  // hiredis's order: a failed connect is reported, then every pending command gets a null
  // reply, then a link that had connected is reported gone.
  if (!ready_ && !closed_by_owner_ && on_connect_ != nullptr) on_connect_(this, false);
  while (!pending_.empty()) {
    const Pending next = pending_.front();
    pending_.pop_front();
    if (next.callback != nullptr) next.callback(this, nullptr, next.privdata);
  }
  if (ready_ && on_disconnect_ != nullptr) on_disconnect_(this);
  delete this;
}

}  // namespace ringproxy::proxy
