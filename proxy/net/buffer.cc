#include "proxy/net/buffer.h"

#include <algorithm>
#include <cstring>

namespace ringproxy::proxy {

void advance_bufs(std::vector<uv_buf_t>& bufs, size_t written) {
  size_t drop = 0;
  while (drop < bufs.size() && written >= bufs[drop].len) written -= bufs[drop++].len;
  bufs.erase(bufs.begin(), bufs.begin() + static_cast<std::ptrdiff_t>(drop));
  if (!bufs.empty() && written > 0) {
    bufs.front().base += written;
    bufs.front().len -= written;
  }
}

size_t total_bytes(const std::vector<uv_buf_t>& bufs) {
  size_t total = 0;
  for (const uv_buf_t& b : bufs) total += b.len;
  return total;
}

}  // namespace ringproxy::proxy
