// Scalar bit transpose (the reference every ISA is compared with) and the one dispatch point.
#include <cstring>
#include <string>
#include <vector>

#include "codec/codec_internal.hpp"
#include "lclstream/codec.hpp"
#include "lclstream/error.hpp"
#include "lclstream/isa.hpp"

namespace lclstream {

namespace scalar {
namespace {
// Transposes an 8x8 bit matrix held as 8 bytes (byte r, bit c -> byte c, bit r).
inline std::uint64_t transpose8(std::uint64_t x) noexcept {
  std::uint64_t t = (x ^ (x >> 7)) & 0x00AA00AA00AA00AAULL;
  x ^= t ^ (t << 7);
  t = (x ^ (x >> 14)) & 0x0000CCCC0000CCCCULL;
  x ^= t ^ (t << 14);
  t = (x ^ (x >> 28)) & 0x00000000F0F0F0F0ULL;
  x ^= t ^ (t << 28);
  return x;
}
}  // namespace

namespace {
// One byte stream of n bytes -> 8 planes of n/8 bytes, and back.
void stream_to_planes(const std::uint8_t* s, std::uint8_t* planes, std::size_t n) {
  const std::size_t nb = n / 8;
  for (std::size_t g = 0; g < nb; ++g) {
    std::uint64_t x;
    std::memcpy(&x, s + g * 8, 8);
    x = transpose8(x);
    for (std::size_t j = 0; j < 8; ++j) planes[j * nb + g] = static_cast<std::uint8_t>(x >> (8 * j));
  }
}
void planes_to_stream(const std::uint8_t* planes, std::uint8_t* s, std::size_t n) {
  const std::size_t nb = n / 8;
  for (std::size_t g = 0; g < nb; ++g) {
    std::uint64_t x = 0;
    for (std::size_t j = 0; j < 8; ++j) x |= std::uint64_t(planes[j * nb + g]) << (8 * j);
    x = transpose8(x);
    std::memcpy(s + g * 8, &x, 8);
  }
}
// 2-byte elements -> low-byte stream and high-byte stream (SWAR on 8 elements at a time).
inline std::uint64_t pack_even_bytes(std::uint64_t w) noexcept {
  w &= 0x00FF00FF00FF00FFULL;
  w = (w | (w >> 8)) & 0x0000FFFF0000FFFFULL;
  return (w | (w >> 16)) & 0x00000000FFFFFFFFULL;
}
inline std::uint64_t spread_bytes(std::uint64_t w) noexcept {  // inverse of pack_even_bytes
  w = (w | (w << 16)) & 0x0000FFFF0000FFFFULL;
  return (w | (w << 8)) & 0x00FF00FF00FF00FFULL;
}
void split2(const std::uint8_t* src, std::uint8_t* dst, std::size_t n) {
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    std::uint64_t a, b;
    std::memcpy(&a, src + 2 * k, 8);
    std::memcpy(&b, src + 2 * k + 8, 8);
    const std::uint64_t lo = pack_even_bytes(a) | (pack_even_bytes(b) << 32);
    const std::uint64_t hi = pack_even_bytes(a >> 8) | (pack_even_bytes(b >> 8) << 32);
    std::memcpy(dst + k, &lo, 8);
    std::memcpy(dst + n + k, &hi, 8);
  }
  for (; k < n; ++k) {
    dst[k] = src[2 * k];
    dst[n + k] = src[2 * k + 1];
  }
}
void join2(const std::uint8_t* src, std::uint8_t* dst, std::size_t n) {
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    std::uint64_t lo, hi;
    std::memcpy(&lo, src + k, 8);
    std::memcpy(&hi, src + n + k, 8);
    const std::uint64_t a = spread_bytes(lo & 0xFFFFFFFFULL) | (spread_bytes(hi & 0xFFFFFFFFULL) << 8);
    const std::uint64_t b = spread_bytes(lo >> 32) | (spread_bytes(hi >> 32) << 8);
    std::memcpy(dst + 2 * k, &a, 8);
    std::memcpy(dst + 2 * k + 8, &b, 8);
  }
  for (; k < n; ++k) {
    dst[2 * k] = src[k];
    dst[2 * k + 1] = src[n + k];
  }
}
thread_local std::vector<std::uint8_t> t_scratch;
std::uint8_t* scratch(std::size_t bytes) {
  if (t_scratch.size() < bytes) t_scratch.resize(bytes);
  return t_scratch.data();
}
}  // namespace

void bit_transpose(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size) {
  const auto* src = reinterpret_cast<const std::uint8_t*>(in);
  auto* dst = reinterpret_cast<std::uint8_t*>(out);
  const std::size_t nb = n / 8;
  if (elem_size == 1) return stream_to_planes(src, dst, n);
  if (elem_size == 2) {
    std::uint8_t* tmp = scratch(2 * n);
    split2(src, tmp, n);
    stream_to_planes(tmp, dst, n);
    stream_to_planes(tmp + n, dst + n, n);
    return;
  }
  for (std::size_t b = 0; b < elem_size; ++b) {
    std::uint8_t* plane = dst + b * 8 * nb;
    for (std::size_t g = 0; g < nb; ++g) {
      const std::uint8_t* e = src + g * 8 * elem_size + b;
      std::uint64_t x = 0;
      for (std::size_t k = 0; k < 8; ++k) x |= std::uint64_t(e[k * elem_size]) << (8 * k);
      x = transpose8(x);
      for (std::size_t i = 0; i < 8; ++i) plane[i * nb + g] = static_cast<std::uint8_t>(x >> (8 * i));
    }
  }
}

void bit_untranspose(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size) {
  const auto* src = reinterpret_cast<const std::uint8_t*>(in);
  auto* dst = reinterpret_cast<std::uint8_t*>(out);
  const std::size_t nb = n / 8;
  if (elem_size == 1) return planes_to_stream(src, dst, n);
  if (elem_size == 2) {
    std::uint8_t* tmp = scratch(2 * n);
    planes_to_stream(src, tmp, n);
    planes_to_stream(src + n, tmp + n, n);
    join2(tmp, dst, n);
    return;
  }
  for (std::size_t b = 0; b < elem_size; ++b) {
    const std::uint8_t* plane = src + b * 8 * nb;
    for (std::size_t g = 0; g < nb; ++g) {
      std::uint64_t x = 0;
      for (std::size_t i = 0; i < 8; ++i) x |= std::uint64_t(plane[i * nb + g]) << (8 * i);
      x = transpose8(x);
      std::uint8_t* e = dst + g * 8 * elem_size + b;
      for (std::size_t k = 0; k < 8; ++k) e[k * elem_size] = static_cast<std::uint8_t>(x >> (8 * k));
    }
  }
}
}  // namespace scalar

namespace {
void check_transpose_args(std::size_t n, std::size_t elem_size) {
  if (n % 8 != 0) throw ValueError("bit_transpose: element count " + std::to_string(n) + " is not a multiple of 8");
  if (elem_size == 0) throw ValueError("bit_transpose: element size must be positive");
}
}  // namespace

void bit_transpose(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size) {
  check_transpose_args(n, elem_size);
  switch (active_isa()) {
    case Isa::avx512: return avx512::bit_transpose(in, out, n, elem_size);
    case Isa::avx2: return avx2::bit_transpose(in, out, n, elem_size);
    case Isa::scalar: break;
  }
  scalar::bit_transpose(in, out, n, elem_size);
}

void bit_untranspose(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size) {
  check_transpose_args(n, elem_size);
  switch (active_isa()) {
    case Isa::avx512: return avx512::bit_untranspose(in, out, n, elem_size);
    case Isa::avx2: return avx2::bit_untranspose(in, out, n, elem_size);
    case Isa::scalar: break;
  }
  scalar::bit_untranspose(in, out, n, elem_size);
}

std::size_t bitshuffle_default_block_size(std::size_t elem_size) noexcept {
  if (elem_size == 0) return 128;
  std::size_t bs = 8192 / elem_size;
  bs = bs / 8 * 8;
  return bs < 128 ? 128 : bs;
}

namespace {
template <bool Forward>
void blocked(std::span<const std::byte> in, std::span<std::byte> out, std::size_t elem_size,
             std::size_t block_size) {
  if (elem_size == 0) throw ValueError("bitshuffle: element size must be positive");
  if (in.size() % elem_size != 0) throw ValueError("bitshuffle: input is not a whole number of elements");
  if (out.size() != in.size()) throw ValueError("bitshuffle: output size differs from input size");
  if (block_size == 0) block_size = bitshuffle_default_block_size(elem_size);
  if (block_size % 8 != 0) throw ValueError("bitshuffle: block size must be a multiple of 8 elements");
  const std::size_t n = in.size() / elem_size;
  std::size_t i = 0;
  while (i + 8 <= n) {
    const std::size_t m = std::min(block_size, (n - i) / 8 * 8);
    if constexpr (Forward) {
      bit_transpose(in.data() + i * elem_size, out.data() + i * elem_size, m, elem_size);
    } else {
      bit_untranspose(in.data() + i * elem_size, out.data() + i * elem_size, m, elem_size);
    }
    i += m;
  }
  if (i < n) std::memcpy(out.data() + i * elem_size, in.data() + i * elem_size, (n - i) * elem_size);
}
}  // namespace

void bitshuffle(std::span<const std::byte> in, std::span<std::byte> out, std::size_t elem_size,
                std::size_t block_size) {
  blocked<true>(in, out, elem_size, block_size);
}
void bitunshuffle(std::span<const std::byte> in, std::span<std::byte> out, std::size_t elem_size,
                  std::size_t block_size) {
  blocked<false>(in, out, elem_size, block_size);
}

}  // namespace lclstream
