#include "lclstream/batch.hpp"

#include <cstring>
#include <string>

#include "lclstream/error.hpp"
#include "lclstream/parallel.hpp"

namespace lclstream {

namespace {
std::size_t product(const std::vector<std::size_t>& shape) {
  std::size_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}
std::string shape_str(const std::vector<std::size_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}
// Below this size one thread copies faster than waking helpers.
constexpr std::size_t kParallelCopyMin = 1u << 20;
constexpr std::size_t kCopyAlign = 1u << 16;
}  // namespace

void parallel_copy(std::span<std::byte> dst, std::span<const std::byte> src, int threads) {
  if (dst.size() < src.size()) throw ValueError("parallel_copy: destination smaller than source");
  if (src.size() < kParallelCopyMin || threads == 1) {
    if (!src.empty()) std::memcpy(dst.data(), src.data(), src.size());
    return;
  }
  parallel_ranges(src.size(), threads, kCopyAlign, [&](std::size_t b, std::size_t e) {
    std::memcpy(dst.data() + b, src.data() + b, e - b);
  });
}

Batch::Batch(BufferPool& pool, DType dtype, std::vector<std::size_t> frame_shape, std::size_t capacity,
             std::optional<std::chrono::milliseconds> timeout, const std::function<void()>& interrupt)
    : dtype_(dtype), frame_shape_(std::move(frame_shape)), capacity_(capacity) {
  frame_elems_ = product(frame_shape_);
  const std::size_t need = capacity_ * frame_bytes();
  if (need > pool.buffer_bytes()) {
    throw ValueError("Batch: " + std::to_string(capacity_) + " frames of " +
                     shape_str(frame_shape_) + " " + std::string(dtype_name(dtype_)) + " need " +
                     std::to_string(need) + " bytes but the pool's buffers hold " +
                     std::to_string(pool.buffer_bytes()));
  }
  buffer_ = pool.acquire(timeout, interrupt);
  ids_.reserve(capacity_);
  timestamps_.reserve(capacity_);
}

Batch::Batch(DType dtype, std::vector<std::size_t> frame_shape, std::size_t capacity)
    : dtype_(dtype), frame_shape_(std::move(frame_shape)), capacity_(capacity) {
  frame_elems_ = product(frame_shape_);
  own_pool_ = std::make_unique<BufferPool>(capacity_ * frame_bytes(), 1, true);
  buffer_ = own_pool_->acquire();
  ids_.reserve(capacity_);
  timestamps_.reserve(capacity_);
}

void Batch::check_frame(std::size_t bytes, DType dtype) const {
  if (dtype != dtype_) {
    throw ValueError("Batch.append: frame dtype " + std::string(dtype_name(dtype)) +
                     " does not match the batch's " + std::string(dtype_name(dtype_)));
  }
  if (bytes != frame_bytes()) {
    throw ValueError("Batch.append: frame has " + std::to_string(bytes) + " bytes, expected " +
                     std::to_string(frame_bytes()) + " (" + shape_str(frame_shape_) + " " +
                     std::string(dtype_name(dtype_)) + ")");
  }
}

std::span<std::byte> Batch::next_slot() {
  if (full()) {
    throw CapacityError("Batch is full: capacity " + std::to_string(capacity_) + " events");
  }
  if (!buffer_) throw ValueError("Batch: buffer already released");
  return {buffer_.data() + size() * frame_bytes(), frame_bytes()};
}

void Batch::commit_next(std::uint64_t event_id, std::uint64_t timestamp) {
  (void)next_slot();
  ids_.push_back(event_id);
  timestamps_.push_back(timestamp);
}

void Batch::append(std::span<const std::byte> frame, DType dtype, std::uint64_t event_id,
                   std::uint64_t timestamp, int threads) {
  check_frame(frame.size(), dtype);
  parallel_copy(next_slot(), frame, threads);
  commit_next(event_id, timestamp);
}

void Batch::append_many(std::span<const std::span<const std::byte>> frames, DType dtype,
                        std::span<const std::uint64_t> event_ids,
                        std::span<const std::uint64_t> timestamps, int threads) {
  if (event_ids.size() != frames.size() || timestamps.size() != frames.size()) {
    throw ValueError("Batch.append_many: " + std::to_string(frames.size()) + " frames but " +
                     std::to_string(event_ids.size()) + " event ids and " +
                     std::to_string(timestamps.size()) + " timestamps");
  }
  for (const auto& f : frames) check_frame(f.size(), dtype);
  if (size() + frames.size() > capacity_) {
    throw CapacityError("Batch.append_many: " + std::to_string(frames.size()) +
                        " frames do not fit (" + std::to_string(size()) + " of " +
                        std::to_string(capacity_) + " used)");
  }
  if (!buffer_) throw ValueError("Batch: buffer already released");
  const std::size_t fb = frame_bytes();
  std::byte* base = buffer_.data() + size() * fb;
  const std::size_t total = frames.size() * fb;
  // Split the whole destination into equal pieces regardless of frame boundaries, so two
  // threads share the work evenly even for a batch of one frame.
  parallel_ranges(total, total < kParallelCopyMin ? 1 : threads, kCopyAlign,
                  [&](std::size_t b, std::size_t e) {
    while (b < e) {
      const std::size_t f = b / fb, off = b % fb;
      const std::size_t n = std::min(e - b, fb - off);
      std::memcpy(base + b, frames[f].data() + off, n);
      b += n;
    }
  });
  ids_.insert(ids_.end(), event_ids.begin(), event_ids.end());
  timestamps_.insert(timestamps_.end(), timestamps.begin(), timestamps.end());
}

std::span<std::byte> Batch::frame(std::size_t i) {
  if (i >= size()) {
    throw ValueError("Batch.frame: index " + std::to_string(i) + " out of range (size " +
                     std::to_string(size()) + ")");
  }
  return {buffer_.data() + i * frame_bytes(), frame_bytes()};
}

void Batch::clear() noexcept {
  ids_.clear();
  timestamps_.clear();
}

PooledBuffer Batch::release() noexcept {
  clear();
  capacity_ = 0;
  return std::move(buffer_);
}

}  // namespace lclstream
