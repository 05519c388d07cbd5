// AVX2 bit transpose: byte split with in-lane shuffles (E = 2, 4), then per byte stream
// MOVMSKB on 32 bytes gives 4 bytes of one plane (bit 7 first, shifting left between
// planes). The inverse broadcasts plane bytes, selects each element's bit and compares.
// Other element sizes and vector tails use the scalar arithmetic (bit-identical).
#include <immintrin.h>

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>

#include "codec/codec_internal.hpp"

namespace lclstream::avx2 {
namespace {
inline int popcnt64(std::uint64_t v) noexcept { return std::popcount(v); }
#include "codec/classify_body.inc"

inline std::uint64_t transpose8(std::uint64_t x) noexcept {
  std::uint64_t t = (x ^ (x >> 7)) & 0x00AA00AA00AA00AAULL;
  x ^= t ^ (t << 7);
  t = (x ^ (x >> 14)) & 0x0000CCCC0000CCCCULL;
  x ^= t ^ (t << 14);
  t = (x ^ (x >> 28)) & 0x00000000F0F0F0F0ULL;
  x ^= t ^ (t << 28);
  return x;
}

inline __m256i load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

void split2(const std::uint8_t* src, std::uint8_t* dst, std::size_t n) {
  const __m256i shuf = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3,
                                        5, 7, 9, 11, 13, 15);
  std::size_t k = 0;
  for (; k + 16 <= n; k += 16) {
    // per lane: [lo x8, hi x8]; then qwords (lo0, lo1, hi0, hi1)
    const __m256i v = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(load(src + 2 * k), shuf), 0xD8);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + k), _mm256_castsi256_si128(v));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + n + k), _mm256_extracti128_si256(v, 1));
  }
  for (; k < n; ++k) {
    dst[k] = src[2 * k];
    dst[n + k] = src[2 * k + 1];
  }
}

void join2(const std::uint8_t* src, std::uint8_t* dst, std::size_t n) {
  std::size_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + k));
    const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + n + k));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * k), _mm_unpacklo_epi8(lo, hi));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * k + 16), _mm_unpackhi_epi8(lo, hi));
  }
  for (; k < n; ++k) {
    dst[2 * k] = src[k];
    dst[2 * k + 1] = src[n + k];
  }
}

void split4(const std::uint8_t* src, std::uint8_t* dst, std::size_t n) {
  const __m256i shuf = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6,
                                        10, 14, 3, 7, 11, 15);
  const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m256i v = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(load(src + 4 * k), shuf), perm);
    alignas(32) std::uint64_t q[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(q), v);
    for (std::size_t b = 0; b < 4; ++b) std::memcpy(dst + b * n + k, &q[b], 8);
  }
  for (; k < n; ++k) {
    for (std::size_t b = 0; b < 4; ++b) dst[b * n + k] = src[4 * k + b];
  }
}

void join4(const std::uint8_t* src, std::uint8_t* dst, std::size_t n) {
  std::size_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __m128i b0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + k));
    const __m128i b1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + n + k));
    const __m128i b2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * n + k));
    const __m128i b3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 3 * n + k));
    const __m128i a0 = _mm_unpacklo_epi8(b0, b1), a1 = _mm_unpackhi_epi8(b0, b1);
    const __m128i c0 = _mm_unpacklo_epi8(b2, b3), c1 = _mm_unpackhi_epi8(b2, b3);
    auto* d = reinterpret_cast<__m128i*>(dst + 4 * k);
    _mm_storeu_si128(d + 0, _mm_unpacklo_epi16(a0, c0));
    _mm_storeu_si128(d + 1, _mm_unpackhi_epi16(a0, c0));
    _mm_storeu_si128(d + 2, _mm_unpacklo_epi16(a1, c1));
    _mm_storeu_si128(d + 3, _mm_unpackhi_epi16(a1, c1));
  }
  for (; k < n; ++k) {
    for (std::size_t b = 0; b < 4; ++b) dst[4 * k + b] = src[b * n + k];
  }
}

// E = 2 in one pass: 32 elements -> the low and high byte streams in registers (pshufb,
// vpermq, vperm2i128), then 8 movemasks each straight into the 16 planes. n % 32 == 0.
void transpose2_fused(const std::uint8_t* src, std::uint8_t* dst, std::size_t n) {
  const __m256i shuf = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3,
                                        5, 7, 9, 11, 13, 15);
  const std::size_t nb = n / 8;
  for (std::size_t k = 0; k + 32 <= n; k += 32) {
    // each: qwords (lo 0-7, lo 8-15, hi 0-7, hi 8-15) of 16 elements
    const __m256i va = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(load(src + 2 * k), shuf), 0xD8);
    const __m256i vb = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(load(src + 2 * k + 32), shuf), 0xD8);
    __m256i lo = _mm256_permute2x128_si256(va, vb, 0x20), hi = _mm256_permute2x128_si256(va, vb, 0x31);
    const std::size_t g = k / 8;
    for (std::size_t j = 8; j-- > 0;) {
      const auto ml = static_cast<std::uint32_t>(_mm256_movemask_epi8(lo));
      const auto mh = static_cast<std::uint32_t>(_mm256_movemask_epi8(hi));
      std::memcpy(dst + j * nb + g, &ml, 4);
      std::memcpy(dst + n + j * nb + g, &mh, 4);
      lo = _mm256_add_epi8(lo, lo);
      hi = _mm256_add_epi8(hi, hi);
    }
  }
}

// One byte stream of n bytes -> 8 planes of n/8 bytes.
void stream_to_planes(const std::uint8_t* s, std::uint8_t* planes, std::size_t n) {
  const std::size_t nb = n / 8;
  std::size_t g = 0;
  for (; g + 4 <= nb; g += 4) {
    __m256i v = load(s + g * 8);
    for (int j = 7; j >= 0; --j) {
      const auto m = static_cast<std::uint32_t>(_mm256_movemask_epi8(v));
      std::memcpy(planes + static_cast<std::size_t>(j) * nb + g, &m, 4);
      v = _mm256_add_epi8(v, v);
    }
  }
  for (; g < nb; ++g) {
    std::uint64_t x;
    std::memcpy(&x, s + g * 8, 8);
    x = transpose8(x);
    for (std::size_t j = 0; j < 8; ++j) planes[j * nb + g] = static_cast<std::uint8_t>(x >> (8 * j));
  }
}

void planes_to_stream(const std::uint8_t* planes, std::uint8_t* s, std::size_t n) {
  const std::size_t nb = n / 8;
  // byte k of the output takes bit (k % 8) of plane byte k / 8
  const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3,
                                          3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
  std::size_t g = 0;
  for (; g + 4 <= nb; g += 4) {
    __m256i acc = _mm256_setzero_si256();
    for (std::size_t j = 0; j < 8; ++j) {
      std::uint32_t w;
      std::memcpy(&w, planes + j * nb + g, 4);
      // _mm256_shuffle_epi8 works per 128-bit lane: the broadcast puts the 4 bytes in both.
      const __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(w)), spread);
      const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit);
      acc = _mm256_or_si256(acc, _mm256_and_si256(set, _mm256_set1_epi8(static_cast<char>(1 << j))));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(s + g * 8), acc);
  }
  for (; g < nb; ++g) {
    std::uint64_t x = 0;
    for (std::size_t j = 0; j < 8; ++j) x |= std::uint64_t(planes[j * nb + g]) << (8 * j);
    x = transpose8(x);
    std::memcpy(s + g * 8, &x, 8);
  }
}

thread_local std::array<std::uint8_t, 1 << 16> t_scratch;

}  // namespace

void nonzero_mask(const std::uint8_t* x, std::size_t n, std::uint64_t* out, std::uint8_t c) {
  const __m256i vc = _mm256_set1_epi8(static_cast<char>(c));
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const auto lo = static_cast<std::uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(load(x + i), vc)));
    const auto hi = static_cast<std::uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(load(x + i + 32), vc)));
    out[i / 64] = ~((std::uint64_t(hi) << 32) | lo);
  }
  nonzero_mask_tail(x, i, n, out, c);
}

namespace {
// Bit k set iff x[k] != y[k], k < 64.
inline std::uint64_t neq64(const std::uint8_t* x, __m256i y0, __m256i y1) {
  const auto lo = static_cast<std::uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(load(x), y0)));
  const auto hi = static_cast<std::uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(load(x + 32), y1)));
  return ~((std::uint64_t(hi) << 32) | lo);
}
}  // namespace

void differ_mask(const std::uint8_t* x, const std::uint8_t* y, std::size_t n, std::uint64_t* out) {
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) out[i / 64] = neq64(x + i, load(y + i), load(y + i + 32));
  differ_mask_tail(x, y, i, n, out);
}

std::size_t count_differing(const std::uint8_t* x, const std::uint8_t* y, std::uint8_t c, std::size_t n,
                            std::size_t limit) {
  const __m256i vc = _mm256_set1_epi8(static_cast<char>(c));
  std::size_t d = 0, i = 0;
  for (; i + 64 <= n; i += 64) {
    d += static_cast<std::size_t>(
        popcnt64(y != nullptr ? neq64(x + i, load(y + i), load(y + i + 32)) : neq64(x + i, vc, vc)));
    if (d > limit) return d;
  }
  return count_differing_tail(x, y, c, i, n, limit, d);
}

void classify_planes(const std::uint8_t* planes, std::size_t nb, std::size_t nplanes, codec_detail::PlaneInfo* info) {
  const __m256i nib = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2,
                                       3, 3, 4);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (std::size_t p = 0; p < nplanes; ++p) {
    const std::uint8_t* x = planes + p * nb;
    const std::uint64_t pat = 0x0101010101010101ULL * x[0];
    const __m256i vpat = _mm256_set1_epi64x(static_cast<long long>(pat));
    __m256i vdiff = _mm256_setzero_si256();
    const __m256i all = _mm256_set1_epi8(-1);
    std::size_t i = 0, zeros = 0, ones = 0, flips = 0;
    for (; i + 32 <= nb; i += 32) {
      const __m256i v = load(x + i);
      vdiff = _mm256_or_si256(vdiff, _mm256_xor_si256(v, vpat));
      zeros += static_cast<std::size_t>(
          std::popcount(static_cast<std::uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_setzero_si256())))));
      ones += static_cast<std::size_t>(
          std::popcount(static_cast<std::uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, all)))));
    }
    std::uint64_t diff = _mm256_testz_si256(vdiff, vdiff) ? 0 : 1;
    classify_tail(x, i, nb, pat, diff, flips, zeros, ones);
    // Constant and sparse planes do not need the flip count (decide reports 0 for them).
    if (diff != 0 && zeros * 10 < nb * 8 && ones * 10 < nb * 8) {
      __m256i vflips = _mm256_setzero_si256();
      for (std::size_t k = 0; k + 32 <= nb; k += 32) {
        // popcount of v ^ (v >> 1) per 64-bit lane (nibble table, then byte sums per lane)
        const __m256i v = load(x + k);
        const __m256i f = _mm256_xor_si256(v, _mm256_srli_epi64(v, 1));
        const __m256i cnt = _mm256_add_epi8(_mm256_shuffle_epi8(nib, _mm256_and_si256(f, low4)),
                                            _mm256_shuffle_epi8(nib, _mm256_and_si256(_mm256_srli_epi16(f, 4), low4)));
        vflips = _mm256_add_epi64(vflips, _mm256_sad_epu8(cnt, _mm256_setzero_si256()));
      }
      alignas(32) std::uint64_t lanes[4];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), vflips);
      flips += static_cast<std::size_t>(lanes[0] + lanes[1] + lanes[2] + lanes[3]);
    }
    info[p] = decide(diff, flips, zeros, ones, nb, x[0]);
  }
}

void bit_transpose(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size) {
  const auto* src = reinterpret_cast<const std::uint8_t*>(in);
  auto* dst = reinterpret_cast<std::uint8_t*>(out);
  if (elem_size == 1) return stream_to_planes(src, dst, n);
  if (elem_size == 2 && n % 32 == 0) return transpose2_fused(src, dst, n);
  if ((elem_size != 2 && elem_size != 4) || n * elem_size > t_scratch.size()) {
    return scalar::bit_transpose(in, out, n, elem_size);
  }
  std::uint8_t* tmp = t_scratch.data();
  if (elem_size == 2) split2(src, tmp, n);
  if (elem_size == 4) split4(src, tmp, n);
  for (std::size_t b = 0; b < elem_size; ++b) stream_to_planes(tmp + b * n, dst + b * n, n);
}

void bit_untranspose(const std::byte* in, std::byte* out, std::size_t n, std::size_t elem_size) {
  const auto* src = reinterpret_cast<const std::uint8_t*>(in);
  auto* dst = reinterpret_cast<std::uint8_t*>(out);
  if (elem_size == 1) return planes_to_stream(src, dst, n);
  if ((elem_size != 2 && elem_size != 4) || n * elem_size > t_scratch.size()) {
    return scalar::bit_untranspose(in, out, n, elem_size);
  }
  std::uint8_t* tmp = t_scratch.data();
  for (std::size_t b = 0; b < elem_size; ++b) planes_to_stream(src + b * n, tmp + b * n, n);
  if (elem_size == 2) join2(tmp, dst, n);
  if (elem_size == 4) join4(tmp, dst, n);
}

}  // namespace lclstream::avx2
