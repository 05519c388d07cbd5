#include "lclstream/buffer_pool.hpp"

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "lclstream/error.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace lclstream {

namespace {
constexpr std::size_t kAlign = 4096;
// Large buffers are aligned to 2 MiB and marked for transparent huge pages: copies into
// 4 KiB pages pay TLB misses (numpy does the same for its large arrays).
constexpr std::size_t kHugeAlign = std::size_t{2} << 20;

struct FreeDeleter {
  void operator()(std::byte* p) const noexcept { std::free(p); }
};
using Storage = std::unique_ptr<std::byte, FreeDeleter>;

Storage allocate_touched(std::size_t bytes) {
  const std::size_t align = bytes >= kHugeAlign ? kHugeAlign : kAlign;
  const std::size_t rounded = ((bytes == 0 ? 1 : bytes) + align - 1) / align * align;
  Storage s(static_cast<std::byte*>(std::aligned_alloc(align, rounded)));
  if (!s) throw CapacityError("BufferPool: cannot allocate " + std::to_string(rounded) + " bytes");
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (align == kHugeAlign) (void)madvise(s.get(), rounded, MADV_HUGEPAGE);  // advisory only
#endif
  std::memset(s.get(), 0, rounded);  // fault every page in now, not on the hot path
  return s;
}
}  // namespace

struct PoolState {
  std::size_t buffer_bytes;
  std::size_t capacity;
  mutable std::mutex mu;
  std::condition_variable cv;
  std::vector<Storage> owned;    // every buffer ever created
  std::vector<std::byte*> free;  // those not borrowed
  std::size_t acquires = 0;
  std::size_t waits = 0;
  bool cancelled = false;

  void give_back(std::byte* p) noexcept {
    {
      std::lock_guard lock(mu);
      free.push_back(p);
    }
    cv.notify_one();
  }
};

PooledBuffer::PooledBuffer(PooledBuffer&& other) noexcept
    : state_(std::move(other.state_)), data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

PooledBuffer& PooledBuffer::operator=(PooledBuffer&& other) noexcept {
  if (this != &other) {
    reset();
    state_ = std::move(other.state_);
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

PooledBuffer::~PooledBuffer() { reset(); }

void PooledBuffer::reset() noexcept {
  if (data_ != nullptr && state_) static_cast<PoolState*>(state_.get())->give_back(data_);
  state_.reset();
  data_ = nullptr;
  size_ = 0;
}

BufferPool::BufferPool(std::size_t buffer_bytes, std::size_t count, bool prefault)
    : state_(std::make_shared<PoolState>()) {
  if (count == 0) throw ValueError("BufferPool: count must be at least 1");
  state_->buffer_bytes = buffer_bytes;
  state_->capacity = count;
  state_->owned.reserve(count);
  state_->free.reserve(count);
  if (prefault) {
    for (std::size_t i = 0; i < count; ++i) {
      state_->owned.push_back(allocate_touched(buffer_bytes));
      state_->free.push_back(state_->owned.back().get());
    }
  }
}

BufferPool::~BufferPool() = default;

PooledBuffer BufferPool::acquire(std::optional<std::chrono::milliseconds> timeout,
                                 const std::function<void()>& interrupt, std::chrono::milliseconds slice) {
  using Clock = std::chrono::steady_clock;
  const bool has_deadline = timeout.has_value();
  const Clock::time_point deadline = has_deadline ? Clock::now() + *timeout : Clock::time_point::max();
  auto cancelled_error = [&] {
    return CancelledError("BufferPool: cancelled while waiting for a buffer of " +
                          std::to_string(state_->buffer_bytes) + " bytes");
  };
  std::unique_lock lock(state_->mu);
  if (state_->cancelled) throw cancelled_error();
  if (state_->free.empty() && state_->owned.size() < state_->capacity) {
    state_->owned.push_back(allocate_touched(state_->buffer_bytes));
    state_->free.push_back(state_->owned.back().get());
  }
  if (state_->free.empty()) {
    ++state_->waits;
    auto ready = [&] { return !state_->free.empty() || state_->cancelled; };
    if (slice.count() <= 0) slice = std::chrono::milliseconds(50);
    while (!ready()) {
      auto until = Clock::now() + (interrupt ? slice : std::chrono::hours(24));
      if (has_deadline && deadline < until) until = deadline;
      if (state_->cv.wait_until(lock, until, ready)) break;
      if (has_deadline && Clock::now() >= deadline) {
        throw TimeoutError("BufferPool: no free buffer of " + std::to_string(state_->buffer_bytes) +
                           " bytes within " + std::to_string(timeout->count()) + " ms (all " +
                           std::to_string(state_->capacity) + " in use)");
      }
      if (interrupt) {
        lock.unlock();
        interrupt();
        lock.lock();
      }
    }
    if (state_->cancelled) throw cancelled_error();
  }
  std::byte* p = state_->free.back();
  state_->free.pop_back();
  ++state_->acquires;
  return PooledBuffer(state_, p, state_->buffer_bytes);
}

PooledBuffer BufferPool::try_acquire() {
  try {
    return acquire(std::chrono::milliseconds(0));
  } catch (const TimeoutError&) {
    return {};
  }
}

void BufferPool::cancel() noexcept {
  {
    std::lock_guard lock(state_->mu);
    state_->cancelled = true;
  }
  state_->cv.notify_all();
}

bool BufferPool::cancelled() const noexcept {
  std::lock_guard lock(state_->mu);
  return state_->cancelled;
}

std::size_t BufferPool::buffer_bytes() const noexcept { return state_->buffer_bytes; }
std::size_t BufferPool::capacity() const noexcept { return state_->capacity; }

BufferPoolStats BufferPool::stats() const {
  std::lock_guard lock(state_->mu);
  return {state_->buffer_bytes, state_->capacity, state_->owned.size(), state_->free.size(),
          state_->acquires,     state_->waits};
}

}  // namespace lclstream
