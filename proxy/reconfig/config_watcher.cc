#include "proxy/reconfig/config_watcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "conf/loader.h"
#include "proxy/reconfig/reloader.h"

namespace ringproxy::proxy {
namespace {

constexpr uint64_t kDebounceMs = 200;
constexpr uint64_t kDebounceMaxMs = 1000;
constexpr uint64_t kPasswordCheckMs = 1000;

// Whether every password file the running config names still holds the password it was
// read with; `contents` gets a digest of what the files hold now (to try each content once).
bool password_files_unchanged(const conf::Config& config, std::string* contents) {
  bool unchanged = true;
  std::string all;
  auto check = [&](const conf::BackendAuth& auth) {
    if (auth.password_file.empty()) return;
    std::string password, error;
    const bool read = conf::read_password_file(auth.password_file, &password, &error);
    if (!read || password != auth.password) unchanged = false;
    all += auth.password_file + '\0' + (read ? password : error) + '\0';
  };
  check(config.pool.auth);
  for (const conf::ShardConfig& shard : config.pool.shards) check(shard.auth);
  *contents = conf::text_digest(all);
  return unchanged;
}

}  // namespace

ConfigWatcher::ConfigWatcher(Reloader& reloader, uv_loop_t* loop, const std::string& path)
    : reloader_(reloader), loop_(loop), path_(path) {
  const size_t slash = path.rfind('/');
  directory_ = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  last_digest_ = reloader.config_digest();
}

// Compared with the passwords the running config holds (what the loader read), not with an
// earlier read of the files: a change between the loader's read and ours is not missed. A
// content whose reload was rejected (an empty file mid-rotation) is not tried again until it
// changes.
void ConfigWatcher::check_password_files(const conf::Config& running, uint64_t now_ms) {
  if (now_ms < next_password_check_ms_) return;
  next_password_check_ms_ = now_ms + kPasswordCheckMs;
  std::string contents;
  if (password_files_unchanged(running, &contents)) {
    tried_password_files_.clear();
    return;
  }
  if (contents == tried_password_files_) return;
  tried_password_files_ = contents;
  spdlog::info("a password file changed: reloading the config");
  reloader_.reload("password file change");
}

void ConfigWatcher::start() {
  uv_timer_init(loop_, &debounce_);
  debounce_.data = this;
  uv_fs_event_init(loop_, &event_);
  event_.data = this;
  int rc = uv_fs_event_start(&event_, on_change, directory_.c_str(), 0);
  watching_ = rc == 0;
  if (!watching_) {
    spdlog::warn("cannot watch {} for changes ({}): reload with SIGHUP or PROXY RELOAD", directory_, uv_strerror(rc));
  }
}

void ConfigWatcher::stop() {
  uv_close(reinterpret_cast<uv_handle_t*>(&debounce_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&event_), nullptr);
}

void ConfigWatcher::on_change(uv_fs_event_t* handle, const char*, int, int status) {
  auto* self = static_cast<ConfigWatcher*>(handle->data);
  // Any change in the directory: a symlinked file (a Kubernetes ConfigMap swaps a "..data"
  // link) changes without an event of its own. The digest says whether it really changed.
  if (status < 0) return;
  const uint64_t now = uv_now(self->loop_);
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&self->debounce_))) self->first_event_ms_ = now;
  const uint64_t deadline = self->first_event_ms_ + kDebounceMaxMs;
  // Restarts: the last event counts, up to the deadline.
  uv_timer_start(&self->debounce_, on_settled, std::min(kDebounceMs, deadline > now ? deadline - now : 0), 0);
}

void ConfigWatcher::on_settled(uv_timer_t* timer) {
  auto* self = static_cast<ConfigWatcher*>(timer->data);
  std::ifstream in(self->path_, std::ios::binary);
  if (!in) return;  // removed (for now): a later event brings it back
  std::stringstream text;
  text << in.rdbuf();
  const std::string digest = conf::text_digest(text.str());
  if (digest == self->last_digest_ || digest == self->reloader_.config_digest()) return;
  self->last_digest_ = digest;
  self->reloader_.reload("file change");
}

}  // namespace ringproxy::proxy
