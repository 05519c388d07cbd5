// AVX-512 peakfinder8 kernels: one zmm = 16 rings; two per block row give two independent
// dependency chains per accumulator. Same lane order as the scalar kernel, so the same bits.
#include <immintrin.h>

// GCC 12 reports its own _mm512_undefined_* placeholders as maybe-uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels.hpp"

namespace lclstream::peaks::detail::avx512 {

static_assert(kLanes == 32, "the AVX-512 kernel handles two zmm of 16 lanes per row");

namespace {

// How far ahead in the bucket (floats) the gather prefetches (measured best on a JF4M frame).
constexpr std::size_t kAhead = 1024;

struct Sums {
  __m512 s0, s1, q0, q1;
  __m512i c0, c1;
};

inline Sums zero_sums() {
  return {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
          _mm512_setzero_si512(), _mm512_setzero_si512()};
}

// One row of one pass: the in-window values of each lane added in order.
inline void add_row(Sums& a, __m512 v0, __m512 v1, __m512 hi0, __m512 hi1, __m512 lo0, __m512 lo1) {
  const __m512i one = _mm512_set1_epi32(1);
  const __mmask16 k0 = _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(v0, hi0, _CMP_LT_OQ), v0, lo0, _CMP_GT_OQ);
  const __mmask16 k1 = _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(v1, hi1, _CMP_LT_OQ), v1, lo1, _CMP_GT_OQ);
  a.s0 = _mm512_mask_add_ps(a.s0, k0, a.s0, v0);
  a.s1 = _mm512_mask_add_ps(a.s1, k1, a.s1, v1);
  a.q0 = _mm512_mask_add_ps(a.q0, k0, a.q0, _mm512_mul_ps(v0, v0));
  a.q1 = _mm512_mask_add_ps(a.q1, k1, a.q1, _mm512_mul_ps(v1, v1));
  a.c0 = _mm512_mask_add_epi32(a.c0, k0, a.c0, one);
  a.c1 = _mm512_mask_add_epi32(a.c1, k1, a.c1, one);
}

// psana's statistics per lane; true when no lane's thresholds moved.
inline bool finish_pass(const Sums& a, float min_snr, float adc_thresh, float* roffset, float* hi, float* lo) {
  alignas(64) float s[kLanes], q[kLanes];
  alignas(64) int c[kLanes];
  _mm512_store_ps(s, a.s0);
  _mm512_store_ps(s + 16, a.s1);
  _mm512_store_ps(q, a.q0);
  _mm512_store_ps(q + 16, a.q1);
  _mm512_store_si512(c, a.c0);
  _mm512_store_si512(c + 16, a.c1);
  const __m512 hi0 = _mm512_load_ps(hi), hi1 = _mm512_load_ps(hi + 16);
  const __m512 lo0 = _mm512_load_ps(lo), lo1 = _mm512_load_ps(lo + 16);
  for (std::size_t l = 0; l < kLanes; ++l) radial_stats_lane(s[l], q[l], c[l], min_snr, adc_thresh, roffset[l], hi[l], lo[l]);
  const __mmask16 same = _mm512_cmp_ps_mask(hi0, _mm512_load_ps(hi), _CMP_EQ_OQ) &
                         _mm512_cmp_ps_mask(hi1, _mm512_load_ps(hi + 16), _CMP_EQ_OQ) &
                         _mm512_cmp_ps_mask(lo0, _mm512_load_ps(lo), _CMP_EQ_OQ) &
                         _mm512_cmp_ps_mask(lo1, _mm512_load_ps(lo + 16), _CMP_EQ_OQ);
  return same == 0xFFFF;
}

inline std::size_t store_seeds(std::int32_t* seeds, std::size_t n, const std::int32_t* ix, __mmask16 k0, __mmask16 k1) {
  _mm512_mask_compressstoreu_epi32(seeds + n, k0, _mm512_loadu_si512(ix));
  n += static_cast<std::size_t>(__builtin_popcount(k0));
  _mm512_mask_compressstoreu_epi32(seeds + n, k1, _mm512_loadu_si512(ix + 16));
  return n + static_cast<std::size_t>(__builtin_popcount(k1));
}

}  // namespace

// The first pass (every finite value in) is summed while the block is gathered. Every later
// pass also collects the values above the thresholds it used: when that pass turns out not to
// move them, those are the final seeds and no separate seed pass is needed.
std::size_t ring_block(const float* bucket, const std::int32_t* pos, const std::int32_t* idx, std::size_t len,
                       float min_snr, float adc_thresh, float* blk, float* roffset, float* rthreshold,
                       std::int32_t* seeds, const float* ahead, const float* ahead_end) {
  alignas(64) float hi[kLanes], lo[kLanes];
  for (std::size_t l = 0; l < kLanes; ++l) {
    hi[l] = 1e9f;
    lo[l] = -1e9f;
  }
  const __m512 nan = _mm512_set1_ps(__builtin_nanf(""));
  const __m512i zero = _mm512_setzero_si512();
  {
    const __m512 hi0 = _mm512_set1_ps(1e9f), lo0 = _mm512_set1_ps(-1e9f);
    Sums a = zero_sums();
    const auto ahead_len = static_cast<std::size_t>(ahead_end - ahead);
    for (std::size_t i = 0; i < len; ++i) {
      const std::size_t pf = i * kLanes + kAhead;
      if (pf + 16 < ahead_len) {
        _mm_prefetch(reinterpret_cast<const char*>(ahead + pf), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(ahead + pf + 16), _MM_HINT_T0);
      }
      const __m512i ix0 = _mm512_loadu_si512(pos + i * kLanes);
      const __m512i ix1 = _mm512_loadu_si512(pos + i * kLanes + 16);
      const __m512 v0 = _mm512_mask_i32gather_ps(nan, _mm512_cmpge_epi32_mask(ix0, zero), ix0, bucket, 4);
      const __m512 v1 = _mm512_mask_i32gather_ps(nan, _mm512_cmpge_epi32_mask(ix1, zero), ix1, bucket, 4);
      _mm512_store_ps(blk + i * kLanes, v0);
      _mm512_store_ps(blk + i * kLanes + 16, v1);
      add_row(a, v0, v1, hi0, hi0, lo0, lo0);
    }
    finish_pass(a, min_snr, adc_thresh, roffset, hi, lo);
  }
  std::size_t n = 0;
  bool settled = false;
  for (int it = 1; it < kIterations && !settled; ++it) {
    const __m512 hi0 = _mm512_load_ps(hi), hi1 = _mm512_load_ps(hi + 16);
    const __m512 lo0 = _mm512_load_ps(lo), lo1 = _mm512_load_ps(lo + 16);
    Sums a = zero_sums();
    n = 0;
    for (std::size_t i = 0; i < len; ++i) {
      const __m512 v0 = _mm512_load_ps(blk + i * kLanes);
      const __m512 v1 = _mm512_load_ps(blk + i * kLanes + 16);
      add_row(a, v0, v1, hi0, hi1, lo0, lo1);
      const __mmask16 k0 = _mm512_cmp_ps_mask(v0, hi0, _CMP_GT_OQ);
      const __mmask16 k1 = _mm512_cmp_ps_mask(v1, hi1, _CMP_GT_OQ);
      if ((k0 | k1) != 0) [[unlikely]]
        n = store_seeds(seeds, n, idx + i * kLanes, k0, k1);
    }
    settled = finish_pass(a, min_snr, adc_thresh, roffset, hi, lo);
  }
  if (!settled) {
    const __m512 hi0 = _mm512_load_ps(hi), hi1 = _mm512_load_ps(hi + 16);
    n = 0;
    for (std::size_t i = 0; i < len; ++i) {
      const __mmask16 k0 = _mm512_cmp_ps_mask(_mm512_load_ps(blk + i * kLanes), hi0, _CMP_GT_OQ);
      const __mmask16 k1 = _mm512_cmp_ps_mask(_mm512_load_ps(blk + i * kLanes + 16), hi1, _CMP_GT_OQ);
      if ((k0 | k1) != 0) [[unlikely]]
        n = store_seeds(seeds, n, idx + i * kLanes, k0, k1);
    }
  }
  for (std::size_t l = 0; l < kLanes; ++l) rthreshold[l] = hi[l];
  return n;
}

// Runs average ~50 pixels: whole zmm moves plus one masked tail, no call per run.
void copy_runs_f32(const float* frame, const Run* runs, std::size_t nruns, float* bucket) {
  for (std::size_t r = 0; r < nruns; ++r) {
    const float* src = frame + runs[r].src;
    float* dst = bucket + runs[r].dst;
    std::uint32_t n = runs[r].len, j = 0;
    for (; j + 16 <= n; j += 16) _mm512_storeu_ps(dst + j, _mm512_loadu_ps(src + j));
    if (j < n) {
      const __mmask16 k = static_cast<__mmask16>((1u << (n - j)) - 1);
      _mm512_mask_storeu_ps(dst + j, k, _mm512_maskz_loadu_ps(k, src + j));
    }
  }
}

void copy_runs_u16(const std::uint16_t* frame, const Run* runs, std::size_t nruns, float* bucket) {
  for (std::size_t r = 0; r < nruns; ++r) {
    const std::uint16_t* src = frame + runs[r].src;
    float* dst = bucket + runs[r].dst;
    std::uint32_t n = runs[r].len, j = 0;
    for (; j + 16 <= n; j += 16) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + j));
      _mm512_storeu_ps(dst + j, _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(v)));
    }
    if (j < n) {
      const __mmask16 k = static_cast<__mmask16>((1u << (n - j)) - 1);
      const __m256i v = _mm256_maskz_loadu_epi16(k, src + j);
      _mm512_mask_storeu_ps(dst + j, k, _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(v)));
    }
  }
}

void copy_runs_u32(const std::uint32_t* frame, const Run* runs, std::size_t nruns, float* bucket) {
  for (std::size_t r = 0; r < nruns; ++r) {
    const std::uint32_t* src = frame + runs[r].src;
    float* dst = bucket + runs[r].dst;
    std::uint32_t n = runs[r].len, j = 0;
    for (; j + 16 <= n; j += 16) _mm512_storeu_ps(dst + j, _mm512_cvtepu32_ps(_mm512_loadu_si512(src + j)));
    if (j < n) {
      const __mmask16 k = static_cast<__mmask16>((1u << (n - j)) - 1);
      _mm512_mask_storeu_ps(dst + j, k, _mm512_cvtepu32_ps(_mm512_maskz_loadu_epi32(k, src + j)));
    }
  }
}

// Photon frames are mostly zeros. Branch-free first: the indices of the nonzero good pixels of
// a stretch are compacted into `stage` (register compress, then a plain store: memory-destination
// compress is slow on some cores); then they are counted in a loop whose branches predict well.
namespace {

constexpr std::size_t kStage = 4096;  // pixels per stretch

template <class T>
std::size_t count_stage(const T* frame, const std::uint16_t* bin16, const std::uint32_t* stage, std::size_t ns,
                        std::uint32_t* hist, std::size_t nbins, std::uint32_t min_candidate, std::uint32_t* candidates, std::size_t n,
                        std::uint32_t* over, std::size_t& no) {
  for (std::size_t j = 0; j < ns; ++j) {
    const std::uint32_t p = stage[j];
    const std::uint32_t x = frame[p];
    if (x >= min_candidate) [[unlikely]]
      candidates[n++] = p;
    if (x < kHistValues) [[likely]] {
      ++hist[x * nbins + bin16[p]];
    } else {
      over[no++] = p;
    }
  }
  return n;
}

// Stretch by stretch: `compact(i0, i1, stage)` lists the nonzero good pixels of [i0, i1) in
// `stage` and says how many; count_stage counts them.
template <class T, class Compact>
std::size_t histogram(const T* frame, const std::uint16_t* bin16, std::size_t npix, std::uint32_t* hist, std::size_t nbins,
                      std::uint32_t min_candidate, std::uint32_t* candidates, std::uint32_t* over, std::size_t* n_over,
                      Compact compact) {
  alignas(64) std::uint32_t stage[kStage + 16];
  std::size_t n = 0, no = 0;
  for (std::size_t i0 = 0; i0 < npix; i0 += kStage) {
    const std::size_t i1 = npix - i0 < kStage ? npix : i0 + kStage;
    const std::size_t ns = compact(i0, i1, stage);
    n = count_stage(frame, bin16, stage, ns, hist, nbins, min_candidate, candidates, n, over, no);
  }
  *n_over = no;
  return n;
}

}  // namespace

std::size_t histogram_u16(const std::uint16_t* frame, const std::uint16_t* bin16, std::size_t npix, std::uint32_t* hist, std::size_t nbins,
                          std::uint32_t min_candidate, std::uint32_t* candidates, std::uint32_t* over, std::size_t* n_over) {
  const __m512i nobin = _mm512_set1_epi16(static_cast<short>(kNoBin));
  const __m512i lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  auto compact = [&](std::size_t i0, std::size_t i1, std::uint32_t* stage) {
    std::size_t ns = 0;
    for (std::size_t i = i0; i < i1; i += 32) {
      const __mmask32 in = i1 - i >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << (i1 - i)) - 1);
      const __m512i v = _mm512_maskz_loadu_epi16(in, frame + i);
      const __m512i b = _mm512_maskz_loadu_epi16(in, bin16 + i);
      const __mmask32 k = _mm512_mask_test_epi16_mask(in, v, v) & _mm512_cmpneq_epi16_mask(b, nobin);
      const __m512i base = _mm512_add_epi32(lanes, _mm512_set1_epi32(static_cast<int>(i)));
      const auto k0 = static_cast<__mmask16>(k), k1 = static_cast<__mmask16>(k >> 16);
      _mm512_storeu_si512(stage + ns, _mm512_maskz_compress_epi32(k0, base));
      ns += static_cast<std::size_t>(__builtin_popcount(k0));
      _mm512_storeu_si512(stage + ns, _mm512_maskz_compress_epi32(k1, _mm512_add_epi32(base, _mm512_set1_epi32(16))));
      ns += static_cast<std::size_t>(__builtin_popcount(k1));
    }
    return ns;
  };
  return histogram(frame, bin16, npix, hist, nbins, min_candidate, candidates, over, n_over, compact);
}

std::size_t histogram_u32(const std::uint32_t* frame, const std::uint16_t* bin16, std::size_t npix, std::uint32_t* hist, std::size_t nbins,
                          std::uint32_t min_candidate, std::uint32_t* candidates, std::uint32_t* over, std::size_t* n_over) {
  const __m256i nobin = _mm256_set1_epi16(static_cast<short>(kNoBin));
  const __m512i lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  auto compact = [&](std::size_t i0, std::size_t i1, std::uint32_t* stage) {
    std::size_t ns = 0;
    for (std::size_t i = i0; i < i1; i += 16) {
      const __mmask16 in = i1 - i >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (i1 - i)) - 1);
      const __m512i v = _mm512_maskz_loadu_epi32(in, frame + i);
      const __m256i b = _mm256_maskz_loadu_epi16(in, bin16 + i);
      const __mmask16 k = _mm512_mask_test_epi32_mask(in, v, v) & _mm256_cmpneq_epi16_mask(b, nobin);
      _mm512_storeu_si512(stage + ns, _mm512_maskz_compress_epi32(k, _mm512_add_epi32(lanes, _mm512_set1_epi32(static_cast<int>(i)))));
      ns += static_cast<std::size_t>(__builtin_popcount(k));
    }
    return ns;
  };
  return histogram(frame, bin16, npix, hist, nbins, min_candidate, candidates, over, n_over, compact);
}

}  // namespace lclstream::peaks::detail::avx512
