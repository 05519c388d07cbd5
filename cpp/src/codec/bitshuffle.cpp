// Scalar bit transpose (the reference every ISA is compared with) and the one dispatch point.
#include <cstring>
#include <string>

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

void bit_transpose(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size) {
  const auto* src = reinterpret_cast<const std::uint8_t*>(in);
  auto* dst = reinterpret_cast<std::uint8_t*>(out);
  const std::size_t nb = n / 8;
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
