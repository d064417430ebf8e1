#include "proxy/net/buffer.h"

#include <algorithm>
#include <cstring>

namespace ringproxy::proxy {

std::pair<char*, size_t> ReadBuffer::prepare(size_t min_total) {
  size_t pending = end_ - start_;
  const bool large = block_ && block_.get()->capacity() > kBlockSize;
  if (block_ && pending == 0 && block_.get()->refs() == 1 && !large) {
    start_ = end_ = 0;  // nothing points into the block: reuse it from the start
  }
  // A minimum free space keeps reads large; a request or reply that will not fit in what
  // is left moves, with the partial bytes, to a block big enough for it.
  constexpr size_t kMinFree = 1024;
  size_t want_total = std::max(min_total, pending + kMinFree);
  // A large block is grown for one large request or reply and used for nothing else: a
  // small message read into it would pin all of it for as long as its owner holds it (a
  // client that does not read could hold max_pending_per_client such blocks).
  const bool leave_large_block = large && want_total <= kBlockSize;
  if (!block_ || leave_large_block || start_ + want_total > block_.get()->capacity()) {
    size_t capacity = std::max(kBlockSize, want_total);
    if (capacity > kBlockSize) capacity = std::max(capacity, pending * 2);
    Block* fresh = Block::create(capacity);
    if (pending > 0) std::memcpy(fresh->data(), block_.get()->data() + start_, pending);
    block_ = BlockRef::adopt(fresh);
    start_ = 0;
    end_ = pending;
  }
  return {block_.get()->data() + end_, block_.get()->capacity() - end_};
}

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
