#pragma once
// Small data reductions applied after calibration: zeroing below a threshold, region-of-
// interest crops and pixel binning. Frames are (frames, rows, cols) row-major; every kernel
// runs over the shared thread pool (threads = 0: all cores).
#include <cstddef>
#include <cstdint>
#include <span>

namespace lclstream::reduce {

/// In place: every value below `threshold` becomes 0 (NaN stays NaN). Returns how many were zeroed.
std::uint64_t zero_below(std::span<float> data, float threshold, int threads = 0);
std::uint64_t zero_below(std::span<std::uint16_t> data, std::uint16_t threshold, int threads = 0);
std::uint64_t zero_below(std::span<std::uint32_t> data, std::uint32_t threshold, int threads = 0);

/// Geometry of a stack of frames.
struct FrameStack {
  std::size_t frames = 0, rows = 0, cols = 0;
};

/// Copies rows [r0, r1) x cols [c0, c1) of every frame into `out` (frames x (r1-r0) x (c1-c0)),
/// elements of `elem_size` bytes. ValueError when the window is outside the frame or sizes differ.
void crop(std::span<const std::byte> in, std::span<std::byte> out, std::size_t elem_size, FrameStack shape,
          std::size_t r0, std::size_t r1, std::size_t c0, std::size_t c1, int threads = 0);

/// Sums by x bx blocks (rows and cols must be multiples): out is frames x rows/by x cols/bx.
/// float32 sums in float32, row by row within a block; integer counts sum into uint32
/// (saturating at 2^32 - 1).
void bin(std::span<const float> in, std::span<float> out, FrameStack shape, std::size_t by, std::size_t bx,
         int threads = 0);
void bin(std::span<const std::uint16_t> in, std::span<std::uint32_t> out, FrameStack shape, std::size_t by,
         std::size_t bx, int threads = 0);
void bin(std::span<const std::uint32_t> in, std::span<std::uint32_t> out, FrameStack shape, std::size_t by,
         std::size_t bx, int threads = 0);

}  // namespace lclstream::reduce
