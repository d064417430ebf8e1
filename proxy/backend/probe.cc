#include "proxy/backend/probe.h"

#include <hiredis/hiredis.h>

#include <cstring>
#include <string>
#include <utility>

#include "proxy/backend/backend_server.h"
#include "proxy/net/side_link.h"
#include "proxy/backend/servers.h"

namespace ringproxy::proxy {

ServerProbe::ServerProbe(BackendServer& server, uint64_t timeout_ms) : server_(&server), timeout_ms_(timeout_ms) {}

void ServerProbe::start() {
  uv_loop_t* loop = server_->worker().loop();
  uv_timer_init(loop, &timer_);
  timer_.data = this;
  uv_timer_start(&timer_, on_timeout, timeout_ms_, 0);

  std::string why;
  const ServerLogin login = server_->login();
  probed_ = login.address.host;
  link_ = SideLink::open(login, server_->worker(), this, on_connect, on_disconnect, &why);
  if (link_ == nullptr) return finish(false, why.c_str());
  link_->command(on_reply, this, "INFO server");
}

void ServerProbe::cancel() {
  server_ = nullptr;
  finish(false, "cancelled");
}

void ServerProbe::on_connect(SideLink* link, bool ok) {
  auto* self = static_cast<ServerProbe*>(link->data());
  if (!ok) {
    self->link_ = nullptr;  // a link that failed to connect is gone after this callback
    self->finish(false, link->error_or("cannot connect").c_str());
  }
}

void ServerProbe::on_disconnect(SideLink* link) {
  auto* self = static_cast<ServerProbe*>(link->data());
  self->link_ = nullptr;  // gone after this callback
  self->finish(false, link->error_or("connection closed").c_str());
}

void ServerProbe::on_reply(SideLink* link, redisReply* r, void*) {
  auto* self = static_cast<ServerProbe*>(link->data());
  if (r == nullptr) return;  // the context is being freed; finish() already ran or will
  if (r->type == REDIS_REPLY_ERROR && std::string_view(r->str, r->len).rfind("NOPERM", 0) == 0) {
    // Its user may not run INFO (+@all -@dangerous): PING says whether it answers; without a
    // run_id its server decides what that is worth (backend_server.cc).
    self->info_refused_ = std::string(r->str, r->len);
    link->command(on_ping_reply, nullptr, "PING");
    return;
  }
  if (r->type != REDIS_REPLY_STRING) {
    std::string why = r->type == REDIS_REPLY_ERROR ? std::string(r->str) : "unexpected reply to INFO";
    return self->finish(false, why.c_str());
  }
  std::string_view info(r->str, r->len);
  size_t at = info.find("run_id:");
  if (at != std::string_view::npos) {
    std::string_view rest = info.substr(at + 7);
    self->run_id_ = std::string(rest.substr(0, rest.find_first_of("\r\n")));
  }
  self->finish(true, "");
}

void ServerProbe::on_ping_reply(SideLink* link, redisReply* r, void*) {
  auto* self = static_cast<ServerProbe*>(link->data());
  if (r == nullptr) return;
  if (r->type == REDIS_REPLY_STATUS && std::string_view(r->str, r->len) == "PONG") return self->finish(true, "");
  const std::string why = r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : "unexpected reply to PING";
  self->finish(false, why.c_str());
}

void ServerProbe::on_timeout(uv_timer_t* timer) {
  auto* self = static_cast<ServerProbe*>(timer->data);
  self->finish(false, self->link_ != nullptr && self->link_->handshaking() ? "TLS handshake timed out (probe)"
                                                                           : "probe timed out");
}

void ServerProbe::finish(bool ok, const char* why) {
  if (finished_) return;
  finished_ = true;
  if (server_ != nullptr) server_->on_probe_result(ok, ok && run_id_.empty() ? info_refused_.c_str() : why, run_id_, probed_);
  if (link_ != nullptr) {
    // Ends now, or right after the link's callback we are in returns; either way while we
    // still exist (we are deleted later, from the timer's close callback), and any callback
    // it runs finds finished_ set.
    std::exchange(link_, nullptr)->close();
  }
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_timer_closed);
}

void ServerProbe::on_timer_closed(uv_handle_t* handle) { delete static_cast<ServerProbe*>(handle->data); }

}  // namespace ringproxy::proxy
