// Reduction kernels: plain loops the compiler vectorises for the baseline ISA; they are
// memory-bound, so no per-ISA variants.
#include "lclstream/reduce.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

#include "lclstream/error.hpp"
#include "lclstream/parallel.hpp"

namespace lclstream::reduce {
namespace {

template <class T>
std::uint64_t zero_below_t(std::span<T> data, T threshold, int threads) {
  std::atomic<std::uint64_t> total{0};
  parallel_ranges(data.size(), threads, 4096, [&](std::size_t b, std::size_t e) {
    std::uint64_t n = 0;
    T* d = data.data();
    for (std::size_t i = b; i < e; ++i) {
      const bool low = d[i] < threshold;
      n += low;
      d[i] = low ? T{0} : d[i];
    }
    total.fetch_add(n, std::memory_order_relaxed);
  });
  return total.load();
}

void check_bin(FrameStack s, std::size_t in_size, std::size_t out_size, std::size_t by, std::size_t bx) {
  if (by == 0 || bx == 0 || s.rows % by != 0 || s.cols % bx != 0) {
    throw ValueError("bin: " + std::to_string(by) + "x" + std::to_string(bx) + " bins do not tile frames of " +
                     std::to_string(s.rows) + "x" + std::to_string(s.cols));
  }
  if (in_size != s.frames * s.rows * s.cols) throw ValueError("bin: input size does not match its shape");
  if (out_size != s.frames * (s.rows / by) * (s.cols / bx)) {
    throw ValueError("bin: out has " + std::to_string(out_size) + " elements, expected " +
                     std::to_string(s.frames * (s.rows / by) * (s.cols / bx)));
  }
}

template <class In, class Acc>
void bin_t(std::span<const In> in, std::span<Acc> out, FrameStack s, std::size_t by, std::size_t bx,
           int threads) {
  check_bin(s, in.size(), out.size(), by, bx);
  const std::size_t orows = s.rows / by, ocols = s.cols / bx;
  parallel_for(s.frames * orows, threads, [&](std::size_t task) {
    const std::size_t f = task / orows, orow = task % orows;
    Acc* o = out.data() + task * ocols;
    if constexpr (std::is_same_v<Acc, float>) {
      std::fill(o, o + ocols, 0.0F);
    } else {
      std::fill(o, o + ocols, Acc{0});
    }
    for (std::size_t r = 0; r < by; ++r) {
      const In* row = in.data() + (f * s.rows + orow * by + r) * s.cols;
      for (std::size_t oc = 0; oc < ocols; ++oc) {
        if constexpr (std::is_same_v<Acc, float>) {
          float acc = o[oc];
          for (std::size_t c = 0; c < bx; ++c) acc = acc + row[oc * bx + c];
          o[oc] = acc;
        } else {
          std::uint64_t acc = o[oc];
          for (std::size_t c = 0; c < bx; ++c) acc += row[oc * bx + c];
          o[oc] = static_cast<Acc>(std::min<std::uint64_t>(acc, 0xffffffffU));
        }
      }
    }
  });
}

}  // namespace

std::uint64_t zero_below(std::span<float> data, float threshold, int threads) {
  return zero_below_t(data, threshold, threads);
}
std::uint64_t zero_below(std::span<std::uint16_t> data, std::uint16_t threshold, int threads) {
  return zero_below_t(data, threshold, threads);
}
std::uint64_t zero_below(std::span<std::uint32_t> data, std::uint32_t threshold, int threads) {
  return zero_below_t(data, threshold, threads);
}

void crop(std::span<const std::byte> in, std::span<std::byte> out, std::size_t elem_size, FrameStack s,
          std::size_t r0, std::size_t r1, std::size_t c0, std::size_t c1, int threads) {
  if (r0 >= r1 || c0 >= c1 || r1 > s.rows || c1 > s.cols) {
    throw ValueError("crop: window rows [" + std::to_string(r0) + ", " + std::to_string(r1) + ") cols [" +
                     std::to_string(c0) + ", " + std::to_string(c1) + ") is empty or outside frames of " +
                     std::to_string(s.rows) + "x" + std::to_string(s.cols));
  }
  if (in.size() != s.frames * s.rows * s.cols * elem_size) throw ValueError("crop: input size does not match its shape");
  const std::size_t orows = r1 - r0, row_bytes = (c1 - c0) * elem_size;
  if (out.size() != s.frames * orows * row_bytes) {
    throw ValueError("crop: out has " + std::to_string(out.size()) + " bytes, expected " +
                     std::to_string(s.frames * orows * row_bytes));
  }
  parallel_ranges(s.frames * orows, threads, 16, [&](std::size_t b, std::size_t e) {
    for (std::size_t t = b; t < e; ++t) {
      const std::size_t f = t / orows, r = r0 + t % orows;
      std::memcpy(out.data() + t * row_bytes, in.data() + ((f * s.rows + r) * s.cols + c0) * elem_size, row_bytes);
    }
  });
}

void bin(std::span<const float> in, std::span<float> out, FrameStack s, std::size_t by, std::size_t bx,
         int threads) {
  bin_t(in, out, s, by, bx, threads);
}
void bin(std::span<const std::uint16_t> in, std::span<std::uint32_t> out, FrameStack s, std::size_t by,
         std::size_t bx, int threads) {
  bin_t(in, out, s, by, bx, threads);
}
void bin(std::span<const std::uint32_t> in, std::span<std::uint32_t> out, FrameStack s, std::size_t by,
         std::size_t bx, int threads) {
  bin_t(in, out, s, by, bx, threads);
}

}  // namespace lclstream::reduce
