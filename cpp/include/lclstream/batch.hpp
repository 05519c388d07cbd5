#pragma once
// A batch: N events of one detector laid out contiguously (events first) in one pooled
// buffer, plus per-event ids and timestamps. Contiguity is what lets a codec, a socket or
// a GPU take the whole batch in one call without gathering.
#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "lclstream/buffer_pool.hpp"
#include "lclstream/dtype.hpp"

namespace lclstream {

class Batch {
 public:
  /// A batch for up to `capacity` frames of `frame_shape` and `dtype`, stored in a buffer
  /// from `pool` (whose buffers must be large enough; ValueError otherwise). Waiting for the
  /// buffer follows BufferPool::acquire: `timeout` (nullopt: none), `interrupt` between
  /// slices, CancelledError once the pool is cancelled.
  Batch(BufferPool& pool, DType dtype, std::vector<std::size_t> frame_shape, std::size_t capacity,
        std::optional<std::chrono::milliseconds> timeout = std::nullopt, const std::function<void()>& interrupt = {});
  /// Same, with a private buffer (for one-off use; pipelines pass a pool).
  Batch(DType dtype, std::vector<std::size_t> frame_shape, std::size_t capacity);

  Batch(Batch&&) noexcept = default;
  Batch& operator=(Batch&&) noexcept = default;

  /// Copies one frame in place. `frame` must hold exactly frame_bytes() bytes of `dtype`;
  /// throws ValueError on a dtype or size mismatch, CapacityError when full. Large frames
  /// are copied by `threads` threads (0 = all cores).
  void append(std::span<const std::byte> frame, DType dtype, std::uint64_t event_id,
              std::uint64_t timestamp, int threads = 1);
  /// Copies many frames at once, spreading the copy over threads.
  void append_many(std::span<const std::span<const std::byte>> frames, DType dtype,
                   std::span<const std::uint64_t> event_ids,
                   std::span<const std::uint64_t> timestamps, int threads = 0);
  /// A slot for the next frame to be written in place (e.g. by a calibration kernel);
  /// commit_next() makes it part of the batch.
  std::span<std::byte> next_slot();
  void commit_next(std::uint64_t event_id, std::uint64_t timestamp);
  /// Forgets all events (the buffer is kept).
  void clear() noexcept;

  DType dtype() const noexcept { return dtype_; }
  const std::vector<std::size_t>& frame_shape() const noexcept { return frame_shape_; }
  std::size_t frame_elements() const noexcept { return frame_elems_; }
  std::size_t frame_bytes() const noexcept { return frame_elems_ * dtype_size(dtype_); }
  std::size_t size() const noexcept { return ids_.size(); }
  std::size_t capacity() const noexcept { return capacity_; }
  bool full() const noexcept { return size() == capacity_; }
  /// The filled part: size() * frame_bytes() bytes.
  std::span<std::byte> bytes() noexcept { return {buffer_.data(), size() * frame_bytes()}; }
  std::span<const std::byte> bytes() const noexcept { return {buffer_.data(), size() * frame_bytes()}; }
  std::span<std::byte> frame(std::size_t i);
  const std::vector<std::uint64_t>& event_ids() const noexcept { return ids_; }
  const std::vector<std::uint64_t>& timestamps() const noexcept { return timestamps_; }
  /// Releases the buffer back to its pool; the batch becomes empty with capacity 0.
  PooledBuffer release() noexcept;

 private:
  void check_frame(std::size_t bytes, DType dtype) const;
  PooledBuffer buffer_;
  std::unique_ptr<BufferPool> own_pool_;
  DType dtype_;
  std::vector<std::size_t> frame_shape_;
  std::size_t frame_elems_ = 0;
  std::size_t capacity_ = 0;
  std::vector<std::uint64_t> ids_;
  std::vector<std::uint64_t> timestamps_;
};

/// Copies src to dst with `threads` threads (0 = all cores) in page-sized pieces.
void parallel_copy(std::span<std::byte> dst, std::span<const std::byte> src, int threads);

}  // namespace lclstream
