#pragma once
// Pools of large, page-aligned buffers that are faulted in once and then reused.
//
// Fresh pages cost ~0.5 GB/s to touch on these machines against 30-40 GB/s for warm
// copies, and glibc hands large frees back to the OS, so nothing on the hot path may
// allocate per event or per batch: batches, compressed chunks and messages all live in
// buffers taken from a pool and given back when the last user lets go.
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>

namespace lclstream {

class BufferPool;

/// One buffer borrowed from a pool; returns itself to the pool when destroyed. Move-only.
class PooledBuffer {
 public:
  PooledBuffer() = default;
  PooledBuffer(PooledBuffer&& other) noexcept;
  PooledBuffer& operator=(PooledBuffer&& other) noexcept;
  PooledBuffer(const PooledBuffer&) = delete;
  PooledBuffer& operator=(const PooledBuffer&) = delete;
  ~PooledBuffer();

  std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  std::span<std::byte> span() const noexcept { return {data_, size_}; }
  explicit operator bool() const noexcept { return data_ != nullptr; }
  /// Gives the buffer back now (idempotent).
  void reset() noexcept;

 private:
  friend class BufferPool;
  PooledBuffer(std::shared_ptr<void> state, std::byte* data, std::size_t size) noexcept
      : state_(std::move(state)), data_(data), size_(size) {}
  std::shared_ptr<void> state_;  // keeps the pool's storage alive while borrowed
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

struct BufferPoolStats {
  std::size_t buffer_bytes = 0;
  std::size_t capacity = 0;     // buffers the pool may hold
  std::size_t allocated = 0;    // buffers created so far
  std::size_t available = 0;    // buffers free right now
  std::size_t acquires = 0;     // successful acquisitions
  std::size_t waits = 0;        // acquisitions that had to wait for a release
};

/// A fixed set of equally sized, 4096-byte aligned buffers. The pool object may be
/// destroyed while buffers are out: the storage lives until the last one comes back.
class BufferPool {
 public:
  /// `count` buffers of `buffer_bytes` each. With `prefault`, all are allocated and
  /// touched now; otherwise each is created (and touched) on first need.
  BufferPool(std::size_t buffer_bytes, std::size_t count, bool prefault = true);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  /// Blocks until a buffer is free; throws TimeoutError after `timeout` (default: forever)
  /// and CancelledError once cancel() was called (also for a waiter already blocked).
  /// While waiting, `interrupt` (if set) runs every `slice` without the pool's lock held;
  /// whatever it throws ends the wait (the Python bindings check for Ctrl-C there).
  PooledBuffer acquire(std::optional<std::chrono::milliseconds> timeout = std::nullopt,
                       const std::function<void()>& interrupt = {},
                       std::chrono::milliseconds slice = std::chrono::milliseconds(50));
  /// Returns an empty PooledBuffer when none is free (CancelledError after cancel()).
  PooledBuffer try_acquire();
  /// Wakes every waiter with CancelledError and refuses later acquisitions, so a producer
  /// waiting for a buffer that a stalled consumer holds can be stopped. Buffers already
  /// borrowed stay valid and still come back. Idempotent; safe from any thread.
  void cancel() noexcept;
  bool cancelled() const noexcept;

  std::size_t buffer_bytes() const noexcept;
  std::size_t capacity() const noexcept;
  BufferPoolStats stats() const;

 private:
  std::shared_ptr<struct PoolState> state_;
};

}  // namespace lclstream
