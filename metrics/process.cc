#include "metrics/process.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "metrics/series.h"

namespace ringproxy::metrics {
namespace {

// /proc/self/stat's fields after the command name (which may hold spaces): [0] is "state".
std::vector<std::string> stat_fields() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  std::vector<std::string> fields;
  const size_t end = line.rfind(')');
  if (end == std::string::npos) return fields;
  std::istringstream rest(line.substr(end + 2));
  for (std::string field; rest >> field;) fields.push_back(field);
  return fields;
}

double boot_time() {
  std::ifstream in("/proc/stat");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("btime ", 0) == 0) return std::stod(line.substr(6));
  }
  return 0;
}

}  // namespace

ProcessMetrics::ProcessMetrics(prometheus::Registry& registry) {
  cpu_seconds_ = &single_counter(registry, "process_cpu_seconds_total",
                                 "Total user and system CPU time spent in seconds.");
  resident_bytes_ = &single_gauge(registry, "process_resident_memory_bytes", "Resident memory size in bytes.");
  virtual_bytes_ = &single_gauge(registry, "process_virtual_memory_bytes", "Virtual memory size in bytes.");
  open_fds_ = &single_gauge(registry, "process_open_fds", "Number of open file descriptors.");
  max_fds_ = &single_gauge(registry, "process_max_fds", "Maximum number of open file descriptors.");
  start_time_ = &single_gauge(registry, "process_start_time_seconds",
                              "Start time of the process since unix epoch in seconds.");
  const std::vector<std::string> fields = stat_fields();
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  if (fields.size() > 19 && ticks > 0) start_time_->Set(boot_time() + std::stod(fields[19]) / ticks);
  update();
}

void ProcessMetrics::update() {
  const std::vector<std::string> fields = stat_fields();
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  if (fields.size() > 21 && ticks > 0) {
    const double cpu = (std::stod(fields[11]) + std::stod(fields[12])) / ticks;  // utime + stime
    if (cpu > cpu_published_) {
      cpu_seconds_->Increment(cpu - cpu_published_);
      cpu_published_ = cpu;
    }
    virtual_bytes_->Set(std::stod(fields[20]));
    resident_bytes_->Set(std::stod(fields[21]) * static_cast<double>(sysconf(_SC_PAGESIZE)));
  }
  size_t fds = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (dirent* entry = readdir(dir)) fds += entry->d_name[0] != '.';
    closedir(dir);
    --fds;  // the directory's own descriptor
  }
  open_fds_->Set(static_cast<double>(fds));
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) max_fds_->Set(static_cast<double>(limit.rlim_cur));
}

}  // namespace ringproxy::metrics
