// AVX-512 fill of the sparse lists: 128 pixels tested per branch (most are empty at photon
// occupancies), then per vector a nonzero mask, the lane indices and values compressed in registers
// and stored whole (the cursor moves by the mask's popcount).
#include <immintrin.h>

#include "sparse/fill.hpp"

namespace lclstream::sparse::detail {

std::size_t fill_avx512(const std::uint16_t* p, std::size_t n, std::uint32_t* idx, std::uint16_t* val) {
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i sixteen = _mm512_set1_epi32(16);
  std::size_t k = 0, i = 0;
  for (; i + 128 <= n; i += 128) {
    const __m512i a = _mm512_loadu_si512(p + i), b = _mm512_loadu_si512(p + i + 32);
    const __m512i c = _mm512_loadu_si512(p + i + 64), d = _mm512_loadu_si512(p + i + 96);
    const __m512i any = _mm512_or_si512(_mm512_or_si512(a, b), _mm512_or_si512(c, d));
    if (_mm512_test_epi16_mask(any, any) == 0) continue;
    const __m512i vs[4] = {a, b, c, d};
    for (int q = 0; q < 4; ++q) {
      const __mmask32 m = _mm512_test_epi16_mask(vs[q], vs[q]);
      if (m == 0) continue;
      const __m512i base = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(i + 32 * q)), iota);
      const auto lo = static_cast<__mmask16>(m), hi = static_cast<__mmask16>(m >> 16);
      const auto nlo = static_cast<std::size_t>(_mm_popcnt_u32(lo));
      _mm512_storeu_si512(idx + k, _mm512_maskz_compress_epi32(lo, base));
      _mm512_storeu_si512(idx + k + nlo, _mm512_maskz_compress_epi32(hi, _mm512_add_epi32(base, sixteen)));
      _mm512_storeu_si512(val + k, _mm512_maskz_compress_epi16(m, vs[q]));
      k += static_cast<std::size_t>(_mm_popcnt_u32(m));
    }
  }
  for (; i < n; ++i) {
    idx[k] = static_cast<std::uint32_t>(i);
    val[k] = p[i];
    k += p[i] != 0;
  }
  return k;
}

std::size_t fill_avx512(const std::uint32_t* p, std::size_t n, std::uint32_t* idx, std::uint32_t* val) {
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  std::size_t k = 0, i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i a = _mm512_loadu_si512(p + i), b = _mm512_loadu_si512(p + i + 16);
    const __m512i c = _mm512_loadu_si512(p + i + 32), d = _mm512_loadu_si512(p + i + 48);
    const __m512i any = _mm512_or_si512(_mm512_or_si512(a, b), _mm512_or_si512(c, d));
    if (_mm512_test_epi32_mask(any, any) == 0) continue;
    const __m512i vs[4] = {a, b, c, d};
    for (int q = 0; q < 4; ++q) {
      const __mmask16 m = _mm512_test_epi32_mask(vs[q], vs[q]);
      if (m == 0) continue;
      const __m512i base = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(i + 16 * q)), iota);
      _mm512_storeu_si512(idx + k, _mm512_maskz_compress_epi32(m, base));
      _mm512_storeu_si512(val + k, _mm512_maskz_compress_epi32(m, vs[q]));
      k += static_cast<std::size_t>(_mm_popcnt_u32(m));
    }
  }
  for (; i < n; ++i) {
    idx[k] = static_cast<std::uint32_t>(i);
    val[k] = p[i];
    k += p[i] != 0;
  }
  return k;
}

}  // namespace lclstream::sparse::detail
