#pragma once
// Sparse photon lists: a photon-count frame as (flat pixel index, count) pairs of its nonzero
// pixels. At the low occupancies of high-repetition-rate experiments (0.001-0.01 photons per
// pixel) the lists are several times smaller than the best-compressed frame and cost one read of
// the frame to make. Frames are (frames, pixels) row-major; indices are uint32 (a frame has at most
// 2^32 - 1 pixels); offsets[f] .. offsets[f+1] are frame f's entries, in increasing pixel order.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace lclstream::sparse {

template <class T>
struct Lists {
  std::vector<std::uint64_t> offsets;  // frames + 1
  std::vector<std::uint32_t> index;
  std::vector<T> values;
};

/// Every nonzero pixel of each frame. ValueError when frame_pixels is 0, does not divide the data
/// or does not fit uint32 indices.
Lists<std::uint16_t> encode(std::span<const std::uint16_t> frames, std::size_t frame_pixels, int threads = 0);
Lists<std::uint32_t> encode(std::span<const std::uint32_t> frames, std::size_t frame_pixels, int threads = 0);

/// Lists back to frames: `out` (frames x frame_pixels) is zeroed, then each entry written. The lists
/// are checked first, as bytes from the network: offsets start at 0, never decrease and end at the
/// list length, there are out.size() / frame_pixels frames, and every index is inside its frame.
/// ValueError naming the first fault; `out` is untouched then.
void decode(std::span<const std::uint64_t> offsets, std::span<const std::uint32_t> index,
            std::span<const std::uint16_t> values, std::span<std::uint16_t> out, std::size_t frame_pixels,
            int threads = 0);
void decode(std::span<const std::uint64_t> offsets, std::span<const std::uint32_t> index,
            std::span<const std::uint32_t> values, std::span<std::uint32_t> out, std::size_t frame_pixels,
            int threads = 0);

}  // namespace lclstream::sparse
