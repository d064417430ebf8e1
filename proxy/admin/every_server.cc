#include "proxy/admin/every_server.h"

#include <hiredis/hiredis.h>

#include <algorithm>

#include "proxy/backend/backend_server.h"
#include "routing/resp/writer.h"

namespace ringproxy::proxy {

using Kind = routing::ServerAnswer::Kind;

namespace {

// hiredis's parsed reply back in RESP2 (hiredis 0.14 reads RESP2 only).
void encode(const redisReply* r, std::string& out) {
  switch (r->type) {
    case REDIS_REPLY_STRING: resp::append_bulk(out, std::string_view(r->str, r->len)); break;
    case REDIS_REPLY_STATUS: resp::append_simple(out, std::string_view(r->str, r->len)); break;
    case REDIS_REPLY_ERROR: resp::append_error(out, std::string_view(r->str, r->len)); break;
    case REDIS_REPLY_INTEGER: resp::append_integer(out, r->integer); break;
    case REDIS_REPLY_ARRAY:
      resp::append_array_header(out, r->elements);
      for (size_t i = 0; i < r->elements; ++i) encode(r->element[i], out);
      break;
    default: resp::append_null_bulk(out); break;  // REDIS_REPLY_NIL
  }
}

}  // namespace

void EveryServer::ask_shared(std::shared_ptr<EveryServer*> round, Servers& servers, DataPath& data_path,
                             Request& request, std::vector<std::string> command, Reduce reduce) {
  if (EveryServer* running = *round; running != nullptr && !running->finished_) {
    request.fragments_pending = 1;  // (a token: see the header)
    running->requests_.push_back(&request);
    return;
  }
  EveryServer* job = ask(servers, data_path, request, std::move(command), reduce);
  if (job != nullptr) {  // (null: answered already)
    job->round_ = round;
    *round = job;
  }
}

EveryServer* EveryServer::ask(Servers& servers, DataPath& data_path, Request& request,
                              std::vector<std::string> command, Reduce reduce) {
  auto* job = new EveryServer(data_path, request, reduce);
  request.fragments_pending = 1;  // (a token: see the header)
  Worker& worker = servers.worker();
  uv_timer_init(worker.loop(), &job->timer_);
  job->timer_.data = job;
  const conf::PoolConfig& pool = worker.config().pool;
  uv_timer_start(&job->timer_, on_timeout, pool.connect_timeout_ms + pool.request_timeout_ms, 0);
  for (const auto& server : servers.servers()) {
    routing::ServerAnswer& answer = job->answers_.emplace_back();
    const std::string address = server->address().to_string();
    answer.server = (server->name() == address ? address : "'" + server->name() + "' (" + address + ")") +
                    " of shard '" + server->shard_name() + "'";
    std::string why;
    SideLink* link = SideLink::open(server->login(), worker, job, on_connect, on_disconnect, &why);
    job->links_.push_back(link);
    if (link == nullptr) {
      answer.kind = Kind::unreachable;
      answer.text = why;
      continue;
    }
    ++job->outstanding_;
    link->command_args(on_reply, reinterpret_cast<void*>(job->links_.size() - 1), command);
  }
  if (job->outstanding_ == 0) {
    job->finish();
    return nullptr;
  }
  return job;
}

size_t EveryServer::index_of(SideLink* link) const {
  return static_cast<size_t>(std::find(links_.begin(), links_.end(), link) - links_.begin());
}

void EveryServer::on_connect(SideLink* link, bool ok) {
  auto* self = static_cast<EveryServer*>(link->data());
  if (ok || self->finished_) return;
  const size_t i = self->index_of(link);
  if (i == self->links_.size()) return;
  self->answers_[i].kind = Kind::unreachable;
  self->answers_[i].text = link->error_or("cannot connect");
  self->done(link);
}

void EveryServer::on_disconnect(SideLink* link) {
  auto* self = static_cast<EveryServer*>(link->data());
  if (self->finished_) return;
  const size_t i = self->index_of(link);
  if (i == self->links_.size()) return;  // (closed by done())
  self->answers_[i].kind = Kind::unreachable;
  self->answers_[i].text = link->error_or("connection closed");
  self->done(link);
}

void EveryServer::on_reply(SideLink* link, redisReply* reply, void* privdata) {
  auto* self = static_cast<EveryServer*>(link->data());
  if (reply == nullptr || self->finished_) return;
  routing::ServerAnswer& answer = self->answers_[reinterpret_cast<size_t>(privdata)];
  switch (reply->type) {
    case REDIS_REPLY_STATUS: answer.kind = Kind::status; break;
    case REDIS_REPLY_STRING: answer.kind = Kind::bulk; break;
    case REDIS_REPLY_ERROR: answer.kind = Kind::error; break;
    default:
      answer.kind = Kind::other;
      encode(reply, answer.text);
      return self->done(link);
  }
  answer.text.assign(reply->str, reply->len);
  self->done(link);
}

void EveryServer::done(SideLink* link) {
  const size_t i = index_of(link);
  if (i == links_.size() || finished_) return;  // (counted already)
  links_[i] = nullptr;
  link->close();
  if (--outstanding_ == 0) finish();
}

void EveryServer::on_timeout(uv_timer_t* timer) { static_cast<EveryServer*>(timer->data)->finish(); }

// (Servers still silent keep Kind::no_reply.)
void EveryServer::finish() {
  if (finished_) return;
  finished_ = true;
  for (SideLink*& link : links_) {
    if (link != nullptr) std::exchange(link, nullptr)->close();
  }
  if (round_ != nullptr && *round_ == this) *round_ = nullptr;
  for (Request* request : requests_) {
    request->owned_reply = reduce_(answers_, *request);
    data_path_.complete_async_local(*request);
  }
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_timer_closed);
}

void EveryServer::on_timer_closed(uv_handle_t* handle) { delete static_cast<EveryServer*>(handle->data); }

}  // namespace ringproxy::proxy
