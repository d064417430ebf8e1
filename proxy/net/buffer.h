// Byte blocks shared by reference: the proxy's only buffer type.
//
// A connection reads into a Block. Parsed requests and replies are views into it, and
// each view's owner (a Request, a Fragment, a pending write) holds a BlockRef, so bytes
// travel client -> backend -> client without being copied. A block is freed when its
// last reference goes.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <new>
#include <string_view>
#include <utility>
#include <vector>

#include <uv.h>

namespace ringproxy::proxy {

class Block {
 public:
  static Block* create(size_t capacity) {
    void* memory = std::malloc(sizeof(Block) + capacity);
    if (memory == nullptr) throw std::bad_alloc();
    return new (memory) Block(capacity);
  }
  void ref() { ++refs_; }
  void unref() {
    if (--refs_ == 0) std::free(this);
  }
  uint32_t refs() const { return refs_; }
  char* data() { return reinterpret_cast<char*>(this + 1); }
  size_t capacity() const { return capacity_; }

 private:
  explicit Block(size_t capacity) : capacity_(capacity) {}
  size_t capacity_;
  uint32_t refs_ = 1;
};

// An owning reference to a Block (nullable, copyable, movable).
class BlockRef {
 public:
  BlockRef() = default;
  static BlockRef adopt(Block* block) { return BlockRef(block); }  // takes the creator's ref
  BlockRef(const BlockRef& other) : block_(other.block_) {
    if (block_) block_->ref();
  }
  BlockRef(BlockRef&& other) noexcept : block_(std::exchange(other.block_, nullptr)) {}
  BlockRef& operator=(BlockRef other) noexcept {
    std::swap(block_, other.block_);
    return *this;
  }
  ~BlockRef() { reset(); }
  void reset() {
    if (block_) std::exchange(block_, nullptr)->unref();
  }
  Block* get() const { return block_; }
  explicit operator bool() const { return block_ != nullptr; }

 private:
  explicit BlockRef(Block* block) : block_(block) {}
  Block* block_ = nullptr;
};

// A connection's input: bytes [start, end) of `block` are received but not yet consumed.
class ReadBuffer {
 public:
  static constexpr size_t kBlockSize = 16 * 1024;

  // Space for the next read. Moves the unconsumed bytes to a new block when the current
  // one is full or shared, sized for at least `min_total` bytes of unconsumed data.
  // (Always inlined: it is on every read, and its callers are few.)
  [[gnu::always_inline]] inline std::pair<char*, size_t> prepare(size_t min_total = 0);
  void commit(size_t n) { end_ += n; }

  char* unconsumed() { return block_.get()->data() + start_; }
  size_t unconsumed_size() const { return end_ - start_; }
  void consume(size_t n) { start_ += n; }
  const BlockRef& block() const { return block_; }

 private:
  BlockRef block_;
  size_t start_ = 0;
  size_t end_ = 0;
};

inline std::pair<char*, size_t> ReadBuffer::prepare(size_t min_total) {
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

// Reuses a pooled object (write batches keep their vectors' capacity), or makes one.
template <class T>
T* take_spare(std::vector<T*>& spares) {
  if (spares.empty()) return new T;
  T* spare = spares.back();
  spares.pop_back();
  return spare;
}

// Drops the first `written` bytes from `bufs` (after a partial write).
void advance_bufs(std::vector<uv_buf_t>& bufs, size_t written);
size_t total_bytes(const std::vector<uv_buf_t>& bufs);

}  // namespace ringproxy::proxy
