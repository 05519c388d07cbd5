// AVX-512 peakfinder8 kernels: one zmm = 16 rings; two per block row give two independent
// dependency chains per accumulator. Same lane order as the scalar kernel, so the same bits.
#include <immintrin.h>

#include "kernels.hpp"

namespace lclstream::peaks::detail::avx512 {

static_assert(kLanes == 32, "the AVX-512 kernel handles two zmm of 16 lanes per row");

std::size_t ring_group(const float* blk, const std::int32_t* idx, std::size_t len, float min_snr,
                       float adc_thresh, float* roffset, float* rthreshold, std::int32_t* seeds) {
  alignas(64) float hi[kLanes], lo[kLanes], s[kLanes], q[kLanes];
  alignas(64) int c[kLanes];
  for (std::size_t l = 0; l < kLanes; ++l) {
    hi[l] = 1e9f;
    lo[l] = -1e9f;
  }
  const __m512i one = _mm512_set1_epi32(1);
  for (int it = 0; it < kIterations; ++it) {
    const __m512 hi0 = _mm512_load_ps(hi), hi1 = _mm512_load_ps(hi + 16);
    const __m512 lo0 = _mm512_load_ps(lo), lo1 = _mm512_load_ps(lo + 16);
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    __m512 q0 = _mm512_setzero_ps(), q1 = _mm512_setzero_ps();
    __m512i c0 = _mm512_setzero_si512(), c1 = _mm512_setzero_si512();
    for (std::size_t i = 0; i < len; ++i) {
      const __m512 v0 = _mm512_loadu_ps(blk + i * kLanes);
      const __m512 v1 = _mm512_loadu_ps(blk + i * kLanes + 16);
      const __mmask16 k0 = _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(v0, hi0, _CMP_LT_OQ), v0, lo0, _CMP_GT_OQ);
      const __mmask16 k1 = _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(v1, hi1, _CMP_LT_OQ), v1, lo1, _CMP_GT_OQ);
      s0 = _mm512_mask_add_ps(s0, k0, s0, v0);
      s1 = _mm512_mask_add_ps(s1, k1, s1, v1);
      q0 = _mm512_mask_add_ps(q0, k0, q0, _mm512_mul_ps(v0, v0));
      q1 = _mm512_mask_add_ps(q1, k1, q1, _mm512_mul_ps(v1, v1));
      c0 = _mm512_mask_add_epi32(c0, k0, c0, one);
      c1 = _mm512_mask_add_epi32(c1, k1, c1, one);
    }
    _mm512_store_ps(s, s0);
    _mm512_store_ps(s + 16, s1);
    _mm512_store_ps(q, q0);
    _mm512_store_ps(q + 16, q1);
    _mm512_store_si512(c, c0);
    _mm512_store_si512(c + 16, c1);
    for (std::size_t l = 0; l < kLanes; ++l) radial_stats_lane(s[l], q[l], c[l], min_snr, adc_thresh, roffset[l], hi[l], lo[l]);
  }
  const __m512 hi0 = _mm512_load_ps(hi), hi1 = _mm512_load_ps(hi + 16);
  std::size_t n = 0;
  for (std::size_t i = 0; i < len; ++i) {
    const __m512 v0 = _mm512_loadu_ps(blk + i * kLanes);
    const __m512 v1 = _mm512_loadu_ps(blk + i * kLanes + 16);
    const __mmask16 k0 = _mm512_cmp_ps_mask(v0, hi0, _CMP_GT_OQ);
    const __mmask16 k1 = _mm512_cmp_ps_mask(v1, hi1, _CMP_GT_OQ);
    if ((k0 | k1) == 0) [[likely]]
      continue;
    const std::int32_t* ix = idx + i * kLanes;
    _mm512_mask_compressstoreu_epi32(seeds + n, k0, _mm512_loadu_si512(ix));
    n += static_cast<std::size_t>(__builtin_popcount(k0));
    _mm512_mask_compressstoreu_epi32(seeds + n, k1, _mm512_loadu_si512(ix + 16));
    n += static_cast<std::size_t>(__builtin_popcount(k1));
  }
  for (std::size_t l = 0; l < kLanes; ++l) rthreshold[l] = hi[l];
  return n;
}

void gather_f32(const float* frame, const std::int32_t* idx, std::size_t n, float* blk) {
  const __m512 nan = _mm512_set1_ps(__builtin_nanf(""));
  const __m512i zero = _mm512_setzero_si512();
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i ix = _mm512_loadu_si512(idx + i);
    const __mmask16 ok = _mm512_cmpge_epi32_mask(ix, zero);
    _mm512_storeu_ps(blk + i, _mm512_mask_i32gather_ps(nan, ok, ix, frame, 4));
  }
  for (; i < n; ++i) blk[i] = idx[i] >= 0 ? frame[idx[i]] : __builtin_nanf("");
}

}  // namespace lclstream::peaks::detail::avx512
