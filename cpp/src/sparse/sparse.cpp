// Sparse photon lists, in one read of each frame: the nonzero pixels go to a per-thread scratch list
// sized for the worst case (every pixel), then to the batch's lists once every frame's count is
// known. The portable fill ORs a block of 32 pixels first (the compiler vectorises it) and skips it
// when empty, which at photon occupancies below 1% is most blocks; the others are appended
// branch-free (the slot is written every pixel, the cursor moves on nonzero). AVX-512 compresses
// whole vectors instead (fill_avx512.cpp).
#include "lclstream/sparse.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "lclstream/error.hpp"
#include "lclstream/isa.hpp"
#include "lclstream/parallel.hpp"
#include "sparse/fill.hpp"

namespace lclstream::sparse {
namespace {

constexpr std::size_t kBlock = 32;

/// Appends frame p's nonzero pixels (room for n + 1 entries: the branch-free store writes one slot
/// past the last entry); returns how many.
template <class T>
std::size_t fill_portable(const T* p, std::size_t n, std::uint32_t* idx, T* val) {
  std::size_t k = 0, i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    T any = 0;
    for (std::size_t j = 0; j < kBlock; ++j) any |= p[i + j];
    if (any == 0) continue;
    for (std::size_t j = 0; j < kBlock; ++j) {
      const T v = p[i + j];
      idx[k] = static_cast<std::uint32_t>(i + j);
      val[k] = v;
      k += v != 0;
    }
  }
  for (; i < n; ++i) {
    const T v = p[i];
    idx[k] = static_cast<std::uint32_t>(i);
    val[k] = v;
    k += v != 0;
  }
  return k;
}

template <class T>
struct Scratch {
  std::vector<std::uint32_t> index;
  std::vector<T> values;
};

std::size_t frames_of(std::size_t size, std::size_t frame_pixels, const char* what) {
  if (frame_pixels == 0 || size % frame_pixels != 0) {
    throw ValueError(std::string(what) + ": " + std::to_string(size) + " pixels are not whole frames of " +
                     std::to_string(frame_pixels));
  }
  if (frame_pixels > 0xffffffffULL) {
    throw ValueError(std::string(what) + ": frames of " + std::to_string(frame_pixels) +
                     " pixels do not fit uint32 indices");
  }
  return size / frame_pixels;
}

template <class T>
Lists<T> encode_t(std::span<const T> frames, std::size_t px, int threads) {
  const std::size_t n = frames_of(frames.size(), px, "sparse encode");
  const bool wide = active_isa() == Isa::avx512;
  std::vector<std::vector<std::uint32_t>> idx(n);
  std::vector<std::vector<T>> val(n);
  parallel_for(n, threads, [&](std::size_t f) {
    thread_local Scratch<T> s;  // worst case, reused: only the entries written are touched
    if (s.index.size() < px + detail::kSlack) {
      s.index.resize(px + detail::kSlack);
      s.values.resize(px + detail::kSlack);
    }
    const T* p = frames.data() + f * px;
    const std::size_t k = wide ? detail::fill_avx512(p, px, s.index.data(), s.values.data())
                               : fill_portable(p, px, s.index.data(), s.values.data());
    idx[f].assign(s.index.begin(), s.index.begin() + static_cast<std::ptrdiff_t>(k));
    val[f].assign(s.values.begin(), s.values.begin() + static_cast<std::ptrdiff_t>(k));
  });
  Lists<T> out;
  out.offsets.resize(n + 1, 0);
  for (std::size_t f = 0; f < n; ++f) out.offsets[f + 1] = out.offsets[f] + idx[f].size();
  out.index.resize(out.offsets[n]);
  out.values.resize(out.offsets[n]);
  for (std::size_t f = 0; f < n; ++f) {
    std::copy(idx[f].begin(), idx[f].end(), out.index.begin() + static_cast<std::ptrdiff_t>(out.offsets[f]));
    std::copy(val[f].begin(), val[f].end(), out.values.begin() + static_cast<std::ptrdiff_t>(out.offsets[f]));
  }
  return out;
}

template <class T>
void decode_t(std::span<const std::uint64_t> offsets, std::span<const std::uint32_t> index,
              std::span<const T> values, std::span<T> out, std::size_t px, int threads) {
  const std::size_t n = frames_of(out.size(), px, "sparse decode");
  if (offsets.size() != n + 1) {
    throw ValueError("sparse decode: " + std::to_string(offsets.size()) + " offsets for " + std::to_string(n) +
                     " frames (expected frames + 1)");
  }
  if (index.size() != values.size()) {
    throw ValueError("sparse decode: " + std::to_string(index.size()) + " indices but " +
                     std::to_string(values.size()) + " values");
  }
  if (offsets[0] != 0 || offsets[n] != index.size()) {
    throw ValueError("sparse decode: offsets run from " + std::to_string(offsets[0]) + " to " +
                     std::to_string(offsets[n]) + ", the lists hold " + std::to_string(index.size()) + " entries");
  }
  for (std::size_t f = 0; f < n; ++f) {
    if (offsets[f + 1] < offsets[f]) {
      throw ValueError("sparse decode: offsets decrease at frame " + std::to_string(f));
    }
  }
  const auto bad = std::find_if(index.begin(), index.end(), [px](std::uint32_t i) { return i >= px; });
  if (bad != index.end()) {
    throw ValueError("sparse decode: entry " + std::to_string(bad - index.begin()) + " has pixel index " +
                     std::to_string(*bad) + ", frames have " + std::to_string(px) + " pixels");
  }
  parallel_for(n, threads, [&](std::size_t f) {
    T* o = out.data() + f * px;
    std::memset(o, 0, px * sizeof(T));
    for (std::uint64_t e = offsets[f]; e < offsets[f + 1]; ++e) o[index[e]] = values[e];
  });
}

}  // namespace

Lists<std::uint16_t> encode(std::span<const std::uint16_t> frames, std::size_t px, int threads) {
  return encode_t(frames, px, threads);
}
Lists<std::uint32_t> encode(std::span<const std::uint32_t> frames, std::size_t px, int threads) {
  return encode_t(frames, px, threads);
}
void decode(std::span<const std::uint64_t> offsets, std::span<const std::uint32_t> index,
            std::span<const std::uint16_t> values, std::span<std::uint16_t> out, std::size_t px, int threads) {
  decode_t(offsets, index, values, out, px, threads);
}
void decode(std::span<const std::uint64_t> offsets, std::span<const std::uint32_t> index,
            std::span<const std::uint32_t> values, std::span<std::uint32_t> out, std::size_t px, int threads) {
  decode_t(offsets, index, values, out, px, threads);
}

}  // namespace lclstream::sparse
