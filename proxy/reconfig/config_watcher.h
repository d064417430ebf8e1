// What triggers a reload besides SIGHUP and PROXY RELOAD: a change of the config file.
//
// The file's directory is watched (libuv fs events), not the file itself: editors and
// config managers replace a file by renaming a new one over it, which a watch on the old
// inode would miss, and any change in the directory counts (a symlinked file changes
// without an event naming it). Events are debounced (the file is read once the directory has
// been quiet for a moment, or at the latest a second after the first event, so that a log file
// written in the same directory cannot put it off forever); a file whose digest did not change
// since the last attempt is not reloaded again.
//
// Password files ([pool] / [[pool.shards]] password_file) are secrets mounted elsewhere and
// rotated in place (a Kubernetes Secret swaps a symlink): their contents are checked once a
// second, and a change reloads the config (which reads them again).
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>

#include "conf/config.h"

namespace ringproxy::proxy {

class Reloader;

class ConfigWatcher {
 public:
  ConfigWatcher(Reloader& reloader, uv_loop_t* loop, const std::string& path);
  void start();
  void stop();  // closes the handles (the loop runs their close callbacks)
  // From the reloader's sweep, once a second at most: reloads when a password file `running`
  // names no longer holds the password `running` has.
  void check_password_files(const conf::Config& running, uint64_t now_ms);

 private:
  static void on_change(uv_fs_event_t* handle, const char* filename, int events, int status);
  static void on_settled(uv_timer_t* timer);

  Reloader& reloader_;
  uv_loop_t* loop_;
  std::string path_, directory_;
  std::string last_digest_;     // of the last text read (loaded or rejected)
  uv_fs_event_t event_{};
  uv_timer_t debounce_{};
  uint64_t first_event_ms_ = 0;  // of the events the debounce timer is waiting out
  bool watching_ = false;
  std::string tried_password_files_;  // digest of the files' contents a reload was last tried for
  uint64_t next_password_check_ms_ = 0;
};

}  // namespace ringproxy::proxy
