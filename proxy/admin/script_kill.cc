#include "proxy/admin/script_kill.h"

#include <hiredis/hiredis.h>

#include <algorithm>

#include "proxy/backend/backend_server.h"

namespace ringproxy::proxy {

void ScriptKill::start(Servers& servers, DataPath& data_path, Request& request, const char* command) {
  auto* job = new ScriptKill(data_path, request);
  request.fragments_pending = 1;  // (a token: see the header)
  Worker& worker = servers.worker();
  uv_timer_init(worker.loop(), &job->timer_);
  job->timer_.data = job;
  const conf::PoolConfig& pool = worker.config().pool;
  uv_timer_start(&job->timer_, on_timeout, pool.connect_timeout_ms + pool.request_timeout_ms, 0);
  // Every server, down ones too: a script that runs long enough makes its server look down (it
  // answers -BUSY), and the kill is what brings it back.
  for (const auto& server : servers.servers()) {
    std::string why;
    SideLink* link = SideLink::open(server->login(), worker, job, on_connect, on_disconnect, &why);
    if (link == nullptr) {
      job->unreachable_ = why;
      continue;
    }
    job->links_.push_back(link);
    ++job->outstanding_;
    link->command(on_reply, nullptr, command);
  }
  if (job->outstanding_ == 0) job->finish();
}

// (A server that cannot be reached runs no script the kill could stop: only if none answered
// is that the reply.)
void ScriptKill::on_connect(SideLink* link, bool ok) {
  auto* self = static_cast<ScriptKill*>(link->data());
  if (!ok && !self->finished_) {
    self->unreachable_ = link->error_or("cannot connect");
    self->link_done(link, "");
  }
}

void ScriptKill::on_disconnect(SideLink* link) {
  auto* self = static_cast<ScriptKill*>(link->data());
  if (self->finished_) return;
  self->unreachable_ = link->error_or("connection closed");
  self->link_done(link, "");
}

void ScriptKill::on_reply(SideLink* link, redisReply* reply, void*) {
  auto* self = static_cast<ScriptKill*>(link->data());
  if (reply == nullptr || self->finished_) return;
  self->answered_ = true;
  if (reply->type == REDIS_REPLY_STATUS) {
    self->killed_ = true;
    return self->link_done(link, "");
  }
  const std::string_view error = reply->type == REDIS_REPLY_ERROR ? std::string_view(reply->str, reply->len)
                                                                   : std::string_view("unexpected reply");
  self->link_done(link, error.starts_with("NOTBUSY") ? std::string_view() : error);
}

// A server is done with (its reply, or its link ended): the link closes; the last answers.
void ScriptKill::link_done(SideLink* link, std::string_view error) {
  auto it = std::find(links_.begin(), links_.end(), link);
  if (it == links_.end() || finished_) return;  // (counted already)
  *it = nullptr;
  if (!error.empty() && first_error_.empty()) first_error_ = std::string(error);
  link->close();
  if (--outstanding_ == 0) finish();
}

void ScriptKill::on_timeout(uv_timer_t* timer) {
  auto* self = static_cast<ScriptKill*>(timer->data);
  if (self->first_error_.empty()) self->first_error_ = "ERR no reply from every server in time";
  self->finish();
}

void ScriptKill::finish() {
  if (finished_) return;
  finished_ = true;
  for (SideLink*& link : links_) {
    if (link != nullptr) std::exchange(link, nullptr)->close();
  }
  Request& request = *request_;
  if (!killed_ && first_error_.empty() && !answered_) {
    first_error_ = "ERR no server could be reached: " + (unreachable_.empty() ? std::string("none is configured")
                                                                             : unreachable_);
  }
  if (killed_) {
    request.owned_reply = "+OK\r\n";
  } else if (first_error_.empty()) {
    request.owned_reply = "-NOTBUSY No scripts in execution right now.\r\n";
  } else {
    request.owned_reply = "-" + (first_error_.find(' ') == std::string::npos || first_error_.starts_with("UNKILLABLE") ||
                                         first_error_.starts_with("ERR")
                                     ? first_error_
                                     : "ERR " + first_error_) +
                          "\r\n";
  }
  data_path_.complete_async_local(request);
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_timer_closed);
}

void ScriptKill::on_timer_closed(uv_handle_t* handle) { delete static_cast<ScriptKill*>(handle->data); }

}  // namespace ringproxy::proxy
